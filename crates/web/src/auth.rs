//! Bearer tokens: random, shown once, stored as SHA-256 hashes; their scopes and expiry; and
//! who may see which partner.
//!
//! Token look-ups are cached for a few seconds: ingestion authenticates every request and must
//! not cost a database read each time. A token revoked on another node therefore stops working
//! within the cache's lifetime (10 s), which the API documentation states; a revocation on this
//! node (by the API, or by deactivating or removing the person who made the token) clears the
//! cache at once. Expiry is judged on every request against the clock, never cached. The time
//! a token was last used is written at most once a minute per token and node, not per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

use axum::http::HeaderMap;
use psabridge_identity::Permission;
use psabridge_identity::scopes::{Need, Scope, missing_scope, parse_stored};

use crate::AppState;
use crate::problem::Problem;
use crate::views;
pub use psabridge_store::config::Principal;

/// How often, at most, a token's last use is written (per token and node), and how often an
/// expired token's refusal is written to the audit log.
pub const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// What the routes that only tokens may call ([`crate::accounts::Access::TokenOnly`]) need
/// of a token. A token-only route missing here needs every scope.
pub const TOKEN_ONLY_NEEDS: &[(&str, Need)] = &[
    ("POST /api/v1/events", Need::Ingest),
    ("POST /api/v1/usage", Need::Ingest),
    ("POST /api/v1/assets", Need::Ingest),
    (
        "POST /api/v1/partners",
        Need::Permission(Permission::ManageSettings),
    ),
    (
        "POST /api/v1/tokens",
        Need::Permission(Permission::ManageTokens),
    ),
    (
        "GET /api/v1/tokens",
        Need::Permission(Permission::ViewSettings),
    ),
    (
        "POST /api/v1/event-types",
        Need::Permission(Permission::ManageSettings),
    ),
    (
        "PUT /api/v1/event-types/{key}",
        Need::Permission(Permission::ManageSettings),
    ),
    (
        "DELETE /api/v1/event-types/{key}",
        Need::Permission(Permission::ManageSettings),
    ),
];

/// The scopes a token-only route needs: one of them (from [`TOKEN_ONLY_NEEDS`]), or, for a
/// route not listed there, all of them.
pub fn token_only_need(route: &str) -> Option<Need> {
    TOKEN_ONLY_NEEDS
        .iter()
        .find(|(r, _)| *r == route)
        .map(|(_, n)| *n)
}

/// The scopes of the token a request came with, put in the request's extensions by
/// [`crate::accounts::enforce`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub id: i64,
    pub scopes: Vec<Scope>,
}

impl TokenGrant {
    /// `None` when the token may do what `need` names; else the scope it lacks.
    pub fn lacks(&self, need: Option<Need>) -> Option<String> {
        match need {
            Some(need) => missing_scope(&self.scopes, need).map(|s| s.as_str().to_string()),
            None => Scope::ALL
                .into_iter()
                .find(|s| !self.scopes.contains(s))
                .map(|s| s.as_str().to_string()),
        }
    }
}

/// A live token as cached: who it speaks for, its scopes, and when it expires.
#[derive(Debug, Clone)]
struct CachedToken {
    caller: Caller,
    grant: TokenGrant,
    expires_at: Option<i64>,
}

/// Prefix of every token we issue, so that a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "psab_";

/// A new random token (256 bits).
pub fn new_token() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

/// What we store of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A short-lived cache of token hash → token (or "no such token"), and when each token's use
/// (or expired refusal) was last written.
pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Option<CachedToken>, Instant)>>,
    /// (token id, refused) → when last written.
    written: Mutex<HashMap<(i64, bool), Instant>>,
}

impl TokenCache {
    pub fn new(ttl: Duration) -> TokenCache {
        TokenCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the use (or refusal) of a token is due to be written now; if so, it counts
    /// as written from now on.
    fn due(&self, id: i64, refused: bool) -> bool {
        let mut map = self.written.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&(id, refused)) {
            Some(at) if at.elapsed() < LAST_USED_RESOLUTION => false,
            _ => {
                if map.len() > 10_000 {
                    map.clear();
                }
                map.insert((id, refused), Instant::now());
                true
            }
        }
    }

    fn get(&self, hash: &str) -> Option<Option<CachedToken>> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(p, _)| p.clone())
    }

    fn put(&self, hash: String, p: Option<CachedToken>) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(hash, (p, Instant::now()));
    }

    /// Forget every cached answer (after a revocation on this node).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Principal, pub Actor);

/// Who acted, as the audit log names them (`token:3 "vendor-platform"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    pub fn token(id: i64, name: &str) -> Actor {
        Actor(format!("token:{id} {name:?}"))
    }

    /// A logged-in person (`user:5 "ann@example.com"`).
    pub fn user(id: i64, email: &str) -> Actor {
        Actor(format!("user:{id} {email:?}"))
    }
}

impl Caller {
    /// May this caller act for `partner`?
    pub fn require_partner(&self, partner: &str) -> Result<(), Problem> {
        match &self.0 {
            Principal::Vendor => Ok(()),
            Principal::Partner(p) if p == partner => Ok(()),
            // Same answer as for a partner that does not exist: do not reveal which exist.
            Principal::Partner(_) => Err(Problem::not_found(format!("partner '{partner}'"))),
        }
    }

