//! The partner-scoped configuration API: partners, tokens, clients, PSA connections, event
//! rules, client → company mappings, and the delivery log.
//!
//! Every body is checked field by field; an error names the field's path and what is wrong
//! with it (`defaults.queue: "99" is not a queue of this PSA (known: 5 "Client Portal", …)`).
//! Values that name something in the PSA are checked against the PSA's own lists, loaded on
//! "Connect", or against the PSA itself (companies, contacts). Secrets are write-only.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json};
use psabridge_core::catalog::Catalog;
use psabridge_core::event::FieldError;
use psabridge_core::merge_patch::merge_patch;
use psabridge_core::secret::Secret;
use psabridge_core::settings::{
    CompanyContact, EventRule, GroupingMode, PsaKind, Refire, TicketDefaults,
};
use psabridge_engine::connect::{ConnectError, adopt, check_unsaved, connect};
use psabridge_engine::connectors::BuildError;
use psabridge_identity::Role;
use psabridge_identity::scopes::{Scope, parse_requested, parse_stored, to_stored};
use psabridge_psa::PsaError;
use psabridge_store::config::{
    Connection, MappingRow, NewConnection, NewToken as NewTokenRow, TokenRow, defaults_to_json,
};
use psabridge_store::outbox::DeliveryFilter;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::accounts::SessionUser;
use crate::auth::{Caller, TokenGrant, new_token, token_hash};
use crate::problem::{Problem, parse_json};
use crate::views::{self, opt_time, time};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/partners", post(create_partner).get(list_partners))
        .route(
            "/api/v1/partners/{p}",
            get(get_partner).patch(patch_partner),
        )
        .route(
            "/api/v1/tokens",
            post(create_vendor_token).get(list_vendor_tokens),
        )
        .route(
            "/api/v1/partners/{p}/tokens",
            post(create_partner_token).get(list_partner_tokens),
        )
        .route(
            "/api/v1/partners/{p}/tokens/{id}",
            axum::routing::delete(revoke_token),
        )
        .route("/api/v1/partners/{p}/clients", get(list_clients))
        .route(
            "/api/v1/partners/{p}/clients/{client}",
            get(get_client).put(put_client),
        )
        .route(
            "/api/v1/partners/{p}/clients/{client}/mappings/{connection}",
            put(put_mapping).delete(delete_mapping),
        )
        .route("/api/v1/partners/{p}/mappings", get(list_mappings))
        .route(
            "/api/v1/partners/{p}/connections",
            post(create_connection).get(list_connections),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}",
            get(get_connection)
                .patch(patch_connection)
                .delete(delete_connection),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/connect",
            post(reconnect),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/lists",
            get(connection_lists),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/companies",
            get(connection_companies),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/companies/{company}/contacts",
            get(company_contacts),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/companies/{company}/contracts",
            get(company_contracts),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/groups",
            get(connection_groups),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/rules",
            get(list_rules),
        )
        .route(
            "/api/v1/partners/{p}/connections/{id}/rules/{event_type}",
            put(put_rule).delete(delete_rule),
        )
        .route("/api/v1/partners/{p}/deliveries", get(list_deliveries))
        .route("/api/v1/partners/{p}/audit", get(list_audit))
        .route(
            "/api/v1/partners/{p}/clients/{client}/test-notification",
            post(crate::test_notification::send),
        )
        .route(
            "/api/v1/partners/{p}/deliveries/retry",
            post(retry_deliveries),
        )
        .route(
            "/api/v1/partners/{p}/deliveries/{id}/retry",
            post(retry_delivery),
        )
}

/// Longest name of a client (a vendor's customer), in characters.
const MAX_CLIENT_NAME: usize = 200;

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A merge patch (RFC 7396) removes a field it sets to `null`; these fields cannot be
/// removed, so `null` for any of them is a 422 naming each (leaving a field out keeps it).
pub(crate) fn refuse_removal(bytes: &Bytes, fields: &[&str]) -> Result<(), Problem> {
    let Value::Object(m) = parse_json(bytes)? else {
        return Ok(());
    };
    let errors: Vec<FieldError> = fields
        .iter()
        .filter(|f| m.get(**f).is_some_and(Value::is_null))
        .map(|f| FieldError::new(*f, "cannot be removed (null); leave it out to keep it"))
        .collect();
    match errors.is_empty() {
        true => Ok(()),
        false => Err(Problem::invalid(errors)),
    }
}

/// Parse a JSON body into `T`, naming the field of the first problem by its path.
pub(crate) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Problem> {
    let value = parse_json(bytes)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "(body)".to_string()
        } else {
            path
        };
        Problem::invalid(vec![FieldError::new(path, e.inner().to_string())])
    })
}

pub(crate) fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

pub(crate) fn valid_id(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
}

// ---- partners and tokens ------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPartner {
    id: String,
    name: String,
}

fn partner_view(p: &psabridge_store::config::Partner) -> Value {
    json!({"id": p.id, "name": p.name, "default_connection": p.default_connection_id, "created_at": time(p.created_at)})
}

/// Record a change in the audit log. The views passed in are the API's own, which hold no
/// secrets (only the names of the secrets that are set). A failure to record is logged; the
/// change itself has already been made.
pub(crate) async fn audit(
    s: &AppState,
    caller: &Caller,
    partner: Option<&str>,
    action: &str,
    target: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) {
    let entry = psabridge_store::audit::NewAuditEntry {
        partner_id: partner,
        actor: &caller.1.0,
        action,
        target,
        before,
        after,
    };
    if let Err(e) = s.store.record_audit(&entry, now()).await {
        tracing::error!(action, target, error = %e, "recording a change in the audit log failed");
    }
}

