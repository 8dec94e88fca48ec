//! Usage billing in the portal: the billing calendar and nightly hour, each connection's
//! contract service, each mapped client's contract, price and switch, a sync previewed and run,
//! and every run's report per client.
//!
//! Every change is the operation the JSON API calls (`psabridge_ops::billing`, and
//! `put_mapping` for a client's contract), so the portal cannot bill on other rules than the
//! API. A sync started here waits a little for its report and otherwise shows it running.

use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use psabridge_core::billing::{BillingCalendar, SkipReason};
use psabridge_engine::billing::StartedBy;
use psabridge_ops::OpsError;
use psabridge_ops::billing::{
    BillingCalendarRequest, BillingServiceRequest, MappedBillingView, MappingBillingRequest,
};
use psabridge_store::billing::{BillingLine, BillingRun};
use serde::Deserialize;
use serde_json::Value;

use super::connections::mapping_request;
use super::{AtPartner, FieldErrors, Frame, ops_error, render, see_other, url_encode, when};
use crate::AppState;
use crate::config_api::connector_of;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/p/{p}/billing", get(overview))
        .route("/p/{p}/billing/calendar", post(save_calendar))
        .route("/p/{p}/billing/sync", post(sync))
        .route("/p/{p}/billing/runs/{run}", get(run_page))
        .route(
            "/p/{p}/connections/{id}/billing",
            get(connection_page).post(save_service),
        )
        .route(
            "/p/{p}/connections/{id}/billing/{client}",
            get(client_page).post(save_client),
        )
}

/// How long a sync started in the portal is waited for before its page shows it running.
const SYNC_WAIT: Duration = Duration::from_secs(20);
/// Mapped clients per page of a connection's billing.
const PER_PAGE: usize = 50;

struct ConnectionRow {
    id: i64,
    name: String,
    kind: &'static str,
    /// "Managed security seat (users), 3.50 / 6.00", or `None` when no service is set.
    service: Option<String>,
}

struct RunRow {
    id: i64,
    started_at: String,
    started_by: String,
    dry_run: bool,
    status: String,
    period: String,
}

struct UsageRow {
    client: String,
    metric: String,
    units: u64,
    reports: u64,
    updated_at: String,
}

