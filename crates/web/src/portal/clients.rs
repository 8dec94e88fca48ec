//! Clients: a searchable, paged list with each client's state (configured, not configured, or
//! failing with its last error), and a client's page with its mappings and a test
//! notification that shows the ticket number or the PSA's exact error.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use psabridge_ops::mappings::ClientFilter;
use psabridge_ops::views::MappingView;
use serde::Deserialize;

use super::{AtPartner, Frame, ops_error, page_error, render, url_encode, when};
use crate::AppState;
use crate::test_notification::{self, Outcome};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/p/{p}/clients", get(list))
        .route("/p/{p}/clients/{client}", get(show))
        .route("/p/{p}/clients/{client}/test", post(test))
        .route(
            "/p/{p}/clients/{client}/assets/{connection}",
            post(switch_assets),
        )
        .route(
            "/p/{p}/clients/{client}/assets/{connection}/push",
            post(push_assets),
        )
}

const PAGE: usize = 50;

/// Where page `page` (from 1) of `PAGE` rows starts.
fn page_offset(page: usize) -> i64 {
    ((page.max(1) - 1) * PAGE) as i64
}
/// A dead delivery newer than this marks its client as failing.
const FAILING_WINDOW_MS: i64 = 7 * 86_400_000;

struct Row {
    id: String,
    name: String,
    status: &'static str,
    /// The mappings' companies, as "connection: company".
    companies: Vec<String>,
    mapped_at: Option<String>,
    last_error: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/clients.html")]
struct ListPage {
    frame: Frame,
    q: String,
    status: String,
    rows: Vec<Row>,
    total: usize,
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    page: Option<usize>,
}

async fn list(State(s): State<AppState>, at: AtPartner, Query(q): Query<ListQuery>) -> Response {
    let acting = at.acting();
    let now = chrono::Utc::now().timestamp_millis();
    let failing = match s
        .store
        .failing_clients(&at.partner, now - FAILING_WINDOW_MS, 1000)
        .await
    {
        Ok(f) => f,
        Err(e) => return page_error(e.into()),
    };
    let failing_ids: Vec<String> = failing.iter().map(|(c, ..)| c.clone()).collect();
    // "Failing" wins over the other two states, so they leave the failing clients out.
    let mut filter = ClientFilter {
        search: q.q.clone(),
        ..ClientFilter::default()
    };
    match q.status.as_str() {
        "failing" => filter.among = Some(failing_ids),
        "configured" => {
            filter.mapped = Some(true);
            filter.excluding = failing_ids;
        }
        "not_configured" => {
            filter.mapped = Some(false);
            filter.excluding = failing_ids;
        }
        _ => {}
    }
    let requested = q.page.unwrap_or(1).max(1);
    let (mut clients, mut total) = match s
        .ops
        .client_page(
            &acting,
            &at.partner,
            &filter,
            page_offset(requested),
            PAGE as i64,
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return ops_error(e),
    };
    let pages = (total as usize).div_ceil(PAGE).max(1);
    let page = requested.min(pages);
    if page != requested {
        // Past the end (the list shrank, or a hand-made link): show the last page.
        (clients, total) = match s
            .ops
            .client_page(
                &acting,
                &at.partner,
                &filter,
                page_offset(page),
                PAGE as i64,
            )
            .await
        {
            Ok(p) => p,
            Err(e) => return ops_error(e),
        };
    }
    let ids: Vec<String> = clients.iter().map(|c| c.id.clone()).collect();
    let (mappings, connections) = match (
        s.ops.mappings_of(&acting, &at.partner, &ids).await,
        s.ops.connections(&acting, &at.partner).await,
    ) {
        (Ok(m), Ok(c)) => (m, c),
        (Err(e), _) | (_, Err(e)) => return ops_error(e),
    };
    let connection_names: HashMap<i64, &str> = connections
        .iter()
        .map(|k| (k.id, k.name.as_str()))
        .collect();
    let failing: HashMap<&str, &Option<String>> =
        failing.iter().map(|(c, e, _)| (c.as_str(), e)).collect();
    let rows: Vec<Row> = clients
        .iter()
        .map(|c| {
            let mine: Vec<&MappingView> = mappings.iter().filter(|m| m.client == c.id).collect();
            let failure = failing.get(c.id.as_str());
            Row {
                id: c.id.clone(),
                name: c.name.clone(),
                status: if failure.is_some() {
                    "failing"
                } else {
                    c.status
                },
                companies: mine
                    .iter()
                    .map(|m| match connection_names.get(&m.connection) {
                        Some(name) => format!("{name}: {}", m.company),
                        None => format!("{}: {}", m.connection, m.company),
                    })
                    .collect(),
                mapped_at: mine.iter().map(|m| m.mapped_at.0).max().map(when),
                last_error: failure.and_then(|e| (*e).clone()),
            }
        })
        .collect();
    let total = total as usize;
    let link = |n: usize| {
        format!(
            "/p/{}/clients?q={}&status={}&page={n}",
            url_encode(&at.partner),
            url_encode(&q.q),
            url_encode(&q.status)
        )
    };
    render(&ListPage {
        frame: at.frame(&s, "clients", "Clients", None).await,
        q: q.q.clone(),
        status: q.status.clone(),
        rows,
        total,
        page,
        pages,
        prev: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
    })
}

struct MappingRow {
    connection_id: i64,
    /// Whether the client's assets go to this connection's PSA.
    push_assets: bool,
    connection: String,
    company: String,
    contact: String,
    contract: String,
    tickets: bool,
    refire: String,
    mapped_at: String,
}

/// What the last test notification came to, in words.
struct TestResult {
    ok: bool,
    headline: String,
    detail: Option<String>,
    event_id: String,
}

#[derive(Template)]
#[template(path = "portal/client.html")]
struct ClientPage {
    frame: Frame,
    id: String,
    status: &'static str,
    mappings: Vec<MappingRow>,
    event_types: Vec<(String, String)>,
    chosen: String,
    result: Option<TestResult>,
    test_error: Option<String>,
    assets: Vec<AssetRow>,
    notice_assets: Option<String>,
}

/// An asset and what each PSA holds of it, in words.
struct AssetRow {
    name: String,
    asset_id: String,
    details: String,
    last_seen: String,
    in_psa: Vec<String>,
}

async fn client_page(
    s: &AppState,
    at: &AtPartner,
    client: &str,
    chosen: String,
    result: Option<TestResult>,
    test_error: Option<String>,
    notice_assets: Option<String>,
) -> Response {
    let acting = at.acting();
    let c = match s.ops.client(&acting, &at.partner, client).await {
        Ok(c) => c,
        Err(e) => return ops_error(e),
    };
    let (mappings, connections) = match (
        s.ops
            .mappings_of(&acting, &at.partner, std::slice::from_ref(&c.id))
            .await,
        s.ops.connections(&acting, &at.partner).await,
    ) {
        (Ok(m), Ok(c)) => (m, c),
        (Err(e), _) | (_, Err(e)) => return ops_error(e),
    };
    let catalog = s.event_catalog().await;
    let event_types = catalog
        .iter()
        .map(|t| (t.key.clone(), format!("{} ({})", t.name, t.category)))
        .collect();
    let mine: Vec<i64> = mappings
        .iter()
        .filter(|m| m.client == c.id)
        .map(|m| m.connection)
        .collect();
    let (switches, assets) = match (
        s.ops
            .asset_push_switches(&acting, &at.partner, &c.id, &mine)
            .await,
        s.ops.assets(&acting, &at.partner, Some(&c.id)).await,
    ) {
        (Ok(sw), Ok(a)) => (sw, a),
        (Err(e), _) | (_, Err(e)) => return ops_error(e),
    };
    let connection_name = |id: i64| {
        connections
            .iter()
            .find(|k| k.id == id)
            .map_or_else(|| id.to_string(), |k| k.name.clone())
    };
    let assets = assets
        .iter()
        .map(|(a, links)| AssetRow {
            name: a.fields.name.clone(),
            asset_id: a.asset_id.clone(),
            details: [
                &a.fields.kind,
                &a.fields.serial,
                &a.fields.os,
                &a.fields.ip,
                &a.fields.mac,
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(" · "),
            last_seen: a.last_seen.map(when).unwrap_or_default(),
            in_psa: links
                .iter()
                .map(|l| {
                    let name = connection_name(l.connection_id);
                    match (&l.psa_id, &l.error) {
                        (_, Some(e)) => format!("{name}: failed: {e}"),
                        (Some(id), None) if l.pushed.as_ref() == Some(&a.fields) => {
                            format!("{name}: item {id}, up to date")
                        }
                        (Some(id), None) => format!("{name}: item {id}, change waiting"),
                        (None, None) => format!("{name}: waiting"),
                    }
                })
                .collect(),
        })
        .collect();
    let mappings = mappings
        .iter()
        .filter(|m| m.client == c.id)
        .map(|m| MappingRow {
            connection_id: m.connection,
            push_assets: switches
                .iter()
                .any(|(conn, push)| *conn == m.connection && *push),
            connection: connections
                .iter()
                .find(|k| k.id == m.connection)
                .map_or_else(
                    || m.connection.to_string(),
                    |k| format!("{} ({})", k.name, k.kind),
                ),
            company: m.company.clone(),
            contact: m
                .default_contact
                .clone()
                .unwrap_or_else(|| "chosen per event".into()),
            contract: m.contract.clone().unwrap_or_else(|| "none".into()),
            tickets: m.create_tickets,
            refire: m.refire.behaviour.clone(),
            mapped_at: when(m.mapped_at.0),
        })
        .collect();
    render(&ClientPage {
        frame: at
            .frame(s, "clients", format!("Client: {}", c.name), None)
            .await,
        id: c.id.clone(),
        status: c.status,
        mappings,
        event_types,
        chosen,
        result,
        test_error,
        assets,
        notice_assets,
    })
}

async fn show(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, client)): Path<(String, String)>,
) -> Response {
    client_page(&s, &at, &client, String::new(), None, None, None).await
}

