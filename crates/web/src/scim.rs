//! SCIM 2.0 (RFC 7643/7644) per partner at `/scim/v2/{p}/`, so the partner's identity
//! provider can create, update, deactivate and delete the partner's people; and the routes
//! that issue and revoke the partner's SCIM token.
//!
//! The bearer is the partner's SCIM token, never an API token or a login. Deactivating or
//! deleting goes through [`Store::deprovision`](psabridge_store::Store::deprovision), which
//! ends the person's sessions in the same transaction and refuses to touch the partner's
//! Primary user or its last active Security Admin. The pure parts (PATCH, the identity
//! providers' quirks, filters) live in [`psabridge_identity::scim`].

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use psabridge_identity::Role;
use psabridge_identity::scim::{
    Lookup, ScimError, USER_SCHEMA, apply_patch, coerce_bool, lookup_of, page, parse_filter,
};
use psabridge_identity::secret_token;
use psabridge_store::StoreError;
use psabridge_store::audit::NewAuditEntry;
use psabridge_store::scim::{
    DeprovisionAction, Deprovisioned, ScimCreated, ScimLookup, ScimUser, ScimUserInput,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::problem::Problem;

const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCIM_JSON: &str = "application/scim+json";
/// The most resources one list page returns.
const MAX_RESULTS: i64 = 200;
/// SCIM tokens start with this, so a leaked one is recognisable.
const TOKEN_PREFIX: &str = "psabscim_";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/partners/{p}/scim/token",
            post(create_token).delete(revoke_token),
        )
        .route(
            "/scim/v2/{p}/ServiceProviderConfig",
            get(service_provider_config),
        )
        .route("/scim/v2/{p}/ResourceTypes", get(resource_types))
        .route("/scim/v2/{p}/ResourceTypes/{id}", get(resource_type))
        .route("/scim/v2/{p}/Schemas", get(schemas))
        .route("/scim/v2/{p}/Schemas/{id}", get(schema))
        .route("/scim/v2/{p}/Users", get(list_users).post(create_user))
        .route("/scim/v2/{p}/Users/.search", post(search_users))
        .route("/scim/v2/{p}/.search", post(search_users))
        .route(
            "/scim/v2/{p}/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
}

// ---- errors and responses -----------------------------------------------------------------

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug)]
pub struct ScimProblem {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl ScimProblem {
    fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        ScimProblem {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimProblem::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    fn not_found(id: &str) -> Self {
        ScimProblem::new(StatusCode::NOT_FOUND, None, format!("User {id} not found"))
    }
}

impl From<ScimError> for ScimProblem {
    fn from(e: ScimError) -> Self {
        ScimProblem::new(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.scim_type,
            e.detail,
        )
    }
}

impl From<StoreError> for ScimProblem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => {
                ScimProblem::new(StatusCode::NOT_FOUND, None, format!("{what} not found"))
            }
            StoreError::Conflict(what) => {
                ScimProblem::new(StatusCode::CONFLICT, Some("uniqueness"), what)
            }
            StoreError::Invalid(what) => ScimProblem::bad("invalidValue", what),
            other => {
                tracing::error!(error = %other, "SCIM request failed");
                ScimProblem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "the server failed; the error is logged",
                )
            }
        }
    }
}

impl IntoResponse for ScimProblem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        scim_json(self.status, &body)
    }
}

/// axum's own rejection of a request under `/scim/` (a query string or body that does not
/// parse, a wrong media type, a method the route lacks) as a SCIM error, so SCIM clients read
/// every error the same way (`problem::uniform` calls this).
pub(crate) fn rejection(status: StatusCode, detail: String) -> Response {
    let scim_type = (status == StatusCode::BAD_REQUEST).then_some("invalidValue");
    ScimProblem::new(status, scim_type, detail).into_response()
}

fn scim_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON))],
        body.to_string(),
    )
        .into_response()
}

type ScimResult<T> = Result<T, ScimProblem>;

/// What the router answers for a path no route matches: under `/scim/`, a SCIM error;
/// elsewhere the plain 404 as before.
pub async fn fallback(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    if !path.starts_with("/scim/") {
        return StatusCode::NOT_FOUND.into_response();
    }
    ScimProblem::new(StatusCode::NOT_FOUND, None, format!("{path} not found")).into_response()
}

// ---- authentication -----------------------------------------------------------------------