struct CalendarForm {
    time_zone: String,
    anchor_day: String,
    sync_hour: u8,
    next_sync_at: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/billing.html")]
struct OverviewPage {
    frame: Frame,
    calendar: CalendarForm,
    errors: FieldErrors,
    connections: Vec<ConnectionRow>,
    runs: Vec<RunRow>,
    period: String,
    usage: Vec<UsageRow>,
}

fn run_row(r: &BillingRun) -> RunRow {
    RunRow {
        id: r.id,
        started_at: when(r.started_at),
        started_by: r.started_by.clone(),
        dry_run: r.dry_run,
        status: r.status.clone(),
        period: r.period_key.clone(),
    }
}

async fn show_overview(
    s: &AppState,
    at: &AtPartner,
    typed: Option<CalendarForm>,
    errors: FieldErrors,
    notice: Option<String>,
) -> Response {
    let acting = at.acting();
    let calendar = match s.ops.billing_calendar(&acting, &at.partner).await {
        Ok(c) => c,
        Err(e) => return ops_error(e),
    };
    let connections = match s.ops.connections(&acting, &at.partner).await {
        Ok(c) => c,
        Err(e) => return ops_error(e),
    };
    let mut rows = Vec::new();
    for c in connections {
        let service = match s.ops.billing_service(&acting, &at.partner, c.id).await {
            Ok(v) => v.map(|v| {
                format!(
                    "{} ({}), cost {} / price {} a unit",
                    v.service_name, v.metric, v.unit_cost, v.unit_price
                )
            }),
            Err(e) => return ops_error(e),
        };
        rows.push(ConnectionRow {
            id: c.id,
            name: c.name,
            kind: psabridge_core::settings::PsaKind::parse(c.kind)
                .map_or(c.kind, |k| k.display_name()),
            service,
        });
    }
    let runs = match s.ops.billing_runs(&acting, &at.partner, 10).await {
        Ok(r) => r.iter().map(run_row).collect(),
        Err(e) => return ops_error(e),
    };
    let period = BillingCalendar::new(&calendar.time_zone, calendar.anchor_day)
        .map(|c| c.period_of(chrono::Utc::now()).key)
        .unwrap_or_default();
    let usage = match s.store.high_water_marks(&at.partner, &period).await {
        Ok(marks) => marks
            .into_iter()
            .map(|m| UsageRow {
                client: m.client_id,
                metric: m.metric,
                units: m.units,
                reports: m.reports,
                updated_at: when(m.updated_at),
            })
            .collect(),
        Err(e) => return ops_error(e.into()),
    };
    let calendar = typed.unwrap_or(CalendarForm {
        time_zone: calendar.time_zone,
        anchor_day: calendar.anchor_day.to_string(),
        sync_hour: calendar.sync_hour,
        next_sync_at: calendar.next_sync_at.map(|t| when(t.0)),
    });
    render(&OverviewPage {
        frame: at.frame(s, "billing", "Usage billing", notice).await,
        calendar,
        errors,
        connections: rows,
        runs,
        period,
        usage,
    })
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

async fn overview(State(s): State<AppState>, at: AtPartner, Query(q): Query<Done>) -> Response {
    let notice = match q.done.as_deref() {
        Some("calendar") => Some("The billing calendar is saved.".to_string()),
        _ => None,
    };
    show_overview(&s, &at, None, FieldErrors::default(), notice).await
}

#[derive(Deserialize)]
struct CalendarFields {
    time_zone: String,
    anchor_day: String,
    sync_hour: u8,
}

async fn save_calendar(
    State(s): State<AppState>,
    at: AtPartner,
    Form(form): Form<CalendarFields>,
) -> Response {
    let anchor = form.anchor_day.trim().parse::<u8>();
    let req = BillingCalendarRequest {
        time_zone: form.time_zone.trim().to_string(),
        // Out of range on purpose when it is not a number, so the operation names the field.
        anchor_day: anchor.clone().unwrap_or(0),
        sync_hour: Some(form.sync_hour),
    };
    match s
        .ops
        .put_billing_calendar(&at.acting(), &at.partner, req)
        .await
    {
        Ok(_) => see_other(&format!(
            "/p/{}/billing?done=calendar",
            url_encode(&at.partner)
        )),
        Err(e @ (OpsError::Invalid(_) | OpsError::Conflict { .. })) => {
            let typed = CalendarForm {
                time_zone: form.time_zone,
                anchor_day: form.anchor_day,
                sync_hour: form.sync_hour,
                next_sync_at: None,
            };
            unprocessable(show_overview(&s, &at, Some(typed), FieldErrors::of(e), None).await)
        }
        Err(e) => ops_error(e),
    }
}

fn unprocessable(mut resp: Response) -> Response {
    *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    resp
}

#[derive(Deserialize)]
struct SyncForm {
    /// `preview` (a dry run) or `sync`.
    action: String,
}

/// Start a sync (or its preview) and show its report, waiting a little for it to finish.
async fn sync(State(s): State<AppState>, at: AtPartner, Form(form): Form<SyncForm>) -> Response {
    let dry_run = form.action != "sync";
    match s
        .ops
        .start_billing_sync(&at.acting(), &at.partner, StartedBy::Portal, dry_run)
        .await
    {
        Ok((run, task)) => {
            let _ = tokio::time::timeout(SYNC_WAIT, task).await;
            see_other(&format!(
                "/p/{}/billing/runs/{run}",
                url_encode(&at.partner)
            ))
        }
        Err(e) => ops_error(e),
    }
}

struct ReportRow {
    client: String,
    connection: Option<i64>,
    metric: String,
    outcome: String,
    detail: String,
    units: String,
    cost: String,
}

#[derive(Template)]
#[template(path = "portal/billing_run.html")]
struct RunPage {
    frame: Frame,
    run: RunRow,
    error: Option<String>,
    finished_at: Option<String>,
    counts: String,
    lines: Vec<ReportRow>,
}

/// A value before and after a sync: "5 → 8" where it changed, else the one value known (a
/// side left empty is a part the sync did not touch, or a line that did not exist before).
fn before_after<T: ToString>(before: &Option<T>, after: &Option<T>) -> String {
    match (
        before.as_ref().map(T::to_string),
        after.as_ref().map(T::to_string),
    ) {
        (Some(b), Some(a)) if b != a => format!("{b} → {a}"),
        (_, Some(v)) | (Some(v), None) => v,
        (None, None) => String::new(),
    }
}

/// The outcome of a report line and why, in words.
fn report_row(l: &BillingLine) -> ReportRow {
    let reason = l.reason.as_deref().and_then(|r| {
        [
            SkipReason::NoMapping,
            SkipReason::NoUsage,
            SkipReason::NoContract,
            SkipReason::ContractMissing,
            SkipReason::ContractInactive,
            SkipReason::ContractWrongType,
            SkipReason::ServiceMissing,
        ]
        .into_iter()
        .find(|k| k.as_str() == r)
    });
    let detail = match (reason, &l.message, &l.reason) {
        (Some(k), _, _) => k.explain().to_string(),
        (None, Some(m), _) => m.clone(),
        (None, None, Some(r)) => r.clone(),
        (None, None, None) => String::new(),
    };
    ReportRow {
        client: l.client_id.clone(),
        connection: (l.connection_id != 0).then_some(l.connection_id),
        metric: l.metric.clone(),
        outcome: l.outcome.replace('_', " "),
        detail,
        units: before_after(&l.units_before, &l.units_after),
        cost: before_after(&l.cost_before, &l.cost_after),
    }
}

async fn run_page(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, run)): Path<(String, i64)>,
) -> Response {
    let (head, lines) = match s.ops.billing_run(&at.acting(), &at.partner, run).await {
        Ok(r) => r,
        Err(e) => return ops_error(e),
    };
    let count = |o: &[&str]| {
        lines
            .iter()
            .filter(|l| o.contains(&l.outcome.as_str()))
            .count()
    };
    let counts = format!(
        "{} added, {} updated, {} unchanged, {} skipped, {} failed",
        count(&["added", "would_add"]),
        count(&["updated", "would_update"]),
        count(&["unchanged"]),
        count(&["skipped"]),
        count(&["failed"]),
    );
    let title = if head.dry_run {
        format!("Billing preview {run}")
    } else {
        format!("Billing sync {run}")
    };
    render(&RunPage {
        frame: at.frame(&s, "billing", title, None).await,
        error: head.error.clone(),
        finished_at: head.finished_at.map(when),
        run: run_row(&head),
        counts,
        lines: lines.iter().map(report_row).collect(),
    })
}

