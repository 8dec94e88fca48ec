//! Authentication: `Authorization: Basic base64("{company}+{publicKey}:{privateKey}")` and a
//! registered `clientId` header on every API call.

use axum::http::HeaderMap;
use base64::Engine as _;

use super::errors::ApiError;
use super::{ApiKey, Config};

/// Who is calling.
pub struct Caller {
    pub member: String,
    /// The throttling key: company and client id.
    pub bucket: String,
}

const FAILED: &str = "Authentication failed. Check the company id, public key and private key.";

pub fn authenticate(config: &Config, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let client_id = headers
        .get("clientid")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if client_id.is_empty() {
        return Err(ApiError::Unauthorized(
            "The clientId header is required. Register the integration to obtain a clientId."
                .into(),
        ));
    }
    if !config
        .client_ids
        .iter()
        .any(|c| c.eq_ignore_ascii_case(client_id))
    {
        return Err(ApiError::Unauthorized(format!(
            "The clientId '{client_id}' is not a registered clientId."
        )));
    }
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim();
    let Some(encoded) = auth
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("basic "))
        .map(|_| auth[6..].trim())
    else {
        return Err(ApiError::Unauthorized(FAILED.into()));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::Unauthorized(FAILED.into()))?;
    let (user, private) = decoded
        .split_once(':')
        .ok_or_else(|| ApiError::Unauthorized(FAILED.into()))?;
    let (company, public) = user
        .split_once('+')
        .ok_or_else(|| ApiError::Unauthorized(FAILED.into()))?;
    if !company.eq_ignore_ascii_case(&config.company_id) {
        return Err(ApiError::Unauthorized(FAILED.into()));
    }
    let key: &ApiKey = config
        .api_keys
        .iter()
        .find(|k| k.public_key == public && k.private_key == private)
        .ok_or_else(|| ApiError::Unauthorized(FAILED.into()))?;
    Ok(Caller {
        member: key.member_identifier.clone(),
        bucket: format!(
            "{}|{}",
            config.company_id.to_ascii_lowercase(),
            client_id.to_ascii_lowercase()
        ),
    })
}