/// Check the bearer is the SCIM token of partner `p`. Every failure is the same 401, so a
/// caller learns nothing about which partners exist.
async fn authenticate(s: &AppState, headers: &HeaderMap, p: &str) -> ScimResult<()> {
    let unauthorized = || {
        ScimProblem::new(
            StatusCode::UNAUTHORIZED,
            None,
            "send the partner's SCIM token as `Authorization: Bearer <token>`",
        )
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.get(..7)
                .filter(|b| b.eq_ignore_ascii_case("bearer "))
                .map(|_| &h[7..])
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    match s
        .store
        .partner_of_scim_token(&secret_token::token_hash(token))
        .await?
    {
        Some(partner) if partner == p => Ok(()),
        _ => Err(unauthorized()),
    }
}

// ---- the SCIM token -----------------------------------------------------------------------

/// Issue the partner's SCIM token, replacing the previous one. It is shown once.
async fn create_token(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Response, Problem> {
    let token = issue_token(&s, &caller, &p).await?;
    let body = json!({
        "token": token,
        "scim_base_path": format!("/scim/v2/{p}"),
        "note": "shown once; it replaces any previous SCIM token of this partner",
    });
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// A new SCIM token for the partner (only its hash is kept), replacing any previous one;
/// audited. The API and the portal's security page both call it.
pub(crate) async fn issue_token(s: &AppState, caller: &Caller, p: &str) -> Result<String, Problem> {
    caller.require_partner(p)?;
    s.store.partner(p).await?;
    let token = format!("{TOKEN_PREFIX}{}", secret_token::new_token());
    let now = s.accounts.clock.now_ms();
    s.store
        .set_scim_token(p, &secret_token::token_hash(&token), now)
        .await?;
    s.store
        .record_audit(
            &NewAuditEntry {
                partner_id: Some(p),
                actor: &caller.1.0,
                action: "scim.token.create",
                target: "scim_token",
                before: None,
                after: None,
            },
            now,
        )
        .await?;
    Ok(token)
}

/// Revoke the partner's SCIM token: its identity provider can no longer provision.
async fn revoke_token(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<StatusCode, Problem> {
    revoke_scim_token(&s, &caller, &p).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke the partner's SCIM token (404 when there is none), audited.
pub(crate) async fn revoke_scim_token(
    s: &AppState,
    caller: &Caller,
    p: &str,
) -> Result<(), Problem> {
    caller.require_partner(p)?;
    if !s.store.revoke_scim_token(p).await? {
        return Err(Problem::not_found(format!("a SCIM token of partner '{p}'")));
    }
    s.store
        .record_audit(
            &NewAuditEntry {
                partner_id: Some(p),
                actor: &caller.1.0,
                action: "scim.token.revoke",
                target: "scim_token",
                before: None,
                after: None,
            },
            s.accounts.clock.now_ms(),
        )
        .await?;
    Ok(())
}

// ---- discovery ----------------------------------------------------------------------------

fn base_url(s: &AppState, headers: &HeaderMap, p: &str) -> String {
    let root = match &s.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    format!("{root}/scim/v2/{p}")
}

async fn service_provider_config(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(p): Path<String>,
) -> ScimResult<Response> {
    authenticate(&s, &headers, &p).await?;
    let base = base_url(&s, &headers, &p);
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": MAX_RESULTS},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": false},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "The partner's SCIM token, issued at POST /api/v1/partners/{p}/scim/token",
                "primary": true,
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
        }),
    ))
}

fn user_resource_type(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A person's membership of this partner",
        "schema": USER_SCHEMA,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
    })
}

fn list_response(resources: Vec<Value>, total: i64, start_index: i64) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

async fn resource_types(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(p): Path<String>,
) -> ScimResult<Response> {
    authenticate(&s, &headers, &p).await?;
    let base = base_url(&s, &headers, &p);
    Ok(scim_json(
        StatusCode::OK,
        &list_response(vec![user_resource_type(&base)], 1, 1),
    ))
}

async fn resource_type(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((p, id)): Path<(String, String)>,
) -> ScimResult<Response> {
    authenticate(&s, &headers, &p).await?;
    if id != "User" {
        return Err(ScimProblem::new(
            StatusCode::NOT_FOUND,
            None,
            format!("resource type {id} not found"),
        ));
    }
    let base = base_url(&s, &headers, &p);
    Ok(scim_json(StatusCode::OK, &user_resource_type(&base)))
}

