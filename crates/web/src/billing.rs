//! Contract billing settings, syncs and their reports. The rules (money checked, a contract
//! needed before billing, audited) are `psabridge_ops::billing`'s.
//!
//! - `PUT/GET …/connections/{id}/billing`: the contract service a connection bills usage as
//!   (its name in the PSA, the metric, default unit cost and price, whether to create it).
//! - `PUT …/clients/{client}/mappings/{connection}/billing`: billing on or off for a mapping,
//!   whether the service may be added to the mapping's contract, the client's cost and price.
//! - `POST …/billing/sync` (`{"dry_run": true}` to only see what would change; `?wait=true` to
//!   answer with the report): 202 with the run's id, the sync going on in the background.
//! - `GET …/billing/runs` and `…/billing/runs/{id}`: what each sync did, per client.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use psabridge_engine::billing::StartedBy;
use psabridge_ops::billing::{BillingServiceView, MappingBillingView};
use psabridge_store::billing::{BillingLine, BillingRun};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::input::body;
use crate::operations::Acting;
use crate::problem::Problem;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/partners/{p}/connections/{id}/billing",
            put(put_billing_service).get(get_billing_service),
        )
        .route(
            "/api/v1/partners/{p}/clients/{client}/mappings/{connection}/billing",
            put(put_mapping_billing),
        )
        .route("/api/v1/partners/{p}/billing/sync", post(start_sync))
        .route("/api/v1/partners/{p}/billing/runs", get(list_runs))
        .route("/api/v1/partners/{p}/billing/runs/{id}", get(get_run))
}

async fn put_billing_service(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Json<BillingServiceView>, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(Json(s.ops.put_billing_service(&acting, &p, id, req).await?))
}

async fn get_billing_service(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<BillingServiceView>, Problem> {
    match s.ops.billing_service(&acting, &p, id).await? {
        Some(view) => Ok(Json(view)),
        None => Err(Problem::not_found(format!(
            "billing service of connection {id} (set one with PUT)"
        ))),
    }
}

async fn put_mapping_billing(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, client, conn_id)): Path<(String, String, i64)>,
    bytes: Bytes,
) -> Result<Json<MappingBillingView>, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(Json(
        s.ops
            .put_mapping_billing(&acting, &p, &client, conn_id, req)
            .await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SyncBody {
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
struct WaitQuery {
    #[serde(default)]
    wait: bool,
}

async fn start_sync(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
    Query(q): Query<WaitQuery>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    acting.reaches(&p)?;
    let b: SyncBody = if bytes.is_empty() {
        SyncBody::default()
    } else {
        body(&bytes)?
    };
    let (run, task) = s
        .ops
        .start_billing_sync(&acting, &p, StartedBy::Api, b.dry_run)
        .await?;
    if q.wait {
        let _ = task.await;
        let (head, lines) = s.ops.billing_run(&acting, &p, run).await?;
        return Ok(Json(run_view(&head, Some(&lines))).into_response());
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run, "status": "running",
                    "report": format!("/api/v1/partners/{p}/billing/runs/{run}")})),
    )
        .into_response())
}

fn run_view(r: &BillingRun, lines: Option<&[BillingLine]>) -> Value {
    let at = |ms: i64| psabridge_store::from_millis(ms).to_rfc3339();
    let mut v = json!({
        "id": r.id,
        "started_by": r.started_by,
        "dry_run": r.dry_run,
        "period": r.period_key,
        "status": r.status,
        "error": r.error,
        "started_at": at(r.started_at),
        "finished_at": r.finished_at.map(at),
    });
    if let Some(lines) = lines {
        let count = |o: &[&str]| {
            lines
                .iter()
                .filter(|l| o.contains(&l.outcome.as_str()))
                .count()
        };
        v["summary"] = json!({
            "added": count(&["added", "would_add"]),
            "updated": count(&["updated", "would_update"]),
            "unchanged": count(&["unchanged"]),
            "skipped": count(&["skipped"]),
            "failed": count(&["failed"]),
        });
        v["clients"] = lines
            .iter()
            .map(|l| {
                json!({
                    "client": l.client_id,
                    "connection_id": (l.connection_id != 0).then_some(l.connection_id),
                    "metric": l.metric,
                    "outcome": l.outcome,
                    "reason": l.reason,
                    "units": {"before": l.units_before, "after": l.units_after},
                    "unit_cost": {"before": l.cost_before.map(|d| d.to_string()),
                                  "after": l.cost_after.map(|d| d.to_string())},
                    "message": l.message,
                })
            })
            .collect();
    }
    v
}

async fn list_runs(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    let runs = s.ops.billing_runs(&acting, &p, 50).await?;
    Ok(Json(json!({
        "runs": runs.iter().map(|r| run_view(r, None)).collect::<Vec<_>>()
    })))
}

async fn get_run(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    let (head, lines) = s.ops.billing_run(&acting, &p, id).await?;
    Ok(Json(run_view(&head, Some(&lines))))
}
