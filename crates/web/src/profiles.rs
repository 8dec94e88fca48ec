//! Event sets, templates (integration profiles), integration rules and "copy settings".
//!
//! An event set names catalog event types (per partner); a template holds ticket fields of one
//! connection's PSA, checked like the connection's defaults; an integration rule pairs an event
//! set with a template, and the connection's default rule applies to every client whose mapping
//! names neither (and to unmapped clients). Deleting something still referenced answers 409
//! with the list of what references it.

use std::collections::BTreeSet;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use psabridge_core::catalog::Catalog;
use psabridge_core::event::FieldError;
use psabridge_store::config::{Connection, defaults_to_json};
use psabridge_store::profiles::{
    EventSetRow, IntegrationRuleRow, Reference, RuleFields, TemplateRow,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::config_api::{audit, body, check_parents, created, mapping_view, now, ticket_fields};
use crate::problem::Problem;
use crate::views::time;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/partners/{p}/event-sets",
            get(list_event_sets).post(create_event_set),
        )
        .route(
            "/api/v1/partners/{p}/event-sets/{set}",
            get(get_event_set)
                .put(put_event_set)
                .delete(delete_event_set),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/templates",
            get(list_templates).post(create_template),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/templates/{template}",
            get(get_template).put(put_template).delete(delete_template),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/integration-rules",
            get(list_rules).post(create_rule),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/integration-rules/{rule}",
            axum::routing::put(put_rule).delete(delete_rule),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/integration-rules/{rule}/default",
            post(make_default),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/mappings/copy",
            post(copy_settings),
        )
}

fn name_of(raw: &str, errors: &mut Vec<FieldError>) -> String {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "must be 1 to 100 characters"));
    }
    name.to_string()
}

fn invalid_or(errors: Vec<FieldError>) -> Result<(), Problem> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problem::invalid(errors))
    }
}

/// 409 naming everything that still references `what`.
fn still_referenced(what: &str, references: &[Reference]) -> Problem {
    let list: Vec<Value> = references
        .iter()
        .map(|r| match r {
            Reference::Mapping { client, connection } => json!({
                "what": format!("clients/{client}/mappings/{connection}"),
                "detail": format!("the mapping of client '{client}' on connection {connection}"),
            }),
            Reference::IntegrationRule { id, name } => json!({
                "what": format!("integration-rules/{id}"),
                "detail": format!("integration rule '{name}'"),
            }),
            Reference::EventRule {
                connection,
                event_type,
            } => json!({
                "what": format!("connections/{connection}/rules/{event_type}"),
                "detail": format!("the rule for event type '{event_type}' on connection {connection}"),
            }),
        })
        .collect();
    Problem::new(StatusCode::CONFLICT, format!("The {what} is still in use"))
        .detail(format!(
            "the {what} is referenced {} time(s); point those at something else first",
            list.len()
        ))
        .with("references", Value::Array(list))
}

// ---- event sets -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventSetBody {
    name: String,
    event_types: Vec<String>,
}

fn event_set_view(e: &EventSetRow) -> Value {
    json!({"id": e.id, "name": e.name, "event_types": e.event_types,
           "created_at": time(e.created_at), "updated_at": time(e.updated_at)})
}

