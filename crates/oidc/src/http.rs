//! The HTTP client used for every call to the provider, and its adapter for `openidconnect`.

use std::time::Duration;

use crate::OidcError;

/// A client that never follows redirects (a redirect from a token or UserInfo endpoint is an
/// SSRF vector, and openidconnect's documentation asks for this), with a bounded timeout.
pub(crate) fn oidc_http_client() -> Result<reqwest::Client, OidcError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| OidcError::Http(e.to_string()))
}

/// Runs one `openidconnect` request over the workspace's reqwest 0.13 (openidconnect's own
/// `reqwest` feature would pull a second reqwest, 0.12).
pub(crate) async fn execute(
    client: reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let response = client.execute(request.try_into()?).await?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    Ok(builder
        .body(body)
        .expect("status and headers come from a valid response"))
}
