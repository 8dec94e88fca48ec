//! The relying party against a real OpenID provider (npm oidc-provider 9.13.3) on 127.0.0.1:
//! a real login through its pages, every refusal the issue lists, and back-channel logout.

mod support;

use std::collections::HashSet;

use anyhow::{Result, anyhow, ensure};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use psabridge_oidc::{OidcError, PendingLogin, Provider, ensure_logout_not_replayed};
use support::*;

async fn login_as(
    provider: &Provider,
    browser: &reqwest::Client,
    who: &str,
    redirect_prefix: &str,
) -> Result<(PendingLogin, psabridge_oidc::CallbackParams)> {
    let (url, pending) = provider.begin_login(Utc::now());
    let callback = log_in(browser, &url, who, redirect_prefix).await?;
    Ok((pending, callback))
}

#[tokio::test]
async fn a_real_login_yields_the_verified_identity() -> Result<()> {
    skip_without_provider!();
    let (op, receiver, provider) = standard().await?;
    let (url, pending) = provider.begin_login(Utc::now());
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    ensure!(query.get("code_challenge_method").map(String::as_str) == Some("S256"));
    ensure!(query.get("state") == Some(&pending.state));
    ensure!(query.get("nonce") == Some(&pending.nonce));
    ensure!(query.get("client_id").map(String::as_str) == Some(PORTAL));
    ensure!(query["scope"].split(' ').any(|s| s == "openid"));

    let browser = browser();
    let callback = log_in(
        &browser,
        &url,
        "alice",
        &format!("{}/callback", receiver.base),
    )
    .await?;
    ensure!(
        callback.iss.as_deref() == Some(op.issuer.as_str()),
        "{callback:?}"
    );
    let identity = provider
        .finish_login(&pending, &callback, Utc::now())
        .await
        .map_err(|e| anyhow!("{e}\n{}", op.stderr()))?;
    ensure!(identity.issuer == op.issuer, "{identity:?}");
    ensure!(identity.subject == "alice");
    ensure!(identity.email.as_deref() == Some("alice@msp-a.test"));
    ensure!(identity.email_verified);
    ensure!(identity.name.as_deref() == Some("Alice Admin"));
    ensure!(
        identity.sid.is_some(),
        "sid is needed for logout by session"
    );
    // Debug output never shows the raw token.
    ensure!(!format!("{identity:?}").contains(&identity.id_token));

    // The code is single-use: a second finish with the same callback is refused by the provider.
    let again = provider.finish_login(&pending, &callback, Utc::now()).await;
    ensure!(
        matches!(again, Err(OidcError::TokenRejected { ref error, .. }) if error == "invalid_grant"),
        "{again:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_state_is_refused_before_the_code_is_used() -> Result<()> {
    skip_without_provider!();
    let (_op, receiver, provider) = standard().await?;
    let browser = browser();
    let redirect = format!("{}/callback", receiver.base);
    let (pending, callback) = login_as(&provider, &browser, "alice", &redirect).await?;

    let mut forged = callback.clone();
    forged.state = Some(format!("{}x", pending.state));
    let r = provider.finish_login(&pending, &forged, Utc::now()).await;
    ensure!(r == Err(OidcError::StateMismatch), "{r:?}");
    let mut missing = callback.clone();
    missing.state = None;
    let r = provider.finish_login(&pending, &missing, Utc::now()).await;
    ensure!(r == Err(OidcError::StateMismatch), "{r:?}");
    // A provider error with a wrong state is a state mismatch too (an injected error response).
    let injected = psabridge_oidc::CallbackParams {
        error: Some("access_denied".into()),
        state: Some("forged".into()),
        iss: callback.iss.clone(),
        ..Default::default()
    };
    let r = provider.finish_login(&pending, &injected, Utc::now()).await;
    ensure!(r == Err(OidcError::StateMismatch), "{r:?}");

    // The refusals did not spend the code: the genuine callback still succeeds.
    let identity = provider
        .finish_login(&pending, &callback, Utc::now())
        .await?;
    ensure!(identity.subject == "alice");
    Ok(())
}

#[tokio::test]
async fn a_refusal_by_the_provider_is_reported_with_its_error() -> Result<()> {
    skip_without_provider!();
    let (_op, receiver, provider) = standard().await?;
    let (url, pending) = provider.begin_login(Utc::now());
    let callback = cancel_login(&browser(), &url, &format!("{}/callback", receiver.base)).await?;
    ensure!(callback.code.is_none(), "{callback:?}");
    let r = provider.finish_login(&pending, &callback, Utc::now()).await;
    ensure!(
        matches!(r, Err(OidcError::ProviderError { ref error, .. }) if error == "access_denied"),
        "{r:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_nonce_from_another_attempt_is_refused() -> Result<()> {
    skip_without_provider!();
    let (_op, receiver, provider) = standard().await?;
    let browser = browser();
    let redirect = format!("{}/callback", receiver.base);
    let (first_pending, first_callback) = login_as(&provider, &browser, "alice", &redirect).await?;
    let first = provider
        .finish_login(&first_pending, &first_callback, Utc::now())
        .await?;
    let (second_pending, second_callback) =
        login_as(&provider, &browser, "alice", &redirect).await?;

    // The first attempt's ID token replayed into the second attempt.
    let r = provider.verify_id_token(&first.id_token, &second_pending.nonce, Utc::now());
    ensure!(r == Err(OidcError::NonceMismatch), "{r:?}");

    // The first attempt's pending login used for the second callback: the state gives it away.
    let r = provider
        .finish_login(&first_pending, &second_callback, Utc::now())
        .await;
    ensure!(r == Err(OidcError::StateMismatch), "{r:?}");

    // Even with the state right, a nonce from another attempt fails the ID-token check.
    let mixed = PendingLogin {
        nonce: first_pending.nonce.clone(),
        ..second_pending.clone()
    };
    let r = provider
        .finish_login(&mixed, &second_callback, Utc::now())
        .await;
    ensure!(r == Err(OidcError::NonceMismatch), "{r:?}");
    Ok(())
}

#[tokio::test]
async fn a_token_issued_to_another_client_is_refused() -> Result<()> {
    skip_without_provider!();
    let (op, receiver, portal) = standard().await?;
    let other = Provider::discover(&other_config(&op.issuer, &receiver.base)).await?;
    let browser = browser();
    let other_redirect = format!("{}/other-callback", receiver.base);
    let (pending, callback) = login_as(&other, &browser, "alice", &other_redirect).await?;

    // The other client's code cannot be redeemed by the portal (bound to its client).
    let stolen = portal.finish_login(&pending, &callback, Utc::now()).await;
    ensure!(
        matches!(stolen, Err(OidcError::TokenRejected { .. })),
        "{stolen:?}"
    );
    // Its ID token, genuinely signed by the same provider, is not for the portal.
    let theirs = other.finish_login(&pending, &callback, Utc::now()).await?;
    let r = portal.verify_id_token(&theirs.id_token, &pending.nonce, Utc::now());
    ensure!(r == Err(OidcError::WrongAudience), "{r:?}");
    // The same token passes for the client it was issued to.
    ensure!(
        other
            .verify_id_token(&theirs.id_token, &pending.nonce, Utc::now())
            .is_ok()
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_id_token_is_refused() -> Result<()> {
    skip_without_provider!();
    let receiver = Receiver::start().await?;
    let op = start_op(&OpOptions {
        clients: clients(&receiver.base),
        accounts: accounts(),
        signing_key: None,
        id_token_ttl: Some(1),
        scope_claims_in_id_token: true,
    })?;
    let provider = Provider::discover(&portal_config(&op.issuer, &receiver.base)).await?;
    let browser = browser();
    let redirect = format!("{}/callback", receiver.base);
    let (pending, callback) = login_as(&provider, &browser, "alice", &redirect).await?;
    // The ID token lives one second; the callback is handled five seconds later.
    let later = Utc::now() + Duration::seconds(5);
    let r = provider.finish_login(&pending, &callback, later).await;
    ensure!(r == Err(OidcError::Expired), "{r:?}");

    // And a token from a normal login, checked an hour later.
    let (_op2, receiver2, normal) = standard().await?;
    let redirect2 = format!("{}/callback", receiver2.base);
    let (pending, callback) = login_as(&normal, &browser, "alice", &redirect2).await?;
    let identity = normal.finish_login(&pending, &callback, Utc::now()).await?;
    let r = normal.verify_id_token(
        &identity.id_token,
        &pending.nonce,
        Utc::now() + Duration::hours(1),
    );
    ensure!(r == Err(OidcError::Expired), "{r:?}");

    // A pending login kept past ten minutes is refused before anything else.
    let (_, pending) = normal.begin_login(Utc::now() - Duration::minutes(11));
    let r = normal.finish_login(&pending, &callback, Utc::now()).await;
    ensure!(r == Err(OidcError::PendingExpired), "{r:?}");
    Ok(())
}

#[tokio::test]
async fn email_verification_is_reported_as_the_provider_says() -> Result<()> {
    skip_without_provider!();
    let (_op, receiver, provider) = standard().await?;
    let redirect = format!("{}/callback", receiver.base);
    for (who, verified) in [("bob", false), ("carol", true), ("alice", true)] {
        // A fresh browser per user: the provider's session would otherwise keep the first one.
        let browser = browser();
        let (pending, callback) = login_as(&provider, &browser, who, &redirect).await?;
        let identity = provider
            .finish_login(&pending, &callback, Utc::now())
            .await?;
        ensure!(identity.subject == who);
        ensure!(identity.email.as_deref() == Some(&*format!("{who}@msp-a.test")));
        ensure!(
            identity.email_verified == verified,
            "{who}: email_verified should be {verified}: {identity:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_wrong_issuer_is_refused() -> Result<()> {
    skip_without_provider!();
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("key.json");
    generate_key(&key)?;
    let receiver = Receiver::start().await?;
    let options = |scope_claims_in_id_token| OpOptions {
        clients: clients(&receiver.base),
        accounts: accounts(),
        signing_key: Some(key.clone()),
        id_token_ttl: None,
        scope_claims_in_id_token,
    };
    // Two providers with the same key and the same client registration: their tokens differ
    // only by issuer.
    let op_a = start_op(&options(true))?;
    let op_b = start_op(&options(false))?;
    let a = Provider::discover(&portal_config(&op_a.issuer, &receiver.base)).await?;
    let b = Provider::discover(&portal_config(&op_b.issuer, &receiver.base)).await?;
    let redirect = format!("{}/callback", receiver.base);

    // The callback's iss altered (mix-up), or stripped although A always sends it.
    let browser_a = browser();
    let (pending, callback) = login_as(&a, &browser_a, "alice", &redirect).await?;
    let mut altered = callback.clone();
    altered.iss = Some(op_b.issuer.clone());
    let r = a.finish_login(&pending, &altered, Utc::now()).await;
    ensure!(r == Err(OidcError::IssuerMismatch), "{r:?}");
    let mut stripped = callback.clone();
    stripped.iss = None;
    let r = a.finish_login(&pending, &stripped, Utc::now()).await;
    ensure!(r == Err(OidcError::IssuerMissing), "{r:?}");
    ensure!(
        a.finish_login(&pending, &callback, Utc::now())
            .await
            .is_ok()
    );

    // B's callback handed to A's flow.
    let browser_b = browser();
    let (pending_b, callback_b) = login_as(&b, &browser_b, "dave", &redirect).await?;
    let r = a.finish_login(&pending_b, &callback_b, Utc::now()).await;
    ensure!(r == Err(OidcError::IssuerMismatch), "{r:?}");

    // B's ID token (same key, same client) checked with A's discovery.
    let from_b = b.finish_login(&pending_b, &callback_b, Utc::now()).await?;
    let r = a.verify_id_token(&from_b.id_token, &pending_b.nonce, Utc::now());
    ensure!(r == Err(OidcError::IssuerMismatch), "{r:?}");

    // B keeps scope claims out of its ID tokens: the email came from UserInfo, where B sends
    // email_verified as the string "True".
    let id_only = b.verify_id_token(&from_b.id_token, &pending_b.nonce, Utc::now())?;
    ensure!(id_only.email.is_none(), "{id_only:?}");
    ensure!(from_b.email.as_deref() == Some("dave@msp-a.test"));
    ensure!(from_b.email_verified, "{from_b:?}");

    // Discovery refuses a document that names another issuer than the one configured.
    let wrong = portal_config(&format!("{}/", op_a.issuer), &receiver.base);
    let r = Provider::discover(&wrong).await;
    ensure!(matches!(r, Err(OidcError::Discovery(_))), "{r:?}");
    Ok(())
}

#[tokio::test]
async fn back_channel_logout_tokens_are_verified() -> Result<()> {
    skip_without_provider!();
    let (op, receiver, provider) = standard().await?;
    let browser = browser();
    let redirect = format!("{}/callback", receiver.base);
    let (pending, callback) = login_as(&provider, &browser, "alice", &redirect).await?;
    let identity = provider
        .finish_login(&pending, &callback, Utc::now())
        .await?;

    log_out(&browser, &provider, &identity.id_token).await?;
    let token = receiver
        .next_logout_token()
        .await
        .map_err(|e| anyhow!("{e}\n{}", op.stderr()))?;
    let logout = provider
        .verify_logout_token(&token, Utc::now())
        .map_err(|e| anyhow!("{e}: {token}"))?;
    ensure!(logout.issuer == op.issuer);
    ensure!(logout.subject.as_deref() == Some("alice"), "{logout:?}");
    ensure!(logout.sid == identity.sid, "{logout:?} vs {identity:?}");
    ensure!(logout.expires_at > Utc::now());

    // Replay: the caller remembers the jti it processed.
    let mut seen = HashSet::new();
    ensure!(ensure_logout_not_replayed(&logout, &seen).is_ok());
    seen.insert(logout.jti.clone());
    ensure!(ensure_logout_not_replayed(&logout, &seen) == Err(OidcError::LogoutReplayed));

    // Tampered: another subject in the payload under the original signature.
    let parts: Vec<&str> = token.split('.').collect();
    ensure!(parts.len() == 3);
    let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1])?)?;
    claims["sub"] = "mallory".into();
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?);
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    let r = provider.verify_logout_token(&tampered, Utc::now());
    ensure!(matches!(r, Err(OidcError::BadSignature(_))), "{r:?}");

    // Too late: past its expiry.
    let r = provider.verify_logout_token(&token, Utc::now() + Duration::hours(1));
    ensure!(r == Err(OidcError::Expired), "{r:?}");

    // Another client of the same provider must not accept it.
    let other = Provider::discover(&other_config(&op.issuer, &receiver.base)).await?;
    let r = other.verify_logout_token(&token, Utc::now());
    ensure!(r == Err(OidcError::WrongAudience), "{r:?}");

    // An ID token is not a logout token, although it is signed by the same key for us.
    let r = provider.verify_logout_token(&identity.id_token, Utc::now());
    ensure!(matches!(r, Err(OidcError::NotALogoutToken(_))), "{r:?}");
    Ok(())
}