async fn create_partner(
    State(s): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<Response, Problem> {
    caller.require_vendor()?;
    let p: NewPartner = body(&bytes)?;
    let mut errors = Vec::new();
    if !valid_id(&p.id) {
        errors.push(FieldError::new(
            "id",
            "must be 1 to 100 characters of letters, digits, '.', '_', ':' or '-'",
        ));
    }
    if p.name.trim().is_empty() || p.name.len() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let partner = s.store.create_partner(&p.id, p.name.trim(), now()).await?;
    let view = partner_view(&partner);
    audit(
        &s,
        &caller,
        Some(&partner.id),
        "partner.create",
        &format!("partner:{}", partner.id),
        None,
        Some(&view),
    )
    .await;
    Ok(created(view))
}

async fn list_partners(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, Problem> {
    let all = s.store.partners().await?;
    let visible: Vec<Value> = all
        .iter()
        .filter(|p| caller.require_partner(&p.id).is_ok())
        .map(partner_view)
        .collect();
    Ok(Json(json!({"partners": visible})))
}

async fn get_partner(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    Ok(Json(partner_view(&s.store.partner(&p).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerPatch {
    /// Absent: kept; `null`: no default connection; an id: that connection.
    #[serde(default, deserialize_with = "present")]
    default_connection: Option<Option<i64>>,
}

async fn patch_partner(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let patch: PartnerPatch = body(&bytes)?;
    let before = partner_view(&s.store.partner(&p).await?);
    let Some(default_connection) = patch.default_connection else {
        // A merge patch that names nothing changes nothing.
        return Ok(Json(before));
    };
    s.store
        .set_default_connection(&p, default_connection)
        .await
        .map_err(|e| match e {
            psabridge_store::StoreError::NotFound(what) if what.starts_with("connection") => {
                Problem::invalid(vec![FieldError::new(
                    "default_connection",
                    format!("{what} is not a connection of this partner"),
                )])
            }
            e => e.into(),
        })?;
    let after = partner_view(&s.store.partner(&p).await?);
    audit(
        &s,
        &caller,
        Some(&p),
        "partner.update",
        &format!("partner:{p}"),
        Some(&before),
        Some(&after),
    )
    .await;
    Ok(Json(after))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    /// Omitted: every scope the creator may grant (what tokens could do before scopes).
    scopes: Option<Vec<String>>,
    expires_in_days: Option<i64>,
    expires_at: Option<String>,
}

/// The longest a token may be made to last by `expires_in_days` (10 years).
const MAX_TOKEN_DAYS: i64 = 3650;

/// What the creator of a token may put in it: a token passes on at most its own scopes; a
/// person at most what their role at the partner allows; a caller who is neither (no route
/// lets one through the permission middleware) nothing. Returns the scopes and the person who
/// is creating it, if a person.
fn grantable_scopes(
    caller_grant: Option<&TokenGrant>,
    person: Option<&SessionUser>,
    partner: Option<&str>,
) -> (Vec<Scope>, Option<i64>) {
    if let Some(grant) = caller_grant {
        return (grant.scopes.clone(), None);
    }
    if let Some(person) = person {
        let role = person
            .memberships
            .iter()
            .find(|m| Some(m.partner_id.as_str()) == partner)
            .and_then(|m| Role::parse(&m.role));
        let scopes = Scope::ALL
            .into_iter()
            .filter(|s| role.is_some_and(|r| s.within_role(r)))
            .collect();
        return (scopes, Some(person.user.id));
    }
    (Vec::new(), None)
}

fn token_view(t: &TokenRow, now: i64) -> Value {
    let status = if t.revoked_at.is_some() {
        "revoked"
    } else if t.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": t.id,
        "name": t.name,
        "partner": t.partner_id,
        "scopes": parse_stored(&t.scopes).iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "created_at": time(t.created_at),
        "created_by": t.created_by_user.map(|id| json!({"user": id, "email": t.created_by_email})),
        "expires_at": opt_time(t.expires_at),
        "last_used_at": opt_time(t.last_used_at),
        "revoked_at": opt_time(t.revoked_at),
        "status": status,
    })
}

async fn issue_token(
    s: &AppState,
    caller: &Caller,
    who: (Option<&TokenGrant>, Option<&SessionUser>),
    partner: Option<&str>,
    bytes: &Bytes,
) -> Result<Response, Problem> {
    let t: NewToken = body(bytes)?;
    let now = s.accounts.clock.now_ms();
    let mut errors = Vec::new();
    if t.name.trim().is_empty() || t.name.len() > 100 {
        errors.push(FieldError::new("name", "must be 1 to 100 characters"));
    }
    let (grantable, created_by_user) = grantable_scopes(who.0, who.1, partner);
    let scopes = match &t.scopes {
        None => grantable.clone(),
        Some(asked) => match parse_requested(asked, &grantable) {
            Ok(scopes) => scopes,
            Err(bad) => {
                for (i, problem) in bad {
                    errors.push(FieldError::new(format!("scopes[{i}]"), problem));
                }
                Vec::new()
            }
        },
    };
    if t.scopes.is_none() && scopes.is_empty() {
        errors.push(FieldError::new("scopes", "the creator may grant no scope"));
    }
    let expires_at = match (t.expires_in_days, &t.expires_at) {
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "expires_at",
                "give expires_in_days or expires_at, not both",
            ));
            None
        }
        (Some(days), None) if !(1..=MAX_TOKEN_DAYS).contains(&days) => {
            errors.push(FieldError::new(
                "expires_in_days",
                format!("must be 1 to {MAX_TOKEN_DAYS}"),
            ));
            None
        }
        (Some(days), None) => Some(now + days * 24 * 3600 * 1000),
        (None, Some(at)) => match chrono::DateTime::parse_from_rfc3339(at) {
            Ok(at) if at.timestamp_millis() > now => Some(at.timestamp_millis()),
            Ok(_) => {
                errors.push(FieldError::new("expires_at", "must be in the future"));
                None
            }
            Err(_) => {
                errors.push(FieldError::new(
                    "expires_at",
                    "must be an RFC 3339 time (2030-01-31T00:00:00Z)",
                ));
                None
            }
        },
        (None, None) => None,
    };
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let token = new_token();
    let stored_scopes = to_stored(&scopes);
    let id = s
        .store
        .create_scoped_token(
            &NewTokenRow {
                token_hash: &token_hash(&token),
                partner,
                name: t.name.trim(),
                scopes: &stored_scopes,
                expires_at,
                created_by_user,
            },
            now,
        )
        .await?;
    let row = s
        .store
        .tokens(partner)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| Problem::internal(format!("token {id} vanished")))?;
    let view = token_view(&row, now);
    audit(
        s,
        caller,
        partner,
        "token.create",
        &format!("token:{id}"),
        None,
        Some(&view),
    )
    .await;
    let mut shown = view;
    shown["token"] = json!(token);
    shown["note"] = json!(if t.scopes.is_none() {
        "the token is shown once; store it now. No scopes were asked for, so it holds every \
         scope its creator may grant"
    } else {
        "the token is shown once; store it now"
    });
    Ok(created(shown))
}

async fn list_vendor_tokens(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, Problem> {
    caller.require_vendor()?;
    let now = s.accounts.clock.now_ms();
    let tokens: Vec<Value> = s
        .store
        .tokens(None)
        .await?
        .iter()
        .map(|t| token_view(t, now))
        .collect();
    Ok(Json(json!({"tokens": tokens})))
}

async fn list_partner_tokens(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let now = s.accounts.clock.now_ms();
    let tokens: Vec<Value> = s
        .store
        .tokens(Some(&p))
        .await?
        .iter()
        .map(|t| token_view(t, now))
        .collect();
    Ok(Json(json!({"tokens": tokens})))
}

async fn create_vendor_token(
    State(s): State<AppState>,
    caller: Caller,
    grant: Option<Extension<TokenGrant>>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    caller.require_vendor()?;
    issue_token(&s, &caller, (grant.as_deref(), None), None, &bytes).await
}

async fn create_partner_token(
    State(s): State<AppState>,
    caller: Caller,
    grant: Option<Extension<TokenGrant>>,
    person: Option<Extension<SessionUser>>,
    Path(p): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    issue_token(
        &s,
        &caller,
        (grant.as_deref(), person.as_deref()),
        Some(&p),
        &bytes,
    )
    .await
}

async fn revoke_token(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
) -> Result<StatusCode, Problem> {
    caller.require_partner(&p)?;
    s.store
        .revoke_token(id, Some(&p), s.accounts.clock.now_ms())
        .await?;
    s.tokens.clear();
    audit(
        &s,
        &caller,
        Some(&p),
        "token.revoke",
        &format!("token:{id}"),
        None,
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- clients and mappings -------------------------------------------------------------------

fn client_view(c: &psabridge_store::config::Client) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "created_at": time(c.created_at),
        "status": if c.mapped_on.is_empty() { "not_configured" } else { "configured" },
        "mapped_on": c.mapped_on,
    })
}

