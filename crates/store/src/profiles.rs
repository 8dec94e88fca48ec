//! Event sets, templates (integration profiles) and integration rules, and the questions the
//! API asks before deleting one of them: what still references it.
//!
//! Event sets belong to a partner (they name catalog event types, which every PSA shares);
//! templates and integration rules belong to one connection (their ticket fields are that
//! PSA's ids). A mapping or a rule names at most one of each.

use psabridge_core::settings::TicketDefaults;
use sqlx::Row;

use crate::Millis;
use crate::config::{defaults_from_json, defaults_to_json};
use crate::db::{Store, with_read, with_tx, with_write};
use crate::error::{StoreError, corrupt};

/// A named group of event types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSetRow {
    pub id: i64,
    pub name: String,
    pub event_types: Vec<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A named set of ticket fields on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRow {
    pub id: i64,
    pub connection_id: i64,
    pub name: String,
    pub fields: TicketDefaults,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// An event set and a template under a name; the connection's default rule applies to every
/// client whose mapping names neither, and to unmapped clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationRuleRow {
    pub id: i64,
    pub connection_id: i64,
    pub name: String,
    pub event_set_id: Option<i64>,
    pub template_id: Option<i64>,
    pub is_default: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The fields of an integration rule a caller sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFields {
    pub name: String,
    pub event_set_id: Option<i64>,
    pub template_id: Option<i64>,
    pub is_default: bool,
}

/// Something that names an event set or a template, so that it cannot be deleted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Mapping { client: String, connection: i64 },
    IntegrationRule { id: i64, name: String },
    EventRule { connection: i64, event_type: String },
}

fn event_types_from(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("event set types: {e}")))
}

fn unique(what: String) -> impl FnOnce() -> String {
    move || what
}

impl Store {
    // ---- event sets ---------------------------------------------------------------------