/// One attribute definition of a schema (RFC 7643 §7).
fn attribute(
    name: &str,
    kind: &str,
    multi: bool,
    required: bool,
    sub: Option<Vec<Value>>,
) -> Value {
    let mut a = json!({
        "name": name,
        "type": kind,
        "multiValued": multi,
        "required": required,
        "caseExact": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": if name == "userName" { "server" } else { "none" },
    });
    if let Some(sub) = sub {
        a["subAttributes"] = Value::Array(sub);
    }
    a
}

/// The User schema: only the attributes this server keeps. Clients build their models from
/// it, so it must not promise what the server would drop.
fn user_schema(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "A person's membership of this partner",
        "attributes": [
            attribute("userName", "string", false, true, None),
            attribute("displayName", "string", false, false, None),
            attribute("name", "complex", false, false, Some(vec![
                attribute("formatted", "string", false, false, None),
                attribute("familyName", "string", false, false, None),
                attribute("givenName", "string", false, false, None),
            ])),
            attribute("emails", "complex", true, false, Some(vec![
                attribute("value", "string", false, false, None),
                attribute("type", "string", false, false, None),
                attribute("primary", "boolean", false, false, None),
            ])),
            // Every member has a state: required, so it can be replaced but not removed.
            attribute("active", "boolean", false, true, None),
        ],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}")},
    })
}

async fn schemas(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(p): Path<String>,
) -> ScimResult<Response> {
    authenticate(&s, &headers, &p).await?;
    let base = base_url(&s, &headers, &p);
    Ok(scim_json(
        StatusCode::OK,
        &list_response(vec![user_schema(&base)], 1, 1),
    ))
}

async fn schema(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((p, id)): Path<(String, String)>,
) -> ScimResult<Response> {
    authenticate(&s, &headers, &p).await?;
    if id != USER_SCHEMA {
        return Err(ScimProblem::new(
            StatusCode::NOT_FOUND,
            None,
            format!("schema {id} not found"),
        ));
    }
    let base = base_url(&s, &headers, &p);
    Ok(scim_json(StatusCode::OK, &user_schema(&base)))
}

// ---- users --------------------------------------------------------------------------------

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A stored member as a SCIM User resource.
fn user_view(u: &ScimUser, base: &str) -> Value {
    let mut r = u.attributes.as_object().cloned().unwrap_or_default();
    r.insert("schemas".into(), json!([USER_SCHEMA]));
    r.insert("id".into(), json!(u.user_id.to_string()));
    r.insert("userName".into(), json!(u.user_name));
    if let Some(x) = &u.external_id {
        r.insert("externalId".into(), json!(x));
    }
    r.insert("active".into(), json!(u.active));
    r.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": rfc3339(u.created_at),
            "lastModified": rfc3339(u.updated_at),
            "location": format!("{base}/Users/{}", u.user_id),
        }),
    );
    Value::Object(r)
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.9), on top-level attributes; `id` and
/// `schemas` are always returned.
#[derive(Debug, Default, Deserialize)]
struct Projection {
    attributes: Option<String>,
    #[serde(rename = "excludedAttributes")]
    excluded_attributes: Option<String>,
}

impl Projection {
    fn names(list: &Option<String>) -> Vec<String> {
        list.as_deref()
            .unwrap_or_default()
            .split(',')
            .map(|a| {
                let a = a.trim();
                let a = a
                    .strip_prefix(USER_SCHEMA)
                    .and_then(|r| r.strip_prefix(':'))
                    .unwrap_or(a);
                a.split('.').next().unwrap_or_default().to_ascii_lowercase()
            })
            .filter(|a| !a.is_empty())
            .collect()
    }

    fn apply(&self, mut resource: Value) -> Value {
        let include = Projection::names(&self.attributes);
        let exclude = Projection::names(&self.excluded_attributes);
        if let Value::Object(r) = &mut resource {
            r.retain(|k, _| {
                let k = k.to_ascii_lowercase();
                if k == "id" || k == "schemas" {
                    return true;
                }
                (include.is_empty() || include.contains(&k)) && !exclude.contains(&k)
            });
        }
        resource
    }
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    #[serde(rename = "excludedAttributes")]
    excluded_attributes: Option<String>,
}

