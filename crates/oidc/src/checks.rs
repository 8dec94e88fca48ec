//! The pure decisions of a login and a logout notification: no I/O, unit- and property-tested.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::OidcError;

/// How long a login may take between `begin_login` and the callback. The pending login is
/// single-use anyway; the bound stops a stolen, never-finished one from being usable later.
pub const MAX_LOGIN_DURATION: Duration = Duration::minutes(10);

/// Clock difference tolerated between the provider and us for `iat` on logout tokens.
pub const CLOCK_SKEW: Duration = Duration::seconds(60);

/// The event a back-channel logout token must carry (OpenID Back-Channel Logout 1.0 §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Compares two secrets without leaking through timing where they first differ.
pub fn secrets_equal(expected: &str, received: &str) -> bool {
    expected.as_bytes().ct_eq(received.as_bytes()).into()
}

/// The callback's `state` must be present and equal to the one stored for this browser.
pub fn check_state(expected: &str, received: Option<&str>) -> Result<(), OidcError> {
    match received {
        Some(received) if !expected.is_empty() && secrets_equal(expected, received) => Ok(()),
        _ => Err(OidcError::StateMismatch),
    }
}

/// RFC 9207: when the callback carries `iss`, it must be exactly our provider's issuer; when the
/// provider announces that it always sends `iss`, a callback without it is refused too (an
/// attacker replaying another provider's response would simply strip it).
pub fn check_callback_issuer(
    expected_issuer: &str,
    provider_sends_iss: bool,
    received: Option<&str>,
) -> Result<(), OidcError> {
    match received {
        Some(iss) if iss == expected_issuer => Ok(()),
        Some(_) => Err(OidcError::IssuerMismatch),
        None if provider_sends_iss => Err(OidcError::IssuerMissing),
        None => Ok(()),
    }
}

/// A pending login is usable only for [`MAX_LOGIN_DURATION`] after it was created (and not
/// before: a `created_at` in the future means a clock or storage error).
pub fn check_pending_fresh(created_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), OidcError> {
    if now < created_at - CLOCK_SKEW || now - created_at > MAX_LOGIN_DURATION {
        return Err(OidcError::PendingExpired);
    }
    Ok(())
}

/// `azp` (authorized party), when present, must be our client: a token whose `aud` lists us
/// among others but was requested by another client is not ours to accept.
pub fn check_authorized_party(client_id: &str, azp: Option<&str>) -> Result<(), OidcError> {
    match azp {
        Some(azp) if azp != client_id => Err(OidcError::WrongAudience),
        _ => Ok(()),
    }
}

/// `email_verified` as a boolean: JSON `true`, or the strings "true"/"True"/"TRUE" that some
/// providers (Entra among them) send. Anything else — absent, `false`, other strings, numbers —
/// is unverified, because an unverified email must never be used to link accounts.
pub fn coerce_email_verified(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The claims of a logout token that the spec constrains, as received (signature, `iss` and
/// `aud` are checked before this, by the JWT verifier).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LogoutClaims {
    pub iss: String,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub sid: Option<String>,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub events: Option<Value>,
    #[serde(default)]
    pub nonce: Option<Value>,
}

/// A verified back-channel logout: end the sessions of this subject at this issuer (all of them
/// when only `sub` is given), or the one session `sid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    pub issuer: String,
    pub subject: Option<String>,
    pub sid: Option<String>,
    /// The token's id: keep it in the seen-set until `expires_at` to refuse a replay.
    pub jti: String,
    /// Until when the token would be accepted (its `exp`, or `iat` + 2 min when it has none).
    pub expires_at: DateTime<Utc>,
}

