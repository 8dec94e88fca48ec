//! What operations answer: typed views of stored things. They hold no secret (a connection
//! shows only the names of its secrets), so the same view goes to the caller and, as JSON, to
//! the audit log.

use psabridge_core::catalog::EventType;
use psabridge_core::email::{EmailRule, format_address_list};
use psabridge_core::settings::EventRule;
use psabridge_store::config::{Client, Connection, MappingRow, defaults_to_json};
use psabridge_store::profiles::{EventSetRow, IntegrationRuleRow, TemplateRow};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::time::Timestamp;

/// A PSA connection without its secrets.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    pub id: i64,
    pub kind: &'static str,
    pub name: String,
    pub enabled: bool,
    pub grouping: &'static str,
    pub settings: Map<String, Value>,
    /// Names of the secrets that are set, never their values.
    pub secrets_set: Vec<String>,
    pub catch_all: Option<CatchAllView>,
    pub defaults: Value,
    pub lists_loaded_at: Option<Timestamp>,
    pub webhook: Option<WebhookView>,
    pub close_on_resolve: bool,
    /// How long the connection's breaker still holds deliveries back, if it is open.
    pub paused_for_secs: Option<u64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatchAllView {
    pub company: String,
    pub contact: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookView {
    pub id: String,
}

impl ConnectionView {
    pub fn of(c: &Connection, paused_for_secs: Option<u64>) -> ConnectionView {
        ConnectionView {
            id: c.id,
            kind: c.kind.as_str(),
            name: c.name.clone(),
            enabled: c.enabled,
            grouping: c.grouping.as_str(),
            settings: c.settings.clone(),
            secrets_set: c.secret_fields.clone(),
            catch_all: c.catch_all.as_ref().map(|ca| CatchAllView {
                company: ca.company_id.clone(),
                contact: ca.contact_id.clone(),
            }),
            defaults: defaults_to_json(&c.defaults),
            lists_loaded_at: Timestamp::opt(c.lists_loaded_at),
            webhook: c.webhook_id.clone().map(|id| WebhookView { id }),
            close_on_resolve: c.close_on_resolve,
            paused_for_secs,
            created_at: Timestamp(c.created_at),
            updated_at: Timestamp(c.updated_at),
        }
    }
}

/// A connection that was just connected: where the PSA's API is, and why it pushes no ticket
/// changes to us, if it does not.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedView {
    #[serde(flatten)]
    pub connection: ConnectionView,
    pub api_url: String,
    pub webhook_note: Option<String>,
}

/// A client (a vendor's customer) of a partner.
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
    /// `configured` once it is mapped on a connection, else `not_configured`.
    pub status: &'static str,
    pub mapped_on: Vec<i64>,
}

impl ClientView {
    pub fn of(c: &Client) -> ClientView {
        ClientView {
            id: c.id.clone(),
            name: c.name.clone(),
            created_at: Timestamp(c.created_at),
            status: if c.mapped_on.is_empty() {
                "not_configured"
            } else {
                "configured"
            },
            mapped_on: c.mapped_on.clone(),
        }
    }
}

/// A client's mapping to a PSA company on one connection.
#[derive(Debug, Clone, Serialize)]
pub struct MappingView {
    pub client: String,
    pub connection: i64,
    pub company: String,
    pub default_contact: Option<String>,
    pub create_tickets: bool,
    pub event_set: Option<i64>,
    pub template: Option<i64>,
    pub contract: Option<String>,
    pub refire: RefireView,
    pub mapped_at: Timestamp,
}

/// What an alert does when its group's last ticket is closed.
#[derive(Debug, Clone, Serialize)]
pub struct RefireView {
    pub mode: &'static str,
    pub reopen_within_hours: Option<i64>,
    /// The same in words.
    pub behaviour: String,
}

