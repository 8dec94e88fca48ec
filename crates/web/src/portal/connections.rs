//! PSA connections and their wizard: (1) credentials, with fields named as each vendor's own
//! screens name them and "Connect" errors next to the field the PSA refused; (2) customer
//! mapping: the PSA's companies searched and paged on the server (a 20,000-company PSA stays
//! usable), each mapped to a client or made the catch-all, a default contact from that
//! company's contacts; (3) ticket settings: the defaults from the PSA's own lists, with each
//! dependent field's choices grouped under their parent. Every step is the JSON API's
//! operation (`create_connection`, `update_connection`, `put_mapping`, `delete_connection`).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use psabridge_core::settings::PsaKind;
use psabridge_ops::OpsError;
use psabridge_ops::connections::{CatchAll, ConnectionPatch, NewConnectionRequest};
use psabridge_ops::mappings::{ClientFilter, MappingRequest, RefireRequest};
use psabridge_ops::views::ConnectionView;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{AtPartner, FieldErrors, Frame, ops_error, page_error, render, see_other, url_encode};
use crate::AppState;
use crate::config_api::connector_of;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/p/{p}/connections", get(list).post(create))
        .route("/p/{p}/connections/new", get(new_form))
        .route("/p/{p}/connections/{id}", get(edit_form).post(update))
        .route("/p/{p}/connections/{id}/delete", post(delete))
        .route(
            "/p/{p}/connections/{id}/mapping",
            get(mapping_page).post(map_client),
        )
        .route("/p/{p}/connections/{id}/companies", get(companies_page))
        .route("/p/{p}/connections/{id}/catch-all", post(set_catch_all))
        .route(
            "/p/{p}/connections/{id}/mapping/{client}/contact",
            get(contact_page).post(set_contact),
        )
        .route(
            "/p/{p}/connections/{id}/defaults",
            get(defaults_page).post(save_defaults),
        )
}

/// What each vendor's own screen calls a credential (the API's names are ours).
fn vendor_label(kind: PsaKind, key: &str) -> String {
    let label = match (kind, key) {
        (PsaKind::Autotask, "username") => "API user: Username (Key)",
        (PsaKind::Autotask, "secret") => "API user: Password (Secret)",
        (PsaKind::Autotask, "integration_code") => "API Tracking Identifier",
        (PsaKind::Autotask, "zone_discovery_url") => "Zone discovery URL",
        (PsaKind::Autotask, "impersonation_resource_id") => "Impersonation resource ID",
        (PsaKind::Autotask, "ci_product_id") => "Product ID for configuration items",
        (PsaKind::HaloPsa, "resource_url") => "Resource Server",
        (PsaKind::HaloPsa, "auth_url") => "Authorisation Server",
        (PsaKind::HaloPsa, "tenant") => "Tenant",
        (PsaKind::HaloPsa, "client_id") => "Client ID",
        (PsaKind::HaloPsa, "client_secret") => "Client Secret",
        (PsaKind::HaloPsa, "asset_type_id") => "Asset Type ID for assets",
        (PsaKind::KaseyaBms, "tenant") => "Company Name",
        (PsaKind::KaseyaBms, "username") => "Username",
        (PsaKind::KaseyaBms, "password") => "Password",
        (PsaKind::KaseyaBms, "base_url") => "BMS URL",
        (PsaKind::KaseyaBms, "region") => "Region (us, emea, apac)",
        (PsaKind::ConnectWise, "site_url") => "Site",
        (PsaKind::ConnectWise, "company") => "Company ID",
        (PsaKind::ConnectWise, "public_key") => "Public Key",
        (PsaKind::ConnectWise, "private_key") => "Private Key",
        (PsaKind::ConnectWise, "client_id") => "Client ID",
        (PsaKind::ConnectWise, "codebase") => "Codebase",
        (PsaKind::ConnectWise, "configuration_type_id") => "Configuration Type ID for assets",
        _ => "",
    };
    if label.is_empty() {
        let mut s = key.replace('_', " ");
        if let Some(first) = s.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        s
    } else {
        label.to_string()
    }
}

/// The credential a secret is entered after (the user name its password belongs to, the
/// public key of a private one). `None`: at the end of the main fields.
fn secret_follows(kind: PsaKind, secret: &str) -> Option<&'static str> {
    match (kind, secret) {
        (PsaKind::Autotask, "secret") => Some("username"),
        (PsaKind::Autotask, "integration_code") => Some("secret"),
        (PsaKind::HaloPsa, "client_secret") => Some("client_id"),
        (PsaKind::KaseyaBms, "password") => Some("username"),
        (PsaKind::ConnectWise, "private_key") => Some("public_key"),
        _ => None,
    }
}

fn kind_name(kind: PsaKind) -> &'static str {
    kind.display_name()
}

