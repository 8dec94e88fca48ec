//! Email settings of a partner, per event type of the catalog: on/off and the recipients.
//! The rules (addresses checked, refused without SMTP, audited) are `psabridge_ops::email`'s.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use psabridge_ops::views::{EmailSettingView, EmailSettingsView};

use crate::AppState;
use crate::input::body;
use crate::operations::Acting;
use crate::problem::Problem;

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

/// Every event type of the catalog with its email switch and recipients.
async fn list_email_settings(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
) -> Result<Json<EmailSettingsView>, Problem> {
    Ok(Json(s.ops.email_settings(&acting, &p).await?))
}

async fn put_email_setting(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, event_type)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<EmailSettingView>, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(Json(
        s.ops
            .put_email_setting(&acting, &p, &event_type, req)
            .await?,
    ))
}