impl MappingView {
    pub fn of(m: &MappingRow) -> MappingView {
        MappingView {
            client: m.client_id.clone(),
            connection: m.connection_id,
            company: m.company_id.clone(),
            default_contact: m.default_contact_id.clone(),
            create_tickets: m.create_tickets,
            event_set: m.event_set_id,
            template: m.template_id,
            contract: m.contract_id.clone(),
            refire: RefireView {
                mode: m.refire.mode(),
                reopen_within_hours: m.refire.within_secs().map(|s| s / 3600),
                behaviour: m.refire.behaviour().to_string(),
            },
            mapped_at: Timestamp(m.mapped_at),
        }
    }
}

/// A connection's ticket settings for one event type.
#[derive(Debug, Clone, Serialize)]
pub struct EventRuleView {
    pub event_type: String,
    pub create_ticket: bool,
    pub template: Option<i64>,
    pub fields: Value,
}

impl EventRuleView {
    pub fn of(event_type: &str, r: &EventRule) -> EventRuleView {
        EventRuleView {
            event_type: event_type.to_string(),
            create_ticket: r.create_ticket,
            template: r.template,
            fields: defaults_to_json(&r.fields),
        }
    }
}

/// A partner's email switch and recipients for one event type.
#[derive(Debug, Clone, Serialize)]
pub struct EmailSettingView {
    pub event_type: String,
    pub name: String,
    pub category: String,
    pub enabled: bool,
    /// The recipients, separated by `; `.
    pub addresses: String,
}

impl EmailSettingView {
    pub fn of(t: &EventType, rule: &EmailRule) -> EmailSettingView {
        EmailSettingView {
            event_type: t.key.clone(),
            name: t.name.clone(),
            category: t.category.clone(),
            enabled: rule.enabled,
            addresses: format_address_list(&rule.addresses),
        }
    }
}

/// Every event type's email setting, and whether email can be sent at all.
#[derive(Debug, Clone, Serialize)]
pub struct EmailSettingsView {
    pub smtp_configured: bool,
    pub event_types: Vec<EmailSettingView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventSetView {
    pub id: i64,
    pub name: String,
    pub event_types: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl EventSetView {
    pub fn of(e: &EventSetRow) -> EventSetView {
        EventSetView {
            id: e.id,
            name: e.name.clone(),
            event_types: e.event_types.clone(),
            created_at: Timestamp(e.created_at),
            updated_at: Timestamp(e.updated_at),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TemplateView {
    pub id: i64,
    pub connection: i64,
    pub name: String,
    pub fields: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl TemplateView {
    pub fn of(t: &TemplateRow) -> TemplateView {
        TemplateView {
            id: t.id,
            connection: t.connection_id,
            name: t.name.clone(),
            fields: defaults_to_json(&t.fields),
            created_at: Timestamp(t.created_at),
            updated_at: Timestamp(t.updated_at),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IntegrationRuleView {
    pub id: i64,
    pub connection: i64,
    pub name: String,
    pub event_set: Option<i64>,
    pub template: Option<i64>,
    pub default: bool,
    /// Which clients it applies to, in words.
    pub applies_to: &'static str,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl IntegrationRuleView {
    pub fn of(r: &IntegrationRuleRow) -> IntegrationRuleView {
        IntegrationRuleView {
            id: r.id,
            connection: r.connection_id,
            name: r.name.clone(),
            event_set: r.event_set_id,
            template: r.template_id,
            default: r.is_default,
            applies_to: if r.is_default {
                "every client whose mapping names no event set or template of its own, and unmapped clients"
            } else {
                "nothing until it is set as the default"
            },
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        }
    }
}

/// What "copy settings" copied, and the mappings it changed.
#[derive(Debug, Clone, Serialize)]
pub struct CopiedView {
    pub copied: CopiedSettings,
    pub mappings: Vec<MappingView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopiedSettings {
    pub event_set: Option<i64>,
    pub template: Option<i64>,
    pub create_tickets: bool,
}
