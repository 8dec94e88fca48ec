//! OpenID Connect relying party for "Log in with the IdP" in the partner portal.
//!
//! [`Provider::discover`] reads the provider's metadata and keys once (cache the `Provider`);
//! [`Provider::begin_login`] gives the URL to send the browser to and a [`PendingLogin`] that the
//! caller stores server-side, bound to the browser's pre-auth session and used once;
//! [`Provider::finish_login`] checks the callback (`state`, RFC 9207 `iss`), exchanges the code
//! with its PKCE verifier, verifies the ID token (signature, issuer, audience and `azp`, expiry,
//! nonce) and reads UserInfo, whose `sub` must be the ID token's. The result is a
//! [`VerifiedIdentity`], keyed on (issuer, subject) — never on email.
//!
//! [`Provider::verify_logout_token`] checks an OpenID Back-Channel Logout 1.0 token;
//! [`ensure_logout_not_replayed`] refuses a `jti` already processed.
//!
//! Every refusal is an [`OidcError`] naming the failed check, for the audit log.

mod checks;
mod error;
mod http;
mod provider;

pub use checks::{
    BACKCHANNEL_LOGOUT_EVENT, CLOCK_SKEW, LogoutRequest, MAX_LOGIN_DURATION, check_callback_issuer,
    check_state, coerce_email_verified, ensure_logout_not_replayed,
};
pub use error::OidcError;
pub use provider::{CallbackParams, IdpConfig, PendingLogin, Provider, VerifiedIdentity};