async fn list_clients(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let clients = s.store.clients(&p).await?;
    Ok(Json(
        json!({"clients": clients.iter().map(client_view).collect::<Vec<_>>()}),
    ))
}

async fn get_client(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, c)): Path<(String, String)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    Ok(Json(client_view(&s.store.client(&p, &c).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientBody {
    name: String,
}

async fn put_client(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, c)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let b: ClientBody = body(&bytes)?;
    if !valid_id(&c) {
        return Err(Problem::invalid(vec![FieldError::new(
            "client",
            "ids are 1 to 100 letters, digits, '.', '_', ':' or '-'",
        )]));
    }
    if b.name.trim().is_empty() || b.name.trim().chars().count() > MAX_CLIENT_NAME {
        return Err(Problem::invalid(vec![FieldError::new(
            "name",
            format!("must be 1 to {MAX_CLIENT_NAME} characters"),
        )]));
    }
    let before = s.store.client(&p, &c).await.ok().map(|c| client_view(&c));
    s.store.put_client(&p, &c, b.name.trim(), now()).await?;
    let after = client_view(&s.store.client(&p, &c).await?);
    audit(
        &s,
        &caller,
        Some(&p),
        "client.put",
        &format!("client:{c}"),
        before.as_ref(),
        Some(&after),
    )
    .await;
    Ok(Json(after))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingBody {
    company: String,
    #[serde(default)]
    default_contact: Option<String>,
    #[serde(default = "yes")]
    create_tickets: bool,
    #[serde(default)]
    client_name: Option<String>,
    /// The mapping's own event set and template (else the connection's default rule's).
    #[serde(default)]
    event_set: Option<i64>,
    #[serde(default)]
    template: Option<i64>,
    /// The PSA contract every ticket of this client carries.
    #[serde(default)]
    contract: Option<String>,
    #[serde(default)]
    refire: Option<RefireBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefireBody {
    mode: String,
    #[serde(default)]
    reopen_within_hours: Option<i64>,
}

/// The re-fire policy of a mapping body; the default is a new ticket (seed 001).
fn refire_of(b: Option<&RefireBody>) -> Result<Refire, Problem> {
    let Some(b) = b else {
        return Ok(Refire::NewTicket);
    };
    let hours = b.reopen_within_hours;
    match (b.mode.as_str(), hours) {
        ("reopen", None) => Err(Problem::invalid(vec![FieldError::new(
            "refire.reopen_within_hours",
            "is required when mode is \"reopen\" (1 to 720)",
        )])),
        ("reopen", Some(h)) if !(1..=720).contains(&h) => {
            Err(Problem::invalid(vec![FieldError::new(
                "refire.reopen_within_hours",
                format!("{h} is outside 1 to 720 hours"),
            )]))
        }
        ("new_ticket" | "note_only", Some(_)) => Err(Problem::invalid(vec![FieldError::new(
            "refire.reopen_within_hours",
            "applies only when mode is \"reopen\"",
        )])),
        (mode, h) => Refire::from_parts(mode, h.map(|h| h * 3600)).ok_or_else(|| {
            Problem::invalid(vec![FieldError::new(
                "refire.mode",
                format!("'{mode}' is not a re-fire mode (new_ticket, reopen, note_only)"),
            )])
        }),
    }
}

fn yes() -> bool {
    true
}

pub(crate) fn psa_problem(e: PsaError) -> Problem {
    match &e {
        PsaError::Auth(_) | PsaError::Invalid(_) | PsaError::NotFound(_) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "The PSA refused").detail(e.to_string())
        }
        _ => Problem::new(StatusCode::BAD_GATEWAY, "The PSA is unavailable").detail(e.to_string()),
    }
}

/// Check that `contract` is an active contract of `company` in the PSA.
async fn check_contract(
    s: &AppState,
    conn: &Connection,
    company: &str,
    contract: &str,
) -> Result<(), Problem> {
    let connector = s.engine.connectors.get(&s.store, conn).await.map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The connection is misconfigured",
        )
        .detail(e.to_string())
    })?;
    let contracts = connector.contracts(company).await.map_err(psa_problem)?;
    match contracts.iter().find(|c| c.id == contract) {
        Some(c) if c.active => Ok(()),
        Some(c) => Err(Problem::invalid(vec![FieldError::new(
            "contract",
            format!(
                "'{contract}' (\"{}\") is not an active contract of company '{company}'",
                c.name
            ),
        )])),
        None => {
            let known: Vec<String> = contracts
                .iter()
                .filter(|c| c.active)
                .map(|c| format!("{} \"{}\"", c.id, c.name))
                .collect();
            Err(Problem::invalid(vec![FieldError::new(
                "contract",
                format!(
                    "'{contract}' is not a contract of company '{company}' (active: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )]))
        }
    }
}

/// Check that `company` exists in the PSA and, if given, that `contact` is one of its contacts.
/// Who stands in for a missing contact of a company: for a mapping, the company's primary
/// contact as the PSA names it; for the catch-all, nobody.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WithoutContact {
    CompanyPrimary,
    Nobody,
}

async fn check_company_contact(
    s: &AppState,
    conn: &Connection,
    company: &str,
    contact: Option<&str>,
    path: &str,
    without: WithoutContact,
) -> Result<(), Problem> {
    let connector = s.engine.connectors.get(&s.store, conn).await.map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The connection is misconfigured",
        )
        .detail(e.to_string())
    })?;
    let contacts = match connector.contacts(company).await {
        Ok(c) => c,
        Err(PsaError::Invalid(m)) | Err(PsaError::NotFound(m)) => {
            return Err(Problem::invalid(vec![FieldError::new(
                format!("{path}company"),
                format!("'{company}' is not a company of this PSA ({m})"),
            )]));
        }
        Err(e) => return Err(psa_problem(e)),
    };
    // A company with no contacts is indistinguishable from a missing one by contacts alone:
    // look it up among the companies then.
    if contacts.is_empty() {
        let mut cursor = None;
        let mut found = false;
        for _ in 0..50 {
            let page = connector
                .companies(None, cursor.as_deref())
                .await
                .map_err(psa_problem)?;
            found = page.companies.iter().any(|c| c.id == company);
            if found || page.next.is_none() {
                break;
            }
            cursor = page.next;
        }
        if !found {
            return Err(Problem::invalid(vec![FieldError::new(
                format!("{path}company"),
                format!("'{company}' is not an active company of this PSA"),
            )]));
        }
    }
    if let Some(contact) = contact
        && !contacts.iter().any(|c| c.id == contact)
    {
        return Err(Problem::invalid(vec![FieldError::new(
            format!("{path}contact"),
            format!("'{contact}' is not an active contact of company '{company}'"),
        )]));
    }
    // A PSA that refuses tickets without a contact needs one named here, unless the PSA
    // names the company's primary contact (what a mapping without a default falls back to).
    if contact.is_none() && connector.tickets_need_contact() {
        let primary = match without {
            WithoutContact::CompanyPrimary => connector
                .primary_contact(company)
                .await
                .map_err(psa_problem)?,
            WithoutContact::Nobody => None,
        };
        if primary.is_none() {
            return Err(Problem::invalid(vec![FieldError::new(
                format!("{path}contact"),
                format!(
                    "required: this PSA refuses tickets without a contact, and names no primary contact of company '{company}' to fall back to"
                ),
            )]));
        }
    }
    Ok(())
}

