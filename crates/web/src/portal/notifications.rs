//! Notification settings: per event type, grouped by category, whether it makes a ticket on a
//! connection (on, off, or as the connection's event set decides) and whether it is emailed,
//! to which `;`-separated addresses; a whole category's tickets on or off at once. Each save
//! is the JSON API's operation (`put_event_rule` / `delete_event_rule`, `put_email_setting`).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use psabridge_ops::OpsError;
use psabridge_ops::email::EmailSettingRequest;
use psabridge_ops::rules::EventRuleRequest;
use serde::Deserialize;

use super::{AtPartner, FieldErrors, Frame, ops_error, render, see_other, url_encode};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/p/{p}/notifications", axum::routing::get(page))
        .route("/p/{p}/notifications/category", post(save_category))
        .route("/p/{p}/notifications/{event_type}", post(save_one))
}

struct Row {
    key: String,
    name: String,
    /// `default`, `on` or `off`.
    ticket: &'static str,
    email: bool,
    addresses: String,
    /// This row's errors, when its form came back refused.
    errors: Option<FieldErrors>,
}

impl Row {
    fn error(&self, field: &str) -> Option<String> {
        self.errors
            .as_ref()
            .and_then(|e| e.get(field))
            .map(str::to_string)
    }

    fn general_errors(&self) -> Vec<String> {
        self.errors
            .as_ref()
            .map(|e| e.general(&["addresses", "enabled", "fields", "create_ticket"]))
            .unwrap_or_default()
    }
}

struct Category {
    name: String,
    slug: String,
    rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "portal/notifications.html")]
struct SettingsPage {
    frame: Frame,
    /// (id, name, chosen)
    connections: Vec<(i64, String, bool)>,
    connection: Option<i64>,
    smtp: bool,
    categories: Vec<Category>,
}

#[derive(Deserialize, Default)]
struct PageQuery {
    connection: Option<i64>,
    saved: Option<String>,
}

async fn page(State(s): State<AppState>, at: AtPartner, Query(q): Query<PageQuery>) -> Response {
    // A fixed sentence: nothing of the URL is echoed into the page.
    let notice = q.saved.map(|_| "Your changes were saved.".to_string());
    settings_page(&s, &at, q.connection, notice, None).await
}

async fn settings_page(
    s: &AppState,
    at: &AtPartner,
    connection: Option<i64>,
    notice: Option<String>,
    refused: Option<(String, FieldErrors, Row)>,
) -> Response {
    let acting = at.acting();
    let connections = match s.ops.connections(&acting, &at.partner).await {
        Ok(c) => c,
        Err(e) => return ops_error(e),
    };
    let default_connection = s
        .store
        .partner(&at.partner)
        .await
        .ok()
        .and_then(|p| p.default_connection_id);
    let connection = connection
        .filter(|c| connections.iter().any(|k| k.id == *c))
        .or(default_connection)
        .or(connections.first().map(|c| c.id));
    let rules = match connection {
        Some(c) => match s.ops.event_rules(&acting, &at.partner, c).await {
            Ok(r) => r,
            Err(e) => return ops_error(e),
        },
        None => Vec::new(),
    };
    let email = match s.ops.email_settings(&acting, &at.partner).await {
        Ok(e) => e,
        Err(e) => return ops_error(e),
    };
    let mut categories: Vec<Category> = Vec::new();
    let mut refused = refused;
    for t in &email.event_types {
        let rule = rules.iter().find(|r| r.event_type == t.event_type);
        let row = match refused.take() {
            Some((key, errors, mut row)) if key == t.event_type => {
                row.errors = Some(errors);
                row
            }
            other => {
                refused = other;
                Row {
                    key: t.event_type.clone(),
                    name: t.name.clone(),
                    ticket: match rule {
                        None => "default",
                        Some(r) if r.create_ticket => "on",
                        Some(_) => "off",
                    },
                    email: t.enabled,
                    addresses: t.addresses.clone(),
                    errors: None,
                }
            }
        };
        match categories.iter_mut().find(|c| c.name == t.category) {
            Some(c) => c.rows.push(row),
            None => categories.push(Category {
                slug: t
                    .category
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect(),
                name: t.category.clone(),
                rows: vec![row],
            }),
        }
    }
    render(&SettingsPage {
        frame: at
            .frame(s, "notifications", "Notification settings", notice)
            .await,
        connections: connections
            .iter()
            .map(|c| {
                (
                    c.id,
                    format!("{} ({})", c.name, c.kind),
                    Some(c.id) == connection,
                )
            })
            .collect(),
        connection,
        smtp: email.smtp_configured,
        categories,
    })
}