/// The name and the catalog-checked, de-duplicated event types of a body.
fn check_event_set(catalog: &Catalog, b: &EventSetBody) -> Result<(String, Vec<String>), Problem> {
    let mut errors = Vec::new();
    let name = name_of(&b.name, &mut errors);
    if b.event_types.is_empty() {
        errors.push(FieldError::new(
            "event_types",
            "must name at least one event type",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, t) in b.event_types.iter().enumerate() {
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
    invalid_or(errors)?;
    Ok((name, seen.into_iter().collect()))
}

async fn list_event_sets(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let sets = s.store.event_sets(&p).await?;
    Ok(Json(
        json!({"event_sets": sets.iter().map(event_set_view).collect::<Vec<_>>()}),
    ))
}

async fn get_event_set(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    Ok(Json(event_set_view(&s.store.event_set(&p, id).await?)))
}

async fn create_event_set(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let (name, types) = check_event_set(&*s.event_catalog().await, &body(&bytes)?)?;
    let set = s.store.create_event_set(&p, &name, &types, now()).await?;
    let after = event_set_view(&set);
    audit(
        &s,
        &caller,
        Some(&p),
        "event_set.create",
        &format!("event_set:{}", set.id),
        None,
        Some(&after),
    )
    .await;
    Ok(created(after))
}

async fn put_event_set(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let before = event_set_view(&s.store.event_set(&p, id).await?);
    let (name, types) = check_event_set(&*s.event_catalog().await, &body(&bytes)?)?;
    let set = s
        .store
        .update_event_set(&p, id, &name, &types, now())
        .await?;
    let after = event_set_view(&set);
    audit(
        &s,
        &caller,
        Some(&p),
        "event_set.update",
        &format!("event_set:{id}"),
        Some(&before),
        Some(&after),
    )
    .await;
    Ok(Json(after))
}

async fn delete_event_set(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
) -> Result<StatusCode, Problem> {
    caller.require_partner(&p)?;
    let before = event_set_view(&s.store.event_set(&p, id).await?);
    let references = s.store.event_set_references(&p, id).await?;
    if !references.is_empty() {
        return Err(still_referenced("event set", &references));
    }
    s.store.delete_event_set(&p, id).await?;
    audit(
        &s,
        &caller,
        Some(&p),
        "event_set.delete",
        &format!("event_set:{id}"),
        Some(&before),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- templates --------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    name: String,
    fields: Map<String, Value>,
}

fn template_view(t: &TemplateRow) -> Value {
    json!({"id": t.id, "connection": t.connection_id, "name": t.name, "fields": defaults_to_json(&t.fields),
           "created_at": time(t.created_at), "updated_at": time(t.updated_at)})
}

/// A template's fields are checked like the connection's defaults: each against the PSA's
/// lists, and each dependent value against its parent once laid over the defaults.
fn check_template(
    conn: &Connection,
    b: &TemplateBody,
) -> Result<(String, psabridge_core::settings::TicketDefaults), Problem> {
    let mut errors = Vec::new();
    let name = name_of(&b.name, &mut errors);
    invalid_or(errors)?;
    let fields = ticket_fields(conn.kind, &b.fields, conn.lists.as_ref(), "fields.")?;
    check_parents(
        conn.kind,
        &conn.defaults.overlaid_with(&fields, conn.kind),
        conn.lists.as_ref(),
        "fields.",
    )?;
    Ok((name, fields))
}

async fn list_templates(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.connection(&p, id).await?;
    let list = s.store.templates(id).await?;
    Ok(Json(
        json!({"templates": list.iter().map(template_view).collect::<Vec<_>>()}),
    ))
}

async fn get_template(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id, template)): Path<(String, i64, i64)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.connection(&p, id).await?;
    Ok(Json(template_view(&s.store.template(id, template).await?)))
}

async fn create_template(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    caller.require_partner(&p)?;
    let conn = s.store.connection(&p, id).await?;
    let (name, fields) = check_template(&conn, &body(&bytes)?)?;
    let t = s.store.create_template(id, &name, &fields, now()).await?;
    let after = template_view(&t);
    audit(
        &s,
        &caller,
        Some(&p),
        "template.create",
        &format!("connection:{id}:template:{}", t.id),
        None,
        Some(&after),
    )
    .await;
    Ok(created(after))
}

async fn put_template(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id, template)): Path<(String, i64, i64)>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let conn = s.store.connection(&p, id).await?;
    let before = template_view(&s.store.template(id, template).await?);
    let (name, fields) = check_template(&conn, &body(&bytes)?)?;
    let t = s
        .store
        .update_template(id, template, &name, &fields, now())
        .await?;
    let after = template_view(&t);
    audit(
        &s,
        &caller,
        Some(&p),
        "template.update",
        &format!("connection:{id}:template:{template}"),
        Some(&before),
        Some(&after),
    )
    .await;
    Ok(Json(after))
}

