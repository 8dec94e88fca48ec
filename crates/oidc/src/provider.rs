//! The relying party proper: discovery, the authorization-code flow with PKCE, ID-token and
//! UserInfo verification, and back-channel logout tokens.

use std::fmt;
use std::sync::Arc;

use psabridge_core::outbound::OutboundPolicy;

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreClaimName, CoreClaimType, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AdditionalProviderMetadata, AuthenticationFlow, AuthorizationCode,
    ClaimsVerificationError, Client, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IdToken, IdTokenFields, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl,
    RequestTokenError, Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use psabridge_core::secret::Secret;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::OidcError;
use crate::checks::{
    LogoutClaims, LogoutRequest, check_authorized_party, check_callback_issuer,
    check_logout_claims, check_pending_fresh, check_state, coerce_email_verified,
};
use crate::http::{execute, oidc_http_client};

/// One identity provider as an administrator configures it.
#[derive(Clone)]
pub struct IdpConfig {
    /// The issuer URL exactly as the provider writes it in its tokens.
    pub issuer: String,
    pub client_id: String,
    /// Never in `Debug` output or logs.
    pub client_secret: Secret,
    /// Where the provider sends the browser back; must be registered at the provider.
    pub redirect_uri: String,
    /// Scopes besides `openid` (always asked), e.g. `email`, `profile`.
    pub scopes: Vec<String>,
}

impl fmt::Debug for IdpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdpConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// What the caller keeps server-side between `begin_login` and the callback, bound to the
/// browser's pre-auth session and deleted on first use. It holds the secrets that tie the
/// callback to this browser, so it never goes into a URL, a cookie value or a log.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// The query parameters of the callback to `redirect_uri`, as received (deserializable from the
/// query string).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A person the provider vouched for. Look users up by (`issuer`, `subject`); `email` is only a
/// hint for linking, and only when `email_verified`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// True only for a JSON `true` or a "true"/"True" string from the provider. (Inside the
    /// ID token itself only `true`/"true" parse; a token with another string there is refused as
    /// malformed, which fails closed. UserInfo, where such providers put it, accepts any case.)
    pub email_verified: bool,
    pub name: Option<String>,
    /// The provider's session id, to match a later back-channel logout by `sid`.
    pub sid: Option<String>,
    /// The raw ID token, for `id_token_hint` in an RP-initiated logout. Not in `Debug`.
    pub id_token: String,
}

impl fmt::Debug for VerifiedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedIdentity")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("email", &self.email)
            .field("email_verified", &self.email_verified)
            .field("name", &self.name)
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}

/// Provider metadata fields that `openidconnect` does not model but the checks need.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ExtraMetadata {
    /// RFC 9207: the provider puts `iss` on every authorization response.
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    end_session_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

/// The ID-token claims beyond the standard ones: `sid` (for back-channel logout by session).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SessionClaims {
    #[serde(default)]
    sid: Option<String>,
}
impl AdditionalClaims for SessionClaims {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type OurIdToken = IdToken<
    SessionClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

type OurTokenResponse = StandardTokenResponse<
    IdTokenFields<
        SessionClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type OurClient = Client<
    SessionClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    OurTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A discovered OpenID provider for one client registration. Discovery fetches the metadata and
/// the signing keys once; keep the `Provider` and rediscover to pick up rotated keys.
#[derive(Clone)]
pub struct Provider {
    config: IdpConfig,
    metadata: Metadata,
    client: OurClient,
    http: reqwest::Client,
    outbound: Arc<OutboundPolicy>,
    logout_keys: jsonwebtoken::jwk::JwkSet,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Reads `<issuer>/.well-known/openid-configuration` and the JWKS. The document's `issuer`
    /// must equal the configured one exactly (checked by openidconnect), so a provider cannot
    /// speak for another issuer. Every request goes through a client that follows no redirects.
    pub async fn discover(config: &IdpConfig) -> Result<Provider, OidcError> {
        Provider::discover_with(
            config,
            Arc::new(OutboundPolicy::unrestricted()),
            reqwest::Client::builder(),
        )
        .await
    }

