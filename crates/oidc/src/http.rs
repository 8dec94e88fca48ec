//! The HTTP client used for every call to the provider, and its adapter for `openidconnect`.

use std::time::Duration;

use crate::OidcError;

/// A client that never follows redirects (a redirect from a token or UserInfo endpoint is an
/// SSRF vector, and openidconnect's documentation asks for this), with a bounded timeout.
pub(crate) fn oidc_http_client(
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::Client, OidcError> {
    builder
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| OidcError::Http(e.to_string()))
}

/// Why a request to the provider was not sent or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error("{0}: {1}")]
    Refused(String, psabridge_core::outbound::Refusal),
}

/// May `url` (an endpoint the provider's metadata named) be called? Its scheme, and its host
/// when it is an address (names are checked by the client's resolver when they resolve).
pub(crate) fn check_endpoint(
    policy: &psabridge_core::outbound::OutboundPolicy,
    url: &url::Url,
) -> Result<(), CallError> {
    let refused = |r| CallError::Refused(url.origin().ascii_serialization(), r);
    policy.check_scheme(url.scheme()).map_err(refused)?;
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    if let Some(ip) = ip {
        policy
            .check_addr(ip, url.port_or_known_default())
            .map_err(refused)?;
    }
    Ok(())
}

/// Runs one `openidconnect` request over the workspace's reqwest 0.13 (openidconnect's own
/// `reqwest` feature would pull a second reqwest, 0.12), after checking its URL against the
/// outbound policy.
pub(crate) async fn execute(
    client: reqwest::Client,
    policy: std::sync::Arc<psabridge_core::outbound::OutboundPolicy>,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, CallError> {
    let request: reqwest::Request = request.try_into()?;
    check_endpoint(&policy, request.url())?;
    let response = client.execute(request).await?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    Ok(builder
        .body(body)
        .expect("status and headers come from a valid response"))
}