fn integer_parameter(name: &str, v: &Option<String>) -> ScimResult<Option<i64>> {
    v.as_deref()
        .map(|t| {
            t.trim()
                .parse::<i64>()
                .map_err(|_| ScimProblem::bad("invalidValue", format!("{name} must be an integer")))
        })
        .transpose()
}

/// A search by POST (RFC 7644 §3.4.3), at `/Users/.search` or at the root: Users are the only
/// resource type, so a search of every type is a search of Users.
#[derive(Debug, Default, Deserialize)]
struct SearchRequest {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<Vec<String>>,
    #[serde(rename = "excludedAttributes")]
    excluded_attributes: Option<Vec<String>>,
}

async fn search_users(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(p): Path<String>,
    body: Bytes,
) -> ScimResult<Response> {
    authenticate(&s, &headers, &p).await?;
    let r: SearchRequest = serde_json::from_slice(&body)
        .map_err(|e| ScimProblem::bad("invalidSyntax", format!("not a SearchRequest: {e}")))?;
    let q = ListQuery {
        filter: r.filter,
        start_index: r.start_index.map(|v| v.to_string()),
        count: r.count.map(|v| v.to_string()),
        attributes: r.attributes.map(|a| a.join(",")),
        excluded_attributes: r.excluded_attributes.map(|a| a.join(",")),
    };
    users_page(&s, &headers, &p, q).await
}

async fn list_users(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(p): Path<String>,
    Query(q): Query<ListQuery>,
) -> ScimResult<Response> {
    authenticate(&s, &headers, &p).await?;
    users_page(&s, &headers, &p, q).await
}

async fn users_page(
    s: &AppState,
    headers: &HeaderMap,
    p: &str,
    q: ListQuery,
) -> ScimResult<Response> {
    let lookup = match q.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        None => None,
        Some(f) => Some(match lookup_of(&parse_filter(f)?)? {
            Lookup::UserName(v) => ScimLookup::UserName(v),
            Lookup::ExternalId(v) => ScimLookup::ExternalId(v),
            Lookup::Email(v) => ScimLookup::Email(v),
            // An id that is not a number matches nobody.
            Lookup::Id(v) => ScimLookup::UserId(v.parse().unwrap_or(-1)),
        }),
    };
    let start = integer_parameter("startIndex", &q.start_index)?;
    let count = integer_parameter("count", &q.count)?;
    let (offset, limit) = page(start, count, MAX_RESULTS);
    let (total, users) = s
        .store
        .scim_users(p, lookup.as_ref(), offset, limit)
        .await?;
    let base = base_url(s, headers, p);
    let projection = Projection {
        attributes: q.attributes,
        excluded_attributes: q.excluded_attributes,
    };
    let resources = users
        .iter()
        .map(|u| projection.apply(user_view(u, &base)))
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &list_response(resources, total, offset + 1),
    ))
}

fn user_id_of(id: &str) -> ScimResult<i64> {
    id.parse().map_err(|_| ScimProblem::not_found(id))
}

async fn get_user(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((p, id)): Path<(String, String)>,
    Query(projection): Query<Projection>,
) -> ScimResult<Response> {
    authenticate(&s, &headers, &p).await?;
    let user = s
        .store
        .scim_user(&p, user_id_of(&id)?)
        .await?
        .ok_or_else(|| ScimProblem::not_found(&id))?;
    let base = base_url(&s, &headers, &p);
    Ok(scim_json(
        StatusCode::OK,
        &projection.apply(user_view(&user, &base)),
    ))
}

/// A User resource as sent, split into what the store keeps apart.
struct Incoming {
    user_name: String,
    external_id: Option<String>,
    /// `None`: not sent (left as it is).
    active: Option<bool>,
    attributes: Value,
}

impl Incoming {
    /// The address the person logs in with: the primary email, else the work email, else
    /// the first, else the userName.
    fn email(&self) -> String {
        let emails = self.attributes["emails"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let value_of = |e: &Value| e["value"].as_str().map(str::to_string);
        emails
            .iter()
            .find(|e| {
                e["primary"].as_bool() == Some(true) || coerce_bool(&e["primary"]) == Some(true)
            })
            .and_then(value_of)
            .or_else(|| {
                emails
                    .iter()
                    .find(|e| e["type"] == "work")
                    .and_then(value_of)
            })
            .or_else(|| emails.first().and_then(value_of))
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| self.user_name.clone())
    }

