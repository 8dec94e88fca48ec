//! Event sets, templates (integration profiles), integration rules and "copy settings".
//!
//! An event set names catalog event types (per partner); a template holds ticket fields of one
//! connection's PSA, checked like the connection's defaults; an integration rule pairs an event
//! set with a template, and the connection's default rule applies to every client whose mapping
//! names neither (and to unmapped clients). Deleting something still referenced is refused with
//! the list of what references it.

use std::collections::BTreeSet;

use psabridge_core::catalog::Catalog;
use psabridge_core::event::FieldError;
use psabridge_core::settings::TicketDefaults;
use psabridge_identity::Permission;
use psabridge_store::config::Connection;
use psabridge_store::profiles::{Reference as StoredReference, RuleFields};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Ops;
use crate::acting::Acting;
use crate::audit::snapshot;
use crate::error::{OpsError, Reference};
use crate::input::{name, now};
use crate::ticket_fields::{check_parents, ticket_fields};
use crate::views::{
    CopiedSettings, CopiedView, EventSetView, IntegrationRuleView, MappingView, TemplateView,
};

/// Longest name of an event set, template or integration rule, in characters.
const MAX_NAME: usize = 100;

/// A named set of the catalog's event types.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSetRequest {
    pub name: String,
    pub event_types: Vec<String>,
}

/// A named set of ticket fields of one connection's PSA.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    pub name: String,
    pub fields: Map<String, Value>,
}

/// An event set and a template under a name; `default` makes it the connection's default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationRuleRequest {
    pub name: String,
    #[serde(default)]
    pub event_set: Option<i64>,
    #[serde(default)]
    pub template: Option<i64>,
    #[serde(default)]
    pub default: bool,
}

/// Copy one client's mapping settings (event set, template, ticket switch) to others.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopySettingsRequest {
    pub from: String,
    pub to: Vec<String>,
}

/// What still references an event set or a template, as refusals name it.
fn references(stored: &[StoredReference]) -> Vec<Reference> {
    stored
        .iter()
        .map(|r| match r {
            StoredReference::Mapping { client, connection } => Reference {
                what: format!("clients/{client}/mappings/{connection}"),
                detail: format!("the mapping of client '{client}' on connection {connection}"),
            },
            StoredReference::IntegrationRule { id, name } => Reference {
                what: format!("integration-rules/{id}"),
                detail: format!("integration rule '{name}'"),
            },
            StoredReference::EventRule {
                connection,
                event_type,
            } => Reference {
                what: format!("connections/{connection}/rules/{event_type}"),
                detail: format!(
                    "the rule for event type '{event_type}' on connection {connection}"
                ),
            },
        })
        .collect()
}