#[derive(Deserialize)]
struct TestForm {
    event_type: String,
}

/// "Send a test notification": the same run as `POST …/clients/{client}/test-notification`.
async fn test(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, client)): Path<(String, String)>,
    Form(form): Form<TestForm>,
) -> Response {
    let outcome = test_notification::run(&s, &at.partner, &client, &form.event_type).await;
    let (result, error) = match outcome {
        Ok(o) => (Some(describe(o)), None),
        Err(p) if !p.errors.is_empty() => (
            None,
            Some(
                p.errors
                    .iter()
                    .map(|e| e.problem.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        ),
        Err(p) => return page_error(p),
    };
    client_page(&s, &at, &client, form.event_type, result, error, None).await
}

#[derive(Deserialize)]
struct SwitchForm {
    /// `on` or `off`.
    push: String,
}

/// Push this client's assets to one connection's PSA, or stop (the API's operation).
async fn switch_assets(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, client, connection)): Path<(String, String, i64)>,
    Form(form): Form<SwitchForm>,
) -> Response {
    let req = psabridge_ops::assets::PushAssetsRequest {
        push: form.push == "on",
    };
    match s
        .ops
        .put_push_assets(&at.acting(), &at.partner, &client, connection, req)
        .await
    {
        Ok(_) => super::see_other(&format!(
            "/p/{}/clients/{}#assets-h",
            url_encode(&at.partner),
            url_encode(&client)
        )),
        Err(e) => ops_error(e),
    }
}