    /// The person's name as shown in the product.
    fn display_name(&self) -> String {
        let a = &self.attributes;
        let joined = [
            a["name"]["givenName"].as_str(),
            a["name"]["familyName"].as_str(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        a["displayName"]
            .as_str()
            .or(a["name"]["formatted"].as_str())
            .map(str::to_string)
            .filter(|n| !n.trim().is_empty())
            .or(Some(joined).filter(|n| !n.trim().is_empty()))
            .unwrap_or_else(|| self.user_name.clone())
    }
}

/// Read a User resource body (POST, PUT): an object with a non-empty `userName`.
fn parse_user(body: &[u8]) -> ScimResult<Incoming> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ScimProblem::bad("invalidSyntax", format!("the body is not JSON: {e}")))?;
    let Value::Object(mut r) = value else {
        return Err(ScimProblem::bad(
            "invalidSyntax",
            "the body must be a JSON object",
        ));
    };
    // Attribute names are case-insensitive; strip a core-schema URN prefix on keys.
    let mut attributes = Map::new();
    for (k, v) in std::mem::take(&mut r) {
        let k = k
            .strip_prefix(USER_SCHEMA)
            .and_then(|x| x.strip_prefix(':'))
            .map(str::to_string)
            .unwrap_or(k);
        attributes.insert(k, v);
    }
    incoming_from(attributes)
}

/// Split a full resource map into the stored parts, checking userName and active.
fn incoming_from(mut attributes: Map<String, Value>) -> ScimResult<Incoming> {
    let mut take = |name: &str| {
        let key = attributes
            .keys()
            .find(|k| k.eq_ignore_ascii_case(name))
            .cloned();
        key.and_then(|k| attributes.remove(&k))
    };
    let user_name = match take("userName") {
        Some(Value::String(u)) if !u.trim().is_empty() => u.trim().to_string(),
        Some(_) => {
            return Err(ScimProblem::bad(
                "invalidValue",
                "userName must be a non-empty string",
            ));
        }
        None => return Err(ScimProblem::bad("invalidValue", "userName is required")),
    };
    let external_id = match take("externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(x)) => Some(x),
        Some(_) => {
            return Err(ScimProblem::bad(
                "invalidValue",
                "externalId must be a string",
            ));
        }
    };
    let active = match take("active") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            coerce_bool(&v)
                .ok_or_else(|| ScimProblem::bad("invalidValue", "active must be a boolean"))?,
        ),
    };
    for server_owned in ["id", "meta", "schemas", "password"] {
        take(server_owned);
    }
    if let Some(v) = attributes.get("emails")
        && !v.is_array()
        && !v.is_null()
    {
        return Err(ScimProblem::bad("invalidValue", "emails must be an array"));
    }
    attributes.retain(|_, v| !v.is_null());
    let incoming = Incoming {
        user_name,
        external_id,
        active,
        attributes: Value::Object(attributes),
    };
    incoming.check_limits()?;
    Ok(incoming)
}

/// The most a member's other SCIM attributes may take, as JSON.
const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

impl Incoming {
    /// Every stored field is bounded; a refusal names the attribute, never its value.
    fn check_limits(&self) -> ScimResult<()> {
        use psabridge_identity::people::{EMAIL_MAX_CHARS, NAME_MAX_CHARS, check_length};
        let bad = |name: &str, e: String| ScimProblem::bad("invalidValue", format!("{name}: {e}"));
        check_length(&self.user_name, EMAIL_MAX_CHARS).map_err(|e| bad("userName", e))?;
        if let Some(x) = &self.external_id {
            check_length(x, 256).map_err(|e| bad("externalId", e))?;
        }
        check_length(&self.email(), EMAIL_MAX_CHARS).map_err(|e| bad("emails", e))?;
        check_length(&self.display_name(), NAME_MAX_CHARS).map_err(|e| bad("displayName", e))?;
        let size = self.attributes.to_string().len();
        if size > MAX_ATTRIBUTES_BYTES {
            return Err(bad(
                "attributes",
                format!("take {size} bytes as JSON; at most {MAX_ATTRIBUTES_BYTES}"),
            ));
        }
        Ok(())
    }
}

/// The SCIM view of a member for the audit log (no secrets are ever in it).
fn audit_view(u: &ScimUser) -> Value {
    json!({
        "userName": u.user_name,
        "externalId": u.external_id,
        "active": u.active,
        "role": u.role,
        "attributes": u.attributes,
    })
}

