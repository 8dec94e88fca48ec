//! Email settings of a partner, per event type of the catalog: on/off and the recipients.
//!
//! The recipients are one string separated by `;`, as vendor screens take them; every address
//! is checked when saved (`psabridge_core::email::parse_address_list`), and a bad one is named
//! with its position. Email cannot be switched on where no SMTP server is configured: the
//! switch would only fill the delivery log with dead emails. Every change is audited.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use psabridge_core::catalog::EventType;
use psabridge_core::email::{EmailRule, format_address_list, parse_address_list};
use psabridge_core::event::FieldError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::problem::{Problem, parse_json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/partners/{p}/email-settings",
            get(list_email_settings),
        )
        .route(
            "/api/v1/partners/{p}/email-settings/{event_type}",
            put(put_email_setting),
        )
}

fn view(t: &EventType, rule: &EmailRule) -> Value {
    json!({
        "event_type": t.key,
        "name": t.name,
        "category": t.category,
        "enabled": rule.enabled,
        "addresses": format_address_list(&rule.addresses),
    })
}

/// Every event type of the catalog with its email switch and recipients.
async fn list_email_settings(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let mut settings = s.store.email_settings(&p).await?;
    let catalog = s.event_catalog().await;
    let list: Vec<Value> = catalog
        .iter()
        .map(|t| {
            let rule = settings.by_event_type.remove(&t.key).unwrap_or_default();
            view(t, &rule)
        })
        .collect();
    Ok(Json(
        json!({"smtp_configured": s.engine.can_email(), "event_types": list}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBody {
    enabled: bool,
    #[serde(default)]
    addresses: String,
}

async fn put_email_setting(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, event_type)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let catalog = s.event_catalog().await;
    let Some(t) = catalog.get(&event_type) else {
        return Err(Problem::not_found(format!(
            "event type '{event_type}' is not in the catalog (GET /api/v1/event-types lists them)"
        )));
    };
    let b: EmailBody = serde_path_to_error::deserialize(parse_json(&bytes)?).map_err(|e| {
        let path = match e.path().to_string() {
            p if p == "." => "(body)".to_string(),
            p => p,
        };
        Problem::invalid(vec![FieldError::new(path, e.inner().to_string())])
    })?;
    let addresses = parse_address_list(&b.addresses)
        .map_err(|e| Problem::invalid(vec![FieldError::new("addresses", e.to_string())]))?;
    if b.enabled && addresses.is_empty() {
        return Err(Problem::invalid(vec![FieldError::new(
            "addresses",
            "at least one address is needed to switch email on",
        )]));
    }
    if b.enabled && !s.engine.can_email() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Email is not configured",
        )
        .field(
            "enabled",
            "email cannot be switched on: no SMTP server is configured (the [smtp] section of the configuration)",
        )
        .detail("enabled: email cannot be switched on: no SMTP server is configured (the [smtp] section of the configuration)"));
    }
    let rule = EmailRule {
        enabled: b.enabled,
        addresses,
    };
    let now = chrono::Utc::now().timestamp_millis();
    let before = s.store.put_email_rule(&p, &event_type, &rule, now).await?;
    let before = view(t, &before);
    let after = view(t, &rule);
    let entry = psabridge_store::audit::NewAuditEntry {
        partner_id: Some(&p),
        actor: &caller.1.0,
        action: "email_settings.put",
        target: &format!("email:{event_type}"),
        before: Some(&before),
        after: Some(&after),
    };
    if let Err(e) = s.store.record_audit(&entry, now).await {
        tracing::error!(error = %e, "recording an email settings change in the audit log failed");
    }
    Ok(Json(after))
}