/// One credential or setting input of the form.
struct Field {
    key: String,
    label: String,
    help: String,
    secret: bool,
    required: bool,
    /// What was typed (never a secret's value) or is stored.
    value: String,
    /// A stored secret: leaving the input empty keeps it.
    is_set: bool,
    error: Option<String>,
}

fn fields(
    kind: PsaKind,
    values: &Map<String, Value>,
    secrets_set: &[String],
    errors: &FieldErrors,
) -> (Vec<Field>, Vec<Field>) {
    let (known, secret_names) = psabridge_psa::known_settings(kind);
    let required = psabridge_psa::required_settings(kind);
    let make = |key: &str, help: &str, secret: bool| Field {
        key: key.to_string(),
        label: vendor_label(kind, key),
        help: help.to_string(),
        secret,
        required: secret || required.contains(&key),
        value: if secret {
            String::new()
        } else {
            match values.get(key) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(", "),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            }
        },
        is_set: secret && secrets_set.iter().any(|s| s == key),
        error: errors
            .get(&format!("credentials.{key}"))
            .map(str::to_string),
    };
    let mut main = Vec::new();
    let mut advanced = Vec::new();
    for (key, help) in known {
        let f = make(key, help, false);
        // Where the PSA is and who we are there come first; tuning goes under "Advanced".
        if f.required || psabridge_psa::is_location_setting(key) || *key == "tenant" {
            main.push(f);
        } else {
            advanced.push(f);
        }
    }
    // Each secret right after the field it goes with, as the vendor's own screen shows them.
    for key in secret_names {
        let at = secret_follows(kind, key)
            .and_then(|after| main.iter().position(|f| f.key == after))
            .map_or(main.len(), |i| i + 1);
        main.insert(at, make(key, "write-only: never shown again", true));
    }
    (main, advanced)
}

/// The form's values as credentials: empty inputs left out (a stored secret is kept), lists
/// (`closed_statuses`) split on commas.
fn credentials_of(kind: PsaKind, form: &HashMap<String, String>) -> Map<String, Value> {
    let (known, secret_names) = psabridge_psa::known_settings(kind);
    let mut out = Map::new();
    for key in known
        .iter()
        .map(|(k, _)| *k)
        .chain(secret_names.iter().copied())
    {
        let Some(v) = form.get(&format!("credentials.{key}")).map(|v| v.trim()) else {
            continue;
        };
        if v.is_empty() {
            continue;
        }
        let value = if key == "closed_statuses" {
            Value::Array(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            )
        } else {
            Value::String(v.to_string())
        };
        out.insert(key.to_string(), value);
    }
    out
}

// ---- the list ------------------------------------------------------------------------------

