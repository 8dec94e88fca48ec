//! "Log in with the IdP": each partner's OpenID provider, the login through it (with linking,
//! the partner chooser, the one-time confirmation and just-in-time provisioning), "Require
//! login with the IdP" with its exemptions, and OpenID back-channel logout.
//!
//! The decisions are `psabridge_identity::sso`'s; the OpenID checks are `psabridge_oidc`'s;
//! this module gathers the facts, acts on the decision and audits each step. A login in flight
//! is bound to a pre-auth cookie of the browser that started it (the cookie's hash is stored
//! with the pending login), so a callback, a chooser or a confirmation only works in that
//! browser. Since there is no portal yet, the callback and the steps after it answer JSON, or
//! redirect to the portal when [`SsoConfig::portal_url`] is set.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use base64::Engine as _;
use psabridge_core::secret::Secret;
use psabridge_identity::Role;
use psabridge_identity::secret_token::{new_token, token_hash};
use psabridge_identity::sso::{
    Candidate, Enforcement, LinkDecision, LocalLoginFacts, ProviderEmail, Provisioning,
    can_require_idp, decide_link, decide_local_login, proves_idp_setup,
};
use psabridge_identity::totp;
use psabridge_oidc::{CallbackParams, IdpConfig, OidcError, PendingLogin, Provider};
use psabridge_store::identity::{Membership, NewSession, User};
use psabridge_store::sso::{SsoContinuation, SsoSettings, SsoSettingsUpdate};
use serde_json::{Value, json};

use crate::AppState;
use crate::accounts::{
    audit_account, body_json, client_address, invalid, memberships_view, partner_ids, string_field,
    throttle_decision, throttle_key, throttle_refusal, user_view, verify_password,
};
use crate::auth::Caller;
use crate::problem::Problem;

/// The path the provider sends the browser back to (register it at the provider).
pub const CALLBACK_PATH: &str = "/api/v1/auth/sso/callback";

/// Settings of the login through identity providers.
pub struct SsoConfig {
    /// Where to send the browser after the callback; `None`: answer JSON.
    pub portal_url: Option<String>,
    /// How long a login may stay at the provider, and a chooser or confirmation wait.
    pub login_lifetime: Duration,
    /// Discovered providers per partner, with the settings they were discovered for.
    providers: Mutex<HashMap<String, CachedProvider>>,
}

/// A discovered provider and the settings (`updated_at`, issuer) it was discovered with.
type CachedProvider = (i64, String, Arc<Provider>);

impl Default for SsoConfig {
    fn default() -> Self {
        SsoConfig {
            portal_url: None,
            login_lifetime: Duration::from_secs(600),
            providers: Mutex::new(HashMap::new()),
        }
    }
}

impl SsoConfig {
    pub fn with_portal_url(portal_url: Option<String>) -> SsoConfig {
        SsoConfig {
            portal_url,
            ..Default::default()
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/partners/{p}/sso",
            get(get_settings).put(put_settings),
        )
        .route(
            "/api/v1/partners/{p}/sso/exemptions",
            get(list_exemptions).post(add_exemption),
        )
        .route(
            "/api/v1/partners/{p}/sso/exemptions/{user}",
            delete(remove_exemption),
        )
        .route("/api/v1/auth/sso/{p}/start", get(start))
        .route("/api/v1/auth/sso/callback", get(callback))
        .route("/api/v1/auth/sso/choose", get(choices).post(choose))
        .route("/api/v1/auth/sso/confirm", post(confirm))
        .route(
            "/api/v1/auth/sso/backchannel-logout",
            post(backchannel_logout),
        )
}

// ---- helpers ------------------------------------------------------------------------------

fn browser_cookie_name(s: &AppState) -> &'static str {
    if s.accounts.secure_cookies {
        "__Host-psab_sso"
    } else {
        "psab_sso"
    }
}

fn browser_cookie(s: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if s.accounts.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    // Lax: the provider's redirect back is a top-level GET, which Lax cookies go with.
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/api/v1/auth/sso; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        browser_cookie_name(s)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    crate::accounts::session_cookie(headers, name)
}

/// The hash of the browser's pre-auth cookie, or a refusal.
fn browser_hash(s: &AppState, headers: &HeaderMap) -> Result<String, Problem> {
    cookie_value(headers, browser_cookie_name(s))
        .map(token_hash)
        .ok_or_else(|| {
            Problem::new(StatusCode::BAD_REQUEST, "No login in progress").detail(
                "this browser has no login through the identity provider in progress; start again",
            )
        })
}

fn now_ms(s: &AppState) -> i64 {
    s.accounts.clock.now_ms()
}

fn now_utc(s: &AppState) -> chrono::DateTime<chrono::Utc> {
    psabridge_store::from_millis(now_ms(s))
}

fn redirect_uri(s: &AppState) -> Result<String, Problem> {
    let base = s.public_url.as_deref().ok_or_else(|| {
        Problem::new(StatusCode::CONFLICT, "No public URL").detail(
            "logging in through an identity provider needs the service's public URL (public_url)",
        )
    })?;
    Ok(format!("{}{CALLBACK_PATH}", base.trim_end_matches('/')))
}