    /// Only the vendor's platform may do this (create partners, vendor-wide tokens).
    pub fn require_vendor(&self) -> Result<(), Problem> {
        match self.0 {
            Principal::Vendor => Ok(()),
            Principal::Partner(_) => Err(Problem::forbidden("this needs a vendor-wide token")),
        }
    }

    /// The partner a partner token implies.
    pub fn implied_partner(&self) -> Option<&str> {
        match &self.0 {
            Principal::Partner(p) => Some(p),
            Principal::Vendor => None,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, Problem> {
        // Set by `accounts::enforce`: a logged-in person checked against the permission
        // matrix, or a token checked against its scopes.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let (caller, grant) = authenticate_bearer(state, &parts.headers).await?;
        parts.extensions.insert(grant);
        Ok(caller)
    }
}

/// Authenticate the request's bearer token: 401 when it is missing, unknown, revoked or
/// expired. Records the token's use at most once a minute.
pub async fn authenticate_bearer(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Caller, TokenGrant), Problem> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("send `Authorization: Bearer <token>` or log in"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Problem::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    let hash = token_hash(token);
    let cached = match state.tokens.get(&hash) {
        Some(c) => c,
        None => {
            let c = state.store.live_token(&hash).await?.map(|t| CachedToken {
                caller: Caller(t.principal, Actor::token(t.id, &t.name)),
                grant: TokenGrant {
                    id: t.id,
                    scopes: parse_stored(&t.scopes),
                },
                expires_at: t.expires_at,
            });
            state.tokens.put(hash, c.clone());
            c
        }
    };
    let t = cached.ok_or_else(|| Problem::unauthorized("the token is unknown or revoked"))?;
    let now = state.accounts.clock.now_ms();
    if let Some(expired) = t.expires_at.filter(|at| *at <= now) {
        let on = views::time(expired);
        let on = on.as_str().unwrap_or_default();
        if state.tokens.due(t.grant.id, true) {
            crate::audit::audit(
                state,
                &t.caller,
                t.caller.implied_partner(),
                "token.expired_refused",
                &format!("token:{}", t.grant.id),
                None,
                Some(&serde_json::json!({"expired_at": on})),
            )
            .await;
        }
        return Err(Problem::unauthorized(&format!("the token expired on {on}")));
    }
    if state.tokens.due(t.grant.id, false)
        && let Err(e) = state.store.touch_token(t.grant.id, now).await
    {
        tracing::warn!(token = t.grant.id, error = %e, "recording a token's last use failed");
    }
    Ok((t.caller, t.grant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert!(a.len() > 40);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn use_and_refusal_are_written_at_most_once_a_minute_per_token() {
        let cache = TokenCache::new(Duration::from_secs(10));
        assert!(cache.due(1, false));
        assert!(
            !cache.due(1, false),
            "a second use within the minute writes nothing"
        );
        assert!(cache.due(2, false), "each token has its own minute");
        assert!(cache.due(1, true), "a refusal is counted apart from a use");
        assert!(!cache.due(1, true));
        // After the minute, the next use is written again.
        cache
            .written
            .lock()
            .unwrap()
            .insert((1, false), Instant::now() - LAST_USED_RESOLUTION);
        assert!(cache.due(1, false));
    }

    #[test]
    fn token_only_routes_name_their_scope() {
        let grant = TokenGrant {
            id: 1,
            scopes: vec![Scope::SettingsRead],
        };
        assert_eq!(
            grant.lacks(token_only_need("POST /api/v1/events")),
            Some("events:write".to_string())
        );
        assert_eq!(grant.lacks(token_only_need("GET /api/v1/tokens")), None);
        // An unlisted token-only route needs every scope.
        assert_eq!(token_only_need("POST /api/v1/somewhere"), None);
        assert_eq!(grant.lacks(None), Some("events:write".to_string()));
        let all = TokenGrant {
            id: 2,
            scopes: Scope::ALL.to_vec(),
        };
        assert_eq!(all.lacks(None), None);
    }

    #[test]
    fn every_token_only_route_names_its_scope() {
        // Unlisted, a token-only route would need every scope: safe, but surely not meant.
        for (route, access) in crate::ROUTES {
            if *access == crate::accounts::Access::TokenOnly {
                assert!(
                    token_only_need(route).is_some(),
                    "{route} is token-only but not in TOKEN_ONLY_NEEDS"
                );
            }
        }
        for (route, _) in TOKEN_ONLY_NEEDS {
            assert_eq!(
                crate::ROUTES
                    .iter()
                    .find(|(r, _)| r == route)
                    .map(|(_, a)| *a),
                Some(crate::accounts::Access::TokenOnly),
                "{route}"
            );
        }
    }

    #[test]
    fn scope() {
        let actor = Actor::token(1, "t");
        let p = Caller(Principal::Partner("acme".into()), actor.clone());
        assert!(p.require_partner("acme").is_ok());
        assert!(p.require_partner("other").is_err());
        assert!(p.require_vendor().is_err());
        assert!(
            Caller(Principal::Vendor, actor)
                .require_partner("any")
                .is_ok()
        );
    }
}