/// OpenID Back-Channel Logout 1.0 §2.6 steps 4–7 on already signature-, `iss`- and
/// `aud`-checked claims: the logout event is present with a JSON object value, there is no
/// `nonce` (so an ID token cannot pass for a logout token), `sub` or `sid` is present, `iat` is
/// not in the future, the token has not expired, and it has a `jti` for replay detection.
pub fn check_logout_claims(
    claims: &LogoutClaims,
    now: DateTime<Utc>,
) -> Result<LogoutRequest, OidcError> {
    let not_logout = |why: &str| OidcError::NotALogoutToken(why.to_owned());
    let event = claims
        .events
        .as_ref()
        .and_then(|e| e.as_object())
        .and_then(|e| e.get(BACKCHANNEL_LOGOUT_EVENT));
    if !matches!(event, Some(Value::Object(_))) {
        return Err(not_logout("no back-channel logout event"));
    }
    if claims.nonce.is_some() {
        return Err(not_logout("a logout token must not have a nonce"));
    }
    if claims.sub.is_none() && claims.sid.is_none() {
        return Err(not_logout("neither sub nor sid"));
    }
    let jti = claims.jti.clone().ok_or_else(|| not_logout("no jti"))?;
    let iat = claims
        .iat
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .ok_or_else(|| not_logout("no iat"))?;
    if iat > now + CLOCK_SKEW {
        return Err(OidcError::InvalidClaims("iat is in the future".into()));
    }
    let expires_at = match claims.exp {
        Some(exp) => DateTime::from_timestamp(exp, 0)
            .ok_or_else(|| OidcError::InvalidClaims("exp out of range".into()))?,
        None => iat + Duration::minutes(2),
    };
    if now > expires_at + CLOCK_SKEW {
        return Err(OidcError::Expired);
    }
    Ok(LogoutRequest {
        issuer: claims.iss.clone(),
        subject: claims.sub.clone(),
        sid: claims.sid.clone(),
        jti,
        expires_at,
    })
}