const ACTOR: &str = "scim";

async fn audit(
    s: &AppState,
    p: &str,
    action: &str,
    user: i64,
    before: Option<&Value>,
    after: Option<&Value>,
) -> ScimResult<()> {
    s.store
        .record_audit(
            &NewAuditEntry {
                partner_id: Some(p),
                actor: ACTOR,
                action,
                target: &format!("user:{user}"),
                before,
                after,
            },
            s.accounts.clock.now_ms(),
        )
        .await?;
    Ok(())
}

fn refused(detail: String) -> ScimProblem {
    // 403: a policy refusal the identity provider shows as is and must not retry.
    ScimProblem::new(StatusCode::FORBIDDEN, None, detail)
}

async fn create_user(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(p): Path<String>,
    body: Bytes,
) -> ScimResult<Response> {
    authenticate(&s, &headers, &p).await?;
    let incoming = parse_user(&body)?;
    let email = incoming.email();
    let display_name = incoming.display_name();
    let now = s.accounts.clock.now_ms();
    let input = ScimUserInput {
        user_name: &incoming.user_name,
        external_id: incoming.external_id.as_deref(),
        email: &email,
        display_name: &display_name,
        attributes: &incoming.attributes,
    };
    // Provisioned people start Read-only; a Primary or Security Admin grants more in the
    // product. An identity provider never grants a privileged role.
    let created = s
        .store
        .scim_create_user(
            &p,
            &input,
            Role::ReadOnly,
            incoming.active.unwrap_or(true),
            now,
        )
        .await?;
    let (id, action) = match created {
        ScimCreated::Created(id) => (id, "scim.user.create"),
        ScimCreated::Adopted(id) => (id, "scim.user.adopt"),
        ScimCreated::NotMember => return Err(invite_instead(&s, &p, &email, now).await?),
    };
    let user = s
        .store
        .scim_user(&p, id)
        .await?
        .ok_or_else(|| ScimProblem::not_found(&id.to_string()))?;
    audit(&s, &p, action, id, None, Some(&audit_view(&user))).await?;
    let base = base_url(&s, &headers, &p);
    let location = format!("{base}/Users/{id}");
    let mut response = scim_json(StatusCode::CREATED, &user_view(&user, &base));
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// The email of a SCIM create has an account that is not a member of this partner: the
/// provider may not attach it (it is not the partner's to claim), so the person is invited
/// like `POST …/users` does (Read-only, emailed, replacing an earlier invitation), and the
/// provider is told the userName cannot be provisioned directly. The answer says nothing
/// about the account (no id, name, partner or state).
async fn invite_instead(s: &AppState, p: &str, email: &str, now: i64) -> ScimResult<ScimProblem> {
    let token = secret_token::new_token();
    let invited = s
        .store
        .invite(
            &psabridge_store::invitations::NewInvitation {
                partner_id: p,
                email,
                name: None,
                role: Role::ReadOnly.as_str(),
                token_hash: &secret_token::token_hash(&token),
                invited_by: ACTOR,
                expires_at: now + s.accounts.setup_link_lifetime.as_millis() as i64,
            },
            now,
        )
        .await?;
    let (invitation, invitee) = invited;
    let delivery = crate::invitations::send_invitation(s, &invitation, invitee, &token)
        .await
        .map_err(|_| {
            ScimProblem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "the server failed; the error is logged",
            )
        })?;
    s.store
        .record_audit(
            &NewAuditEntry {
                partner_id: Some(p),
                actor: ACTOR,
                action: "user.invite",
                target: &format!("invitation:{}", invitation.id),
                before: None,
                after: Some(&json!({
                    "email": invitation.email,
                    "role": invitation.role,
                    "delivery": delivery.as_str(),
                    "reason": "SCIM create of an address that is not a member",
                })),
            },
            now,
        )
        .await?;
    Ok(ScimProblem::new(
        StatusCode::CONFLICT,
        Some("uniqueness"),
        "this address cannot be provisioned directly: it was sent an invitation to join, and \
         appears here once it is accepted",
    ))
}