/// Push what is due on one connection now, and say what happened.
async fn push_assets(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, client, connection)): Path<(String, String, i64)>,
) -> Response {
    let notice = match s
        .ops
        .push_assets_now(&at.acting(), &at.partner, connection)
        .await
    {
        Ok(r) => format!(
            "Pushed: {} created, {} updated, {} failed{}.",
            r.created,
            r.updated,
            r.failed,
            if r.more_due { "; more are due" } else { "" }
        ),
        Err(psabridge_ops::OpsError::Conflict { detail, .. }) => detail,
        Err(e) => return ops_error(e),
    };
    client_page(&s, &at, &client, String::new(), None, None, Some(notice)).await
}

fn describe(o: Outcome) -> TestResult {
    match o {
        Outcome::Delivered {
            event_id,
            psa_action,
            ticket_id,
            ticket_number,
            ..
        } => TestResult {
            ok: true,
            headline: match (ticket_number, ticket_id) {
                (Some(n), _) => format!("Ticket {n} was made in the PSA."),
                (None, Some(id)) => format!("Ticket (id {id}) was made in the PSA."),
                (None, None) => "The PSA accepted it.".into(),
            },
            detail: psa_action.map(|a| format!("What was done: {a}.")),
            event_id,
        },
        Outcome::NotSent { event_id, error } => TestResult {
            ok: false,
            headline: "Nothing was sent to the PSA.".into(),
            detail: Some(error),
            event_id,
        },
        Outcome::Pending { event_id } => TestResult {
            ok: false,
            headline: "Not sent yet: the delivery log will show what happens.".into(),
            detail: None,
            event_id,
        },
        Outcome::Failed {
            event_id, error, ..
        } => TestResult {
            ok: false,
            headline: "The PSA refused the ticket.".into(),
            detail: error,
            event_id,
        },
        Outcome::Retrying {
            event_id, error, ..
        } => TestResult {
            ok: false,
            headline: "The PSA has not accepted it yet; it is being retried.".into(),
            detail: error,
            event_id,
        },
    }
}
