//! What can go wrong in a login or a logout notification, named so the caller can audit it.

use thiserror::Error;

/// Why a login or a back-channel logout was refused.
///
/// Each variant names the check that failed, so the portal can write it to the audit log and
/// show the user a fitting message; none of them carries a secret or a token.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OidcError {
    /// The issuer, redirect URI or a URL from discovery is not a valid URL.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Discovery failed: unreachable, not JSON, or the document's `issuer` differs from the one
    /// configured (the provider metadata must describe exactly this issuer).
    #[error("discovery of the OpenID provider failed: {0}")]
    Discovery(String),
    /// The pending login is older than the time a login may take; start again.
    #[error("the login attempt expired; start again")]
    PendingExpired,
    /// The `state` on the callback is missing or is not the one stored for this browser
    /// (login CSRF, or a callback meant for another attempt).
    #[error("state mismatch")]
    StateMismatch,
    /// The callback's `iss` (RFC 9207), or the ID token's `iss`, is not this provider's issuer
    /// (mix-up attack, or tokens from another provider).
    #[error("issuer mismatch")]
    IssuerMismatch,
    /// The provider promises `iss` on its callbacks (RFC 9207) and this callback has none.
    #[error("the callback has no iss parameter although the provider always sends it")]
    IssuerMissing,
    /// The provider answered the authorization request with an error (e.g. `access_denied`).
    #[error("the provider refused the login: {error} {description:?}")]
    ProviderError {
        error: String,
        description: Option<String>,
    },
    /// The callback has neither a `code` nor an `error`.
    #[error("the callback has no authorization code")]
    MissingCode,
    /// The token endpoint refused the code (expired, replayed, wrong PKCE verifier, wrong client).
    #[error("the token endpoint refused the code: {error} {description:?}")]
    TokenRejected {
        error: String,
        description: Option<String>,
    },
    /// The token response has no ID token (the provider did not run OpenID Connect).
    #[error("the token response has no ID token")]
    MissingIdToken,
    /// The ID token or logout token is not a well-formed JWT of the expected shape.
    #[error("malformed token: {0}")]
    MalformedToken(String),
    /// The token's signature does not verify with the provider's published keys, or its
    /// algorithm is not one the provider announced.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The token was issued to another client (`aud` or `azp`).
    #[error("the token was issued to another client")]
    WrongAudience,
    /// The token has expired (`exp` is past `now`).
    #[error("the token has expired")]
    Expired,
    /// The ID token's `nonce` is not the one of this login attempt (replayed or injected token).
    #[error("nonce mismatch")]
    NonceMismatch,
    /// A claim failed another check (named in the message).
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// UserInfo answered for another subject than the ID token's.
    #[error("UserInfo is about another subject than the ID token")]
    UserInfoSubjectMismatch,
    /// The logout token is not a back-channel logout token (no `events` entry, has a `nonce`,
    /// neither `sub` nor `sid`, wrong `typ`, or no `jti`).
    #[error("not a valid logout token: {0}")]
    NotALogoutToken(String),
    /// This logout token's `jti` was already processed.
    #[error("the logout token was already used")]
    LogoutReplayed,
    /// A request to the provider failed below HTTP semantics (connection, timeout, bad JSON).
    #[error("request to the provider failed: {0}")]
    Http(String),
}
