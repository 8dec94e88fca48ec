//! Chat and webhook channels of a partner (Teams, Slack, signed webhook) and their test
//! message. The rules (URL checked and sealed, event types checked, signing secret shown once,
//! audited) are `psabridge_ops::channels`'s.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use psabridge_ops::channels::{
    ChannelView, ChannelWithSecretView, TestMessageRequest, TestMessageView,
};
use serde_json::{Value, json};

use crate::AppState;
use crate::input::{body, created};
use crate::operations::Acting;
use crate::problem::Problem;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/partners/{p}/channels",
            get(list_channels).post(create_channel),
        )
        .route(
            "/api/v1/partners/{p}/channels/{id}",
            get(get_channel).patch(patch_channel).delete(delete_channel),
        )
        .route(
            "/api/v1/partners/{p}/channels/{id}/test",
            post(test_channel),
        )
        .route(
            "/api/v1/partners/{p}/channels/{id}/signing-secret",
            post(rotate_signing_secret),
        )
}

async fn list_channels(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(
        json!({"channels": s.ops.channels(&acting, &p).await?}),
    ))
}

async fn create_channel(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(created(s.ops.create_channel(&acting, &p, req).await?))
}

async fn get_channel(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<ChannelView>, Problem> {
    Ok(Json(s.ops.channel(&acting, &p, id).await?))
}

async fn patch_channel(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Json<ChannelView>, Problem> {
    acting.reaches(&p)?;
    let patch = body(&bytes)?;
    Ok(Json(s.ops.update_channel(&acting, &p, id, patch).await?))
}

async fn delete_channel(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
) -> Result<StatusCode, Problem> {
    s.ops.delete_channel(&acting, &p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Post a test message now; the body (`{"event_type": …}`) may be left out.
async fn test_channel(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Json<TestMessageView>, Problem> {
    acting.reaches(&p)?;
    let req: TestMessageRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        TestMessageRequest::default()
    } else {
        body(&bytes)?
    };
    Ok(Json(s.ops.test_channel(&acting, &p, id, req).await?))
}

async fn rotate_signing_secret(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<ChannelWithSecretView>, Problem> {
    Ok(Json(s.ops.rotate_signing_secret(&acting, &p, id).await?))
}
