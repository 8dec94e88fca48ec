//! A connection's ticket settings per event type: whether the type makes a ticket, a whole
//! template of the connection, and single fields laid over everything else (each checked
//! against the PSA's lists, each child against its parent once combined with the defaults).

use psabridge_core::catalog::Catalog;
use psabridge_core::settings::EventRule;
use psabridge_identity::Permission;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Ops;
use crate::acting::Acting;
use crate::audit::snapshot;
use crate::error::OpsError;
use crate::ticket_fields::{check_parents, ticket_fields};
use crate::views::EventRuleView;

/// The ticket settings of one event type on one connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRuleRequest {
    pub create_ticket: bool,
    /// A whole template of the connection for this event type.
    #[serde(default)]
    pub template: Option<i64>,
    /// Single ticket fields for this event type.
    #[serde(default)]
    pub fields: Map<String, Value>,
}

/// An event type settings may name: one of the catalog's active types.
pub fn check_event_type(catalog: &Catalog, t: &str) -> Result<(), OpsError> {
    match catalog.get(t) {
        Some(_) => Ok(()),
        None => Err(OpsError::field(
            "event_type",
            format!(
                "'{t}' is not an event type of the catalog (GET /api/v1/event-types lists them)"
            ),
        )),
    }
}

impl Ops {
    /// A connection's ticket settings per event type.
    pub async fn event_rules(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
    ) -> Result<Vec<EventRuleView>, OpsError> {
        self.connection_for(acting, partner, connection, Permission::ViewSettings)
            .await?;
        let rules = self.store.rules(connection).await?;
        Ok(rules.iter().map(|(t, r)| EventRuleView::of(t, r)).collect())
    }

    async fn event_rule_of(
        &self,
        connection: i64,
        event_type: &str,
    ) -> Result<Option<EventRuleView>, OpsError> {
        Ok(self
            .store
            .rules(connection)
            .await?
            .iter()
            .find(|(t, _)| t.as_str() == event_type)
            .map(|(t, r)| EventRuleView::of(t, r)))
    }

    /// Set the ticket settings of one event type on a connection.
    pub async fn put_event_rule(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        event_type: &str,
        req: EventRuleRequest,
    ) -> Result<EventRuleView, OpsError> {
        let conn = self
            .connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        check_event_type(&*self.event_catalog().await, event_type)?;
        let mut combined = conn.defaults.clone();
        if let Some(t) = req.template {
            // One read: the template must be this connection's, and its fields are checked below.
            let template = match self.store.template(connection, t).await {
                Err(psabridge_store::StoreError::NotFound(_)) => {
                    return Err(OpsError::field(
                        "template",
                        format!(
                            "{t} is not a template of connection {connection} (GET …/connections/{connection}/templates lists them)"
                        ),
                    ));
                }
                other => other?,
            };
            combined = combined.overlaid_with(&template.fields, conn.kind);
        }
        let fields = ticket_fields(conn.kind, &req.fields, conn.lists.as_ref(), "fields.")?;
        check_parents(
            conn.kind,
            &combined.overlaid_with(&fields, conn.kind),
            conn.lists.as_ref(),
            "fields.",
        )?;
        let rule = EventRule {
            create_ticket: req.create_ticket,
            template: req.template,
            fields,
        };
        let before = self.event_rule_of(connection, event_type).await?;
        self.store.put_rule(connection, event_type, &rule).await?;
        let after = EventRuleView::of(event_type, &rule);
        self.audit(
            acting,
            Some(partner),
            "rule.put",
            &format!("connection:{connection}:rule:{event_type}"),
            before.as_ref().map(snapshot).as_ref(),
            Some(&snapshot(&after)),
        )
        .await;
        Ok(after)
    }

    /// Remove the ticket settings of one event type (the connection's defaults apply again).
    pub async fn delete_event_rule(
        &self,
        acting: &Acting,
        partner: &str,
        connection: i64,
        event_type: &str,
    ) -> Result<(), OpsError> {
        self.connection_for(acting, partner, connection, Permission::ManageSettings)
            .await?;
        let before = self.event_rule_of(connection, event_type).await?;
        self.store.delete_rule(connection, event_type).await?;
        self.audit(
            acting,
            Some(partner),
            "rule.delete",
            &format!("connection:{connection}:rule:{event_type}"),
            before.as_ref().map(snapshot).as_ref(),
            None,
        )
        .await;
        Ok(())
    }
}
