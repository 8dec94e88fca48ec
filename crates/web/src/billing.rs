//! Contract billing settings, syncs and their reports.
//!
//! - `PUT/GET …/connections/{id}/billing`: the contract service a connection bills usage as
//!   (its name in the PSA, the metric, default unit cost and price, whether to create it).
//! - `PUT …/clients/{client}/mappings/{connection}/billing`: billing on or off for a mapping,
//!   whether the service may be added to the mapping's contract, the client's cost and price.
//! - `POST …/billing/sync` (`{"dry_run": true}` to only see what would change; `?wait=true` to
//!   answer with the report): 202 with the run's id, the sync going on in the background.
//! - `GET …/billing/runs` and `…/billing/runs/{id}`: what each sync did, per client.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use psabridge_core::billing::{ClientBilling, ServiceDefaults};
use psabridge_core::event::FieldError;
use psabridge_engine::billing::{self, Silent, StartedBy};
use psabridge_store::billing::{BillingLine, BillingRun, BillingService};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::audit::audit;
use crate::auth::Caller;
use crate::input::{body, now};
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

/// Longest service name (Autotask's limit; the others allow as much or more).
const MAX_SERVICE_NAME: usize = 150;

/// A money amount given as a JSON number or a decimal string, not negative.
fn money(v: &Option<Value>, field: &str, errors: &mut Vec<FieldError>) -> Option<Decimal> {
    let text = match v {
        None | Some(Value::Null) => return None,
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => {
            errors.push(FieldError::new(field, "must be a number such as 2.50"));
            return None;
        }
    };
    match Decimal::from_str(&text) {
        Ok(d) if d.is_sign_negative() => {
            errors.push(FieldError::new(field, "must not be negative"));
            None
        }
        Ok(d) if d.scale() > 4 => {
            errors.push(FieldError::new(field, "must have at most 4 decimal places"));
            None
        }
        Ok(d) => Some(d.normalize()),
        Err(_) => {
            errors.push(FieldError::new(field, "must be a number such as 2.50"));
            None
        }
    }
}