async fn put_mapping(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, client, conn_id)): Path<(String, String, i64)>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let b: MappingBody = body(&bytes)?;
    if !valid_id(&client) {
        return Err(Problem::invalid(vec![FieldError::new(
            "client",
            "ids are 1 to 100 letters, digits, '.', '_', ':' or '-'",
        )]));
    }
    let conn = s.store.connection(&p, conn_id).await?;
    let refire = refire_of(b.refire.as_ref())?;
    crate::profiles::check_profile(
        &s,
        &p,
        conn_id,
        b.event_set,
        b.template,
        ("event_set", "template"),
    )
    .await?;
    let contract = b
        .contract
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if let Some(c) = contract
        && !valid_id(c)
    {
        return Err(Problem::invalid(vec![FieldError::new(
            "contract",
            "must be the PSA's id of a contract",
        )]));
    }
    let company_ok = check_company_contact(
        &s,
        &conn,
        &b.company,
        b.default_contact.as_deref(),
        "",
        WithoutContact::CompanyPrimary,
    )
    .await;
    company_ok.map_err(|mut e| {
        for f in &mut e.errors {
            if f.path == "contact" {
                f.path = "default_contact".into();
            }
        }
        e
    })?;
    if let Some(c) = contract {
        check_contract(&s, &conn, &b.company, c).await?;
    }
    let before = s
        .store
        .mappings(&p)
        .await?
        .into_iter()
        .find(|m| m.client_id == client && m.connection_id == conn_id)
        .map(|m| mapping_view(&m));
    let row = MappingRow {
        connection_id: conn_id,
        client_id: client.clone(),
        company_id: b.company,
        default_contact_id: b.default_contact,
        create_tickets: b.create_tickets,
        mapped_at: now(),
        event_set_id: b.event_set,
        template_id: b.template,
        contract_id: contract.map(str::to_string),
        refire,
    };
    s.store
        .put_mapping(&p, &row, b.client_name.as_deref())
        .await?;
    if let Some(name) = b.client_name.as_deref().filter(|n| !n.trim().is_empty()) {
        s.store.put_client(&p, &client, name.trim(), now()).await?;
    }
    let m = s
        .store
        .mappings(&p)
        .await?
        .into_iter()
        .find(|m| m.client_id == client && m.connection_id == conn_id)
        .ok_or_else(|| Problem::internal("the mapping vanished"))?;
    let after = mapping_view(&m);
    audit(
        &s,
        &caller,
        Some(&p),
        "mapping.put",
        &format!("mapping:{client}:{conn_id}"),
        before.as_ref(),
        Some(&after),
    )
    .await;
    Ok(Json(after))
}

pub(crate) fn mapping_view(m: &MappingRow) -> Value {
    json!({"client": m.client_id, "connection": m.connection_id, "company": m.company_id,
           "default_contact": m.default_contact_id, "create_tickets": m.create_tickets,
           "event_set": m.event_set_id, "template": m.template_id, "contract": m.contract_id,
           "refire": {"mode": m.refire.mode(), "reopen_within_hours": m.refire.within_secs().map(|s| s / 3600),
                      "behaviour": m.refire.behaviour()},
           "mapped_at": time(m.mapped_at)})
}