struct Row {
    id: i64,
    name: String,
    kind: &'static str,
    enabled: bool,
    grouping: &'static str,
    webhook: bool,
    paused: Option<u64>,
    catch_all: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/connections.html")]
struct ListPage {
    frame: Frame,
    rows: Vec<Row>,
    kinds: Vec<(&'static str, &'static str)>,
}

#[derive(Deserialize, Default)]
struct Notice {
    done: Option<String>,
}

fn notice_of(n: &Notice) -> Option<String> {
    // Fixed sentences: nothing of the URL is echoed into the page.
    n.done.as_deref().map(|d| {
        match d {
            "deleted" => "The connection was deleted.",
            "created" => "Connected. Now map your clients to the PSA's companies.",
            "mapped" => "The mapping was saved.",
            _ => "Your changes were saved.",
        }
        .to_string()
    })
}

async fn list(State(s): State<AppState>, at: AtPartner, Query(n): Query<Notice>) -> Response {
    let connections = match s.ops.connections(&at.acting(), &at.partner).await {
        Ok(c) => c,
        Err(e) => return ops_error(e),
    };
    let rows = connections
        .iter()
        .map(|c| Row {
            id: c.id,
            name: c.name.clone(),
            kind: PsaKind::parse(c.kind).map_or(c.kind, kind_name),
            enabled: c.enabled,
            grouping: c.grouping,
            webhook: c.webhook.is_some(),
            paused: c.paused_for_secs,
            catch_all: c.catch_all.as_ref().map(|c| c.company.clone()),
        })
        .collect();
    render(&ListPage {
        frame: at
            .frame(&s, "connections", "PSA connections", notice_of(&n))
            .await,
        rows,
        kinds: PsaKind::ALL
            .iter()
            .map(|k| (k.as_str(), kind_name(*k)))
            .collect(),
    })
}

// ---- step 1: credentials -------------------------------------------------------------------

#[derive(Template)]
#[template(path = "portal/connection_form.html")]
struct CredentialsPage {
    frame: Frame,
    kind: &'static str,
    kind_name: &'static str,
    /// `None`: a new connection.
    id: Option<i64>,
    name: String,
    grouping: String,
    close_on_resolve: bool,
    enabled: bool,
    main: Vec<Field>,
    advanced: Vec<Field>,
    name_error: Option<String>,
    general: Vec<String>,
}

#[derive(Deserialize)]
struct KindQuery {
    /// Without one, the list offers the four.
    kind: Option<String>,
}

async fn new_form(
    State(s): State<AppState>,
    at: AtPartner,
    Query(q): Query<KindQuery>,
) -> Response {
    let Some(wanted) = q.kind else {
        return see_other(&format!("/p/{}/connections", url_encode(&at.partner)));
    };
    let Some(kind) = PsaKind::parse(&wanted) else {
        return page_error(crate::problem::Problem::not_found(format!(
            "PSA '{wanted}' (autotask, halopsa, kaseya_bms, connectwise)"
        )));
    };
    let (main, advanced) = fields(kind, &Map::new(), &[], &FieldErrors::default());
    render(&CredentialsPage {
        frame: at
            .frame(
                &s,
                "connections",
                format!("Connect {}", kind_name(kind)),
                None,
            )
            .await,
        kind: kind.as_str(),
        kind_name: kind_name(kind),
        id: None,
        name: kind_name(kind).to_string(),
        grouping: "user".into(),
        close_on_resolve: false,
        enabled: true,
        main,
        advanced,
        name_error: None,
        general: Vec::new(),
    })
}

async fn create(
    State(s): State<AppState>,
    at: AtPartner,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(kind) = form.get("kind").and_then(|k| PsaKind::parse(k)) else {
        return page_error(crate::problem::Problem::not_found("that PSA"));
    };
    let credentials = credentials_of(kind, &form);
    let req = NewConnectionRequest {
        kind: kind.as_str().to_string(),
        name: form.get("name").cloned().unwrap_or_default(),
        grouping: form.get("grouping").cloned(),
        credentials: credentials.clone(),
        settings: Map::new(),
    };
    match s
        .ops
        .create_connection(&at.acting(), &at.partner, req)
        .await
    {
        Ok(c) => see_other(&format!(
            "/p/{}/connections/{}/mapping?done=created",
            url_encode(&at.partner),
            c.connection.id
        )),
        Err(OpsError::Forbidden(m)) => ops_error(OpsError::Forbidden(m)),
        Err(e) => {
            let errors = FieldErrors::of(e);
            let (main, advanced) = fields(kind, &credentials, &[], &errors);
            let mut general = errors.general(&["name"]);
            general.retain(|g| !g.starts_with("credentials."));
            let mut resp = render(&CredentialsPage {
                frame: at
                    .frame(
                        &s,
                        "connections",
                        format!("Connect {}", kind_name(kind)),
                        None,
                    )
                    .await,
                kind: kind.as_str(),
                kind_name: kind_name(kind),
                id: None,
                name: form.get("name").cloned().unwrap_or_default(),
                grouping: form.get("grouping").cloned().unwrap_or_default(),
                close_on_resolve: false,
                enabled: true,
                name_error: errors.get("name").map(str::to_string),
                general: general_with_unshown(&errors, &main, &advanced, general),
                main,
                advanced,
            });
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            resp
        }
    }
}

/// The form's general problems plus any credential problem no input shows.
fn general_with_unshown(
    errors: &FieldErrors,
    main: &[Field],
    advanced: &[Field],
    mut general: Vec<String>,
) -> Vec<String> {
    for (path, problem) in &errors.0 {
        if let Some(key) = path.strip_prefix("credentials.")
            && !main.iter().chain(advanced).any(|f| f.key == key)
        {
            general.push(format!("{path}: {problem}"));
        } else if path == "credentials" {
            general.push(problem.clone());
        }
    }
    general
}

async fn connection(s: &AppState, at: &AtPartner, id: i64) -> Result<ConnectionView, Response> {
    s.ops
        .connection(&at.acting(), &at.partner, id)
        .await
        .map_err(ops_error)
}

/// The connection with its PSA kind.
async fn connection_and_kind(
    s: &AppState,
    at: &AtPartner,
    id: i64,
) -> Result<(ConnectionView, PsaKind), Response> {
    let c = connection(s, at, id).await?;
    match PsaKind::parse(c.kind) {
        Some(kind) => Ok((c, kind)),
        None => Err(page_error(crate::problem::Problem::internal(
            "unknown PSA kind",
        ))),
    }
}

async fn edit_form(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Query(n): Query<Notice>,
) -> Response {
    let (c, kind) = match connection_and_kind(&s, &at, id).await {
        Ok(ck) => ck,
        Err(r) => return r,
    };
    let (main, advanced) = fields(kind, &c.settings, &c.secrets_set, &FieldErrors::default());
    render(&CredentialsPage {
        frame: at
            .frame(
                &s,
                "connections",
                format!("Connection: {}", c.name),
                notice_of(&n),
            )
            .await,
        kind: kind.as_str(),
        kind_name: kind_name(kind),
        id: Some(c.id),
        name: c.name.clone(),
        grouping: c.grouping.to_string(),
        close_on_resolve: c.close_on_resolve,
        enabled: c.enabled,
        main,
        advanced,
        name_error: None,
        general: Vec::new(),
    })
}

async fn update(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (c, kind) = match connection_and_kind(&s, &at, id).await {
        Ok(ck) => ck,
        Err(r) => return r,
    };
    // Only what changed is sent: an untouched form changes nothing and reaches no PSA.
    let typed = credentials_of(kind, &form);
    let (_, secret_names) = psabridge_psa::known_settings(kind);
    let mut changed = Map::new();
    for (k, v) in &typed {
        if secret_names.contains(&k.as_str()) || c.settings.get(k) != Some(v) {
            changed.insert(k.clone(), v.clone());
        }
    }
    let name = form.get("name").cloned().unwrap_or_default();
    let grouping = form.get("grouping").cloned().unwrap_or_default();
    let close_on_resolve = form.contains_key("close_on_resolve");
    let enabled = form.contains_key("enabled");
    let patch = ConnectionPatch {
        name: (name != c.name).then(|| Some(name.clone())),
        grouping: (grouping != c.grouping).then(|| Some(grouping.clone())),
        close_on_resolve: (close_on_resolve != c.close_on_resolve)
            .then_some(Some(close_on_resolve)),
        enabled: (enabled != c.enabled).then_some(Some(enabled)),
        credentials: (!changed.is_empty()).then(|| Some(changed.clone())),
        ..ConnectionPatch::default()
    };
    match s
        .ops
        .update_connection(&at.acting(), &at.partner, id, patch)
        .await
    {
        Ok(_) => see_other(&format!(
            "/p/{}/connections/{id}?done=saved",
            url_encode(&at.partner)
        )),
        Err(OpsError::Forbidden(m)) => ops_error(OpsError::Forbidden(m)),
        Err(e) => {
            let errors = FieldErrors::of(e);
            let mut shown = c.settings.clone();
            shown.extend(typed);
            let (main, advanced) = fields(kind, &shown, &c.secrets_set, &errors);
            let general = errors.general(&["name", "grouping"]);
            let general: Vec<String> = general
                .into_iter()
                .filter(|g| !g.starts_with("credentials."))
                .collect();
            let mut resp = render(&CredentialsPage {
                frame: at
                    .frame(&s, "connections", format!("Connection: {}", c.name), None)
                    .await,
                kind: kind.as_str(),
                kind_name: kind_name(kind),
                id: Some(id),
                name,
                grouping,
                close_on_resolve,
                enabled,
                name_error: errors.get("name").map(str::to_string),
                general: general_with_unshown(&errors, &main, &advanced, general),
                main,
                advanced,
            });
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            resp
        }
    }
}

async fn delete(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let force = form.get("force").is_some_and(|v| v == "true");
    match s
        .ops
        .delete_connection(&at.acting(), &at.partner, id, force)
        .await
    {
        Ok(()) => see_other(&format!(
            "/p/{}/connections?done=deleted",
            url_encode(&at.partner)
        )),
        Err(e) => ops_error(e),
    }
}

// ---- step 2: customer mapping --------------------------------------------------------------

struct ClientRow {
    id: String,
    name: String,
    company: Option<String>,
    contact: Option<String>,
}

struct CompanyRow {
    id: String,
    name: String,
    active: bool,
}

/// Clients per page of the mapping step.
const CLIENTS_PAGE: usize = 50;

#[derive(Template)]
#[template(path = "portal/mapping.html")]
struct MappingPage {
    frame: Frame,
    id: i64,
    connection: String,
    catch_all: Option<(String, Option<String>)>,
    clients: Vec<ClientRow>,
    q: String,
    total: usize,
    prev: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
struct MappingQuery {
    #[serde(default)]
    q: String,
    page: Option<usize>,
    done: Option<String>,
}

/// Step 2: the partner's clients (searched, paged) with their company on this connection, and
/// the catch-all.
async fn mapping_page(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Query(q): Query<MappingQuery>,
) -> Response {
    let acting = at.acting();
    let c = match connection(&s, &at, id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let filter = ClientFilter {
        search: q.q.clone(),
        ..ClientFilter::default()
    };
    let offset = |page: usize| ((page.max(1) - 1) * CLIENTS_PAGE) as i64;
    let requested = q.page.unwrap_or(1).max(1);
    let (mut clients, mut total) = match s
        .ops
        .client_page(
            &acting,
            &at.partner,
            &filter,
            offset(requested),
            CLIENTS_PAGE as i64,
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return ops_error(e),
    };
    let pages = (total as usize).div_ceil(CLIENTS_PAGE).max(1);
    let page = requested.min(pages);
    if page != requested {
        (clients, total) = match s
            .ops
            .client_page(
                &acting,
                &at.partner,
                &filter,
                offset(page),
                CLIENTS_PAGE as i64,
            )
            .await
        {
            Ok(p) => p,
            Err(e) => return ops_error(e),
        };
    }
    let ids: Vec<String> = clients.iter().map(|c| c.id.clone()).collect();
    let mappings = match s.ops.mappings_of(&acting, &at.partner, &ids).await {
        Ok(m) => m,
        Err(e) => return ops_error(e),
    };
    let on_this: HashMap<&str, &psabridge_ops::views::MappingView> = mappings
        .iter()
        .filter(|m| m.connection == id)
        .map(|m| (m.client.as_str(), m))
        .collect();
    let rows = clients
        .iter()
        .map(|cl| {
            let m = on_this.get(cl.id.as_str());
            ClientRow {
                id: cl.id.clone(),
                name: cl.name.clone(),
                company: m.map(|m| m.company.clone()),
                contact: m.and_then(|m| m.default_contact.clone()),
            }
        })
        .collect();
    let total = total as usize;
    let link = |n: usize| {
        format!(
            "/p/{}/connections/{id}/mapping?q={}&page={n}",
            url_encode(&at.partner),
            url_encode(&q.q)
        )
    };
    render(&MappingPage {
        frame: at
            .frame(
                &s,
                "connections",
                format!("Map clients: {}", c.name),
                notice_of(&Notice { done: q.done }),
            )
            .await,
        id,
        connection: c.name.clone(),
        catch_all: c
            .catch_all
            .as_ref()
            .map(|ca| (ca.company.clone(), ca.contact.clone())),
        clients: rows,
        q: q.q.clone(),
        total,
        prev: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
    })
}

#[derive(Template)]
#[template(path = "portal/companies.html")]
struct CompaniesPage {
    frame: Frame,
    id: i64,
    /// `catch-all`, or the client's id.
    target: String,
    /// "Acme Dental Group", or "the catch-all".
    target_name: String,
    for_client: bool,
    search: String,
    companies: Vec<CompanyRow>,
    next: Option<String>,
    psa_error: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct CompaniesQuery {
    /// A client id, or `catch-all`.
    #[serde(rename = "for", default)]
    target: String,
    #[serde(default)]
    search: String,
    cursor: Option<String>,
}

/// The PSA's companies, searched and paged by the PSA itself (a 20,000-company PSA stays
/// usable), each with one button: map the client to it, or make it the catch-all.
async fn companies_view(
    s: &AppState,
    at: &AtPartner,
    id: i64,
    q: CompaniesQuery,
    error: Option<String>,
) -> Response {
    let c = match connection(s, at, id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (target_id, target_name, for_client) = if q.target == "catch-all" {
        ("catch-all".to_string(), "the catch-all".to_string(), false)
    } else {
        match s.ops.client(&at.acting(), &at.partner, &q.target).await {
            Ok(cl) => (cl.id, cl.name, true),
            Err(e) => return ops_error(e),
        }
    };
    let search = q.search.trim().to_string();
    let (companies, next, psa_error) = match connector_of(s, &at.partner, id).await {
        Ok(connector) => match connector
            .companies(
                Some(search.as_str()).filter(|s| !s.is_empty()),
                q.cursor.as_deref(),
            )
            .await
        {
            Ok(page) => (
                page.companies
                    .into_iter()
                    .map(|c| CompanyRow {
                        id: c.id,
                        name: c.name,
                        active: c.active,
                    })
                    .collect(),
                page.next.map(|n| {
                    format!(
                        "/p/{}/connections/{id}/companies?for={}&search={}&cursor={}",
                        url_encode(&at.partner),
                        url_encode(&target_id),
                        url_encode(&search),
                        url_encode(&n)
                    )
                }),
                None,
            ),
            Err(e) => (Vec::new(), None, Some(e.to_string())),
        },
        Err(p) => (Vec::new(), None, p.detail.clone().or(Some(p.title.clone()))),
    };
    render(&CompaniesPage {
        frame: at
            .frame(
                s,
                "connections",
                format!("{}: a company for {target_name}", c.name),
                None,
            )
            .await,
        id,
        target: target_id,
        target_name,
        for_client,
        search,
        companies,
        next,
        psa_error,
        error,
    })
}

async fn companies_page(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Query(q): Query<CompaniesQuery>,
) -> Response {
    companies_view(&s, &at, id, q, None).await
}

#[derive(Deserialize)]
struct MapForm {
    client: String,
    company: String,
    #[serde(default)]
    search: String,
}

/// Map a client to a company, keeping its event set, template and re-fire policy (its contact
/// and contract only while the company stays the same: they belong to the company).
async fn map_client(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Form(form): Form<MapForm>,
) -> Response {
    let acting = at.acting();
    let existing = match s
        .ops
        .mappings_of(&acting, &at.partner, std::slice::from_ref(&form.client))
        .await
    {
        Ok(m) => m.into_iter().find(|m| m.connection == id),
        Err(e) => return ops_error(e),
    };
    let req = mapping_request(existing.as_ref(), form.company.clone(), None);
    match s
        .ops
        .put_mapping(&acting, &at.partner, &form.client, id, req)
        .await
    {
        Ok(_) => see_other(&format!(
            "/p/{}/connections/{id}/mapping?done=mapped",
            url_encode(&at.partner)
        )),
        Err(OpsError::Forbidden(m)) => ops_error(OpsError::Forbidden(m)),
        Err(e) => {
            let q = CompaniesQuery {
                target: form.client.clone(),
                search: form.search.clone(),
                cursor: None,
            };
            let mut resp = companies_view(&s, &at, id, q, Some(joined(FieldErrors::of(e)))).await;
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            resp
        }
    }
}

fn joined(errors: FieldErrors) -> String {
    errors
        .0
        .into_iter()
        .map(|(f, p)| if f.is_empty() { p } else { format!("{f}: {p}") })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) fn mapping_request(
    existing: Option<&psabridge_ops::views::MappingView>,
    company: String,
    contact: Option<Option<String>>,
) -> MappingRequest {
    let same_company = existing.is_some_and(|m| m.company == company);
    MappingRequest {
        default_contact: match contact {
            Some(c) => c,
            None if same_company => existing.and_then(|m| m.default_contact.clone()),
            None => None,
        },
        contract: if same_company {
            existing.and_then(|m| m.contract.clone())
        } else {
            None
        },
        create_tickets: existing.is_none_or(|m| m.create_tickets),
        client_name: None,
        event_set: existing.and_then(|m| m.event_set),
        template: existing.and_then(|m| m.template),
        refire: existing.map(|m| RefireRequest {
            mode: m.refire.mode.to_string(),
            reopen_within_hours: m.refire.reopen_within_hours,
        }),
        company,
    }
}

#[derive(Deserialize)]
struct CatchAllForm {
    company: String,
    #[serde(default)]
    contact: String,
    #[serde(default)]
    search: String,
}

async fn set_catch_all(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Form(form): Form<CatchAllForm>,
) -> Response {
    let patch = ConnectionPatch {
        catch_all: Some(Some(CatchAll {
            company: form.company.trim().to_string(),
            contact: Some(form.contact.trim().to_string()).filter(|c| !c.is_empty()),
        })),
        ..ConnectionPatch::default()
    };
    match s
        .ops
        .update_connection(&at.acting(), &at.partner, id, patch)
        .await
    {
        Ok(_) => see_other(&format!(
            "/p/{}/connections/{id}/mapping?done=saved",
            url_encode(&at.partner)
        )),
        Err(OpsError::Forbidden(m)) => ops_error(OpsError::Forbidden(m)),
        Err(e) => {
            let q = CompaniesQuery {
                target: "catch-all".into(),
                search: form.search.clone(),
                cursor: None,
            };
            let mut resp = companies_view(&s, &at, id, q, Some(joined(FieldErrors::of(e)))).await;
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            resp
        }
    }
}

#[derive(Template)]
#[template(path = "portal/contact.html")]
struct ContactPage {
    frame: Frame,
    id: i64,
    client: String,
    company: String,
    current: Option<String>,
    contacts: Vec<(String, String, bool)>,
    psa_error: Option<String>,
}

async fn contact_page(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id, client)): Path<(String, i64, String)>,
) -> Response {
    let mapping = match s
        .ops
        .mappings_of(&at.acting(), &at.partner, std::slice::from_ref(&client))
        .await
    {
        Ok(m) => m.into_iter().find(|m| m.connection == id),
        Err(e) => return ops_error(e),
    };
    let Some(m) = mapping else {
        return page_error(crate::problem::Problem::not_found(format!(
            "a mapping of client '{client}' on connection {id}"
        )));
    };
    let (contacts, psa_error) = match connector_of(&s, &at.partner, id).await {
        Ok(c) => match c.contacts(&m.company).await {
            Ok(list) => (
                list.into_iter()
                    .map(|c| {
                        let label = match &c.email {
                            Some(e) => format!("{} <{e}>", c.name),
                            None => c.name.clone(),
                        };
                        (c.id, label, c.active)
                    })
                    .collect(),
                None,
            ),
            Err(e) => (Vec::new(), Some(e.to_string())),
        },
        Err(p) => (Vec::new(), p.detail.clone()),
    };
    render(&ContactPage {
        frame: at
            .frame(
                &s,
                "connections",
                format!("Default contact: {client}"),
                None,
            )
            .await,
        id,
        client,
        company: m.company.clone(),
        current: m.default_contact.clone(),
        contacts,
        psa_error,
    })
}

#[derive(Deserialize)]
struct ContactForm {
    #[serde(default)]
    contact: String,
}

async fn set_contact(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id, client)): Path<(String, i64, String)>,
    Form(form): Form<ContactForm>,
) -> Response {
    let acting = at.acting();
    let existing = match s
        .ops
        .mappings_of(&acting, &at.partner, std::slice::from_ref(&client))
        .await
    {
        Ok(m) => m.into_iter().find(|m| m.connection == id),
        Err(e) => return ops_error(e),
    };
    let Some(existing) = existing else {
        return page_error(crate::problem::Problem::not_found(format!(
            "a mapping of client '{client}' on connection {id}"
        )));
    };
    let contact = Some(form.contact.trim().to_string()).filter(|c| !c.is_empty());
    let req = mapping_request(Some(&existing), existing.company.clone(), Some(contact));
    match s
        .ops
        .put_mapping(&acting, &at.partner, &client, id, req)
        .await
    {
        Ok(_) => see_other(&format!(
            "/p/{}/connections/{id}/mapping?done=mapped",
            url_encode(&at.partner)
        )),
        Err(e) => ops_error(e),
    }
}

// ---- step 3: ticket settings ---------------------------------------------------------------

pub(super) struct Choice {
    pub(super) id: String,
    pub(super) label: String,
    pub(super) selected: bool,
}

/// A group of choices: all of a field's values, or those of one parent value.
pub(super) struct ChoiceGroup {
    /// The parent value's label (`None`: a field without a parent).
    pub(super) parent: Option<String>,
    pub(super) choices: Vec<Choice>,
}

/// One ticket field as a select of the PSA's list (dependent values grouped under their
/// parent's), for the connection's ticket settings and for templates.
pub(super) struct DefaultField {
    pub(super) name: &'static str,
    /// The form's name for it (`defaults.queue`, `fields.queue`) and the input's id.
    pub(super) input_name: String,
    pub(super) input_id: String,
    pub(super) label: &'static str,
    pub(super) required: bool,
    pub(super) parent_label: Option<&'static str>,
    pub(super) groups: Vec<ChoiceGroup>,
    /// The stored value when the PSA's list no longer has it.
    pub(super) stale: Option<String>,
    pub(super) error: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/defaults.html")]
struct DefaultsPage {
    frame: Frame,
    id: i64,
    loaded: bool,
    fields: Vec<DefaultField>,
    general: Vec<String>,
}

pub(super) fn default_fields(
    kind: PsaKind,
    prefix: &str,
    lists: Option<&Value>,
    values: &Map<String, Value>,
    errors: &FieldErrors,
) -> Vec<DefaultField> {
    let list_of = |name: &str| -> Vec<psabridge_psa::ListItem> {
        lists
            .and_then(|l| l.get(name))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    };
    let required = kind.required_ticket_fields();
    kind.ticket_fields()
        .iter()
        .map(|f| {
            let current = values.get(f.name).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            let items: Vec<_> = list_of(f.list).into_iter().filter(|i| i.active).collect();
            let parent_items = f.parent.map(|p| {
                let parent_list = kind.ticket_field(p).map_or(p, |pf| pf.list);
                list_of(parent_list)
            });
            let choice = |i: &psabridge_psa::ListItem| Choice {
                selected: current.as_deref() == Some(i.id.as_str()),
                id: i.id.clone(),
                label: i.label.clone(),
            };
            let groups = match &parent_items {
                None => vec![ChoiceGroup {
                    parent: None,
                    choices: items.iter().map(choice).collect(),
                }],
                Some(parents) => parents
                    .iter()
                    .filter_map(|p| {
                        let choices: Vec<Choice> = items
                            .iter()
                            .filter(|i| i.parent.as_deref() == Some(p.id.as_str()))
                            .map(choice)
                            .collect();
                        (!choices.is_empty()).then(|| ChoiceGroup {
                            parent: Some(p.label.clone()),
                            choices,
                        })
                    })
                    .collect(),
            };
            let known = groups.iter().flat_map(|g| &g.choices).any(|c| c.selected);
            DefaultField {
                name: f.name,
                input_name: format!("{prefix}.{}", f.name),
                input_id: format!("{prefix}-{}", f.name),
                label: f.label,
                required: required.contains(&f.name),
                parent_label: f.parent.and_then(|p| kind.ticket_field(p)).map(|p| p.label),
                stale: current.filter(|_| !known),
                error: errors
                    .get(&format!("{prefix}.{}", f.name))
                    .map(str::to_string),
                groups,
            }
        })
        .collect()
}

async fn defaults_page(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Query(n): Query<Notice>,
) -> Response {
    let (c, kind) = match connection_and_kind(&s, &at, id).await {
        Ok(ck) => ck,
        Err(r) => return r,
    };
    let stored = match s.store.connection(&at.partner, id).await {
        Ok(conn) => conn,
        Err(e) => return page_error(e.into()),
    };
    let values = c.defaults.as_object().cloned().unwrap_or_default();
    render(&DefaultsPage {
        frame: at
            .frame(
                &s,
                "connections",
                format!("Ticket settings: {}", c.name),
                notice_of(&n),
            )
            .await,
        id,
        loaded: stored.lists.is_some(),
        fields: default_fields(
            kind,
            "defaults",
            stored.lists.as_ref(),
            &values,
            &FieldErrors::default(),
        ),
        general: Vec::new(),
    })
}

async fn save_defaults(
    State(s): State<AppState>,
    at: AtPartner,
    Path((_, id)): Path<(String, i64)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (c, kind) = match connection_and_kind(&s, &at, id).await {
        Ok(ck) => ck,
        Err(r) => return r,
    };
    // A merge patch: a chosen value sets the field, "none" (empty) removes it.
    let current = c.defaults.as_object().cloned().unwrap_or_default();
    let mut patch = Map::new();
    for f in kind.ticket_fields() {
        let wanted = form
            .get(&format!("defaults.{}", f.name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        let now = current.get(f.name).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        match (wanted.is_empty(), now) {
            (true, Some(_)) => {
                patch.insert(f.name.to_string(), Value::Null);
            }
            (false, n) if n.as_deref() != Some(wanted.as_str()) => {
                patch.insert(f.name.to_string(), Value::String(wanted));
            }
            _ => {}
        }
    }
    if patch.is_empty() {
        return see_other(&format!(
            "/p/{}/connections/{id}/defaults?done=saved",
            url_encode(&at.partner)
        ));
    }
    let update = ConnectionPatch {
        defaults: Some(Some(patch)),
        ..ConnectionPatch::default()
    };
    match s
        .ops
        .update_connection(&at.acting(), &at.partner, id, update)
        .await
    {
        Ok(_) => see_other(&format!(
            "/p/{}/connections/{id}/defaults?done=saved",
            url_encode(&at.partner)
        )),
        Err(OpsError::Forbidden(m)) => ops_error(OpsError::Forbidden(m)),
        Err(e) => {
            let errors = FieldErrors::of(e);
            let stored = s.store.connection(&at.partner, id).await.ok();
            let mut values = current.clone();
            for f in kind.ticket_fields() {
                if let Some(v) = form.get(&format!("defaults.{}", f.name)) {
                    values.insert(f.name.to_string(), Value::String(v.clone()));
                }
            }
            let fields = default_fields(
                kind,
                "defaults",
                stored.as_ref().and_then(|c| c.lists.as_ref()),
                &values,
                &errors,
            );
            let general = errors
                .0
                .iter()
                .filter(|(p, _)| !fields.iter().any(|f| *p == format!("defaults.{}", f.name)))
                .map(|(p, m)| {
                    if p.is_empty() {
                        m.clone()
                    } else {
                        format!("{p}: {m}")
                    }
                })
                .collect();
            let mut resp = render(&DefaultsPage {
                frame: at
                    .frame(
                        &s,
                        "connections",
                        format!("Ticket settings: {}", c.name),
                        None,
                    )
                    .await,
                id,
                loaded: stored.is_some_and(|c| c.lists.is_some()),
                fields,
                general,
            });
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_secret_follows_the_credential_it_goes_with() {
        let order = |kind| {
            let (main, _) = fields(kind, &Map::new(), &[], &FieldErrors::default());
            main.into_iter().map(|f| f.key).collect::<Vec<_>>()
        };
        for kind in PsaKind::ALL {
            let keys = order(kind);
            let (_, secrets) = psabridge_psa::known_settings(kind);
            for secret in secrets {
                let at = keys
                    .iter()
                    .position(|k| k == secret)
                    .expect("every secret is shown");
                if let Some(after) = secret_follows(kind, secret) {
                    assert_eq!(keys[at - 1], after, "{kind:?}: {keys:?}");
                }
            }
        }
        assert_eq!(
            order(PsaKind::Autotask)[..3],
            ["username", "secret", "integration_code"]
        );
    }
}