fn idp_config(s: &AppState, settings: &SsoSettings) -> Result<IdpConfig, Problem> {
    Ok(IdpConfig {
        issuer: settings.issuer.clone(),
        client_id: settings.client_id.clone(),
        client_secret: settings.client_secret.clone(),
        redirect_uri: redirect_uri(s)?,
        scopes: settings.scopes.clone(),
    })
}

/// Discover a provider under the operator's outbound policy (the same as the PSAs').
async fn discover(s: &AppState, config: &IdpConfig) -> Result<Provider, OidcError> {
    let outbound = s.engine.connectors.outbound();
    Provider::discover_with(config, outbound.shared_policy(), outbound.client_builder()).await
}

/// The partner's discovered provider, discovering it when its settings changed.
async fn provider_of(s: &AppState, settings: &SsoSettings) -> Result<Arc<Provider>, OidcError> {
    let key = (settings.updated_at, settings.issuer.clone());
    if let Some((at, issuer, p)) = s
        .sso
        .providers
        .lock()
        .expect("providers lock")
        .get(&settings.partner_id)
        && (*at, issuer.clone()) == key
    {
        return Ok(p.clone());
    }
    let config = idp_config(s, settings)
        .map_err(|_| OidcError::Config("the service has no public URL for the callback".into()))?;
    let provider = Arc::new(discover(s, &config).await?);
    s.sso.providers.lock().expect("providers lock").insert(
        settings.partner_id.clone(),
        (key.0, key.1, provider.clone()),
    );
    Ok(provider)
}

/// The name of the failed check, for the audit log.
fn check_name(e: &OidcError) -> String {
    let debug = format!("{e:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn role_of(memberships: &[Membership], partner: &str) -> Option<Role> {
    memberships
        .iter()
        .find(|m| m.active && m.partner_id == partner)
        .and_then(|m| Role::parse(&m.role))
}

/// The longest name a login button shows for the provider, in characters.
const MAX_DISPLAY_NAME: usize = 60;

pub(crate) fn settings_view(s: &AppState, settings: Option<&SsoSettings>) -> Value {
    let redirect = redirect_uri(s).ok();
    match settings {
        None => json!({"configured": false, "redirect_uri": redirect}),
        Some(x) => json!({
            "configured": true,
            "issuer": x.issuer,
            "client_id": x.client_id,
            "client_secret_set": true,
            "scopes": x.scopes,
            "require_idp": x.require_idp,
            "jit_enabled": x.jit_enabled,
            "jit_default_role": x.jit_default_role,
            "display_name": x.display_name,
            "first_admin_idp_login_at": x.first_admin_idp_login_at.map(psabridge_store::from_millis),
            "redirect_uri": redirect,
        }),
    }
}

// ---- settings and exemptions --------------------------------------------------------------

async fn get_settings(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let settings = s.store.sso_settings(&p).await?;
    Ok(Json(settings_view(&s, settings.as_ref())))
}

fn bool_field(
    body: &serde_json::Map<String, Value>,
    name: &str,
    default: bool,
) -> Result<bool, Problem> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(name, "must be true or false")),
    }
}