/// Store a member's new state: deprovision or reactivate if `active` changed, then the
/// attributes. A refused deprovisioning changes nothing.
async fn update_user(
    s: &AppState,
    headers: &HeaderMap,
    p: &str,
    before: &ScimUser,
    incoming: Incoming,
) -> ScimResult<Response> {
    let now = s.accounts.clock.now_ms();
    match incoming.active {
        Some(false) if before.active => {
            let outcome = s
                .store
                .deprovision(
                    p,
                    before.user_id,
                    DeprovisionAction::Deactivate,
                    ACTOR,
                    "identity provider set active to false",
                    now,
                )
                .await?;
            if let Deprovisioned::Refused(why) = outcome {
                return Err(refused(why.to_string()));
            }
            // The person's tokens were revoked with the deactivation: stop them on this node now.
            s.tokens.clear();
        }
        Some(true) if !before.active => {
            s.store
                .set_member_active(p, before.user_id, true, now)
                .await?;
        }
        _ => {}
    }
    let email = incoming.email();
    let display_name = incoming.display_name();
    s.store
        .scim_update_user(
            p,
            before.user_id,
            &ScimUserInput {
                user_name: &incoming.user_name,
                external_id: incoming.external_id.as_deref(),
                email: &email,
                display_name: &display_name,
                attributes: &incoming.attributes,
            },
            now,
        )
        .await?;
    let after = s
        .store
        .scim_user(p, before.user_id)
        .await?
        .ok_or_else(|| ScimProblem::not_found(&before.user_id.to_string()))?;
    audit(
        s,
        p,
        "scim.user.update",
        before.user_id,
        Some(&audit_view(before)),
        Some(&audit_view(&after)),
    )
    .await?;
    let base = base_url(s, headers, p);
    Ok(scim_json(StatusCode::OK, &user_view(&after, &base)))
}

async fn existing(s: &AppState, p: &str, id: &str) -> ScimResult<ScimUser> {
    s.store
        .scim_user(p, user_id_of(id)?)
        .await?
        .ok_or_else(|| ScimProblem::not_found(id))
}

async fn replace_user(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((p, id)): Path<(String, String)>,
    body: Bytes,
) -> ScimResult<Response> {
    authenticate(&s, &headers, &p).await?;
    let before = existing(&s, &p, &id).await?;
    let incoming = parse_user(&body)?;
    update_user(&s, &headers, &p, &before, incoming).await
}

#[derive(Debug, Deserialize)]
struct PatchRequest {
    #[serde(default)]
    schemas: Vec<String>,
    #[serde(rename = "Operations", alias = "operations")]
    operations: Vec<PatchOperation>,
}

#[derive(Debug, Deserialize)]
struct PatchOperation {
    op: String,
    path: Option<String>,
    value: Option<Value>,
}

async fn patch_user(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((p, id)): Path<(String, String)>,
    body: Bytes,
) -> ScimResult<Response> {
    authenticate(&s, &headers, &p).await?;
    let before = existing(&s, &p, &id).await?;
    let request: PatchRequest = serde_json::from_slice(&body)
        .map_err(|e| ScimProblem::bad("invalidSyntax", format!("not a PatchOp: {e}")))?;
    if !request.schemas.is_empty() && !request.schemas.iter().any(|x| x == PATCH_SCHEMA) {
        return Err(ScimProblem::bad(
            "invalidSyntax",
            format!("schemas must contain {PATCH_SCHEMA}"),
        ));
    }
    let mut resource = before.attributes.as_object().cloned().unwrap_or_default();
    resource.insert("userName".into(), json!(before.user_name));
    if let Some(x) = &before.external_id {
        resource.insert("externalId".into(), json!(x));
    }
    resource.insert("active".into(), json!(before.active));
    for op in request.operations {
        apply_patch(&mut resource, &op.op, op.path.as_deref(), op.value)?;
    }
    let incoming = incoming_from(resource)?;
    update_user(&s, &headers, &p, &before, incoming).await
}

async fn delete_user(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((p, id)): Path<(String, String)>,
) -> ScimResult<StatusCode> {
    authenticate(&s, &headers, &p).await?;
    let before = existing(&s, &p, &id).await?;
    let outcome = s
        .store
        .deprovision(
            &p,
            before.user_id,
            DeprovisionAction::Remove,
            ACTOR,
            "identity provider deleted the user",
            s.accounts.clock.now_ms(),
        )
        .await?;
    match outcome {
        Deprovisioned::Refused(why) => Err(refused(why.to_string())),
        Deprovisioned::Done { .. } => {
            s.tokens.clear();
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