async fn delete_template(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id, template)): Path<(String, i64, i64)>,
) -> Result<StatusCode, Problem> {
    caller.require_partner(&p)?;
    s.store.connection(&p, id).await?;
    let before = template_view(&s.store.template(id, template).await?);
    let references = s.store.template_references(id, template).await?;
    if !references.is_empty() {
        return Err(still_referenced("template", &references));
    }
    s.store.delete_template(id, template).await?;
    audit(
        &s,
        &caller,
        Some(&p),
        "template.delete",
        &format!("connection:{id}:template:{template}"),
        Some(&before),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Is `set` an event set of partner `p`? Is `template` a template of connection `conn`?
/// Errors name `path_set` / `path_template`.
pub(crate) async fn check_profile(
    s: &AppState,
    p: &str,
    conn: i64,
    set: Option<i64>,
    template: Option<i64>,
    (path_set, path_template): (&str, &str),
) -> Result<(), Problem> {
    let mut errors = Vec::new();
    if let Some(id) = set
        && !s.store.event_sets(p).await?.iter().any(|e| e.id == id)
    {
        errors.push(FieldError::new(
            path_set,
            format!("{id} is not an event set of this partner (GET …/event-sets lists them)"),
        ));
    }
    if let Some(id) = template
        && !s.store.templates(conn).await?.iter().any(|t| t.id == id)
    {
        errors.push(FieldError::new(
            path_template,
            format!(
                "{id} is not a template of connection {conn} (GET …/connections/{conn}/templates lists them)"
            ),
        ));
    }
    invalid_or(errors)
}

// ---- integration rules ------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    name: String,
    #[serde(default)]
    event_set: Option<i64>,
    #[serde(default)]
    template: Option<i64>,
    #[serde(default)]
    default: bool,
}

fn rule_view(r: &IntegrationRuleRow) -> Value {
    json!({"id": r.id, "connection": r.connection_id, "name": r.name, "event_set": r.event_set_id,
           "template": r.template_id, "default": r.is_default,
           "applies_to": if r.is_default {
               "every client whose mapping names no event set or template of its own, and unmapped clients"
           } else {
               "nothing until it is set as the default"
           },
           "created_at": time(r.created_at), "updated_at": time(r.updated_at)})
}

async fn rule_fields(s: &AppState, p: &str, conn: i64, b: RuleBody) -> Result<RuleFields, Problem> {
    let mut errors = Vec::new();
    let name = name_of(&b.name, &mut errors);
    invalid_or(errors)?;
    check_profile(
        s,
        p,
        conn,
        b.event_set,
        b.template,
        ("event_set", "template"),
    )
    .await?;
    Ok(RuleFields {
        name,
        event_set_id: b.event_set,
        template_id: b.template,
        is_default: b.default,
    })
}

async fn list_rules(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.connection(&p, id).await?;
    let list = s.store.integration_rules(id).await?;
    Ok(Json(
        json!({"integration_rules": list.iter().map(rule_view).collect::<Vec<_>>()}),
    ))
}

async fn create_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    caller.require_partner(&p)?;
    s.store.connection(&p, id).await?;
    let fields = rule_fields(&s, &p, id, body(&bytes)?).await?;
    let r = s.store.create_integration_rule(id, &fields, now()).await?;
    let after = rule_view(&r);
    audit(
        &s,
        &caller,
        Some(&p),
        "integration_rule.create",
        &format!("connection:{id}:integration_rule:{}", r.id),
        None,
        Some(&after),
    )
    .await;
    Ok(created(after))
}

async fn put_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id, rule)): Path<(String, i64, i64)>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.connection(&p, id).await?;
    let before = rule_view(&s.store.integration_rule(id, rule).await?);
    let fields = rule_fields(&s, &p, id, body(&bytes)?).await?;
    let r = s
        .store
        .update_integration_rule(id, rule, &fields, now())
        .await?;
    let after = rule_view(&r);
    audit(
        &s,
        &caller,
        Some(&p),
        "integration_rule.update",
        &format!("connection:{id}:integration_rule:{rule}"),
        Some(&before),
        Some(&after),
    )
    .await;
    Ok(Json(after))
}