async fn put_settings(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, Problem> {
    let body = body_json(&bytes)?;
    save_settings(&s, &caller, &p, &body).await.map(Json)
}

/// Check, test against the provider (discovery) and store a partner's IdP settings, audited;
/// the settings as shown. The API's `PUT …/sso` and the portal's security page both call it.
pub(crate) async fn save_settings(
    s: &AppState,
    caller: &Caller,
    p: &str,
    body: &serde_json::Map<String, Value>,
) -> Result<Value, Problem> {
    let s = s.clone();
    let p = p.to_string();
    caller.require_partner(&p)?;
    s.store.partner(&p).await?;
    let before = s.store.sso_settings(&p).await?;
    let issuer = string_field(body, "issuer", true)?.unwrap_or_default();
    let issuer = issuer.trim().to_owned();
    match url::Url::parse(&issuer) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
        _ => return Err(invalid("issuer", "must be an https URL")),
    }
    let client_id = string_field(body, "client_id", true)?.unwrap_or_default();
    let client_secret = string_field(body, "client_secret", false)?;
    if client_secret.as_deref().is_some_and(|c| c.is_empty()) {
        return Err(invalid("client_secret", "must not be empty"));
    }
    if client_secret.is_none() && before.is_none() {
        return Err(invalid("client_secret", "is required"));
    }
    let scopes: Vec<String> = match body.get("scopes") {
        None | Some(Value::Null) => vec!["email".into(), "profile".into()],
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for v in a {
                match v.as_str() {
                    Some(x) if !x.trim().is_empty() && !x.contains(char::is_whitespace) => {
                        out.push(x.to_owned())
                    }
                    _ => return Err(invalid("scopes", "must be scope names without spaces")),
                }
            }
            out
        }
        Some(_) => return Err(invalid("scopes", "must be an array of strings")),
    };
    let display_name = string_field(body, "display_name", false)?
        .map(|d| d.trim().to_owned())
        .unwrap_or_default();
    if display_name.chars().count() > MAX_DISPLAY_NAME {
        return Err(invalid(
            "display_name",
            &format!("must be at most {MAX_DISPLAY_NAME} characters"),
        ));
    }
    let require_idp = bool_field(body, "require_idp", false)?;
    let jit_enabled = bool_field(body, "jit_enabled", false)?;
    let jit_default_role = match string_field(body, "jit_default_role", false)? {
        None => Role::ReadOnly,
        Some(r) => match Role::parse(&r) {
            Some(role) if !role.is_privileged() => role,
            Some(_) => {
                return Err(invalid(
                    "jit_default_role",
                    "Primary and Security Admin are never granted by provisioning",
                ));
            }
            None => {
                return Err(invalid(
                    "jit_default_role",
                    "must be admin, technician or read_only",
                ));
            }
        },
    };
    // The switch: only once an administrator proved the provider works (for this issuer).
    if require_idp {
        let proven = before
            .as_ref()
            .filter(|b| b.issuer == issuer)
            .and_then(|b| b.first_admin_idp_login_at);
        if let Err(refusal) = can_require_idp(true, proven) {
            return Err(
                Problem::new(StatusCode::CONFLICT, "The IdP cannot be required yet")
                    .field("require_idp", refusal.message()),
            );
        }
    }
    // Test: discover the provider with these settings; a failure names the field.
    let secret = client_secret
        .clone()
        .map(Secret::new)
        .or_else(|| before.as_ref().map(|b| b.client_secret.clone()))
        .unwrap_or_else(|| Secret::new(""));
    let test = IdpConfig {
        issuer: issuer.clone(),
        client_id: client_id.clone(),
        client_secret: secret,
        redirect_uri: redirect_uri(&s)?,
        scopes: scopes.clone(),
    };
    if let Err(e) = s.engine.connectors.outbound().check_url(&issuer).await {
        return Err(invalid("issuer", &e.to_string()));
    }
    if let Err(e) = discover(&s, &test).await {
        return Err(invalid(
            "issuer",
            &format!("the OpenID provider could not be discovered: {e}"),
        ));
    }
    let now = now_ms(&s);
    s.store
        .put_sso_settings(
            &p,
            &SsoSettingsUpdate {
                issuer: &issuer,
                client_id: &client_id,
                client_secret: client_secret.as_deref(),
                scopes: &scopes,
                require_idp,
                jit_enabled,
                jit_default_role: jit_default_role.as_str(),
                display_name: &display_name,
            },
            now,
        )
        .await?;
    let after = s.store.sso_settings(&p).await?;
    let view = settings_view(&s, after.as_ref());
    let mut before_view = settings_view(&s, before.as_ref());
    if let Some(m) = before_view.as_object_mut() {
        m.remove("redirect_uri");
    }
    s.store
        .record_audit(
            &psabridge_store::audit::NewAuditEntry {
                partner_id: Some(&p),
                actor: &caller.1.0,
                action: "sso.settings_updated",
                target: &format!("partner:{p}"),
                before: Some(&before_view),
                after: Some(&json!({
                    "view": view,
                    "client_secret_changed": client_secret.is_some(),
                })),
            },
            now,
        )
        .await?;
    Ok(view)
}

async fn list_exemptions(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require_partner(&p)?;
    Ok(Json(json!({"exemptions": exemptions(&s, &p).await?})))
}

/// The partner's users who may still log in with a password while the IdP is required.
pub(crate) async fn exemptions(s: &AppState, p: &str) -> Result<Vec<Value>, Problem> {
    s.store.partner(p).await?;
    let mut out = Vec::new();
    for id in s.store.sso_exemptions(p).await? {
        if let Some(m) = s.store.member(p, id).await? {
            out.push(json!({"user": id, "email": m.email, "name": m.name, "role": m.role}));
        }
    }
    Ok(out)
}

async fn add_exemption(
    State(s): State<AppState>,
    caller: Caller,
    Path(p): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let body = body_json(&bytes)?;
    let Some(user) = body.get("user").and_then(Value::as_i64) else {
        return Err(invalid("user", "must be the id of a user of the partner"));
    };
    exempt(&s, &caller, &p, user).await?;
    Ok((StatusCode::CREATED, Json(json!({"user": user}))).into_response())
}

/// Let `user` keep logging in with a password while the IdP is required (audited).
pub(crate) async fn exempt(
    s: &AppState,
    caller: &Caller,
    p: &str,
    user: i64,
) -> Result<(), Problem> {
    caller.require_partner(p)?;
    s.store.partner(p).await?;
    if s.store.member(p, user).await?.is_none() {
        return Err(invalid("user", "is not a user of this partner"));
    }
    s.store.add_sso_exemption(p, user, now_ms(s)).await?;
    audit_account(
        s,
        &[p.to_string()],
        &caller.1.0,
        "sso.exemption_added",
        &format!("user:{user}"),
        None,
    )
    .await
}

