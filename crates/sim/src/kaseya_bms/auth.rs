//! Authentication: `POST /v2/security/authenticate` hands out a bearer token (a JWT-shaped
//! string) and a refresh token; `POST /v2/security/refreshtoken` trades them for new ones.
//! Every other API call needs `Authorization: Bearer <accessToken>`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use serde_json::{Value, json};

use super::Config;
use super::envelope::Fail;

/// Issued tokens.
#[derive(Default)]
pub struct Tokens {
    /// Access token → when it expires.
    access: HashMap<String, Instant>,
    /// Refresh token → the access token it was issued with.
    refresh: HashMap<String, String>,
}

impl Tokens {
    /// Forget every token (tests use it to make the next call meet a 401).
    pub fn revoke_all(&mut self) {
        self.access.clear();
        self.refresh.clear();
    }

    fn issue(&mut self, config: &Config) -> Value {
        let ttl = Duration::from_secs(config.token_ttl_secs.max(1));
        let now = chrono::Utc::now();
        let exp = now + chrono::Duration::seconds(config.token_ttl_secs.max(1) as i64);
        let refresh_exp = now + chrono::Duration::days(14);
        let mut rng = rand::rng();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(
            json!({
                "unique_name": config.username,
                "tenant": config.tenant,
                "jti": format!("{:032x}", rng.random::<u128>()),
                "exp": exp.timestamp(),
            })
            .to_string(),
        );
        let sig = URL_SAFE_NO_PAD.encode(rng.random::<[u8; 32]>());
        let access = format!("{header}.{payload}.{sig}");
        let refresh = URL_SAFE_NO_PAD.encode(rng.random::<[u8; 32]>());
        self.access.insert(access.clone(), Instant::now() + ttl);
        self.refresh.insert(refresh.clone(), access.clone());
        json!({
            "accessToken": access,
            "refreshToken": refresh,
            "accessTokenExpireOn": exp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "refreshTokenExpireOn": refresh_exp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }

    /// Check a bearer token.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), Fail> {
        let token = authorization
            .and_then(|h| {
                let (scheme, token) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| Fail::unauthorized("Authorization has been denied for this request."))?;
        match self.access.get(token) {
            Some(exp) if *exp > Instant::now() => Ok(()),
            Some(_) => Err(Fail::unauthorized("The access token has expired.")),
            None => Err(Fail::unauthorized("The access token is invalid.")),
        }
    }
}

/// `POST /v2/security/authenticate` with the form's fields (names lower-cased).
pub fn authenticate(
    config: &Config,
    tokens: &mut Tokens,
    form: &BTreeMap<String, String>,
) -> Result<Value, Fail> {
    let get = |k: &str| form.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let Some(grant) = get("granttype") else {
        return Err(Fail::validation(
            config.validation_status,
            vec!["The GrantType field is required.".into()],
        ));
    };
    if !grant.eq_ignore_ascii_case("password") {
        return Err(Fail::new(
            400,
            format!("The grant type '{grant}' is not supported by this simulator."),
        ));
    }
    let refused = |m: String| Fail::new(config.auth_failure_status, m);
    let tenant = get("tenant").unwrap_or_default();
    if !tenant.eq_ignore_ascii_case(&config.tenant) {
        return Err(refused(format!(
            "Invalid company name: no tenant is named '{tenant}'."
        )));
    }
    let user = get("username").unwrap_or_default();
    let password = form.get("password").map(String::as_str).unwrap_or_default();
    if !user.eq_ignore_ascii_case(&config.username) || password != config.password {
        return Err(refused("Invalid username or password.".into()));
    }
    Ok(tokens.issue(config))
}

/// `POST /v2/security/refreshtoken` (`AccessToken`, `RefreshToken`).
pub fn refresh(
    config: &Config,
    tokens: &mut Tokens,
    form: &BTreeMap<String, String>,
) -> Result<Value, Fail> {
    let Some(access) = form.get("accesstoken").filter(|v| !v.is_empty()) else {
        return Err(Fail::validation(
            config.validation_status,
            vec!["The AccessToken field is required.".into()],
        ));
    };
    let refresh = form.get("refreshtoken").cloned().unwrap_or_default();
    match tokens.refresh.get(&refresh) {
        Some(a) if a == access => {
            tokens.refresh.remove(&refresh);
            tokens.access.remove(access);
            Ok(tokens.issue(config))
        }
        _ => Err(Fail::new(
            config.auth_failure_status,
            "The refresh token is invalid or has expired.",
        )),
    }
}