struct ServiceForm {
    service_name: String,
    metric: String,
    unit_cost: String,
    unit_price: String,
    create_if_missing: bool,
}

struct ClientRow {
    client: String,
    company: String,
    contract: Option<String>,
    enabled: bool,
    price: String,
}

#[derive(Template)]
#[template(path = "portal/billing_connection.html")]
struct ConnectionPage {
    frame: Frame,
    id: i64,
    service: ServiceForm,
    errors: FieldErrors,
    clients: Vec<ClientRow>,
    total: usize,
    page: usize,
    pages: usize,
}

#[derive(Deserialize, Default)]
struct PageQuery {
    page: Option<usize>,
    done: Option<String>,
}

fn client_row(m: MappedBillingView) -> ClientRow {
    let b = &m.billing;
    let price = match (&b.unit_cost, &b.unit_price) {
        (None, None) => "the connection's".to_string(),
        (c, p) => format!(
            "cost {} / price {}",
            c.as_deref().unwrap_or("default"),
            p.as_deref().unwrap_or("default")
        ),
    };
    ClientRow {
        client: m.client_id,
        company: m.company_id,
        contract: b.contract_id.clone(),
        enabled: b.enabled,
        price,
    }
}

async fn show_connection(
    s: &AppState,
    at: &AtPartner,
    id: i64,
    q: PageQuery,
    typed: Option<ServiceForm>,
    errors: FieldErrors,
) -> Response {
    let acting = at.acting();
    let conn = match s.ops.connection(&acting, &at.partner, id).await {
        Ok(c) => c,
        Err(e) => return ops_error(e),
    };
    let saved = match s.ops.billing_service(&acting, &at.partner, id).await {
        Ok(v) => v,
        Err(e) => return ops_error(e),
    };
    let mapped = match s.ops.mapping_billings(&acting, &at.partner, id).await {
        Ok(m) => m,
        Err(e) => return ops_error(e),
    };
    let total = mapped.len();
    let pages = total.div_ceil(PER_PAGE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let clients = mapped
        .into_iter()
        .skip((page - 1) * PER_PAGE)
        .take(PER_PAGE)
        .map(client_row)
        .collect();
    let service = typed.unwrap_or_else(|| match saved {
        Some(v) => ServiceForm {
            service_name: v.service_name,
            metric: v.metric,
            unit_cost: v.unit_cost,
            unit_price: v.unit_price,
            create_if_missing: v.create_if_missing,
        },
        None => ServiceForm {
            service_name: String::new(),
            metric: "users".into(),
            unit_cost: String::new(),
            unit_price: String::new(),
            create_if_missing: true,
        },
    });
    let notice = match q.done.as_deref() {
        Some("service") => Some("The contract service is saved.".to_string()),
        Some("client") => Some("The client's billing is saved.".to_string()),
        _ => None,
    };
    render(&ConnectionPage {
        frame: at
            .frame(s, "billing", format!("Billing on {}", conn.name), notice)
            .await,
        id,
        service,
        errors,
        clients,
        total,
        page,
        pages,
    })
}

async fn connection_page(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Query(q): Query<PageQuery>,
) -> Response {
    show_connection(&s, &at, id, q, None, FieldErrors::default()).await
}

#[derive(Deserialize)]
struct ServiceFields {
    service_name: String,
    metric: String,
    unit_cost: String,
    unit_price: String,
    create_if_missing: Option<String>,
}

/// A form's text as the operation's JSON value: blank is "not given".
fn given(text: &str) -> Option<Value> {
    let t = text.trim();
    (!t.is_empty()).then(|| Value::String(t.to_string()))
}

async fn save_service(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Form(form): Form<ServiceFields>,
) -> Response {
    let req = BillingServiceRequest {
        service_name: form.service_name.clone(),
        metric: form.metric.trim().to_string(),
        unit_cost: given(&form.unit_cost),
        unit_price: given(&form.unit_price),
        create_if_missing: form.create_if_missing.is_some(),
    };
    match s
        .ops
        .put_billing_service(&at.acting(), &at.partner, id, req)
        .await
    {
        Ok(_) => see_other(&format!(
            "/p/{}/connections/{id}/billing?done=service",
            url_encode(&at.partner)
        )),
        Err(e @ OpsError::Invalid(_)) => {
            let typed = ServiceForm {
                service_name: form.service_name,
                metric: form.metric,
                unit_cost: form.unit_cost,
                unit_price: form.unit_price,
                create_if_missing: form.create_if_missing.is_some(),
            };
            let q = PageQuery::default();
            unprocessable(show_connection(&s, &at, id, q, Some(typed), FieldErrors::of(e)).await)
        }
        Err(e) => ops_error(e),
    }
}

struct ContractChoice {
    id: String,
    name: String,
    active: bool,
    chosen: bool,
}

#[derive(Template)]
#[template(path = "portal/billing_client.html")]
struct ClientPage {
    frame: Frame,
    id: i64,
    client: String,
    company: String,
    contracts: Vec<ContractChoice>,
    /// No contract chosen ("None" is checked).
    none_chosen: bool,
    /// The mapping's contract when the PSA no longer lists it.
    unlisted: Option<String>,
    psa_error: Option<String>,
    enabled: bool,
    add_service: bool,
    unit_cost: String,
    unit_price: String,
    errors: FieldErrors,
}

struct ClientTyped {
    contract: Option<String>,
    enabled: bool,
    add_service: bool,
    unit_cost: String,
    unit_price: String,
}

async fn show_client(
    s: &AppState,
    at: &AtPartner,
    id: i64,
    client: &str,
    typed: Option<ClientTyped>,
    errors: FieldErrors,
) -> Response {
    let acting = at.acting();
    let conn = match s.ops.connection(&acting, &at.partner, id).await {
        Ok(c) => c,
        Err(e) => return ops_error(e),
    };
    let mapping = match s.ops.mapping_billings(&acting, &at.partner, id).await {
        Ok(m) => m.into_iter().find(|m| m.client_id == client),
        Err(e) => return ops_error(e),
    };
    let Some(mapping) = mapping else {
        return ops_error(OpsError::NotFound(format!(
            "mapping of client '{client}' on connection {id}"
        )));
    };
    let b = &mapping.billing;
    let typed = typed.unwrap_or(ClientTyped {
        contract: b.contract_id.clone(),
        enabled: b.enabled,
        add_service: b.add_service,
        unit_cost: b.unit_cost.clone().unwrap_or_default(),
        unit_price: b.unit_price.clone().unwrap_or_default(),
    });
    // The company's contracts, from the PSA (one request).
    let (contracts, psa_error) = match connector_of(s, &at.partner, id).await {
        Ok(connector) => match connector.contracts(&mapping.company_id).await {
            Ok(list) => (list, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        },
        Err(p) => (Vec::new(), p.detail.clone().or(Some(p.title.clone()))),
    };
    let unlisted = typed
        .contract
        .clone()
        .filter(|c| !contracts.iter().any(|k| &k.id == c));
    let contracts = contracts
        .into_iter()
        .map(|c| ContractChoice {
            chosen: typed.contract.as_deref() == Some(c.id.as_str()),
            id: c.id,
            name: c.name,
            active: c.active,
        })
        .collect();
    render(&ClientPage {
        frame: at
            .frame(
                s,
                "billing",
                format!("Billing {client} on {}", conn.name),
                None,
            )
            .await,
        id,
        client: client.to_string(),
        company: mapping.company_id.clone(),
        contracts,
        none_chosen: typed.contract.is_none(),
        unlisted,
        psa_error,
        enabled: typed.enabled,
        add_service: typed.add_service,
        unit_cost: typed.unit_cost,
        unit_price: typed.unit_price,
        errors,
    })
}

async fn client_page(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id, client)): Path<(String, i64, String)>,
) -> Response {
    show_client(&s, &at, id, &client, None, FieldErrors::default()).await
}