    pub async fn create_event_set(
        &self,
        partner: &str,
        name: &str,
        event_types: &[String],
        now: Millis,
    ) -> Result<EventSetRow, StoreError> {
        let types = serde_json::to_string(event_types).map_err(|e| corrupt(e.to_string()))?;
        let id: i64 = with_write!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO event_sets (partner_id, name, event_types, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) RETURNING id",
            )
            .bind(partner)
            .bind(name)
            .bind(&types)
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, unique(format!("an event set named '{name}' exists already"))))?
        });
        self.event_set(partner, id).await
    }

    pub async fn update_event_set(
        &self,
        partner: &str,
        id: i64,
        name: &str,
        event_types: &[String],
        now: Millis,
    ) -> Result<EventSetRow, StoreError> {
        let types = serde_json::to_string(event_types).map_err(|e| corrupt(e.to_string()))?;
        with_write!(self, pool => {
            let done = sqlx::query(
                "UPDATE event_sets SET name = $1, event_types = $2, updated_at = $3 WHERE partner_id = $4 AND id = $5",
            )
            .bind(name)
            .bind(&types)
            .bind(now)
            .bind(partner)
            .bind(id)
            .execute(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, unique(format!("an event set named '{name}' exists already"))))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("event set {id}")));
            }
        });
        self.event_set(partner, id).await
    }

    pub async fn event_sets(&self, partner: &str) -> Result<Vec<EventSetRow>, StoreError> {
        with_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, name, event_types, created_at, updated_at FROM event_sets WHERE partner_id = $1 ORDER BY name",
            )
            .bind(partner)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let types: String = r.try_get("event_types")?;
                    Ok(EventSetRow {
                        id: r.try_get("id")?,
                        name: r.try_get("name")?,
                        event_types: event_types_from(&types)?,
                        created_at: r.try_get("created_at")?,
                        updated_at: r.try_get("updated_at")?,
                    })
                })
                .collect()
        })
    }

    pub async fn event_set(&self, partner: &str, id: i64) -> Result<EventSetRow, StoreError> {
        self.event_sets(partner)
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("event set {id}")))
    }

    /// Delete an event set that nothing references (the caller asks
    /// [`Store::event_set_references`] first; the foreign keys refuse it otherwise).
    pub async fn delete_event_set(&self, partner: &str, id: i64) -> Result<(), StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query("DELETE FROM event_sets WHERE partner_id = $1 AND id = $2")
                .bind(partner)
                .bind(id)
                .execute(pool)
                .await
                .map_err(|e| StoreError::conflict_or(e, unique(format!("event set {id} is still referenced"))))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("event set {id}")));
            }
        });
        Ok(())
    }

    /// Mappings and integration rules that name event set `id`.
    pub async fn event_set_references(
        &self,
        partner: &str,
        id: i64,
    ) -> Result<Vec<Reference>, StoreError> {
        with_read!(self, pool => {
            let mut out = Vec::new();
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT client_id, connection_id FROM mappings WHERE partner_id = $1 AND event_set_id = $2 ORDER BY client_id, connection_id",
            )
            .bind(partner)
            .bind(id)
            .fetch_all(pool)
            .await?;
            out.extend(rows.into_iter().map(|(client, connection)| Reference::Mapping { client, connection }));
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT r.id, r.name FROM integration_rules r JOIN connections c ON c.id = r.connection_id \
                 WHERE c.partner_id = $1 AND r.event_set_id = $2 ORDER BY r.id",
            )
            .bind(partner)
            .bind(id)
            .fetch_all(pool)
            .await?;
            out.extend(rows.into_iter().map(|(id, name)| Reference::IntegrationRule { id, name }));
            Ok(out)
        })
    }

    // ---- templates ----------------------------------------------------------------------

    pub async fn create_template(
        &self,
        connection_id: i64,
        name: &str,
        fields: &TicketDefaults,
        now: Millis,
    ) -> Result<TemplateRow, StoreError> {
        let id: i64 = with_write!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO ticket_templates (connection_id, name, fields, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4) RETURNING id",
            )
            .bind(connection_id)
            .bind(name)
            .bind(defaults_to_json(fields).to_string())
            .bind(now)
            .fetch_one(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, unique(format!("a template named '{name}' exists already on this connection"))))?
        });
        self.template(connection_id, id).await
    }

    pub async fn update_template(
        &self,
        connection_id: i64,
        id: i64,
        name: &str,
        fields: &TicketDefaults,
        now: Millis,
    ) -> Result<TemplateRow, StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query(
                "UPDATE ticket_templates SET name = $1, fields = $2, updated_at = $3 WHERE connection_id = $4 AND id = $5",
            )
            .bind(name)
            .bind(defaults_to_json(fields).to_string())
            .bind(now)
            .bind(connection_id)
            .bind(id)
            .execute(pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, unique(format!("a template named '{name}' exists already on this connection"))))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("template {id}")));
            }
        });
        self.template(connection_id, id).await
    }

    pub async fn templates(&self, connection_id: i64) -> Result<Vec<TemplateRow>, StoreError> {
        with_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, connection_id, name, fields, created_at, updated_at FROM ticket_templates \
                 WHERE connection_id = $1 ORDER BY name",
            )
            .bind(connection_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let fields: String = r.try_get("fields")?;
                    Ok(TemplateRow {
                        id: r.try_get("id")?,
                        connection_id: r.try_get("connection_id")?,
                        name: r.try_get("name")?,
                        fields: defaults_from_json(
                            &serde_json::from_str(&fields).map_err(|e| corrupt(format!("template fields: {e}")))?,
                        ),
                        created_at: r.try_get("created_at")?,
                        updated_at: r.try_get("updated_at")?,
                    })
                })
                .collect()
        })
    }

    pub async fn template(&self, connection_id: i64, id: i64) -> Result<TemplateRow, StoreError> {
        self.templates(connection_id)
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("template {id}")))
    }

    pub async fn delete_template(&self, connection_id: i64, id: i64) -> Result<(), StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query("DELETE FROM ticket_templates WHERE connection_id = $1 AND id = $2")
                .bind(connection_id)
                .bind(id)
                .execute(pool)
                .await
                .map_err(|e| StoreError::conflict_or(e, unique(format!("template {id} is still referenced"))))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("template {id}")));
            }
        });
        Ok(())
    }

    /// Mappings, integration rules and event-type rules that name template `id`.
    pub async fn template_references(
        &self,
        connection_id: i64,
        id: i64,
    ) -> Result<Vec<Reference>, StoreError> {
        with_read!(self, pool => {
            let mut out = Vec::new();
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT client_id, connection_id FROM mappings WHERE connection_id = $1 AND template_id = $2 ORDER BY client_id",
            )
            .bind(connection_id)
            .bind(id)
            .fetch_all(pool)
            .await?;
            out.extend(rows.into_iter().map(|(client, connection)| Reference::Mapping { client, connection }));
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT id, name FROM integration_rules WHERE connection_id = $1 AND template_id = $2 ORDER BY id",
            )
            .bind(connection_id)
            .bind(id)
            .fetch_all(pool)
            .await?;
            out.extend(rows.into_iter().map(|(id, name)| Reference::IntegrationRule { id, name }));
            let rows: Vec<(String,)> = sqlx::query_as(
                "SELECT event_type FROM event_rules WHERE connection_id = $1 AND template_id = $2 ORDER BY event_type",
            )
            .bind(connection_id)
            .bind(id)
            .fetch_all(pool)
            .await?;
            out.extend(rows.into_iter().map(|(event_type,)| Reference::EventRule { connection: connection_id, event_type }));
            Ok(out)
        })
    }

    // ---- integration rules --------------------------------------------------------------

    /// Create a rule; when it is the default, the previous default stops being one, in the
    /// same transaction.
    pub async fn create_integration_rule(
        &self,
        connection_id: i64,
        r: &RuleFields,
        now: Millis,
    ) -> Result<IntegrationRuleRow, StoreError> {
        let id: i64 = with_tx!(self, tx => {
            if r.is_default {
                sqlx::query("UPDATE integration_rules SET is_default = $1, updated_at = $2 WHERE connection_id = $3 AND is_default = $4")
                    .bind(false)
                    .bind(now)
                    .bind(connection_id)
                    .bind(true)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query_scalar(
                "INSERT INTO integration_rules (connection_id, name, event_set_id, template_id, is_default, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
            )
            .bind(connection_id)
            .bind(&r.name)
            .bind(r.event_set_id)
            .bind(r.template_id)
            .bind(r.is_default)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_or(e, unique(format!("a rule named '{}' exists already on this connection", r.name))))?
        });
        self.integration_rule(connection_id, id).await
    }

    /// Replace a rule's fields (and move the default to it when asked).
    pub async fn update_integration_rule(
        &self,
        connection_id: i64,
        id: i64,
        r: &RuleFields,
        now: Millis,
    ) -> Result<IntegrationRuleRow, StoreError> {
        with_tx!(self, tx => {
            if r.is_default {
                sqlx::query("UPDATE integration_rules SET is_default = $1, updated_at = $2 WHERE connection_id = $3 AND is_default = $4 AND id <> $5")
                    .bind(false)
                    .bind(now)
                    .bind(connection_id)
                    .bind(true)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            let done = sqlx::query(
                "UPDATE integration_rules SET name = $1, event_set_id = $2, template_id = $3, is_default = $4, updated_at = $5 \
                 WHERE connection_id = $6 AND id = $7",
            )
            .bind(&r.name)
            .bind(r.event_set_id)
            .bind(r.template_id)
            .bind(r.is_default)
            .bind(now)
            .bind(connection_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_or(e, unique(format!("a rule named '{}' exists already on this connection", r.name))))?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("integration rule {id}")));
            }
        });
        self.integration_rule(connection_id, id).await
    }

    pub async fn integration_rules(
        &self,
        connection_id: i64,
    ) -> Result<Vec<IntegrationRuleRow>, StoreError> {
        with_read!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, connection_id, name, event_set_id, template_id, is_default, created_at, updated_at \
                 FROM integration_rules WHERE connection_id = $1 ORDER BY id",
            )
            .bind(connection_id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(IntegrationRuleRow {
                        id: r.try_get("id")?,
                        connection_id: r.try_get("connection_id")?,
                        name: r.try_get("name")?,
                        event_set_id: r.try_get("event_set_id")?,
                        template_id: r.try_get("template_id")?,
                        is_default: r.try_get("is_default")?,
                        created_at: r.try_get("created_at")?,
                        updated_at: r.try_get("updated_at")?,
                    })
                })
                .collect()
        })
    }

    pub async fn integration_rule(
        &self,
        connection_id: i64,
        id: i64,
    ) -> Result<IntegrationRuleRow, StoreError> {
        self.integration_rules(connection_id)
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("integration rule {id}")))
    }

    pub async fn delete_integration_rule(
        &self,
        connection_id: i64,
        id: i64,
    ) -> Result<(), StoreError> {
        with_write!(self, pool => {
            let done = sqlx::query("DELETE FROM integration_rules WHERE connection_id = $1 AND id = $2")
                .bind(connection_id)
                .bind(id)
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!("integration rule {id}")));
            }
        });
        Ok(())
    }

    // ---- copy settings ------------------------------------------------------------------

    /// Copy the event set, template and ticket-creation switch of one mapping to others, all
    /// or none: a target that is not a mapping of the same connection fails the whole copy.
    pub async fn copy_mapping_settings(
        &self,
        partner: &str,
        connection_id: i64,
        from_client: &str,
        to_clients: &[String],
    ) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            let source = sqlx::query(
                "SELECT event_set_id, template_id, create_tickets FROM mappings \
                 WHERE partner_id = $1 AND connection_id = $2 AND client_id = $3",
            )
            .bind(partner)
            .bind(connection_id)
            .bind(from_client)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("mapping of client '{from_client}' on connection {connection_id}")))?;
            let event_set: Option<i64> = source.try_get("event_set_id")?;
            let template: Option<i64> = source.try_get("template_id")?;
            let create: bool = source.try_get("create_tickets")?;
            for client in to_clients {
                let done = sqlx::query(
                    "UPDATE mappings SET event_set_id = $1, template_id = $2, create_tickets = $3 \
                     WHERE partner_id = $4 AND connection_id = $5 AND client_id = $6",
                )
                .bind(event_set)
                .bind(template)
                .bind(create)
                .bind(partner)
                .bind(connection_id)
                .bind(client)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("mapping of client '{client}' on connection {connection_id}")));
                }
            }
        });
        Ok(())
    }
}