#[derive(Deserialize)]
struct RowForm {
    connection: Option<i64>,
    ticket: String,
    /// A checkbox: present when ticked.
    email: Option<String>,
    #[serde(default)]
    addresses: String,
}

async fn save_one(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, event_type)): Path<(String, String)>,
    Form(form): Form<RowForm>,
) -> Response {
    let result = save(&s, &at, &event_type, &form).await;
    match result {
        Ok(()) => see_other(&format!(
            "/p/{}/notifications?connection={}&saved=1#row-{}",
            url_encode(&at.partner),
            form.connection.unwrap_or_default(),
            url_encode(&event_type)
        )),
        Err(OpsError::Forbidden(m)) => ops_error(OpsError::Forbidden(m)),
        Err(e) => {
            let row = Row {
                key: event_type.clone(),
                name: event_type.clone(),
                ticket: match form.ticket.as_str() {
                    "on" => "on",
                    "off" => "off",
                    _ => "default",
                },
                email: form.email.is_some(),
                addresses: form.addresses.clone(),
                errors: None,
            };
            let mut resp = settings_page(
                &s,
                &at,
                form.connection,
                None,
                Some((event_type, FieldErrors::of(e), row)),
            )
            .await;
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            resp
        }
    }
}

/// One row's changes, each through its operation; only what changed is written.
async fn save(
    s: &AppState,
    at: &AtPartner,
    event_type: &str,
    form: &RowForm,
) -> Result<(), OpsError> {
    let acting = at.acting();
    if let Some(connection) = form.connection {
        let rules = s.ops.event_rules(&acting, &at.partner, connection).await?;
        let current = rules.iter().find(|r| r.event_type == event_type);
        match (form.ticket.as_str(), current) {
            ("default", None) => {}
            ("default", Some(_)) => {
                s.ops
                    .delete_event_rule(&acting, &at.partner, connection, event_type)
                    .await?
            }
            (on_off @ ("on" | "off"), current) => {
                let wanted = on_off == "on";
                if current.is_none_or(|r| r.create_ticket != wanted) {
                    let req = EventRuleRequest {
                        create_ticket: wanted,
                        template: current.and_then(|r| r.template),
                        fields: current
                            .and_then(|r| r.fields.as_object().cloned())
                            .unwrap_or_default(),
                    };
                    s.ops
                        .put_event_rule(&acting, &at.partner, connection, event_type, req)
                        .await?;
                }
            }
            (other, _) => {
                return Err(OpsError::field(
                    "ticket",
                    format!("'{other}' is not a choice (default, on, off)"),
                ));
            }
        }
    }
    let email = s.ops.email_settings(&acting, &at.partner).await?;
    let current = email
        .event_types
        .iter()
        .find(|t| t.event_type == event_type);
    let enabled = form.email.is_some();
    if current.is_none_or(|c| c.enabled != enabled || c.addresses != form.addresses.trim()) {
        s.ops
            .put_email_setting(
                &acting,
                &at.partner,
                event_type,
                EmailSettingRequest {
                    enabled,
                    addresses: form.addresses.clone(),
                },
            )
            .await?;
    }
    Ok(())
}

#[derive(Deserialize)]
struct CategoryForm {
    connection: i64,
    category: String,
    ticket: String,
}

/// Tickets on or off for every event type of a category at once.
async fn save_category(
    State(s): State<AppState>,
    at: AtPartner,
    Form(form): Form<CategoryForm>,
) -> Response {
    let acting = at.acting();
    let wanted = match form.ticket.as_str() {
        "on" => true,
        "off" => false,
        other => {
            return ops_error(OpsError::field(
                "ticket",
                format!("'{other}' is not a choice (on, off)"),
            ));
        }
    };
    let catalog = s.event_catalog().await;
    let rules = match s
        .ops
        .event_rules(&acting, &at.partner, form.connection)
        .await
    {
        Ok(r) => r,
        Err(e) => return ops_error(e),
    };
    for t in catalog.iter().filter(|t| t.category == form.category) {
        let current = rules.iter().find(|r| r.event_type == t.key);
        if current.is_some_and(|r| r.create_ticket == wanted) {
            continue;
        }
        let req = EventRuleRequest {
            create_ticket: wanted,
            template: current.and_then(|r| r.template),
            fields: current
                .and_then(|r| r.fields.as_object().cloned())
                .unwrap_or_default(),
        };
        if let Err(e) = s
            .ops
            .put_event_rule(&acting, &at.partner, form.connection, &t.key, req)
            .await
        {
            return ops_error(e);
        }
    }
    see_other(&format!(
        "/p/{}/notifications?connection={}&saved=1",
        url_encode(&at.partner),
        form.connection
    ))
}
