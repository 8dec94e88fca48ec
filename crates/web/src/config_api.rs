//! The partner-scoped configuration API: partners, tokens, clients, PSA connections, event
//! rules, client → company mappings, the PSA's lists and companies, and the delivery log.
//!
//! Clients, mappings, connections and event rules are operations of `psabridge_ops` (checks
//! of every field, of parents against the PSA's lists, of the permission, and the audit
//! entry); their handlers here extract, call and shape. Partners, tokens and deliveries are
//! still handled here. Every body is checked field by field; an error names the field's path
//! and what is wrong with it. Secrets are write-only.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Extension, Json};
use psabridge_core::event::FieldError;
use psabridge_identity::Role;
use psabridge_identity::scopes::{Scope, parse_requested, parse_stored, to_stored};
use psabridge_ops::views::{ClientView, ConnectedView, ConnectionView, EventRuleView, MappingView};
use psabridge_store::config::{NewToken as NewTokenRow, TokenRow};
use psabridge_store::outbox::DeliveryFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::accounts::SessionUser;
use crate::audit::audit;
use crate::auth::{Caller, TokenGrant, new_token, token_hash};
use crate::input::{body, created, now};
use crate::operations::{Acting, psa_problem};
use crate::problem::Problem;
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

fn valid_id(id: &str) -> bool {
    psabridge_ops::input::valid_id(id)
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
    if p.name.trim().is_empty() || p.name.chars().count() > 200 {
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
    #[serde(default, deserialize_with = "psabridge_ops::input::present")]
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
pub(crate) struct NewToken {
    pub name: String,
    /// Omitted: every scope the creator may grant (what tokens could do before scopes).
    pub scopes: Option<Vec<String>>,
    pub expires_in_days: Option<i64>,
    pub expires_at: Option<String>,
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
    Ok(created(
        make_token(s, caller, who, partner, body(bytes)?).await?,
    ))
}

/// Make an API token (checked name, scopes within what its creator may grant, expiry) and
/// audit it: its view with the token itself, shown this once. The API's and the portal's.
pub(crate) async fn make_token(
    s: &AppState,
    caller: &Caller,
    who: (Option<&TokenGrant>, Option<&SessionUser>),
    partner: Option<&str>,
    t: NewToken,
) -> Result<Value, Problem> {
    let now = s.accounts.clock.now_ms();
    let mut errors = Vec::new();
    if t.name.trim().is_empty() || t.name.chars().count() > 100 {
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
    Ok(shown)
}

/// The partner's API tokens as the API lists them.
pub(crate) async fn partner_tokens(s: &AppState, p: &str) -> Result<Vec<Value>, Problem> {
    let now = s.accounts.clock.now_ms();
    Ok(s.store
        .tokens(Some(p))
        .await?
        .iter()
        .map(|t| token_view(t, now))
        .collect())
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
    Ok(Json(json!({"tokens": partner_tokens(&s, &p).await?})))
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
    revoke(&s, &caller, &p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke a partner's token at once on this node (others within their token cache's life)
/// and audit it. The API's and the portal's.
pub(crate) async fn revoke(s: &AppState, caller: &Caller, p: &str, id: i64) -> Result<(), Problem> {
    s.store
        .revoke_token(id, Some(p), s.accounts.clock.now_ms())
        .await?;
    s.tokens.clear();
    audit(
        s,
        caller,
        Some(p),
        "token.revoke",
        &format!("token:{id}"),
        None,
        None,
    )
    .await;
    Ok(())
}

// ---- clients and mappings -------------------------------------------------------------------

async fn list_clients(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(json!({"clients": s.ops.clients(&acting, &p).await?})))
}

async fn get_client(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, c)): Path<(String, String)>,
) -> Result<Json<ClientView>, Problem> {
    Ok(Json(s.ops.client(&acting, &p, &c).await?))
}

async fn put_client(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, c)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<ClientView>, Problem> {
    acting.reaches(&p)?;
    Ok(Json(
        s.ops.put_client(&acting, &p, &c, body(&bytes)?).await?,
    ))
}

async fn put_mapping(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, client, conn)): Path<(String, String, i64)>,
    bytes: Bytes,
) -> Result<Json<MappingView>, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(Json(
        s.ops.put_mapping(&acting, &p, &client, conn, req).await?,
    ))
}

async fn delete_mapping(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, client, conn)): Path<(String, String, i64)>,
) -> Result<StatusCode, Problem> {
    s.ops.delete_mapping(&acting, &p, &client, conn).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_mappings(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(
        json!({"mappings": s.ops.mappings(&acting, &p).await?}),
    ))
}

// ---- connections ----------------------------------------------------------------------------

async fn create_connection(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(created(s.ops.create_connection(&acting, &p, req).await?))
}

async fn list_connections(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(
        json!({"connections": s.ops.connections(&acting, &p).await?}),
    ))
}

