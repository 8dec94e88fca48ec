//! Assets the vendor finds at its clients, pushed to the PSAs as configuration items.
//!
//! `POST /api/v1/assets` takes one asset (`{"client", "asset_id", "name", "type", "serial",
//! "os", "ip", "mac", "last_seen"}`) or `{"assets": [...]}` (up to 1000). Like usage, every
//! record is judged on its own: good ones are stored even when others are refused (422 naming
//! each bad field), and sending the same asset again is harmless — an asset is keyed by
//! client and `asset_id`, and a report that changes nothing the PSA shows costs no PSA request.
//!
//! `PUT …/clients/{c}/mappings/{conn}/assets` (`{"push": true}`) pushes a client's assets to
//! the mapped company; `GET …/assets` lists them with each PSA's record; `POST
//! …/connections/{id}/assets/push` pushes what is due now and answers the report (the periodic
//! run does the same every minute).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use psabridge_core::assets::{NewAsset, parse_asset};
use psabridge_core::event::FieldError;
use psabridge_engine::assets::AssetReport;
use psabridge_ops::assets::PushAssetsView;
use psabridge_store::assets::AssetOutcome;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::events::partner_of;
use crate::input::{body, split_batch};
use crate::operations::Acting;
use crate::problem::{Problem, parse_json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/assets", post(ingest_assets))
        .route("/api/v1/partners/{p}/assets", get(list_assets))
        .route(
            "/api/v1/partners/{p}/clients/{client}/mappings/{connection}/assets",
            put(put_push_assets),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/assets/push",
            post(push_now),
        )
}

async fn ingest_assets(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, Problem> {
    let now = chrono::Utc::now();
    let (items, is_batch) = split_batch(parse_json(&body)?, "assets", "assets")?;

    let mut verdicts: Vec<Result<(), Vec<FieldError>>> = Vec::with_capacity(items.len());
    let mut by_partner: BTreeMap<String, Vec<(usize, NewAsset)>> = BTreeMap::new();
    for (i, (path, value)) in items.iter().enumerate() {
        let verdict = match parse_asset(value, path, now) {
            Err(errors) => Err(errors),
            Ok(asset) => match partner_of(&state, &caller, asset.partner.as_deref(), path).await? {
                Err(e) => Err(vec![e]),
                Ok(partner) => {
                    by_partner.entry(partner).or_default().push((i, asset));
                    Ok(())
                }
            },
        };
        verdicts.push(verdict);
    }
    let mut outcomes: Vec<Option<AssetOutcome>> = vec![None; items.len()];
    for (partner, assets) in by_partner {
        let (places, assets): (Vec<usize>, Vec<NewAsset>) = assets.into_iter().unzip();
        let done = state
            .store
            .record_assets(&partner, &assets, now.timestamp_millis())
            .await?;
        for (place, outcome) in places.into_iter().zip(done) {
            outcomes[place] = Some(outcome);
        }
    }

    let mut counts = BTreeMap::from([("new", 0), ("changed", 0), ("unchanged", 0)]);
    let mut rejected = 0;
    let mut results = Vec::with_capacity(items.len());
    let mut all_errors = Vec::new();
    for ((verdict, outcome), (_, value)) in verdicts.into_iter().zip(outcomes).zip(&items) {
        let id = value.get("asset_id").and_then(Value::as_str);
        match (verdict, outcome) {
            (Ok(()), Some(o)) => {
                *counts.entry(o.as_str()).or_default() += 1;
                results.push(json!({"asset_id": id, "status": o.as_str()}));
            }
            (Ok(()), None) => {
                return Err(Problem::internal("an accepted asset has no outcome"));
            }
            (Err(errors), _) => {
                rejected += 1;
                results.push(json!({
                    "asset_id": id,
                    "status": "rejected",
                    "errors": errors.iter().map(|e| json!({"path": e.path, "problem": e.problem})).collect::<Vec<_>>(),
                }));
                all_errors.extend(errors);
            }
        }
    }
    if rejected > 0 {
        let mut problem = Problem::invalid(all_errors);
        if is_batch {
            problem.detail = Some(format!(
                "{rejected} of {} assets were rejected; the others were stored — see `results`",
                results.len()
            ));
            problem = problem
                .with("new", json!(counts["new"]))
                .with("changed", json!(counts["changed"]))
                .with("unchanged", json!(counts["unchanged"]))
                .with("rejected", json!(rejected))
                .with("results", Value::Array(results));
        }
        return Err(problem);
    }
    let answer = if is_batch {
        json!({"new": counts["new"], "changed": counts["changed"],
               "unchanged": counts["unchanged"], "results": results})
    } else {
        results.into_iter().next().unwrap_or(Value::Null)
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    client: Option<String>,
}

async fn list_assets(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, Problem> {
    let at = |ms: i64| psabridge_store::from_millis(ms).to_rfc3339();
    let assets = s.ops.assets(&acting, &p, q.client.as_deref()).await?;
    Ok(Json(json!({
        "assets": assets.iter().map(|(a, links)| json!({
            "client": a.client_id,
            "asset_id": a.asset_id,
            "name": a.fields.name,
            "type": a.fields.kind,
            "serial": a.fields.serial,
            "os": a.fields.os,
            "ip": a.fields.ip,
            "mac": a.fields.mac,
            "last_seen": a.last_seen.map(at),
            "changed_at": at(a.changed_at),
            "in_psa": links.iter().map(|l| json!({
                "connection_id": l.connection_id,
                "psa_id": l.psa_id,
                "up_to_date": l.pushed.as_ref() == Some(&a.fields),
                "pushed_at": l.pushed_at.map(at),
                "error": l.error,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })))
}

async fn put_push_assets(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, client, connection)): Path<(String, String, i64)>,
    bytes: Bytes,
) -> Result<Json<PushAssetsView>, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(Json(
        s.ops
            .put_push_assets(&acting, &p, &client, connection, req)
            .await?,
    ))
}

/// A push's report as the API answers it.
pub(crate) fn report_view(r: &AssetReport) -> Value {
    json!({
        "connection_id": r.connection_id,
        "created": r.created,
        "updated": r.updated,
        "failed": r.failed,
        "skipped": r.skipped,
        "more_due": r.more_due,
        "assets": r.lines.iter().map(|l| json!({
            "client": l.client,
            "asset_id": l.asset_id,
            "outcome": l.outcome,
            "psa_id": l.psa_id,
            "message": l.message,
        })).collect::<Vec<_>>(),
    })
}

async fn push_now(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    let report = s.ops.push_assets_now(&acting, &p, id).await?;
    Ok(Json(report_view(&report)))
}