fn service_view(s: &BillingService) -> Value {
    json!({
        "service_name": s.defaults.name,
        "metric": s.metric,
        "unit_cost": s.defaults.unit_cost.to_string(),
        "unit_price": s.defaults.unit_price.to_string(),
        "create_if_missing": s.create_if_missing,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceBody {
    service_name: String,
    #[serde(default = "users")]
    metric: String,
    unit_cost: Option<Value>,
    unit_price: Option<Value>,
    #[serde(default)]
    create_if_missing: bool,
}

fn users() -> String {
    "users".into()
}

async fn put_billing_service(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let b: ServiceBody = body(&bytes)?;
    let connection = s.store.connection(&p, id).await?;
    let mut errors = Vec::new();
    let name = b.service_name.trim().to_string();
    if name.is_empty() || name.chars().count() > MAX_SERVICE_NAME {
        errors.push(FieldError::new(
            "service_name",
            format!("must be 1 to {MAX_SERVICE_NAME} characters"),
        ));
    }
    if !psabridge_core::usage::valid_metric(&b.metric)
        || b.metric.len() > psabridge_core::usage::MAX_METRIC_LEN
    {
        errors.push(FieldError::new(
            "metric",
            "must be lower-case letters, digits, '_', '.' or '-' (e.g. users, devices)",
        ));
    }
    let unit_cost = money(&b.unit_cost, "unit_cost", &mut errors);
    let unit_price = money(&b.unit_price, "unit_price", &mut errors);
    if b.unit_cost.is_none() {
        errors.push(FieldError::new("unit_cost", "is required"));
    }
    if b.unit_price.is_none() {
        errors.push(FieldError::new("unit_price", "is required"));
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let service = BillingService {
        connection_id: connection.id,
        defaults: ServiceDefaults {
            name,
            unit_cost: unit_cost.unwrap_or_default(),
            unit_price: unit_price.unwrap_or_default(),
        },
        metric: b.metric,
        create_if_missing: b.create_if_missing,
        updated_at: now(),
    };
    let before = s.store.billing_service(id).await?.map(|b| service_view(&b));
    s.store.put_billing_service(&service).await?;
    let after = service_view(&service);
    audit(
        &s,
        &caller,
        Some(&p),
        "billing_service.put",
        &format!("connection:{id}"),
        before.as_ref(),
        Some(&after),
    )
    .await;
    Ok(Json(after))
}

async fn get_billing_service(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.connection(&p, id).await?;
    match s.store.billing_service(id).await? {
        Some(b) => Ok(Json(service_view(&b))),
        None => Err(Problem::not_found(format!(
            "billing service of connection {id} (set one with PUT)"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingBillingBody {
    enabled: bool,
    #[serde(default)]
    add_service: bool,
    unit_cost: Option<Value>,
    unit_price: Option<Value>,
}

async fn put_mapping_billing(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, client, conn_id)): Path<(String, String, i64)>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let b: MappingBillingBody = body(&bytes)?;
    s.store.connection(&p, conn_id).await?;
    let mut errors = Vec::new();
    let unit_cost = money(&b.unit_cost, "unit_cost", &mut errors);
    let unit_price = money(&b.unit_price, "unit_price", &mut errors);
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let mapping = s
        .store
        .mapping_billings(&p, conn_id)
        .await?
        .into_iter()
        .find(|m| m.client_id == client)
        .ok_or_else(|| {
            Problem::not_found(format!(
                "mapping of client '{client}' on connection {conn_id}"
            ))
        })?;
    if b.enabled && mapping.billing.contract_id.is_none() {
        return Err(Problem::invalid(vec![FieldError::new(
            "enabled",
            "the mapping names no contract: set its contract_id first (…/companies/{company}/contracts lists them)",
        )]));
    }
    let billing = ClientBilling {
        contract_id: mapping.billing.contract_id.clone(),
        add_service: b.add_service,
        unit_cost,
        unit_price,
    };
    let view = |enabled: bool, c: &ClientBilling| {
        json!({"enabled": enabled, "contract_id": c.contract_id, "add_service": c.add_service,
               "unit_cost": c.unit_cost.map(|d| d.to_string()),
               "unit_price": c.unit_price.map(|d| d.to_string())})
    };
    let before = view(mapping.enabled, &mapping.billing);
    s.store
        .put_mapping_billing(&p, conn_id, &client, b.enabled, &billing)
        .await?;
    let after = view(b.enabled, &billing);
    audit(
        &s,
        &caller,
        Some(&p),
        "mapping_billing.put",
        &format!("mapping:{client}:{conn_id}"),
        Some(&before),
        Some(&after),
    )
    .await;
    Ok(Json(after))
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
    caller: Caller,
    Path(p): Path<String>,
    Query(q): Query<WaitQuery>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    caller.require_partner(&p)?;
    let b: SyncBody = if bytes.is_empty() {
        SyncBody::default()
    } else {
        body(&bytes)?
    };
    s.store.partner(&p).await?;
    let engine = s.engine.clone();
    let run = billing::begin(&engine, &p, StartedBy::Api, b.dry_run)
        .await
        .map_err(Problem::internal)?;
    audit(
        &s,
        &caller,
        Some(&p),
        "billing.sync",
        &format!("billing_run:{run}"),
        None,
        Some(&json!({"dry_run": b.dry_run})),
    )
    .await;
    let partner = p.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = billing::finish(&engine, &partner, run, b.dry_run, &Silent).await {
            tracing::warn!(partner, run, error = %e, "billing sync failed");
        }
    });
    if q.wait {
        let _ = task.await;
        let (head, lines) = s.store.billing_run(&p, run).await?;
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
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let runs = s.store.billing_runs(&p, 50).await?;
    Ok(Json(json!({
        "runs": runs.iter().map(|r| run_view(r, None)).collect::<Vec<_>>()
    })))
}

async fn get_run(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let (head, lines) = s.store.billing_run(&p, id).await?;
    Ok(Json(run_view(&head, Some(&lines))))
}