#[derive(Deserialize)]
struct ClientFields {
    /// The contract's id; blank for none.
    #[serde(default)]
    contract: String,
    enabled: Option<String>,
    add_service: Option<String>,
    #[serde(default)]
    unit_cost: String,
    #[serde(default)]
    unit_price: String,
}

/// Save a client's contract (through the mapping, checked in the PSA) and its billing.
async fn save_client(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id, client)): Path<(String, i64, String)>,
    Form(form): Form<ClientFields>,
) -> Response {
    let acting = at.acting();
    let contract = Some(form.contract.trim().to_string()).filter(|c| !c.is_empty());
    let typed = || ClientTyped {
        contract: contract.clone(),
        enabled: form.enabled.is_some(),
        add_service: form.add_service.is_some(),
        unit_cost: form.unit_cost.clone(),
        unit_price: form.unit_price.clone(),
    };
    let existing = match s
        .ops
        .mappings_of(&acting, &at.partner, std::slice::from_ref(&client))
        .await
    {
        Ok(m) => m.into_iter().find(|m| m.connection == id),
        Err(e) => return ops_error(e),
    };
    let Some(existing) = existing else {
        return ops_error(OpsError::NotFound(format!(
            "mapping of client '{client}' on connection {id}"
        )));
    };
    if existing.contract != contract {
        let mut req = mapping_request(Some(&existing), existing.company.clone(), None);
        req.contract = contract.clone();
        if let Err(e) = s
            .ops
            .put_mapping(&acting, &at.partner, &client, id, req)
            .await
        {
            return match e {
                OpsError::Invalid(_) | OpsError::PsaRefused(_) | OpsError::Conflict { .. } => {
                    let errors = FieldErrors::of(e);
                    unprocessable(show_client(&s, &at, id, &client, Some(typed()), errors).await)
                }
                e => ops_error(e),
            };
        }
    }
    let req = MappingBillingRequest {
        enabled: form.enabled.is_some(),
        add_service: form.add_service.is_some(),
        unit_cost: given(&form.unit_cost),
        unit_price: given(&form.unit_price),
    };
    match s
        .ops
        .put_mapping_billing(&acting, &at.partner, &client, id, req)
        .await
    {
        Ok(_) => see_other(&format!(
            "/p/{}/connections/{id}/billing?done=client",
            url_encode(&at.partner)
        )),
        Err(e @ (OpsError::Invalid(_) | OpsError::Conflict { .. })) => {
            let errors = FieldErrors::of(e);
            unprocessable(show_client(&s, &at, id, &client, Some(typed()), errors).await)
        }
        Err(e) => ops_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_and_after_read_as_a_change_only_when_they_differ() {
        assert_eq!(before_after::<u64>(&None, &None), "");
        assert_eq!(before_after(&Some(5u64), &Some(5u64)), "5");
        assert_eq!(before_after(&Some(5u64), &Some(8u64)), "5 → 8");
        assert_eq!(before_after(&None, &Some(8u64)), "8");
        assert_eq!(
            before_after(&Some(5u64), &None),
            "5",
            "not touched by the sync"
        );
    }

    #[test]
    fn a_skipped_line_is_explained_in_words() {
        let line = BillingLine {
            connection_id: 3,
            client_id: "acme".into(),
            metric: "users".into(),
            outcome: "skipped".into(),
            reason: Some("contract_inactive".into()),
            units_before: None,
            units_after: None,
            cost_before: None,
            cost_after: None,
            message: None,
        };
        let row = report_row(&line);
        assert_eq!(row.detail, "the contract is not active");
        assert_eq!(row.connection, Some(3));
        let failed = BillingLine {
            outcome: "failed".into(),
            reason: None,
            message: Some("Autotask: contract is not Recurring Service".into()),
            ..line
        };
        assert_eq!(
            report_row(&failed).detail,
            "Autotask: contract is not Recurring Service"
        );
    }
}