/// The name and the catalog-checked, de-duplicated event types of a request.
fn check_event_set(
    catalog: &Catalog,
    req: &EventSetRequest,
) -> Result<(String, Vec<String>), OpsError> {
    let mut errors = Vec::new();
    let name = name(&req.name, MAX_NAME, "name", &mut errors);
    if req.event_types.is_empty() {
        errors.push(FieldError::new(
            "event_types",
            "must name at least one event type",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, t) in req.event_types.iter().enumerate() {
        if catalog.get(t).is_none() {
            errors.push(FieldError::new(
                format!("event_types[{i}]"),
                format!(
                    "'{t}' is not an event type of the catalog (GET /api/v1/event-types lists them)"
                ),
            ));
        } else {
            seen.insert(t.clone());
        }
    }
    OpsError::check(errors)?;
    Ok((name, seen.into_iter().collect()))
}

/// A template's fields are checked like the connection's defaults: each against the PSA's
/// lists, and each dependent value against its parent once laid over the defaults.
fn check_template(
    conn: &Connection,
    req: &TemplateRequest,
) -> Result<(String, TicketDefaults), OpsError> {
    let mut errors = Vec::new();
    let name = name(&req.name, MAX_NAME, "name", &mut errors);
    OpsError::check(errors)?;
    let fields = ticket_fields(conn.kind, &req.fields, conn.lists.as_ref(), "fields.")?;
    check_parents(
        conn.kind,
        &conn.defaults.overlaid_with(&fields, conn.kind),
        conn.lists.as_ref(),
        "fields.",
    )?;
    Ok((name, fields))
}

impl Ops {
    // ---- event sets ---------------------------------------------------------------------

    pub async fn event_sets(
        &self,
        acting: &Acting,
        partner: &str,
    ) -> Result<Vec<EventSetView>, OpsError> {
        self.partner_for(acting, partner, Permission::ViewSettings)
            .await?;
        Ok(self
            .store
            .event_sets(partner)
            .await?
            .iter()
            .map(EventSetView::of)
            .collect())
    }

    pub async fn event_set(
        &self,
        acting: &Acting,
        partner: &str,
        id: i64,
    ) -> Result<EventSetView, OpsError> {
        acting.require(partner, Permission::ViewSettings)?;
        Ok(EventSetView::of(&self.store.event_set(partner, id).await?))
    }

    /// What uses an event set (mappings, integration rules, event rules): shown before a
    /// delete, which is refused while the list is not empty.
    pub async fn event_set_uses(
        &self,
        acting: &Acting,
        partner: &str,
        id: i64,
    ) -> Result<Vec<Reference>, OpsError> {
        acting.require(partner, Permission::ViewSettings)?;
        Ok(references(
            &self.store.event_set_references(partner, id).await?,
        ))
    }

    pub async fn create_event_set(
        &self,
        acting: &Acting,
        partner: &str,
        req: EventSetRequest,
    ) -> Result<EventSetView, OpsError> {
        self.partner_for(acting, partner, Permission::ManageSettings)
            .await?;
        let (name, types) = check_event_set(&*self.event_catalog().await, &req)?;
        let set = self
            .store
            .create_event_set(partner, &name, &types, now())
            .await?;
        let after = EventSetView::of(&set);
        self.audit(
            acting,
            Some(partner),
            "event_set.create",
            &format!("event_set:{}", set.id),
            None,
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    pub async fn update_event_set(
        &self,
        acting: &Acting,
        partner: &str,
        id: i64,
        req: EventSetRequest,
    ) -> Result<EventSetView, OpsError> {
        acting.require(partner, Permission::ManageSettings)?;
        let before = snapshot(&EventSetView::of(&self.store.event_set(partner, id).await?));
        let (name, types) = check_event_set(&*self.event_catalog().await, &req)?;
        let set = self
            .store
            .update_event_set(partner, id, &name, &types, now())
            .await?;
        let after = EventSetView::of(&set);
        self.audit(
            acting,
            Some(partner),
            "event_set.update",
            &format!("event_set:{id}"),
            Some(&before),
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    pub async fn delete_event_set(
        &self,
        acting: &Acting,
        partner: &str,
        id: i64,
    ) -> Result<(), OpsError> {
        acting.require(partner, Permission::ManageSettings)?;
        let before = snapshot(&EventSetView::of(&self.store.event_set(partner, id).await?));
        let refs = self.store.event_set_references(partner, id).await?;
        if !refs.is_empty() {
            return Err(OpsError::still_referenced("event set", references(&refs)));
        }
        self.store.delete_event_set(partner, id).await?;
        self.audit(
            acting,
            Some(partner),
            "event_set.delete",
            &format!("event_set:{id}"),
            Some(&before),
            None,
        )
        .await;
        Ok(())
    }

    // ---- templates ----------------------------------------------------------------------

    pub async fn templates(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
    ) -> Result<Vec<TemplateView>, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ViewSettings)
            .await?;
        Ok(self
            .store
            .templates(connection)
            .await?
            .iter()
            .map(TemplateView::of)
            .collect())
    }

    pub async fn template(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        template: i64,
    ) -> Result<TemplateView, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ViewSettings)
            .await?;
        Ok(TemplateView::of(
            &self.store.template(connection, template).await?,
        ))
    }

    /// What uses a template: shown before a delete, which is refused while there is any.
    pub async fn template_uses(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        template: i64,
    ) -> Result<Vec<Reference>, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ViewSettings)
            .await?;
        Ok(references(
            &self.store.template_references(connection, template).await?,
        ))
    }

    pub async fn create_template(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        req: TemplateRequest,
    ) -> Result<TemplateView, OpsError> {
        let conn = self
            .connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        let (name, fields) = check_template(&conn, &req)?;
        let t = self
            .store
            .create_template(connection, &name, &fields, now())
            .await?;
        let after = TemplateView::of(&t);
        self.audit(
            acting,
            Some(partner),
            "template.create",
            &format!("connection:{connection}:template:{}", t.id),
            None,
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    pub async fn update_template(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        template: i64,
        req: TemplateRequest,
    ) -> Result<TemplateView, OpsError> {
        let conn = self
            .connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        let before = snapshot(&TemplateView::of(
            &self.store.template(connection, template).await?,
        ));
        let (name, fields) = check_template(&conn, &req)?;
        let t = self
            .store
            .update_template(connection, template, &name, &fields, now())
            .await?;
        let after = TemplateView::of(&t);
        self.audit(
            acting,
            Some(partner),
            "template.update",
            &format!("connection:{connection}:template:{template}"),
            Some(&before),
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    pub async fn delete_template(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        template: i64,
    ) -> Result<(), OpsError> {
        self.connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        let before = snapshot(&TemplateView::of(
            &self.store.template(connection, template).await?,
        ));
        let refs = self.store.template_references(connection, template).await?;
        if !refs.is_empty() {
            return Err(OpsError::still_referenced("template", references(&refs)));
        }
        self.store.delete_template(connection, template).await?;
        self.audit(
            acting,
            Some(partner),
            "template.delete",
            &format!("connection:{connection}:template:{template}"),
            Some(&before),
            None,
        )
        .await;
        Ok(())
    }

    // ---- integration rules --------------------------------------------------------------

    async fn rule_fields(
        &self,
        partner: &str,
        connection: i64,
        req: IntegrationRuleRequest,
    ) -> Result<RuleFields, OpsError> {
        let mut errors = Vec::new();
        let name = name(&req.name, MAX_NAME, "name", &mut errors);
        OpsError::check(errors)?;
        self.check_profile(
            partner,
            connection,
            req.event_set,
            req.template,
            ("event_set", "template"),
        )
        .await?;
        Ok(RuleFields {
            name,
            event_set_id: req.event_set,
            template_id: req.template,
            is_default: req.default,
        })
    }

    pub async fn integration_rules(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
    ) -> Result<Vec<IntegrationRuleView>, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ViewSettings)
            .await?;
        Ok(self
            .store
            .integration_rules(connection)
            .await?
            .iter()
            .map(IntegrationRuleView::of)
            .collect())
    }

    pub async fn create_integration_rule(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        req: IntegrationRuleRequest,
    ) -> Result<IntegrationRuleView, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        let fields = self.rule_fields(partner, connection, req).await?;
        let r = self
            .store
            .create_integration_rule(connection, &fields, now())
            .await?;
        let after = IntegrationRuleView::of(&r);
        self.audit(
            acting,
            Some(partner),
            "integration_rule.create",
            &format!("connection:{connection}:integration_rule:{}", r.id),
            None,
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    pub async fn update_integration_rule(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        rule: i64,
        req: IntegrationRuleRequest,
    ) -> Result<IntegrationRuleView, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        let before = snapshot(&IntegrationRuleView::of(
            &self.store.integration_rule(connection, rule).await?,
        ));
        let fields = self.rule_fields(partner, connection, req).await?;
        let r = self
            .store
            .update_integration_rule(connection, rule, &fields, now())
            .await?;
        let after = IntegrationRuleView::of(&r);
        self.audit(
            acting,
            Some(partner),
            "integration_rule.update",
            &format!("connection:{connection}:integration_rule:{rule}"),
            Some(&before),
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    /// "Set as default": this rule becomes the connection's default, the previous one stops
    /// being.
    pub async fn make_default_integration_rule(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        rule: i64,
    ) -> Result<IntegrationRuleView, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        let current = self.store.integration_rule(connection, rule).await?;
        let before = snapshot(&IntegrationRuleView::of(&current));
        let fields = RuleFields {
            name: current.name,
            event_set_id: current.event_set_id,
            template_id: current.template_id,
            is_default: true,
        };
        let r = self
            .store
            .update_integration_rule(connection, rule, &fields, now())
            .await?;
        let after = IntegrationRuleView::of(&r);
        self.audit(
            acting,
            Some(partner),
            "integration_rule.set_default",
            &format!("connection:{connection}:integration_rule:{rule}"),
            Some(&before),
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    pub async fn delete_integration_rule(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        rule: i64,
    ) -> Result<(), OpsError> {
        self.connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        let before = snapshot(&IntegrationRuleView::of(
            &self.store.integration_rule(connection, rule).await?,
        ));
        self.store.delete_integration_rule(connection, rule).await?;
        self.audit(
            acting,
            Some(partner),
            "integration_rule.delete",
            &format!("connection:{connection}:integration_rule:{rule}"),
            Some(&before),
            None,
        )
        .await;
        Ok(())
    }

    // ---- copy settings ------------------------------------------------------------------

    /// Copy the event set, template and ticket-creation switch of one client's mapping to
    /// other clients' mappings on the same connection: all of them or, on any error, none.
    pub async fn copy_mapping_settings(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        req: CopySettingsRequest,
    ) -> Result<CopiedView, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        let mappings: Vec<_> = self
            .store
            .mappings(partner)
            .await?
            .into_iter()
            .filter(|m| m.connection_id == connection)
            .collect();
        let mut errors = Vec::new();
        let source = mappings.iter().find(|m| m.client_id == req.from);
        if source.is_none() {
            errors.push(FieldError::new(
                "from",
                format!(
                    "client '{}' is not mapped on connection {connection}",
                    req.from
                ),
            ));
        }
        if req.to.is_empty() {
            errors.push(FieldError::new("to", "must name at least one client"));
        }
        let mut targets = Vec::new();
        for (i, client) in req.to.iter().enumerate() {
            if client == &req.from {
                errors.push(FieldError::new(
                    format!("to[{i}]"),
                    "is the source mapping itself",
                ));
            } else if !mappings.iter().any(|m| &m.client_id == client) {
                errors.push(FieldError::new(
                    format!("to[{i}]"),
                    format!("client '{client}' is not mapped on connection {connection}"),
                ));
            } else if !targets.contains(client) {
                targets.push(client.clone());
            }
        }
        OpsError::check(errors)?;
        let Some(source) = source else {
            return Err(OpsError::Internal("the source mapping vanished".into()));
        };
        let before: Vec<MappingView> = mappings
            .iter()
            .filter(|m| targets.contains(&m.client_id))
            .map(MappingView::of)
            .collect();
        self.store
            .copy_mapping_settings(partner, connection, &req.from, &targets)
            .await?;
        let after: Vec<MappingView> = self
            .store
            .mappings(partner)
            .await?
            .iter()
            .filter(|m| m.connection_id == connection && targets.contains(&m.client_id))
            .map(MappingView::of)
            .collect();
        for (old, new) in before.iter().zip(&after) {
            self.audit(
                acting,
                Some(partner),
                "mapping.copy_settings",
                &format!("mapping:{}:{connection}", new.client),
                Some(&snapshot(old)),
                Some(&snapshot(new)),
            )
            .await;
        }
        Ok(CopiedView {
            copied: CopiedSettings {
                event_set: source.event_set_id,
                template: source.template_id,
                create_tickets: source.create_tickets,
            },
            mappings: after,
        })
    }
}