async fn remove_exemption(
    State(s): State<AppState>,
    caller: Caller,
    Path((p, user)): Path<(String, i64)>,
) -> Result<StatusCode, Problem> {
    unexempt(&s, &caller, &p, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End `user`'s exemption (audited).
pub(crate) async fn unexempt(
    s: &AppState,
    caller: &Caller,
    p: &str,
    user: i64,
) -> Result<(), Problem> {
    caller.require_partner(p)?;
    s.store.partner(p).await?;
    s.store.remove_sso_exemption(p, user).await?;
    audit_account(
        s,
        &[p.to_string()],
        &caller.1.0,
        "sso.exemption_removed",
        &format!("user:{user}"),
        None,
    )
    .await
}

// ---- enforcement of the local login -------------------------------------------------------

/// Called by the password login once the credentials are proven: refuses (403, audited) a
/// person whose partner requires the identity provider and who is not exempt; audits the
/// exemptions that let a password login through.
pub(crate) async fn enforce_local_login(
    s: &AppState,
    user: &User,
    active: &[Membership],
) -> Result<(), Problem> {
    let Some(only) = active.first() else {
        return Ok(());
    };
    let settings = if active.len() == 1 {
        s.store.sso_settings(&only.partner_id).await?
    } else {
        None
    };
    let requires = settings.as_ref().is_some_and(|x| x.require_idp);
    if !requires && active.len() == 1 {
        return Ok(());
    }
    let role = Role::parse(&only.role).unwrap_or(Role::ReadOnly);
    let listed = active.len() == 1 && s.store.is_sso_exempt(&only.partner_id, user.id).await?;
    let decision = decide_local_login(LocalLoginFacts {
        partner_requires_idp: requires,
        role,
        listed_exception: listed,
        partner_count: active.len(),
    });
    if decision == Enforcement::NotRequired {
        return Ok(());
    }
    // With several partners, only those that require the IdP care about the exemption.
    let mut concerned = Vec::new();
    for m in active {
        if s.store
            .sso_settings(&m.partner_id)
            .await?
            .is_some_and(|x| x.require_idp)
        {
            concerned.push(m.partner_id.clone());
        }
    }
    if concerned.is_empty() {
        return Ok(());
    }
    let actor = format!("user:{} {:?}", user.id, user.email);
    if decision.allows() {
        audit_account(
            s,
            &concerned,
            &actor,
            "auth.sso_exempt_password_login",
            &format!("user:{}", user.id),
            Some(json!({"exemption": decision.as_str()})),
        )
        .await?;
        return Ok(());
    }
    audit_account(
        s,
        &concerned,
        &actor,
        "auth.login_refused",
        &format!("user:{}", user.id),
        Some(json!({"reason": "require_idp"})),
    )
    .await?;
    // The provider as people know it: the login button's name, else its issuer.
    let idp = settings
        .map(|x| {
            if x.display_name.is_empty() {
                x.issuer
            } else {
                x.display_name
            }
        })
        .unwrap_or_default();
    Err(
        Problem::forbidden(&format!("Your company requires Log in with {idp}")).with(
            "sso_start",
            json!(format!("/api/v1/auth/sso/{}/start", only.partner_id)),
        ),
    )
}

// ---- the login ----------------------------------------------------------------------------

async fn start(
    State(s): State<AppState>,
    Path(p): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let Some(settings) = s.store.sso_settings(&p).await? else {
        return Err(Problem::not_found(format!(
            "partner '{p}' with an identity provider"
        )));
    };
    let provider = provider_of(&s, &settings).await.map_err(|e| {
        Problem::new(
            StatusCode::BAD_GATEWAY,
            "The identity provider is unreachable",
        )
        .detail(e.to_string())
    })?;
    let now = now_ms(&s);
    let (url, pending) = provider.begin_login(now_utc(&s));
    let existing = cookie_value(&headers, browser_cookie_name(&s)).map(str::to_owned);
    let browser = existing.unwrap_or_else(new_token);
    let payload = serde_json::to_string(&pending).map_err(Problem::internal)?;
    let lifetime = s.sso.login_lifetime;
    s.store
        .save_pending_login(
            &token_hash(&pending.state),
            &token_hash(&browser),
            &p,
            &payload,
            now + lifetime.as_millis() as i64,
        )
        .await?;
    let mut resp = StatusCode::FOUND.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(url.as_str()).map_err(Problem::internal)?,
    );
    h.insert(
        header::SET_COOKIE,
        browser_cookie(&s, &browser, lifetime.as_secs()),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Audit a failed login through the provider and answer it.
async fn sso_failure(
    s: &AppState,
    partners: &[String],
    reason: &str,
    detail: Value,
    status: StatusCode,
    message: &str,
    address: &str,
) -> Result<Response, Problem> {
    let mut after = json!({"reason": reason, "client_address": address});
    if let (Some(a), Some(d)) = (after.as_object_mut(), detail.as_object()) {
        a.extend(d.clone());
    }
    audit_account(
        s,
        partners,
        &format!("address:{address}"),
        "auth.sso_failed",
        "sso",
        Some(after),
    )
    .await?;
    Err(
        Problem::new(status, "Login through the identity provider failed")
            .detail(message)
            .with("reason", json!(reason)),
    )
}

async fn callback(
    State(s): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    req: Request,
) -> Result<Response, Problem> {
    let address = client_address(req.extensions());
    let headers = req.headers().clone();
    let Some(browser) = cookie_value(&headers, browser_cookie_name(&s)).map(token_hash) else {
        return sso_failure(
            &s,
            &[],
            "no_login_in_progress",
            json!({}),
            StatusCode::BAD_REQUEST,
            "this browser has no login through the identity provider in progress",
            &address,
        )
        .await;
    };
    let get = |k: &str| params.get(k).cloned();
    let callback = CallbackParams {
        code: get("code"),
        state: get("state"),
        iss: get("iss"),
        error: get("error"),
        error_description: get("error_description"),
    };
    let now = now_ms(&s);
    let state_hash = token_hash(callback.state.as_deref().unwrap_or_default());
    let Some((partner, payload)) = s
        .store
        .take_pending_login(&state_hash, &browser, now)
        .await?
    else {
        // Unknown, already used, expired, or started in another browser.
        let e = OidcError::StateMismatch;
        return sso_failure(
            &s,
            &[],
            "state",
            json!({"check": check_name(&e), "error": e.to_string()}),
            StatusCode::BAD_REQUEST,
            "this login is unknown, used or expired; start again",
            &address,
        )
        .await;
    };
    let partners = vec![partner.clone()];
    let pending: PendingLogin =
        serde_json::from_str(payload.expose()).map_err(Problem::internal)?;
    let Some(settings) = s.store.sso_settings(&partner).await? else {
        return Err(Problem::not_found(format!(
            "partner '{partner}' with an identity provider"
        )));
    };
    let provider = match provider_of(&s, &settings).await {
        Ok(p) => p,
        Err(e) => {
            return sso_failure(
                &s,
                &partners,
                "discovery",
                json!({"check": check_name(&e), "error": e.to_string()}),
                StatusCode::BAD_GATEWAY,
                "the identity provider is unreachable",
                &address,
            )
            .await;
        }
    };
    let identity = match provider
        .finish_login(&pending, &callback, now_utc(&s))
        .await
    {
        Ok(i) => i,
        Err(e) => {
            return sso_failure(
                &s,
                &partners,
                "oidc",
                json!({"check": check_name(&e), "error": e.to_string()}),
                StatusCode::UNAUTHORIZED,
                &e.to_string(),
                &address,
            )
            .await;
        }
    };

    // Who is it? (issuer, subject) first, always; the email only to link a new identity.
    let user_id = match s
        .store
        .user_of_identity(&identity.issuer, &identity.subject)
        .await?
    {
        Some(id) => id,
        None => {
            let existing = match identity.email.as_deref() {
                Some(e) if !e.trim().is_empty() => s.store.user_by_email(e).await?,
                _ => None,
            };
            let mut candidates = Vec::new();
            if let Some(u) = &existing {
                let of_user = s.store.memberships_of(u.id).await?;
                candidates.push(Candidate {
                    user_id: u.id,
                    active: u.active,
                    roles: of_user
                        .iter()
                        .filter_map(|m| Role::parse(&m.role))
                        .collect(),
                    can_prove_account: u.password_hash.is_some() && u.totp_enabled,
                    member_of_partner: of_user.iter().any(|m| m.partner_id == partner),
                });
            }
            let provisioning = Provisioning {
                enabled: settings.jit_enabled,
                default_role: Role::parse(&settings.jit_default_role).unwrap_or(Role::ReadOnly),
            };
            let decision = decide_link(
                &ProviderEmail {
                    email: identity.email.clone(),
                    verified: identity.email_verified,
                },
                &candidates,
                provisioning,
            );
            let subject_target = format!("identity:{} {}", identity.issuer, identity.subject);
            match decision {
                LinkDecision::Link(id) => {
                    s.store
                        .link_identity(&identity.issuer, &identity.subject, id, now)
                        .await?;
                    audit_account(
                        &s,
                        &partners,
                        &format!("user:{id}"),
                        "auth.sso_linked",
                        &subject_target,
                        Some(json!({"by": "verified_email"})),
                    )
                    .await?;
                    id
                }
                LinkDecision::ConfirmWithPassword(id) => {
                    s.store
                        .put_sso_continuation(
                            &browser,
                            &SsoContinuation {
                                kind: "confirm".into(),
                                user_id: id,
                                issuer: identity.issuer.clone(),
                                subject: identity.subject.clone(),
                                idp_sid: identity.sid.clone(),
                                partner_id: Some(partner.clone()),
                                expires_at: now + s.sso.login_lifetime.as_millis() as i64,
                            },
                        )
                        .await?;
                    audit_account(
                        &s,
                        &partners,
                        &format!("user:{id}"),
                        "auth.sso_confirm_required",
                        &subject_target,
                        Some(json!({"email_verified": identity.email_verified})),
                    )
                    .await?;
                    return Ok(next_step(
                        &s,
                        "confirm",
                        json!({
                            "status": "confirm",
                            "email": identity.email,
                            "detail": "confirm once with this account's password and TOTP code: POST /api/v1/auth/sso/confirm",
                        }),
                    ));
                }
                LinkDecision::Provision(role) => {
                    let email = identity.email.clone().unwrap_or_default();
                    // The provider's claims are bounded like any person's fields.
                    let name = psabridge_identity::people::clean_name(
                        identity.name.as_deref().unwrap_or(&email),
                    );
                    if psabridge_identity::people::check_length(
                        &email,
                        psabridge_identity::people::EMAIL_MAX_CHARS,
                    )
                    .is_err()
                    {
                        return sso_failure(
                            &s,
                            &partners,
                            "email_too_long",
                            json!({"identity": subject_target}),
                            StatusCode::FORBIDDEN,
                            "the identity provider sent an email address longer than 254 characters",
                            &address,
                        )
                        .await;
                    }
                    let id = s.store.create_user(&email, &name, now).await?;
                    s.store
                        .add_membership(id, &partner, role.as_str(), now)
                        .await?;
                    s.store
                        .link_identity(&identity.issuer, &identity.subject, id, now)
                        .await?;
                    audit_account(
                        &s,
                        &partners,
                        &format!("user:{id} {email:?}"),
                        "auth.sso_provisioned",
                        &format!("user:{id}"),
                        Some(json!({"role": role.as_str(), "identity": subject_target})),
                    )
                    .await?;
                    id
                }
                LinkDecision::Deny(why) => {
                    return sso_failure(
                        &s,
                        &partners,
                        why.as_str(),
                        json!({"identity": subject_target}),
                        StatusCode::FORBIDDEN,
                        why.message(),
                        &address,
                    )
                    .await;
                }
            }
        }
    };
    let login = IdpLogin {
        user_id,
        issuer: identity.issuer,
        sid: identity.sid,
        subject: identity.subject,
    };
    log_in_or_choose(&s, &browser, &login, &address).await
}

/// A proven identity, linked to `user_id`.
struct IdpLogin {
    user_id: i64,
    issuer: String,
    subject: String,
    sid: Option<String>,
}

/// The partners the person may open through this provider: active memberships at partners
/// whose provider is this issuer.
async fn openable_partners(
    s: &AppState,
    user: i64,
    issuer: &str,
) -> Result<Vec<Membership>, Problem> {
    let with_issuer = s.store.partners_with_issuer(issuer).await?;
    Ok(s.store
        .memberships_of(user)
        .await?
        .into_iter()
        .filter(|m| m.active && with_issuer.contains(&m.partner_id))
        .collect())
}

async fn log_in_or_choose(
    s: &AppState,
    browser: &str,
    login: &IdpLogin,
    address: &str,
) -> Result<Response, Problem> {
    let now = now_ms(s);
    let user = s.store.user_by_id(login.user_id).await?;
    let memberships = match &user {
        Some(u) => s.store.memberships_of(u.id).await?,
        None => Vec::new(),
    };
    let Some(user) = user.filter(|u| u.active) else {
        return sso_failure(
            s,
            &partner_ids(&memberships),
            "deactivated",
            json!({"user": login.user_id}),
            StatusCode::FORBIDDEN,
            "this account is deactivated",
            address,
        )
        .await;
    };
    let openable = openable_partners(s, user.id, &login.issuer).await?;
    match openable.as_slice() {
        [] => {
            sso_failure(
                s,
                &partner_ids(&memberships),
                "no_partner",
                json!({"user": user.id}),
                StatusCode::FORBIDDEN,
                "this account belongs to no active partner that uses this identity provider",
                address,
            )
            .await
        }
        [one] => open_session(s, &user, &one.partner_id, login, address).await,
        several => {
            s.store
                .put_sso_continuation(
                    browser,
                    &SsoContinuation {
                        kind: "choose".into(),
                        user_id: user.id,
                        issuer: login.issuer.clone(),
                        subject: login.subject.clone(),
                        idp_sid: login.sid.clone(),
                        partner_id: None,
                        expires_at: now + s.sso.login_lifetime.as_millis() as i64,
                    },
                )
                .await?;
            Ok(next_step(
                s,
                "choose",
                json!({"status": "choose", "partners": memberships_view(several)}),
            ))
        }
    }
}

/// Answer a step that needs the person (choose, confirm): JSON, or the portal's page.
fn next_step(s: &AppState, step: &str, body: Value) -> Response {
    let mut resp = match &s.sso.portal_url {
        Some(portal) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) =
                HeaderValue::from_str(&format!("{}/sso/{step}", portal.trim_end_matches('/')))
            {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        None => Json(body).into_response(),
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn open_session(
    s: &AppState,
    user: &User,
    partner: &str,
    login: &IdpLogin,
    address: &str,
) -> Result<Response, Problem> {
    let cfg = &s.accounts;
    let now = now_ms(s);
    let memberships = s.store.memberships_of(user.id).await?;
    let active: Vec<Membership> = memberships.iter().filter(|m| m.active).cloned().collect();
    let session_id = new_token();
    let csrf = new_token();
    let expires_at = now + cfg.idle_timeout.as_millis() as i64;
    let id = s
        .store
        .create_session(
            &NewSession {
                id_hash: &token_hash(&session_id),
                user_id: user.id,
                partner_id: Some(partner),
                auth_method: "idp",
                idp_sid: login.sid.as_deref(),
                csrf_token: &csrf,
                client_address: Some(address),
                expires_at,
            },
            now,
        )
        .await?;
    let actor = format!("user:{} {:?}", user.id, user.email);
    if role_of(&active, partner).is_some_and(proves_idp_setup)
        && s.store.record_admin_idp_login(partner, now).await?
    {
        audit_account(
            s,
            &[partner.to_owned()],
            &actor,
            "sso.first_admin_login",
            &format!("partner:{partner}"),
            None,
        )
        .await?;
    }
    // Recorded at the partner the session is for, not at the person's other partners.
    audit_account(
        s,
        &[partner.to_owned()],
        &actor,
        "auth.login",
        &format!("session:{id}"),
        Some(json!({"auth_method": "idp", "partner": partner, "client_address": address})),
    )
    .await?;
    let mut resp = match &s.sso.portal_url {
        Some(portal) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(portal) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        None => Json(json!({
            "status": "logged_in",
            "user": user_view(user),
            "session": {"id": id, "auth_method": "idp", "expires_at": psabridge_store::from_millis(expires_at)},
            "partner": partner,
            "memberships": memberships_view(&active),
            "csrf_token": csrf,
        }))
        .into_response(),
    };
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        cfg.cookie(&session_id, cfg.idle_timeout.as_secs()),
    );
    h.append(header::SET_COOKIE, browser_cookie(s, "", 0));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The portal's chooser and confirmation pages post HTML forms here; scripts post JSON. Both
/// are bound to the browser's login cookie, which another site's form does not carry.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn body_fields(bytes: &Bytes, form: bool) -> Result<serde_json::Map<String, Value>, Problem> {
    if !form {
        return body_json(bytes);
    }
    Ok(url::form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect())
}

async fn choices(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, Problem> {
    Ok(Json(
        json!({"partners": memberships_view(&partners_to_choose(&s, &headers).await?)}),
    ))
}

/// The partners a login waiting for this browser's choice may open (the portal's chooser
/// and `GET /api/v1/auth/sso/choose`).
pub(crate) async fn partners_to_choose(
    s: &AppState,
    headers: &HeaderMap,
) -> Result<Vec<Membership>, Problem> {
    let browser = browser_hash(s, headers)?;
    let Some(c) = s
        .store
        .sso_continuation(&browser, "choose", now_ms(s))
        .await?
    else {
        return Err(Problem::not_found(
            "a partner choice waiting for this browser",
        ));
    };
    openable_partners(s, c.user_id, &c.issuer).await
}

async fn choose(State(s): State<AppState>, req: Request) -> Result<Response, Problem> {
    let address = client_address(req.extensions());
    let browser = browser_hash(&s, req.headers())?;
    let form = is_form(req.headers());
    let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Body too large"))?;
    let body = body_fields(&bytes, form)?;
    let partner = string_field(&body, "partner", true)?.unwrap_or_default();
    let now = now_ms(&s);
    let Some(c) = s.store.sso_continuation(&browser, "choose", now).await? else {
        return Err(Problem::not_found(
            "a partner choice waiting for this browser",
        ));
    };
    let openable = openable_partners(&s, c.user_id, &c.issuer).await?;
    if !openable.iter().any(|m| m.partner_id == partner) {
        return Err(invalid("partner", "is not one of the partners offered"));
    }
    if s.store
        .take_sso_continuation(&browser, "choose", now)
        .await?
        .is_none()
    {
        return Err(Problem::not_found(
            "a partner choice waiting for this browser",
        ));
    }
    let Some(user) = s.store.user_by_id(c.user_id).await?.filter(|u| u.active) else {
        return Err(Problem::forbidden("this account is deactivated"));
    };
    let login = IdpLogin {
        user_id: c.user_id,
        issuer: c.issuer,
        subject: c.subject,
        sid: c.idp_sid,
    };
    open_session(&s, &user, &partner, &login, &address).await
}

/// Prove an existing account once (password and TOTP code) to link the identity to it.
async fn confirm(State(s): State<AppState>, req: Request) -> Result<Response, Problem> {
    let address = client_address(req.extensions());
    let key = throttle_key(req.extensions());
    let browser = browser_hash(&s, req.headers())?;
    let form = is_form(req.headers());
    let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Body too large"))?;
    let body = body_fields(&bytes, form)?;
    let password = string_field(&body, "password", true)?.unwrap_or_default();
    let code = string_field(&body, "totp_code", true)?.unwrap_or_default();
    let now = now_ms(&s);
    let Some(c) = s.store.sso_continuation(&browser, "confirm", now).await? else {
        return Err(Problem::not_found(
            "a link confirmation waiting for this browser",
        ));
    };
    let Some(user) = s.store.user_by_id(c.user_id).await? else {
        return Err(Problem::not_found("the account to confirm"));
    };
    let cfg = &s.accounts;
    let partners = partner_ids(&s.store.memberships_of(user.id).await?);
    // The same throttling as the password login: these are the same credentials (the code
    // is always sent here, so a guarded account is checked with it).
    let decision = throttle_decision(&s, &user.email, &key, true, now).await?;
    if let Some(refusal) = throttle_refusal(&s, decision, &user.email, &address).await? {
        return Ok(refusal);
    }
    let password_ok = verify_password(cfg.hashing, password, user.password_hash.clone()).await;
    let code_ok = if password_ok && user.totp_enabled {
        match s.store.totp_secret(user.id).await? {
            Some(secret) => {
                let secret =
                    totp::secret_from_base32(secret.expose()).map_err(Problem::internal)?;
                let last = user.totp_last_step.map(|x| x.max(0) as u64);
                match totp::verify(&secret, &code, (now / 1000) as u64, last) {
                    Ok(step) => s.store.accept_totp_step(user.id, step as i64).await?,
                    Err(_) => false,
                }
            }
            None => false,
        }
    } else {
        false
    };
    if !(password_ok && code_ok) {
        s.store.record_login_failure(&user.email, &key, now).await?;
        audit_account(
            &s,
            &partners,
            &format!("user:{} {:?}", user.id, user.email),
            "auth.sso_confirm_failed",
            &format!("user:{}", user.id),
            Some(json!({"reason": if password_ok {"totp"} else {"password"}, "client_address": address})),
        )
        .await?;
        return Err(Problem::unauthorized("the password or code is wrong"));
    }
    if s.store
        .take_sso_continuation(&browser, "confirm", now)
        .await?
        .is_none()
    {
        return Err(Problem::not_found(
            "a link confirmation waiting for this browser",
        ));
    }
    s.store.record_login_success(&user.email, &key, now).await?;
    s.store
        .link_identity(&c.issuer, &c.subject, user.id, now)
        .await?;
    audit_account(
        &s,
        &partners,
        &format!("user:{} {:?}", user.id, user.email),
        "auth.sso_linked",
        &format!("identity:{} {}", c.issuer, c.subject),
        Some(json!({"by": "password_totp"})),
    )
    .await?;
    let login = IdpLogin {
        user_id: user.id,
        issuer: c.issuer,
        subject: c.subject,
        sid: c.idp_sid,
    };
    log_in_or_choose(&s, &browser, &login, &address).await
}

// ---- back-channel logout ------------------------------------------------------------------

/// The `iss` and `aud` of a JWT, read WITHOUT verifying it: only to find which partner's
/// provider must verify it.
fn unverified_issuer_and_audience(jwt: &str) -> Option<(String, Vec<String>)> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let iss = claims.get("iss")?.as_str()?.to_owned();
    let aud = match claims.get("aud")? {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => return None,
    };
    Some((iss, aud))
}

async fn backchannel_logout(State(s): State<AppState>, req: Request) -> Result<Response, Problem> {
    let address = client_address(req.extensions());
    let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Body too large"))?;
    let token = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| invalid("logout_token", "is required"))?;
    let refuse = async |partners: &[String], e: OidcError| -> Result<Response, Problem> {
        audit_account(
            &s,
            partners,
            &format!("address:{address}"),
            "auth.sso_logout_refused",
            "sso",
            Some(json!({"check": check_name(&e), "error": e.to_string()})),
        )
        .await?;
        Err(Problem::new(StatusCode::BAD_REQUEST, "Logout token refused").detail(e.to_string()))
    };
    let Some((iss, aud)) = unverified_issuer_and_audience(&token) else {
        return refuse(
            &[],
            OidcError::MalformedToken("not a JWT with iss and aud".into()),
        )
        .await;
    };
    let mut settings = None;
    for p in s.store.partners_with_issuer(&iss).await? {
        if let Some(x) = s.store.sso_settings(&p).await?
            && aud.contains(&x.client_id)
        {
            settings = Some(x);
            break;
        }
    }
    let Some(settings) = settings else {
        return refuse(&[], OidcError::IssuerMismatch).await;
    };
    let partners = vec![settings.partner_id.clone()];
    let provider = match provider_of(&s, &settings).await {
        Ok(p) => p,
        Err(e) => return refuse(&partners, e).await,
    };
    let request = match provider.verify_logout_token(&token, now_utc(&s)) {
        Ok(r) => r,
        Err(e) => return refuse(&partners, e).await,
    };
    let now = now_ms(&s);
    if !s
        .store
        .remember_logout_token(
            &request.issuer,
            &request.jti,
            // Kept as long as the token would still verify (its expiry plus the clock skew).
            psabridge_store::millis(request.expires_at + psabridge_oidc::CLOCK_SKEW),
            now,
        )
        .await?
    {
        return refuse(&partners, OidcError::LogoutReplayed).await;
    }
    let ended = s
        .store
        .revoke_idp_sessions(
            &request.issuer,
            request.sid.as_deref(),
            request.subject.as_deref(),
            now,
        )
        .await?;
    let mut users = ended.clone();
    users.sort_unstable();
    users.dedup();
    for user in &users {
        let of_user = partner_ids(&s.store.memberships_of(*user).await?);
        audit_account(
            &s,
            &of_user,
            &format!("idp:{}", request.issuer),
            "auth.sso_backchannel_logout",
            &format!("user:{user}"),
            Some(json!({"sessions_ended": ended.iter().filter(|u| *u == user).count(), "sid": request.sid})),
        )
        .await?;
    }
    if users.is_empty() {
        audit_account(
            &s,
            &partners,
            &format!("idp:{}", request.issuer),
            "auth.sso_backchannel_logout",
            "sso",
            Some(json!({"sessions_ended": 0, "sid": request.sid})),
        )
        .await?;
    }
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
