//! Authentication by Autotask's headers: `UserName`, `Secret`, `ApiIntegrationCode` and the
//! optional `ImpersonationResourceId`.
//!
//! Header names are case-insensitive (HTTP says so, and clients send `ApiIntegrationcode`).
//! A wrong user or secret is 401; a right user with a wrong integration code is Autotask's
//! peculiar 500 `IntegrationCode is invalid.`

use axum::http::HeaderMap;

use super::ApiUser;
use super::errors::ApiError;

/// Who is calling.
pub struct Caller<'a> {
    pub user: &'a ApiUser,
    /// The resource to act as on writes (`ImpersonationResourceId`).
    pub impersonate: Option<i64>,
}

fn header<'h>(h: &'h HeaderMap, name: &str) -> &'h str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("")
}

/// Check the credentials of a request against the configured API users.
pub fn authenticate<'a>(users: &'a [ApiUser], h: &HeaderMap) -> Result<Caller<'a>, ApiError> {
    let name = header(h, "username");
    let secret = header(h, "secret");
    let code = header(h, "apiintegrationcode");
    let user = users
        .iter()
        .find(|u| u.username.eq_ignore_ascii_case(name) && u.secret == secret)
        .ok_or(ApiError::Unauthorized)?;
    if user.integration_code != code {
        return Err(ApiError::Server("IntegrationCode is invalid.".into()));
    }
    let imp = header(h, "impersonationresourceid");
    let impersonate = if imp.is_empty() {
        None
    } else {
        Some(imp.parse::<i64>().map_err(|_| {
            ApiError::Server(format!(
                "The ImpersonationResourceId header value '{imp}' is not a valid resource id."
            ))
        })?)
    };
    Ok(Caller { user, impersonate })
}

/// Is `user` a known API user (for zone discovery)?
pub fn known_user(users: &[ApiUser], user: &str) -> bool {
    !user.is_empty() && users.iter().any(|u| u.username.eq_ignore_ascii_case(user))
}