async fn get_connection(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<ConnectionView>, Problem> {
    Ok(Json(s.ops.connection(&acting, &p, id).await?))
}

async fn patch_connection(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
    bytes: Bytes,
) -> Result<Json<ConnectionView>, Problem> {
    acting.reaches(&p)?;
    let patch = body(&bytes)?;
    Ok(Json(s.ops.update_connection(&acting, &p, id, patch).await?))
}

/// `?force=true` deletes a connection that is still used.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

async fn delete_connection(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode, Problem> {
    s.ops.delete_connection(&acting, &p, id, q.force).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reconnect(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<ConnectedView>, Problem> {
    Ok(Json(s.ops.reconnect(&acting, &p, id).await?))
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
    let page = connector_of(&s, &p, id)
        .await?
        .companies(q.search.as_deref(), q.cursor.as_deref())
        .await
        .map_err(psa_problem)?;
    Ok(Json(
        json!({"companies": page.companies, "next": page.next}),
    ))
}

/// The connector of a partner's connection (built on first use, then the registry's).
pub(crate) async fn connector_of(
    s: &AppState,
    p: &str,
    id: i64,
) -> Result<std::sync::Arc<dyn psabridge_psa::Connector>, Problem> {
    let conn = s.store.connection(p, id).await?;
    s.engine
        .connectors
        .get(&s.store, &conn)
        .await
        .map_err(Problem::internal)
}

async fn company_contacts(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id, company)): Path<(String, i64, String)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let contacts = connector_of(&s, &p, id)
        .await?
        .contacts(&company)
        .await
        .map_err(psa_problem)?;
    Ok(Json(json!({"contacts": contacts})))
}

/// The company's contracts in the PSA, to choose the one a mapping's tickets carry.
async fn company_contracts(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, id, company)): Path<(String, i64, String)>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    let contracts = connector_of(&s, &p, id)
        .await?
        .contracts(&company)
        .await
        .map_err(psa_problem)?;
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

async fn list_rules(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id)): Path<(String, i64)>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(
        json!({"rules": s.ops.event_rules(&acting, &p, id).await?}),
    ))
}

async fn put_rule(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id, event_type)): Path<(String, i64, String)>,
    bytes: Bytes,
) -> Result<Json<EventRuleView>, Problem> {
    acting.reaches(&p)?;
    let req = body(&bytes)?;
    Ok(Json(
        s.ops
            .put_event_rule(&acting, &p, id, &event_type, req)
            .await?,
    ))
}

async fn delete_rule(
    State(s): State<AppState>,
    Acting(acting): Acting,
    Path((p, id, event_type)): Path<(String, i64, String)>,
) -> Result<StatusCode, Problem> {
    s.ops
        .delete_event_rule(&acting, &p, id, &event_type)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- deliveries -----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveryQuery {
    pub status: Option<String>,
    pub client: Option<String>,
    pub event_type: Option<String>,
    pub connection: Option<i64>,
    /// `psa`, `email`, `teams`, `slack` or `webhook`.
    pub channel: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// An id in a query filter or page cursor: ids are positive, so 0 or less is a mistake
/// (a cursor that would page to nothing, a connection that cannot exist), refused by name.
fn positive_id(field: &str, v: Option<i64>) -> Result<(), Problem> {
    match v {
        Some(id) if id < 1 => Err(Problem::invalid(vec![FieldError::new(
            field,
            format!("must be a positive id, not {id}"),
        )])),
        _ => Ok(()),
    }
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
    let (list, next) = deliveries(&s, &p, q).await?;
    Ok(Json(
        json!({"deliveries": list.iter().map(views::delivery).collect::<Vec<_>>(), "next_before": next}),
    ))
}

/// One page of the delivery log of `p`, newest first, with the cursor of the next page: the
/// filters checked by name, for the API and the portal alike.
pub(crate) async fn deliveries(
    s: &AppState,
    p: &str,
    q: DeliveryQuery,
) -> Result<(Vec<psabridge_store::outbox::DeliveryView>, Option<i64>), Problem> {
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
    positive_id("connection", q.connection)?;
    positive_id("before", q.before)?;
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
        && psabridge_core::channels::ChannelKind::parse(c).is_none()
    {
        return Err(Problem::invalid(vec![FieldError::new(
            "channel",
            format!("'{c}' is not a channel (psa, email, teams, slack, webhook)"),
        )]));
    }
    let list = s
        .store
        .list_deliveries_on_channel(p, q.channel.as_deref(), &filter)
        .await?;
    let next = (list.len() as i64 == limit)
        .then(|| list.last().map(|d| d.id))
        .flatten();
    Ok((list, next))
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
    positive_id("before", q.before)?;
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
    let n = retry(&s, &caller, &p, &b.ids).await?;
    Ok(Json(json!({"retried": n})))
}

/// Retry these deliveries of `p` (dead, expired or retrying ones; others are left alone), wake
/// the dispatcher and audit it: the API's bulk retry and the portal's "retry" and "retry all".
pub(crate) async fn retry(
    s: &AppState,
    caller: &Caller,
    p: &str,
    ids: &[i64],
) -> Result<u64, Problem> {
    if ids.is_empty() || ids.len() > 1000 {
        return Err(Problem::invalid(vec![FieldError::new(
            "ids",
            "must list 1 to 1000 delivery ids",
        )]));
    }
    let bad: Vec<FieldError> = ids
        .iter()
        .enumerate()
        .filter(|(_, id)| **id < 1)
        .map(|(i, id)| {
            FieldError::new(
                format!("ids[{i}]"),
                format!("must be a positive id, not {id}"),
            )
        })
        .collect();
    if !bad.is_empty() {
        return Err(Problem::invalid(bad));
    }
    let n = s.store.retry_deliveries(p, ids, now()).await?;
    s.engine.wake();
    let what = json!({"ids": ids, "retried": n});
    audit(
        s,
        caller,
        Some(p),
        "deliveries.retry",
        "deliveries",
        None,
        Some(&what),
    )
    .await;
    Ok(n)
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
