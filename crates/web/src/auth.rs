//! Bearer tokens: random, shown once, stored as SHA-256 hashes; and who may see which partner.
//!
//! Token look-ups are cached for a few seconds: ingestion authenticates every request and must
//! not cost a database read each time. A revoked token therefore stops working within the
//! cache's lifetime (10 s), which the API documentation states.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::problem::Problem;
pub use psabridge_store::config::Principal;

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

/// A short-lived cache of token hash → caller (or "no such token").
pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Option<Caller>, Instant)>>,
}

impl TokenCache {
    pub fn new(ttl: Duration) -> TokenCache {
        TokenCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, hash: &str) -> Option<Option<Caller>> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(p, _)| p.clone())
    }

    fn put(&self, hash: String, p: Option<Caller>) {
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
        // A logged-in person, resolved and checked against the permission matrix by
        // `accounts::enforce`, which only sets this when no bearer token was sent.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                Problem::unauthorized("send `Authorization: Bearer <token>` or log in")
            })?;
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
        let caller = match state.tokens.get(&hash) {
            Some(c) => c,
            None => {
                let c = state
                    .store
                    .principal_of_token(&hash)
                    .await?
                    .map(|(p, id, name)| Caller(p, Actor::token(id, &name)));
                state.tokens.put(hash, c.clone());
                c
            }
        };
        caller.ok_or_else(|| Problem::unauthorized("the token is unknown or revoked"))
    }
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