/// Refuses a logout token whose `jti` is in `seen` (the caller keeps the ids of processed
/// tokens until they expire, and adds this one once it has acted on it).
pub fn ensure_logout_not_replayed(
    request: &LogoutRequest,
    seen: &HashSet<String>,
) -> Result<(), OidcError> {
    if seen.contains(&request.jti) {
        return Err(OidcError::LogoutReplayed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn state_must_be_present_and_equal() {
        assert_eq!(check_state("abc", Some("abc")), Ok(()));
        assert_eq!(
            check_state("abc", Some("abd")),
            Err(OidcError::StateMismatch)
        );
        assert_eq!(
            check_state("abc", Some("ab")),
            Err(OidcError::StateMismatch)
        );
        assert_eq!(check_state("abc", None), Err(OidcError::StateMismatch));
        // An empty stored state (a corrupted pending login) never matches, not even "".
        assert_eq!(check_state("", Some("")), Err(OidcError::StateMismatch));
    }

    proptest! {
        #[test]
        fn state_matches_only_itself(a in "[A-Za-z0-9_-]{1,64}", b in "[A-Za-z0-9_-]{0,64}") {
            prop_assert_eq!(check_state(&a, Some(&b)).is_ok(), a == b);
        }

        #[test]
        fn only_true_strings_and_true_are_verified(s in ".*") {
            let expected = s.eq_ignore_ascii_case("true");
            prop_assert_eq!(coerce_email_verified(Some(&json!(s))), expected);
        }
    }

    #[test]
    fn callback_issuer_rfc9207() {
        let iss = "https://idp.example";
        assert_eq!(check_callback_issuer(iss, true, Some(iss)), Ok(()));
        assert_eq!(check_callback_issuer(iss, false, Some(iss)), Ok(()));
        assert_eq!(
            check_callback_issuer(iss, false, Some("https://evil.example")),
            Err(OidcError::IssuerMismatch)
        );
        assert_eq!(
            check_callback_issuer(iss, true, Some("https://idp.example/")),
            Err(OidcError::IssuerMismatch)
        );
        assert_eq!(
            check_callback_issuer(iss, true, None),
            Err(OidcError::IssuerMissing)
        );
        assert_eq!(check_callback_issuer(iss, false, None), Ok(()));
    }

    #[test]
    fn pending_login_lives_ten_minutes() {
        let created = t(1_000_000);
        assert_eq!(check_pending_fresh(created, created), Ok(()));
        assert_eq!(
            check_pending_fresh(created, created + Duration::minutes(10)),
            Ok(())
        );
        assert_eq!(
            check_pending_fresh(
                created,
                created + Duration::minutes(10) + Duration::seconds(1)
            ),
            Err(OidcError::PendingExpired)
        );
        assert_eq!(
            check_pending_fresh(created, created - Duration::minutes(5)),
            Err(OidcError::PendingExpired)
        );
    }

    #[test]
    fn azp_must_be_us_when_present() {
        assert_eq!(check_authorized_party("portal", None), Ok(()));
        assert_eq!(check_authorized_party("portal", Some("portal")), Ok(()));
        assert_eq!(
            check_authorized_party("portal", Some("other")),
            Err(OidcError::WrongAudience)
        );
    }

    #[test]
    fn email_verified_coercion() {
        assert!(coerce_email_verified(Some(&json!(true))));
        assert!(coerce_email_verified(Some(&json!("true"))));
        assert!(coerce_email_verified(Some(&json!("True"))));
        assert!(!coerce_email_verified(Some(&json!(false))));
        assert!(!coerce_email_verified(Some(&json!("False"))));
        assert!(!coerce_email_verified(Some(&json!("yes"))));
        assert!(!coerce_email_verified(Some(&json!(1))));
        assert!(!coerce_email_verified(Some(&Value::Null)));
        assert!(!coerce_email_verified(None));
    }

    fn logout_claims() -> LogoutClaims {
        LogoutClaims {
            iss: "https://idp.example".into(),
            sub: Some("alice".into()),
            sid: Some("s-1".into()),
            iat: Some(1_000_000),
            exp: Some(1_000_120),
            jti: Some("j-1".into()),
            events: Some(json!({ BACKCHANNEL_LOGOUT_EVENT: {} })),
            nonce: None,
        }
    }

    #[test]
    fn a_proper_logout_token_passes() {
        let r = check_logout_claims(&logout_claims(), t(1_000_010)).unwrap();
        assert_eq!(r.subject.as_deref(), Some("alice"));
        assert_eq!(r.sid.as_deref(), Some("s-1"));
        assert_eq!(r.jti, "j-1");
        assert_eq!(r.expires_at, t(1_000_120));
        // sid alone, or sub alone, is enough.
        let mut c = logout_claims();
        c.sub = None;
        assert!(check_logout_claims(&c, t(1_000_010)).is_ok());
        let mut c = logout_claims();
        c.sid = None;
        assert!(check_logout_claims(&c, t(1_000_010)).is_ok());
    }

    #[test]
    fn logout_token_shape_is_enforced() {
        let now = t(1_000_010);
        let refused = |f: &dyn Fn(&mut LogoutClaims)| {
            let mut c = logout_claims();
            f(&mut c);
            check_logout_claims(&c, now).unwrap_err()
        };
        assert!(matches!(
            refused(&|c| c.events = None),
            OidcError::NotALogoutToken(_)
        ));
        assert!(matches!(
            refused(&|c| c.events = Some(json!({"http://other/event": {}}))),
            OidcError::NotALogoutToken(_)
        ));
        assert!(matches!(
            refused(&|c| c.events = Some(json!({ BACKCHANNEL_LOGOUT_EVENT: "yes" }))),
            OidcError::NotALogoutToken(_)
        ));
        assert!(matches!(
            refused(&|c| c.nonce = Some(json!("n"))),
            OidcError::NotALogoutToken(_)
        ));
        assert!(matches!(
            refused(&|c| {
                c.sub = None;
                c.sid = None;
            }),
            OidcError::NotALogoutToken(_)
        ));
        assert!(matches!(
            refused(&|c| c.jti = None),
            OidcError::NotALogoutToken(_)
        ));
        assert!(matches!(
            refused(&|c| c.iat = None),
            OidcError::NotALogoutToken(_)
        ));
        assert!(matches!(
            refused(&|c| c.iat = Some(1_000_200)),
            OidcError::InvalidClaims(_)
        ));
    }

    #[test]
    fn logout_token_expiry() {
        let c = logout_claims();
        assert!(check_logout_claims(&c, t(1_000_120 + 60)).is_ok());
        assert_eq!(
            check_logout_claims(&c, t(1_000_120 + 61)),
            Err(OidcError::Expired)
        );
        let mut c = logout_claims();
        c.exp = None;
        assert_eq!(
            check_logout_claims(&c, t(1_000_000 + 120 + 61)),
            Err(OidcError::Expired)
        );
    }

    #[test]
    fn a_seen_jti_is_a_replay() {
        let r = check_logout_claims(&logout_claims(), t(1_000_010)).unwrap();
        let mut seen = HashSet::new();
        assert_eq!(ensure_logout_not_replayed(&r, &seen), Ok(()));
        seen.insert(r.jti.clone());
        assert_eq!(
            ensure_logout_not_replayed(&r, &seen),
            Err(OidcError::LogoutReplayed)
        );
    }
}
