//! Event sets, templates (integration profiles), integration rules and "copy settings". The
//! rules (catalog and PSA-list checks, references that refuse a delete, audit) are
//! `psabridge_ops::profiles`'s; these handlers extract, call and shape.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use psabridge_ops::views::{CopiedView, EventSetView, IntegrationRuleView, TemplateView};
use serde_json::{Value, json};

use crate::AppState;
use crate::input::{body, created};
use crate::operations::Acting;
use crate::problem::Problem;

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

// ---- event sets -------------------------------------------------------------------------

async fn list_event_sets(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(
        json!({"event_sets": s.ops.event_sets(&acting, &p).await?}),
    ))
}

async fn get_event_set(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<EventSetView>, Problem> {
    Ok(Json(s.ops.event_set(&acting, &p, id).await?))
}

async fn create_event_set(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(created(s.ops.create_event_set(&acting, &p, req).await?))
}

async fn put_event_set(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Json<EventSetView>, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(Json(s.ops.update_event_set(&acting, &p, id, req).await?))
}

async fn delete_event_set(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
) -> Result<StatusCode, Problem> {
    s.ops.delete_event_set(&acting, &p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- templates --------------------------------------------------------------------------

async fn list_templates(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(
        json!({"templates": s.ops.templates(&acting, &p, id).await?}),
    ))
}

async fn get_template(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id, template)): Path<(String, i64, i64)>,
) -> Result<Json<TemplateView>, Problem> {
    Ok(Json(s.ops.template(&acting, &p, id, template).await?))
}

async fn create_template(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(created(s.ops.create_template(&acting, &p, id, req).await?))
}

async fn put_template(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id, template)): Path<(String, i64, i64)>,
    bytes: Bytes,
) -> Result<Json<TemplateView>, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(Json(
        s.ops
            .update_template(&acting, &p, id, template, req)
            .await?,
    ))
}

async fn delete_template(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id, template)): Path<(String, i64, i64)>,
) -> Result<StatusCode, Problem> {
    s.ops.delete_template(&acting, &p, id, template).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- integration rules ------------------------------------------------------------------

async fn list_rules(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(
        json!({"integration_rules": s.ops.integration_rules(&acting, &p, id).await?}),
    ))
}

async fn create_rule(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(created(
        s.ops.create_integration_rule(&acting, &p, id, req).await?,
    ))
}

async fn put_rule(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id, rule)): Path<(String, i64, i64)>,
    bytes: Bytes,
) -> Result<Json<IntegrationRuleView>, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(Json(
        s.ops
            .update_integration_rule(&acting, &p, id, rule, req)
            .await?,
    ))
}

/// "Set as default": this rule becomes the connection's default, the previous one stops being.
async fn make_default(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id, rule)): Path<(String, i64, i64)>,
) -> Result<Json<IntegrationRuleView>, Problem> {
    Ok(Json(
        s.ops
            .make_default_integration_rule(&acting, &p, id, rule)
            .await?,
    ))
}

async fn delete_rule(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id, rule)): Path<(String, i64, i64)>,
) -> Result<StatusCode, Problem> {
    s.ops.delete_integration_rule(&acting, &p, id, rule).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- copy settings ----------------------------------------------------------------------

/// Copy the event set, template and ticket-creation switch of one client's mapping to other
/// clients' mappings on the same connection: all of them or, on any error, none.
async fn copy_settings(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Json<CopiedView>, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(Json(
        s.ops.copy_mapping_settings(&acting, &p, id, req).await?,
    ))
}