/// "Set as default": this rule becomes the connection's default, the previous one stops being.
async fn make_default(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id, rule)): Path<(String, i64, i64)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.connection(&p, id).await?;
    let current = s.store.integration_rule(id, rule).await?;
    let before = rule_view(&current);
    let fields = RuleFields {
        name: current.name,
        event_set_id: current.event_set_id,
        template_id: current.template_id,
        is_default: true,
    };
    let r = s
        .store
        .update_integration_rule(id, rule, &fields, now())
        .await?;
    let after = rule_view(&r);
    audit(
        &s,
        &caller,
        Some(&p),
        "integration_rule.set_default",
        &format!("connection:{id}:integration_rule:{rule}"),
        Some(&before),
        Some(&after),
    )
    .await;
    Ok(Json(after))
}

async fn delete_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id, rule)): Path<(String, i64, i64)>,
) -> Result<StatusCode, Problem> {
    caller.require_partner(&p)?;
    s.store.connection(&p, id).await?;
    let before = rule_view(&s.store.integration_rule(id, rule).await?);
    s.store.delete_integration_rule(id, rule).await?;
    audit(
        &s,
        &caller,
        Some(&p),
        "integration_rule.delete",
        &format!("connection:{id}:integration_rule:{rule}"),
        Some(&before),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- copy settings ----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CopyBody {
    from: String,
    to: Vec<String>,
}

/// Copy the event set, template and ticket-creation switch of one client's mapping to other
/// clients' mappings on the same connection: all of them or, on any error, none.
async fn copy_settings(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.connection(&p, id).await?;
    let b: CopyBody = body(&bytes)?;
    let mappings: Vec<_> = s
        .store
        .mappings(&p)
        .await?
        .into_iter()
        .filter(|m| m.connection_id == id)
        .collect();
    let mut errors = Vec::new();
    let source = mappings.iter().find(|m| m.client_id == b.from);
    if source.is_none() {
        errors.push(FieldError::new(
            "from",
            format!("client '{}' is not mapped on connection {id}", b.from),
        ));
    }
    if b.to.is_empty() {
        errors.push(FieldError::new("to", "must name at least one client"));
    }
    let mut targets = Vec::new();
    for (i, client) in b.to.iter().enumerate() {
        if client == &b.from {
            errors.push(FieldError::new(
                format!("to[{i}]"),
                "is the source mapping itself",
            ));
        } else if !mappings.iter().any(|m| &m.client_id == client) {
            errors.push(FieldError::new(
                format!("to[{i}]"),
                format!("client '{client}' is not mapped on connection {id}"),
            ));
        } else if !targets.contains(client) {
            targets.push(client.clone());
        }
    }
    invalid_or(errors)?;
    let before: Vec<Value> = mappings
        .iter()
        .filter(|m| targets.contains(&m.client_id))
        .map(mapping_view)
        .collect();
    s.store
        .copy_mapping_settings(&p, id, &b.from, &targets)
        .await?;
    let after: Vec<Value> = s
        .store
        .mappings(&p)
        .await?
        .iter()
        .filter(|m| m.connection_id == id && targets.contains(&m.client_id))
        .map(mapping_view)
        .collect();
    for (old, new) in before.iter().zip(&after) {
        audit(
            &s,
            &caller,
            Some(&p),
            "mapping.copy_settings",
            &format!(
                "mapping:{}:{id}",
                new["client"].as_str().unwrap_or_default()
            ),
            Some(old),
            Some(new),
        )
        .await;
    }
    let src = source.map(mapping_view).unwrap_or(Value::Null);
    Ok(Json(json!({
        "copied": {"event_set": src["event_set"], "template": src["template"], "create_tickets": src["create_tickets"]},
        "mappings": after,
    })))
}