async fn delete_mapping(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, client, conn)): Path<(String, String, i64)>,
) -> Result<StatusCode, Problem> {
    caller.require_partner(&p)?;
    let before = s
        .store
        .mappings(&p)
        .await?
        .into_iter()
        .find(|m| m.client_id == client && m.connection_id == conn)
        .map(|m| mapping_view(&m));
    s.store.delete_mapping(&p, conn, &client).await?;
    audit(
        &s,
        &caller,
        Some(&p),
        "mapping.delete",
        &format!("mapping:{client}:{conn}"),
        before.as_ref(),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_mappings(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let m = s.store.mappings(&p).await?;
    Ok(Json(
        json!({"mappings": m.iter().map(mapping_view).collect::<Vec<_>>()}),
    ))
}

// ---- connections ----------------------------------------------------------------------------

/// Settings a connection of each kind may carry, and its secret fields.
fn known_settings(
    kind: PsaKind,
) -> (
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
) {
    psabridge_psa::known_settings(kind)
}

fn connection_view(s: &AppState, c: &Connection) -> Value {
    json!({
        "id": c.id,
        "kind": c.kind.as_str(),
        "name": c.name,
        "enabled": c.enabled,
        "grouping": c.grouping.as_str(),
        "settings": c.settings,
        "secrets_set": c.secret_fields,
        "catch_all": c.catch_all.as_ref().map(|ca| json!({"company": ca.company_id, "contact": ca.contact_id})),
        "defaults": defaults_to_json(&c.defaults),
        "lists_loaded_at": opt_time(c.lists_loaded_at),
        "webhook": c.webhook_id.as_ref().map(|id| json!({"id": id})),
        "close_on_resolve": c.close_on_resolve,
        "paused_for_secs": s.engine.breakers.paused_for(c.id).map(|d| d.as_secs()),
        "created_at": time(c.created_at),
        "updated_at": time(c.updated_at),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewConnectionBody {
    kind: String,
    name: String,
    #[serde(default)]
    grouping: Option<String>,
    credentials: Map<String, Value>,
    #[serde(default)]
    settings: Map<String, Value>,
}

/// Non-secret settings and sealed-to-be secrets of a connection.
type SplitCredentials = (Map<String, Value>, BTreeMap<String, Secret>);

/// Split credentials into non-secret settings and secrets, checking names and presence.
fn split_credentials(
    kind: PsaKind,
    credentials: &Map<String, Value>,
    settings: &Map<String, Value>,
    require_all: bool,
) -> Result<SplitCredentials, Problem> {
    let (known, secret_names) = known_settings(kind);
    let mut errors = Vec::new();
    let mut plain = Map::new();
    let mut secrets = BTreeMap::new();
    for (k, v) in credentials {
        if secret_names.contains(&k.as_str()) {
            match v.as_str().map(str::trim) {
                Some(t) if !t.is_empty() => {
                    secrets.insert(k.clone(), Secret::new(t));
                }
                _ => errors.push(FieldError::new(
                    format!("credentials.{k}"),
                    "must be a non-empty string",
                )),
            }
        } else if known.iter().any(|(n, _)| n == k) {
            plain.insert(k.clone(), v.clone());
        } else {
            errors.push(FieldError::new(
                format!("credentials.{k}"),
                "is not a credential of this PSA",
            ));
        }
    }
    for (k, v) in settings {
        if known.iter().any(|(n, _)| n == k) && !secret_names.contains(&k.as_str()) {
            plain.insert(k.clone(), v.clone());
        } else {
            errors.push(FieldError::new(
                format!("settings.{k}"),
                format!(
                    "is not a setting of this PSA (known: {})",
                    known.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    if let Some(url) = plain.get("zone_discovery_url") {
        match url.as_str() {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {}
            _ => errors.push(FieldError::new(
                "credentials.zone_discovery_url",
                "must be an http(s) URL",
            )),
        }
    }
    if require_all {
        for name in psabridge_psa::required_settings(kind) {
            let given = matches!(plain.get(*name), Some(Value::String(v)) if !v.trim().is_empty())
                || matches!(plain.get(*name), Some(Value::Number(_)));
            if !given && !errors.iter().any(|e| e.path.ends_with(&format!(".{name}"))) {
                errors.push(FieldError::new(
                    format!("credentials.{name}"),
                    "is required",
                ));
            }
        }
        for name in secret_names {
            if !secrets.contains_key(*name)
                && !errors
                    .iter()
                    .any(|e| e.path == format!("credentials.{name}"))
            {
                errors.push(FieldError::new(
                    format!("credentials.{name}"),
                    "is required",
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok((plain, secrets))
    } else {
        Err(Problem::invalid(errors))
    }
}

/// A change of where the PSA is (any URL, host or region) must bring every secret again: the
/// stored ones are never sent to a place they were not given for. Says whether it moved.
fn require_secrets_when_moved(
    kind: PsaKind,
    stored: &Map<String, Value>,
    changes: &Map<String, Value>,
    secrets: &BTreeMap<String, Secret>,
) -> Result<bool, Problem> {
    let Some(moved) = changes
        .iter()
        .find(|(k, v)| psabridge_psa::is_location_setting(k) && stored.get(*k) != Some(*v))
        .map(|(k, _)| k)
    else {
        return Ok(false);
    };
    let (_, secret_names) = known_settings(kind);
    let missing: Vec<FieldError> = secret_names
        .iter()
        .filter(|n| !secrets.contains_key(**n))
        .map(|n| {
            FieldError::new(
                format!("credentials.{n}"),
                format!("is required when {moved} changes"),
            )
        })
        .collect();
    match missing.is_empty() {
        true => Ok(true),
        false => Err(Problem::invalid(missing)),
    }
}

/// A failed "Connect" as a 422 naming the credential most likely at fault.
fn connect_problem(e: ConnectError) -> Problem {
    let msg = e.to_string();
    let lower = msg.to_lowercase();
    let field = if lower.contains("integration code") {
        "credentials.integration_code"
    } else if lower.contains("user name or secret") || lower.contains("secret") {
        "credentials.secret"
    } else if lower.contains("knows no api user") || lower.contains("user name") {
        "credentials.username"
    } else if lower.contains("could not be reached") || lower.contains("zone discovery") {
        "credentials.zone_discovery_url"
    } else {
        "credentials"
    };
    match e {
        ConnectError::Psa(PsaError::Transient { .. })
        | ConnectError::Psa(PsaError::RateLimited { .. }) => {
            Problem::new(StatusCode::BAD_GATEWAY, "The PSA did not answer").detail(msg)
        }
        ConnectError::Store(e) => e.into(),
        ConnectError::Refused { field, problem } => Problem::invalid(vec![FieldError::new(
            format!("credentials.{field}"),
            problem,
        )]),
        ConnectError::Settings(
            psabridge_psa::SettingsError::Missing(f)
            | psabridge_psa::SettingsError::Bad { field: f, .. },
        ) => Problem::invalid(vec![FieldError::new(format!("credentials.{f}"), msg)]),
        _ => {
            let mut p = Problem::invalid(vec![FieldError::new(field, msg.clone())]);
            p.title = "Connecting to the PSA failed".into();
            p.detail = Some(msg);
            p
        }
    }
}

async fn create_connection(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let b: NewConnectionBody = body(&bytes)?;
    let kind = PsaKind::parse(&b.kind).ok_or_else(|| {
        Problem::invalid(vec![FieldError::new(
            "kind",
            format!(
                "'{}' is not a supported PSA (supported: {})",
                b.kind,
                PsaKind::ALL.map(PsaKind::as_str).join(", ")
            ),
        )])
    })?;
    let grouping = match &b.grouping {
        None => GroupingMode::User,
        Some(g) => GroupingMode::parse(g).ok_or_else(|| {
            Problem::invalid(vec![FieldError::new(
                "grouping",
                "must be user, user_and_alert or none",
            )])
        })?,
    };
    if b.name.trim().is_empty() || b.name.len() > 100 {
        return Err(Problem::invalid(vec![FieldError::new(
            "name",
            "must be 1 to 100 characters",
        )]));
    }
    let (settings, secrets) = split_credentials(kind, &b.credentials, &b.settings, true)?;
    // Where it points is checked before anything is stored or sent.
    s.engine
        .connectors
        .check_urls(&settings)
        .await
        .map_err(|e| match e {
            BuildError::Refused { field, problem } => Problem::invalid(vec![FieldError::new(
                format!("credentials.{field}"),
                problem,
            )]),
            other => Problem::internal(other),
        })?;
    let id = s
        .store
        .create_connection(
            &NewConnection {
                partner_id: p.clone(),
                kind,
                name: b.name.trim().to_string(),
                grouping,
                settings,
                secrets,
            },
            now(),
        )
        .await?;
    let conn = s.store.connection(&p, id).await?;
    match connect(&s.engine, &conn, s.public_url.as_deref()).await {
        Ok(done) => {
            let conn = s.store.connection(&p, id).await?;
            let mut v = connection_view(&s, &conn);
            audit(
                &s,
                &caller,
                Some(&p),
                "connection.create",
                &format!("connection:{id}"),
                None,
                Some(&v),
            )
            .await;
            v["api_url"] = json!(done.check.api_url);
            v["webhook_note"] = json!(done.webhook_note);
            Ok(created(v))
        }
        Err(e) => {
            // Nothing is kept of a connection that does not connect.
            s.engine.connectors.forget(id);
            s.store.delete_connection(&p, id).await?;
            Err(connect_problem(e))
        }
    }
}

async fn list_connections(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let list = s.store.connections(Some(&p)).await?;
    Ok(Json(
        json!({"connections": list.iter().map(|c| connection_view(&s, c)).collect::<Vec<_>>()}),
    ))
}

async fn get_connection(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    Ok(Json(connection_view(
        &s,
        &s.store.connection(&p, id).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionPatch {
    name: Option<String>,
    enabled: Option<bool>,
    grouping: Option<String>,
    #[serde(default, deserialize_with = "present")]
    catch_all: Option<Option<CatchAllBody>>,
    defaults: Option<Map<String, Value>>,
    credentials: Option<Map<String, Value>>,
    settings: Option<Map<String, Value>>,
    /// Close a grouped ticket (with `defaults.close_status`) once every alert it stands for
    /// has resolved.
    close_on_resolve: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatchAllBody {
    company: String,
    contact: Option<String>,
}

/// Tell "absent" (outer `None`) from "null" (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Read ticket fields from JSON, checking each name against the PSA's fields and each id
/// against the PSA's lists.
pub(crate) fn ticket_fields(
    kind: PsaKind,
    raw: &Map<String, Value>,
    lists: Option<&Value>,
    path: &str,
) -> Result<TicketDefaults, Problem> {
    let mut errors = Vec::new();
    let mut out = TicketDefaults::default();
    for (k, v) in raw {
        let Some(field) = kind.ticket_field(k) else {
            let known: Vec<&str> = kind.ticket_fields().iter().map(|f| f.name).collect();
            errors.push(FieldError::new(
                format!("{path}{k}"),
                format!(
                    "is not a {} ticket field (known: {})",
                    kind.display_name(),
                    known.join(", ")
                ),
            ));
            continue;
        };
        let id = match v {
            Value::Null => continue,
            Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            _ => {
                errors.push(FieldError::new(
                    format!("{path}{k}"),
                    "must be an id (string or number) or null",
                ));
                continue;
            }
        };
        match lists
            .and_then(|l| l.get(field.list))
            .and_then(Value::as_array)
        {
            None => errors.push(FieldError::new(
                format!("{path}{k}"),
                "the PSA's lists are not loaded; connect the connection first (POST …/connect)",
            )),
            Some(items) => {
                let found: Vec<&Value> = items
                    .iter()
                    .filter(|i| i.get("id").and_then(Value::as_str) == Some(&id))
                    .collect();
                if found.is_empty() {
                    let mut known: Vec<String> = items
                        .iter()
                        .filter(|i| i.get("active").and_then(Value::as_bool) != Some(false))
                        .map(|i| {
                            format!(
                                "{} \"{}\"",
                                i["id"].as_str().unwrap_or(""),
                                i["label"].as_str().unwrap_or("")
                            )
                        })
                        .collect();
                    known.dedup();
                    known.truncate(12);
                    errors.push(FieldError::new(
                        format!("{path}{k}"),
                        format!(
                            "\"{id}\" is not a {} of this PSA (known: {})",
                            field.label,
                            known.join(", ")
                        ),
                    ));
                } else if found
                    .iter()
                    .all(|i| i.get("active").and_then(Value::as_bool) == Some(false))
                {
                    errors.push(FieldError::new(
                        format!("{path}{k}"),
                        format!("\"{id}\" is an inactive {} in the PSA", field.label),
                    ));
                } else {
                    out.set(k, id);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Problem::invalid(errors))
    }
}

/// Stored defaults with a JSON merge patch applied: named fields change, `null` removes one,
/// the rest is kept; a field whose parent the patch changes goes unless the patch names it.
fn patched_defaults(
    kind: PsaKind,
    stored: &TicketDefaults,
    patch: &Map<String, Value>,
) -> Map<String, Value> {
    let mut merged = defaults_to_json(stored);
    merge_patch(&mut merged, &Value::Object(patch.clone()));
    let Value::Object(mut merged) = merged else {
        return Map::new();
    };
    for changed in patch.keys() {
        merged.retain(|name, _| patch.contains_key(name) || !kind.depends_on(name, changed));
    }
    merged
}

/// Every field the PSA needs on a ticket is set, or the error names each missing one.
fn check_required(kind: PsaKind, fields: &TicketDefaults, path: &str) -> Result<(), Problem> {
    let missing: Vec<FieldError> = kind
        .required_ticket_fields()
        .iter()
        .filter(|f| fields.get(f).is_none())
        .map(|f| {
            FieldError::new(
                format!("{path}{f}"),
                format!(
                    "is required: {} refuses a ticket without it",
                    kind.display_name()
                ),
            )
        })
        .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(Problem::invalid(missing)),
    }
}

/// A dependent value must belong to the chosen parent (a sub-issue type to its issue type, a
/// ConnectWise status to its board, a HaloPSA agent to its team), after defaults and overrides
/// are combined. A list item names its parent; an item belonging to several parents is listed
/// once per parent.
pub(crate) fn check_parents(
    kind: PsaKind,
    fields: &TicketDefaults,
    lists: Option<&Value>,
    path: &str,
) -> Result<(), Problem> {
    let mut errors = Vec::new();
    for field in kind.ticket_fields() {
        let (Some(parent), Some(value)) = (field.parent, fields.get(field.name)) else {
            continue;
        };
        let parents: Vec<&str> = lists
            .and_then(|l| l.get(field.list))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|i| i.get("id").and_then(Value::as_str) == Some(value))
            .filter_map(|i| i.get("parent").and_then(Value::as_str))
            .collect();
        if parents.is_empty() {
            continue;
        }
        let parent_label = kind.ticket_field(parent).map_or(parent, |f| f.label);
        match fields.get(parent) {
            None => errors.push(FieldError::new(
                format!("{path}{}", field.name),
                format!("needs a {parent_label} ({parent})"),
            )),
            Some(chosen) if !parents.contains(&chosen) => errors.push(FieldError::new(
                format!("{path}{}", field.name),
                format!(
                    "\"{value}\" belongs to {parent_label} {}, not \"{chosen}\"",
                    parents
                        .iter()
                        .map(|p| format!("\"{p}\""))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            )),
            Some(_) => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problem::invalid(errors))
    }
}

async fn patch_connection(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let conn = s.store.connection(&p, id).await?;
    let before = connection_view(&s, &conn);
    let mut secrets_changed: Vec<String> = Vec::new();
    refuse_removal(
        &bytes,
        &[
            "name",
            "enabled",
            "grouping",
            "defaults",
            "credentials",
            "settings",
            "close_on_resolve",
        ],
    )?;
    let b: ConnectionPatch = body(&bytes)?;
    let grouping = b
        .grouping
        .as_deref()
        .map(|g| {
            GroupingMode::parse(g).ok_or_else(|| {
                Problem::invalid(vec![FieldError::new(
                    "grouping",
                    "must be user, user_and_alert or none",
                )])
            })
        })
        .transpose()?;
    if let Some(n) = &b.name
        && (n.trim().is_empty() || n.len() > 100)
    {
        return Err(Problem::invalid(vec![FieldError::new(
            "name",
            "must be 1 to 100 characters",
        )]));
    }
    let defaults = match &b.defaults {
        Some(d) => {
            let merged = patched_defaults(conn.kind, &conn.defaults, d);
            let f = ticket_fields(conn.kind, &merged, conn.lists.as_ref(), "defaults.")?;
            check_parents(conn.kind, &f, conn.lists.as_ref(), "defaults.")?;
            check_required(conn.kind, &f, "defaults.")?;
            Some(f)
        }
        None => None,
    };
    let catch_all = match &b.catch_all {
        Some(Some(ca)) => {
            check_company_contact(
                &s,
                &conn,
                &ca.company,
                ca.contact.as_deref(),
                "catch_all.",
                WithoutContact::Nobody,
            )
            .await?;
            Some(Some(CompanyContact {
                company_id: ca.company.clone(),
                contact_id: ca.contact.clone(),
            }))
        }
        Some(None) => Some(None),
        None => None,
    };
    // Changed access is checked against the PSA before anything is stored, so a refused
    // change leaves the connection exactly as it was.
    let mut settings = None;
    let mut checked = None;
    if b.credentials.is_some() || b.settings.is_some() {
        let (plain, secrets) = split_credentials(
            conn.kind,
            b.credentials.as_ref().unwrap_or(&Map::new()),
            b.settings.as_ref().unwrap_or(&Map::new()),
            false,
        )?;
        let moved = require_secrets_when_moved(conn.kind, &conn.settings, &plain, &secrets)?;
        let mut merged = conn.settings.clone();
        merged.extend(plain);
        if b.credentials.is_some() || moved {
            let mut prospective = conn.clone();
            prospective.settings = merged.clone();
            let mut all_secrets = s.store.connection_secrets(id).await?;
            all_secrets.extend(secrets.clone());
            let c = check_unsaved(&s.engine, &prospective, &all_secrets)
                .await
                .map_err(connect_problem)?;
            s.store
                .set_connection_access(id, &merged, &secrets, &c.lists_json(), now())
                .await?;
            secrets_changed = secrets.keys().cloned().collect();
            checked = Some(c);
        } else {
            settings = Some(merged);
        }
    }
    s.store
        .update_connection(
            id,
            b.name.as_deref().map(str::trim),
            b.enabled,
            grouping,
            settings.as_ref(),
            catch_all.as_ref().map(|c| c.as_ref()),
            defaults.as_ref(),
            now(),
        )
        .await?;
    if let Some(on) = b.close_on_resolve {
        s.store.set_close_on_resolve(id, on, now()).await?;
    }
    let conn = s.store.connection(&p, id).await?;
    let mut after = connection_view(&s, &conn);
    // Which secrets were replaced, by name: their values never reach the log.
    after["secrets_changed"] = json!(secrets_changed);
    audit(
        &s,
        &caller,
        Some(&p),
        "connection.update",
        &format!("connection:{id}"),
        Some(&before),
        Some(&after),
    )
    .await;
    if let Some(c) = checked {
        adopt(&s.engine, &conn, c, s.public_url.as_deref())
            .await
            .map_err(connect_problem)?;
    }
    Ok(Json(connection_view(
        &s,
        &s.store.connection(&p, id).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

async fn delete_connection(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode, Problem> {
    caller.require_partner(&p)?;
    let before = connection_view(&s, &s.store.connection(&p, id).await?);
    // Deleting a connection that is still used says what uses it, unless forced.
    let mut references = Vec::new();
    if s.store.partner(&p).await?.default_connection_id == Some(id) {
        references.push(json!({"what": "partner.default_connection", "detail": "the partner's default connection (it takes the events of unmapped clients)"}));
    }
    for m in s.store.mappings(&p).await? {
        if m.connection_id == id {
            references.push(json!({"what": format!("clients/{}/mappings/{id}", m.client_id),
                                   "detail": format!("client '{}' is mapped to company {}", m.client_id, m.company_id)}));
        }
    }
    if !references.is_empty() && !q.force {
        return Err(Problem::new(StatusCode::CONFLICT, "The connection is still in use")
            .detail(format!(
                "connection {id} is referenced {} time(s); remove those references first, or delete with ?force=true (mappings go with it, pending deliveries become dead)",
                references.len()
            ))
            .with("references", Value::Array(references)));
    }
    s.store.delete_connection(&p, id).await?;
    s.engine.connectors.forget(id);
    audit(
        &s,
        &caller,
        Some(&p),
        "connection.delete",
        &format!("connection:{id}"),
        Some(&before),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn reconnect(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let conn = s.store.connection(&p, id).await?;
    let done = connect(&s.engine, &conn, s.public_url.as_deref())
        .await
        .map_err(connect_problem)?;
    let mut v = connection_view(&s, &s.store.connection(&p, id).await?);
    v["api_url"] = json!(done.check.api_url);
    v["webhook_note"] = json!(done.webhook_note);
    Ok(Json(v))
}

async fn connection_lists(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let conn = s.store.connection(&p, id).await?;
    Ok(Json(
        json!({"loaded_at": opt_time(conn.lists_loaded_at), "lists": conn.lists}),
    ))
}

#[derive(Deserialize)]
struct CompanyQuery {
    search: Option<String>,
    cursor: Option<String>,
}

async fn connection_companies(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
    Query(q): Query<CompanyQuery>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let conn = s.store.connection(&p, id).await?;
    let connector = s
        .engine
        .connectors
        .get(&s.store, &conn)
        .await
        .map_err(Problem::internal)?;
    let page = connector
        .companies(q.search.as_deref(), q.cursor.as_deref())
        .await
        .map_err(psa_problem)?;
    Ok(Json(
        json!({"companies": page.companies, "next": page.next}),
    ))
}

async fn company_contacts(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id, company)): Path<(String, i64, String)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let conn = s.store.connection(&p, id).await?;
    let connector = s
        .engine
        .connectors
        .get(&s.store, &conn)
        .await
        .map_err(Problem::internal)?;
    let contacts = connector.contacts(&company).await.map_err(psa_problem)?;
    Ok(Json(json!({"contacts": contacts})))
}

/// The company's contracts in the PSA, to choose the one a mapping's tickets carry.
async fn company_contracts(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id, company)): Path<(String, i64, String)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let conn = s.store.connection(&p, id).await?;
    let connector = s
        .engine
        .connectors
        .get(&s.store, &conn)
        .await
        .map_err(Problem::internal)?;
    let contracts = connector.contracts(&company).await.map_err(psa_problem)?;
    Ok(Json(json!({"contracts": contracts.iter().map(|c| json!({
        "id": c.id, "name": c.name, "active": c.active,
    })).collect::<Vec<_>>()})))
}

async fn connection_groups(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.connection(&p, id).await?;
    let groups = s.store.open_groups(id).await?;
    Ok(Json(json!({"groups": groups.iter().map(|g| json!({
        "group_key": g.group_key,
        "ticket": {"id": g.ticket_id, "number": g.ticket_number},
        "opened_at": time(g.opened_at),
        "confirmed_open_at": time(g.confirmed_open_at),
        "notes": g.notes,
    })).collect::<Vec<_>>()})))
}

// ---- rules ----------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    create_ticket: bool,
    /// A whole template of the connection for this event type.
    #[serde(default)]
    template: Option<i64>,
    #[serde(default)]
    fields: Map<String, Value>,
}

fn rule_view(event_type: &str, r: &EventRule) -> Value {
    json!({"event_type": event_type, "create_ticket": r.create_ticket, "template": r.template,
           "fields": defaults_to_json(&r.fields)})
}

async fn list_rules(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.connection(&p, id).await?;
    let rules = s.store.rules(id).await?;
    Ok(Json(
        json!({"rules": rules.iter().map(|(t, r)| rule_view(t, r)).collect::<Vec<_>>()}),
    ))
}

pub(crate) fn check_event_type(catalog: &Catalog, t: &str) -> Result<(), Problem> {
    if catalog.get(t).is_none() {
        return Err(Problem::invalid(vec![FieldError::new(
            "event_type",
            format!(
                "'{t}' is not an event type of the catalog (GET /api/v1/event-types lists them)"
            ),
        )]));
    }
    Ok(())
}

async fn put_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id, event_type)): Path<(String, i64, String)>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let conn = s.store.connection(&p, id).await?;
    check_event_type(&*s.event_catalog().await, &event_type)?;
    let b: RuleBody = body(&bytes)?;
    let mut combined = conn.defaults.clone();
    if let Some(t) = b.template {
        // One read: the template must be this connection's, and its fields are checked below.
        let template = match s.store.template(id, t).await {
            Err(psabridge_store::StoreError::NotFound(_)) => {
                return Err(Problem::invalid(vec![FieldError::new(
                    "template",
                    format!(
                        "{t} is not a template of connection {id} (GET …/connections/{id}/templates lists them)"
                    ),
                )]));
            }
            other => other?,
        };
        combined = combined.overlaid_with(&template.fields, conn.kind);
    }
    let fields = ticket_fields(conn.kind, &b.fields, conn.lists.as_ref(), "fields.")?;
    check_parents(
        conn.kind,
        &combined.overlaid_with(&fields, conn.kind),
        conn.lists.as_ref(),
        "fields.",
    )?;
    let rule = EventRule {
        create_ticket: b.create_ticket,
        template: b.template,
        fields,
    };
    let before = s
        .store
        .rules(id)
        .await?
        .iter()
        .find(|(t, _)| t.as_str() == event_type)
        .map(|(t, r)| rule_view(t, r));
    s.store.put_rule(id, &event_type, &rule).await?;
    let after = rule_view(&event_type, &rule);
    audit(
        &s,
        &caller,
        Some(&p),
        "rule.put",
        &format!("connection:{id}:rule:{event_type}"),
        before.as_ref(),
        Some(&after),
    )
    .await;
    Ok(Json(after))
}

async fn delete_rule(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id, event_type)): Path<(String, i64, String)>,
) -> Result<StatusCode, Problem> {
    caller.require_partner(&p)?;
    s.store.connection(&p, id).await?;
    let before = s
        .store
        .rules(id)
        .await?
        .iter()
        .find(|(t, _)| t.as_str() == event_type)
        .map(|(t, r)| rule_view(t, r));
    s.store.delete_rule(id, &event_type).await?;
    audit(
        &s,
        &caller,
        Some(&p),
        "rule.delete",
        &format!("connection:{id}:rule:{event_type}"),
        before.as_ref(),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- deliveries -----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    status: Option<String>,
    client: Option<String>,
    event_type: Option<String>,
    connection: Option<i64>,
    /// `psa` or `email`.
    channel: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

fn rfc3339(field: &str, v: &Option<String>) -> Result<Option<i64>, Problem> {
    v.as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|_| {
                    Problem::invalid(vec![FieldError::new(
                        field,
                        format!("'{t}' is not an RFC 3339 date-time"),
                    )])
                })
        })
        .transpose()
}

async fn list_deliveries(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    if let Some(st) = &q.status
        && ![
            "pending",
            "in_flight",
            "retrying",
            "delivered",
            "dead",
            "expired",
        ]
        .contains(&st.as_str())
    {
        return Err(Problem::invalid(vec![FieldError::new(
            "status",
            "must be pending, in_flight, retrying, delivered, dead or expired",
        )]));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid(vec![FieldError::new(
            "limit",
            "must be from 1 to 1000",
        )]));
    }
    let filter = DeliveryFilter {
        state: q.status,
        client_id: q.client,
        event_type: q.event_type,
        connection_id: q.connection,
        since: rfc3339("since", &q.since)?,
        until: rfc3339("until", &q.until)?,
        before_id: q.before,
        limit,
    };
    if let Some(c) = q.channel.as_deref()
        && !matches!(c, "psa" | "email")
    {
        return Err(Problem::invalid(vec![FieldError::new(
            "channel",
            format!("'{c}' is not a channel (psa, email)"),
        )]));
    }
    let list = s
        .store
        .list_deliveries_on_channel(&p, q.channel.as_deref(), &filter)
        .await?;
    let next = (list.len() as i64 == limit)
        .then(|| list.last().map(|d| d.id))
        .flatten();
    Ok(Json(
        json!({"deliveries": list.iter().map(views::delivery).collect::<Vec<_>>(), "next_before": next}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    ids: Vec<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

/// The partner's audit log, newest first (`next_before` pages backwards).
async fn list_audit(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid(vec![FieldError::new(
            "limit",
            "must be from 1 to 1000",
        )]));
    }
    let entries = s.store.audit_log(&p, q.before, limit).await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(json!({
        "entries": entries.iter().map(|e| json!({
            "id": e.id, "at": time(e.at), "actor": e.actor, "action": e.action, "target": e.target,
            "before": e.before, "after": e.after,
        })).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

async fn retry_deliveries(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let b: RetryBody = body(&bytes)?;
    if b.ids.is_empty() || b.ids.len() > 1000 {
        return Err(Problem::invalid(vec![FieldError::new(
            "ids",
            "must list 1 to 1000 delivery ids",
        )]));
    }
    let n = s.store.retry_deliveries(&p, &b.ids, now()).await?;
    s.engine.wake();
    let what = json!({"ids": b.ids, "retried": n});
    audit(
        &s,
        &caller,
        Some(&p),
        "deliveries.retry",
        "deliveries",
        None,
        Some(&what),
    )
    .await;
    Ok(Json(json!({"retried": n})))
}

async fn retry_delivery(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let n = s.store.retry_deliveries(&p, &[id], now()).await?;
    if n == 0 {
        return Err(Problem::not_found(format!(
            "no dead, expired or retrying delivery {id}"
        )));
    }
    s.engine.wake();
    audit(
        &s,
        &caller,
        Some(&p),
        "delivery.retry",
        &format!("delivery:{id}"),
        None,
        None,
    )
    .await;
    Ok(Json(json!({"retried": n})))
}