    /// [`Provider::discover`] under an outbound policy: every request's URL is checked
    /// against `outbound` (scheme, and the host when it is an address), and `builder` is the
    /// caller's client (whose resolver checks names); redirects are never followed.
    pub async fn discover_with(
        config: &IdpConfig,
        outbound: Arc<OutboundPolicy>,
        builder: reqwest::ClientBuilder,
    ) -> Result<Provider, OidcError> {
        let http = oidc_http_client(builder)?;
        let issuer_url = url::Url::parse(&config.issuer)
            .map_err(|e| OidcError::Config(format!("issuer: {e}")))?;
        crate::http::check_endpoint(&outbound, &issuer_url)
            .map_err(|e| OidcError::Config(format!("issuer: {e}")))?;
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|e| OidcError::Config(format!("issuer: {e}")))?;
        let redirect = RedirectUrl::new(config.redirect_uri.clone())
            .map_err(|e| OidcError::Config(format!("redirect_uri: {e}")))?;
        let backend = http.clone();
        let policy = outbound.clone();
        let call = move |req| execute(backend.clone(), policy.clone(), req);
        let metadata = Metadata::discover_async(issuer, &call)
            .await
            .map_err(|e| OidcError::Discovery(error_chain(&e)))?;
        let logout_keys = serde_json::to_value(metadata.jwks())
            .and_then(serde_json::from_value)
            .map_err(|e| OidcError::Discovery(format!("jwks: {e}")))?;
        let client = OurClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(config.client_id.clone()),
            Some(ClientSecret::new(config.client_secret.expose().to_owned())),
        )
        .set_redirect_uri(redirect);
        Ok(Provider {
            config: config.clone(),
            metadata,
            client,
            http,
            outbound,
            logout_keys,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The provider's RP-initiated logout endpoint, if it has one.
    pub fn end_session_endpoint(&self) -> Option<&str> {
        self.metadata
            .additional_metadata()
            .end_session_endpoint
            .as_deref()
    }

    /// Starts a login: the URL to redirect the browser to (authorization code flow, PKCE S256,
    /// fresh random `state` and `nonce`), and what to keep server-side until the callback.
    pub fn begin_login(&self, now: DateTime<Utc>) -> (url::Url, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self.client.authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.config.scopes {
            if scope != "openid" {
                request = request.add_scope(Scope::new(scope.clone()));
            }
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let pending = PendingLogin {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            created_at: now,
        };
        (url, pending)
    }

    /// Finishes a login from the callback. In order: the pending login is fresh; `state` matches
    /// (constant time); `iss` is ours (RFC 9207); the provider reported no error; the code is
    /// exchanged with the PKCE verifier; the ID token is verified; UserInfo is read and its `sub`
    /// must be the ID token's. Claims come from UserInfo when it has them (many providers keep
    /// `email` out of code-flow ID tokens), else from the ID token.
    pub async fn finish_login(
        &self,
        pending: &PendingLogin,
        callback: &CallbackParams,
        now: DateTime<Utc>,
    ) -> Result<VerifiedIdentity, OidcError> {
        check_pending_fresh(pending.created_at, now)?;
        check_state(&pending.state, callback.state.as_deref())?;
        check_callback_issuer(
            &self.config.issuer,
            self.metadata
                .additional_metadata()
                .authorization_response_iss_parameter_supported,
            callback.iss.as_deref(),
        )?;
        if let Some(error) = &callback.error {
            return Err(OidcError::ProviderError {
                error: error.clone(),
                description: callback.error_description.clone(),
            });
        }
        let code = callback.code.clone().ok_or(OidcError::MissingCode)?;

        let backend = self.http.clone();
        let policy = self.outbound.clone();
        let call = move |req| execute(backend.clone(), policy.clone(), req);
        let tokens = self
            .client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&call)
            .await
            .map_err(token_error)?;
        let id_token = tokens.id_token().ok_or(OidcError::MissingIdToken)?;
        let mut identity = self.verify_parsed_id_token(id_token, &pending.nonce, now)?;

        if let Some(endpoint) = self.metadata.userinfo_endpoint() {
            let claims = self
                .fetch_user_info(endpoint.url().as_str(), tokens.access_token().secret())
                .await?;
            if claims.get("sub").and_then(Value::as_str) != Some(identity.subject.as_str()) {
                return Err(OidcError::UserInfoSubjectMismatch);
            }
            if let Some(email) = claims.get("email").and_then(Value::as_str) {
                identity.email = Some(email.to_owned());
                identity.email_verified = coerce_email_verified(claims.get("email_verified"));
            }
            if let Some(name) = claims.get("name").and_then(Value::as_str) {
                identity.name = Some(name.to_owned());
            }
        }
        Ok(identity)
    }

    /// Verifies a raw ID token for this client: signature with the provider's keys and one of
    /// its announced algorithms, `iss`, `aud` (and `azp` when present), `exp` against `now`, and
    /// `nonce` against the one stored for the login attempt. Also used by `finish_login`.
    pub fn verify_id_token(
        &self,
        raw: &str,
        expected_nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedIdentity, OidcError> {
        let token: OurIdToken = raw
            .parse()
            .map_err(|e: serde_json::Error| OidcError::MalformedToken(e.to_string()))?;
        self.verify_parsed_id_token(&token, expected_nonce, now)
    }

    fn verify_parsed_id_token(
        &self,
        token: &OurIdToken,
        expected_nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedIdentity, OidcError> {
        let verifier = self.client.id_token_verifier().set_time_fn(move || now);
        let claims = token
            .claims(&verifier, &Nonce::new(expected_nonce.to_owned()))
            .map_err(claims_error)?;
        check_authorized_party(
            &self.config.client_id,
            claims.authorized_party().map(|p| p.as_str()),
        )?;
        Ok(VerifiedIdentity {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
            sid: claims.additional_claims().sid.clone(),
            id_token: token.to_string(),
        })
    }

    /// UserInfo as raw JSON, so that claims some providers send in odd shapes (string booleans)
    /// can be coerced rather than refused.
    async fn fetch_user_info(
        &self,
        endpoint: &str,
        access_token: &str,
    ) -> Result<Value, OidcError> {
        let response = self
            .http
            .get(endpoint)
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| OidcError::Http(format!("userinfo: {e}")))?;
        if !response.status().is_success() {
            return Err(OidcError::Http(format!(
                "userinfo answered {}",
                response.status()
            )));
        }
        let claims: Value = response
            .json()
            .await
            .map_err(|e| OidcError::Http(format!("userinfo is not JSON: {e}")))?;
        if !claims.is_object() {
            return Err(OidcError::Http("userinfo is not a JSON object".into()));
        }
        Ok(claims)
    }

    /// Verifies an OpenID Back-Channel Logout 1.0 token posted by the provider: `typ` (when
    /// present) is `logout+jwt`, the signature verifies with the provider's JWKS under an
    /// asymmetric algorithm, `iss` is this provider, `aud` is this client, then the shape checks
    /// of [`check_logout_claims`](crate::checks) (event, no nonce, `sub` or `sid`, `iat`, `exp`,
    /// `jti`). Replay is checked by the caller with [`crate::ensure_logout_not_replayed`].
    /// The endpoint that receives the token answers 200 with `Cache-Control: no-store` once it
    /// has ended the sessions, and 400 when this refuses the token (spec §2.8).
    pub fn verify_logout_token(
        &self,
        jwt: &str,
        now: DateTime<Utc>,
    ) -> Result<LogoutRequest, OidcError> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

        let header = decode_header(jwt).map_err(|e| OidcError::MalformedToken(e.to_string()))?;
        // Explicit typing is recommended by the spec, and older providers send "JWT"; what
        // tells a logout token from an ID token is checked in the claims (event, no nonce).
        if let Some(typ) = &header.typ
            && !typ.eq_ignore_ascii_case("logout+jwt")
            && !typ.eq_ignore_ascii_case("JWT")
        {
            return Err(OidcError::NotALogoutToken(format!("typ is {typ}")));
        }
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(OidcError::BadSignature(
                "symmetric algorithms are not accepted".into(),
            ));
        }
        let jwk = match &header.kid {
            Some(kid) => self.logout_keys.find(kid),
            None if self.logout_keys.keys.len() == 1 => self.logout_keys.keys.first(),
            None => None,
        }
        .ok_or_else(|| OidcError::BadSignature("no published key matches the token".into()))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| OidcError::BadSignature(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_required_spec_claims(&["iss", "aud"]);
        // Time is checked against the caller's `now` in check_logout_claims.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = decode::<LogoutClaims>(jwt, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidKeyFormat => OidcError::BadSignature(e.to_string()),
                ErrorKind::InvalidIssuer => OidcError::IssuerMismatch,
                ErrorKind::InvalidAudience => OidcError::WrongAudience,
                ErrorKind::ExpiredSignature => OidcError::Expired,
                _ => OidcError::MalformedToken(e.to_string()),
            }
        })?;
        check_logout_claims(&data.claims, now)
    }
}

/// A token-endpoint failure: the provider's own error when it gave one, else the transport's.
fn token_error<E: std::error::Error + 'static>(
    e: RequestTokenError<E, StandardErrorResponse<CoreErrorResponseType>>,
) -> OidcError {
    match e {
        RequestTokenError::ServerResponse(response) => OidcError::TokenRejected {
            error: response.error().as_ref().to_owned(),
            description: response.error_description().cloned(),
        },
        RequestTokenError::Parse(err, _) => {
            OidcError::MalformedToken(format!("token response: {err}"))
        }
        other => OidcError::Http(error_chain(&other)),
    }
}

fn claims_error(e: ClaimsVerificationError) -> OidcError {
    match e {
        ClaimsVerificationError::Expired(_) => OidcError::Expired,
        ClaimsVerificationError::InvalidAudience(_) => OidcError::WrongAudience,
        ClaimsVerificationError::InvalidIssuer(_) => OidcError::IssuerMismatch,
        ClaimsVerificationError::InvalidNonce(_) => OidcError::NonceMismatch,
        ClaimsVerificationError::SignatureVerification(s) => OidcError::BadSignature(s.to_string()),
        other => OidcError::InvalidClaims(other.to_string()),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
