//! The HTTP API of PSA Bridge.
//!
//! This crate is the only one that knows HTTP and the API's JSON shapes. Handlers validate
//! input, check the caller's scope, call the store or the engine, and shape the answer; they
//! make no routing or delivery decisions of their own.
//!
//! - [`events`]: event ingestion (our JSON and CloudEvents) and the event record.
//! - [`config_api`]: partners, tokens, clients, PSA connections, rules, mappings, deliveries.
//! - [`profiles`]: event sets, templates, integration rules, copy settings.
//! - [`email_settings`]: email on/off and recipients per event type.
//! - [`channels`]: Teams, Slack and signed webhook channels, their test message.
//! - `api_docs`: the interactive reference at `/api/docs` (Redoc, vendored and embedded).
//! - `usage` and `billing`: usage reports and their high-water marks; contract billing settings,
//!   syncs and their reports.
//! - `import`: a PSA's chosen companies imported as clients, already mapped, with a preview.
//! - [`hooks`]: signed ticket-change callouts from PSAs.
//! - [`accounts`]: people: login, sessions, TOTP, users per partner, the permission middleware.
//! - [`invitations`]: how a person joins a partner: invited by the partner, accepted by them.
//! - [`sso`]: "Log in with the IdP": provider settings, login, linking, chooser, JIT,
//!   "Require login with the IdP" and back-channel logout.
//! - [`scim`]: SCIM 2.0 provisioning and deprovisioning per partner, and its token.
//! - [`auth`]: bearer tokens and partner scope.
//! - [`problem`]: `application/problem+json` errors that name each bad field.

pub mod accounts;
mod api_docs;
mod assets;
mod audit;
pub mod auth;
mod billing;
pub mod channels;
pub mod config_api;
pub mod email_settings;
pub mod event_types;
pub mod events;
pub mod hooks;
mod import;
mod input;
pub mod invitations;
mod operations;
pub mod portal;
pub mod problem;
mod profiles;
pub mod scim;
pub mod sso;
mod test_notification;
mod usage;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use psabridge_core::catalog::Catalog;
use psabridge_engine::Engine;
use psabridge_store::Store;

use accounts::Access;
use psabridge_identity::Permission;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub engine: Engine,
    pub tokens: Arc<auth::TokenCache>,
    pub partners: Arc<events::PartnerCache>,
    /// Where PSAs can reach this service (for webhooks); `None` when they cannot.
    pub public_url: Option<String>,
    /// Sessions, cookies, password hashing, throttling and the clock for logins.
    pub accounts: Arc<accounts::AccountsConfig>,
    /// Logins through identity providers: the portal URL and the discovered providers.
    pub sso: Arc<sso::SsoConfig>,
    /// Configuration changes (connections, mappings, ticket settings, email settings,
    /// profiles): the handlers of those routes only extract, call these and shape the answer.
    pub ops: psabridge_ops::Ops,
}

impl AppState {
    /// The event types events may be sent as and settings may name: the active ones, as the
    /// store holds them (at most `engine::catalog::RECHECK` old).
    pub async fn event_catalog(&self) -> Arc<Catalog> {
        self.engine.catalog.fresh().await.accepting.clone()
    }

    pub fn new(engine: Engine, public_url: Option<String>) -> AppState {
        AppState {
            store: engine.store.clone(),
            ops: psabridge_ops::Ops::new(engine.clone(), public_url.clone()),
            engine,
            tokens: Arc::new(auth::TokenCache::new(Duration::from_secs(10))),
            partners: Arc::new(events::PartnerCache::new()),
            public_url,
            accounts: Arc::new(accounts::AccountsConfig::default()),
            sso: Arc::new(sso::SsoConfig::default()),
        }
    }
}

/// Every route of the router, as `METHOD path`, with who may call it. The permission
/// middleware ([`accounts::enforce`]) looks routes up here; openapi.json must document exactly
/// these routes; and a test fails if a route in the sources is missing here.
pub const ROUTES: &[(&str, Access)] = &[
    ("POST /api/v1/events", Access::TokenOnly),
    ("POST /api/v1/usage", Access::TokenOnly),
    ("POST /api/v1/assets", Access::TokenOnly),
    (
        "GET /api/v1/partners/{p}/assets",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "PUT /api/v1/partners/{p}/clients/{client}/mappings/{connection}/assets",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /api/v1/partners/{p}/connections/{id}/assets/push",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/usage",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "GET /api/v1/partners/{p}/billing-calendar",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "PUT /api/v1/partners/{p}/billing-calendar",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "PUT /api/v1/partners/{p}/connections/{id}/billing",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/connections/{id}/billing",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "PUT /api/v1/partners/{p}/clients/{client}/mappings/{connection}/billing",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /api/v1/partners/{p}/billing/sync",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/billing/runs",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "GET /api/v1/partners/{p}/billing/runs/{id}",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "GET /api/v1/events/{id}",
        Access::Acting(Permission::ViewDeliveries),
    ),
    (
        "GET /api/v1/event-types",
        Access::Acting(Permission::ViewSettings),
    ),
    (
        "GET /api/v1/event-types/{key}",
        Access::Acting(Permission::ViewSettings),
    ),
    ("POST /api/v1/event-types", Access::TokenOnly),
    ("PUT /api/v1/event-types/{key}", Access::TokenOnly),
    ("DELETE /api/v1/event-types/{key}", Access::TokenOnly),
    ("POST /api/v1/partners", Access::TokenOnly),
    (
        "GET /api/v1/partners",
        Access::Acting(Permission::ViewSettings),
    ),
    (
        "GET /api/v1/partners/{p}",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "PATCH /api/v1/partners/{p}",
        Access::Partner(Permission::ManageSettings),
    ),
    ("POST /api/v1/tokens", Access::TokenOnly),
    ("GET /api/v1/tokens", Access::TokenOnly),
    (
        "GET /api/v1/partners/{p}/tokens",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /api/v1/partners/{p}/tokens",
        Access::Partner(Permission::ManageTokens),
    ),
    (
        "DELETE /api/v1/partners/{p}/tokens/{id}",
        Access::Partner(Permission::ManageTokens),
    ),
    (
        "GET /api/v1/partners/{p}/clients",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "GET /api/v1/partners/{p}/clients/{client}",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "PUT /api/v1/partners/{p}/clients/{client}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "PUT /api/v1/partners/{p}/clients/{client}/mappings/{connection}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "DELETE /api/v1/partners/{p}/clients/{client}/mappings/{connection}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /api/v1/partners/{p}/connections/{id}/import",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/mappings",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /api/v1/partners/{p}/connections",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/connections",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "GET /api/v1/partners/{p}/connections/{id}",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "PATCH /api/v1/partners/{p}/connections/{id}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "DELETE /api/v1/partners/{p}/connections/{id}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /api/v1/partners/{p}/connections/{id}/connect",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/connections/{id}/lists",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "GET /api/v1/partners/{p}/connections/{id}/companies",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "GET /api/v1/partners/{p}/connections/{id}/companies/{company}/contacts",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "GET /api/v1/partners/{p}/connections/{id}/groups",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "GET /api/v1/partners/{p}/connections/{id}/rules",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "PUT /api/v1/partners/{p}/connections/{id}/rules/{event_type}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "DELETE /api/v1/partners/{p}/connections/{id}/rules/{event_type}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/connections/{id}/companies/{company}/contracts",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "GET /api/v1/partners/{p}/event-sets",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /api/v1/partners/{p}/event-sets",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/event-sets/{set}",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "PUT /api/v1/partners/{p}/event-sets/{set}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "DELETE /api/v1/partners/{p}/event-sets/{set}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/connections/{id}/templates",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /api/v1/partners/{p}/connections/{id}/templates",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/connections/{id}/templates/{template}",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "PUT /api/v1/partners/{p}/connections/{id}/templates/{template}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "DELETE /api/v1/partners/{p}/connections/{id}/templates/{template}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/connections/{id}/integration-rules",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /api/v1/partners/{p}/connections/{id}/integration-rules",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "PUT /api/v1/partners/{p}/connections/{id}/integration-rules/{rule}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "DELETE /api/v1/partners/{p}/connections/{id}/integration-rules/{rule}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /api/v1/partners/{p}/connections/{id}/integration-rules/{rule}/default",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /api/v1/partners/{p}/connections/{id}/mappings/copy",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/email-settings",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "PUT /api/v1/partners/{p}/email-settings/{event_type}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/channels",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /api/v1/partners/{p}/channels",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/channels/{id}",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "PATCH /api/v1/partners/{p}/channels/{id}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "DELETE /api/v1/partners/{p}/channels/{id}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /api/v1/partners/{p}/channels/{id}/test",
        Access::Partner(Permission::OperateDeliveries),
    ),
    (
        "POST /api/v1/partners/{p}/channels/{id}/signing-secret",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /api/v1/partners/{p}/deliveries",
        Access::Partner(Permission::ViewDeliveries),
    ),
    (
        "GET /api/v1/partners/{p}/audit",
        Access::Partner(Permission::ViewAudit),
    ),
    (
        "POST /api/v1/partners/{p}/clients/{client}/test-notification",
        Access::Partner(Permission::OperateDeliveries),
    ),
    (
        "POST /api/v1/partners/{p}/deliveries/retry",
        Access::Partner(Permission::OperateDeliveries),
    ),
    (
        "POST /api/v1/partners/{p}/deliveries/{id}/retry",
        Access::Partner(Permission::OperateDeliveries),
    ),
    ("POST /hooks/autotask/{connection}", Access::Public),
    ("POST /hooks/connectwise/{connection}", Access::Public),
    ("POST /hooks/halopsa/{connection}", Access::Public),
    ("GET /api/v1/openapi.json", Access::Public),
    ("GET /api/docs", Access::Public),
    ("GET /api/docs/redoc.standalone.js", Access::Public),
    ("GET /healthz", Access::Public),
    // The partner portal (crates/web/src/portal): the same table governs its pages and forms.
    ("GET /", Access::Public),
    ("GET /portal.css", Access::Public),
    ("GET /portal.js", Access::Public),
    ("GET /invitation", Access::Public),
    ("POST /invitation", Access::Public),
    ("GET /sso/choose", Access::Public),
    ("GET /sso/confirm", Access::Public),
    ("GET /login", Access::Public),
    ("POST /login", Access::Public),
    ("GET /login/sso", Access::Public),
    ("POST /logout", Access::Session),
    ("GET /choose", Access::Session),
    ("GET /p/{p}", Access::Partner(Permission::ViewSettings)),
    (
        "GET /p/{p}/clients",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "GET /p/{p}/clients/{client}",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/clients/{client}/test",
        Access::Partner(Permission::OperateDeliveries),
    ),
    (
        "GET /p/{p}/deliveries",
        Access::Partner(Permission::ViewDeliveries),
    ),
    (
        "POST /p/{p}/deliveries/retry",
        Access::Partner(Permission::OperateDeliveries),
    ),
    (
        "POST /p/{p}/deliveries/{id}/retry",
        Access::Partner(Permission::OperateDeliveries),
    ),
    (
        "GET /p/{p}/notifications",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/notifications/category",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /p/{p}/notifications/{event_type}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /p/{p}/clients/{client}/assets/{connection}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /p/{p}/clients/{client}/assets/{connection}/push",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /p/{p}/billing",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/billing/calendar",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /p/{p}/billing/sync",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /p/{p}/billing/runs/{run}",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "GET /p/{p}/connections/{id}/billing",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/billing",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /p/{p}/connections/{id}/billing/{client}",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/billing/{client}",
        Access::Partner(Permission::ManageSettings),
    ),
    ("GET /p/{p}/audit", Access::Partner(Permission::ViewAudit)),
    ("GET /p/{p}/users", Access::Partner(Permission::ViewUsers)),
    (
        "GET /p/{p}/security",
        Access::Partner(Permission::ViewUsers),
    ),
    (
        "POST /p/{p}/security/idp",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "POST /p/{p}/security/exemptions",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "POST /p/{p}/security/exemptions/{user}/remove",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "POST /p/{p}/security/scim-token",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "POST /p/{p}/security/scim-token/revoke",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "GET /p/{p}/tokens",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/tokens",
        Access::Partner(Permission::ManageTokens),
    ),
    (
        "POST /p/{p}/tokens/{id}/revoke",
        Access::Partner(Permission::ManageTokens),
    ),
    // A person's own authenticator: any member, for themselves.
    (
        "GET /p/{p}/account",
        Access::Partner(Permission::ViewSettings),
    ),
    ("POST /p/{p}/account/totp", Access::Session),
    ("POST /p/{p}/account/totp/confirm", Access::Session),
    (
        "POST /p/{p}/users",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "POST /p/{p}/users/{user}",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "POST /p/{p}/users/{user}/remove",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "GET /p/{p}/connections",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/connections",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /p/{p}/connections/new",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "GET /p/{p}/connections/{id}",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/connections/{id}",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/delete",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /p/{p}/connections/{id}/mapping",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/mapping",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /p/{p}/connections/{id}/companies",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/catch-all",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /p/{p}/connections/{id}/mapping/{client}/contact",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/mapping/{client}/contact",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /p/{p}/connections/{id}/defaults",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/defaults",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /p/{p}/connections/{id}/import",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/import",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "GET /p/{p}/connections/{id}/profiles",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/event-sets",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/event-sets/{set}/delete",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/templates",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/templates/{template}/delete",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/rules",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/rules/{rule}/default",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/rules/{rule}/delete",
        Access::Partner(Permission::ManageSettings),
    ),
    (
        "POST /p/{p}/connections/{id}/copy-settings",
        Access::Partner(Permission::ManageSettings),
    ),
    ("GET /livez", Access::Public),
    ("GET /readyz", Access::Public),
    ("POST /api/v1/auth/login", Access::Public),
    ("POST /api/v1/auth/password", Access::Public),
    ("POST /api/v1/auth/logout", Access::Session),
    ("GET /api/v1/auth/session", Access::Session),
    ("GET /api/v1/auth/sessions", Access::Session),
    ("DELETE /api/v1/auth/sessions/{id}", Access::Session),
    ("POST /api/v1/auth/totp/enroll", Access::Session),
    ("POST /api/v1/auth/totp/confirm", Access::Session),
    (
        "GET /api/v1/partners/{p}/users",
        Access::Partner(Permission::ViewUsers),
    ),
    (
        "POST /api/v1/partners/{p}/users",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "PATCH /api/v1/partners/{p}/users/{user}",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "DELETE /api/v1/partners/{p}/users/{user}",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "GET /api/v1/partners/{p}/invitations",
        Access::Partner(Permission::ViewUsers),
    ),
    (
        "DELETE /api/v1/partners/{p}/invitations/{id}",
        Access::Partner(Permission::ManageUsers),
    ),
    ("GET /api/v1/auth/invitations", Access::Session),
    ("POST /api/v1/auth/invitations/{id}/accept", Access::Session),
    (
        "POST /api/v1/auth/invitations/{id}/decline",
        Access::Session,
    ),
    // "Log in with the IdP" (sso.rs): settings and exemptions are Security Admin business.
    (
        "GET /api/v1/partners/{p}/sso",
        Access::Partner(Permission::ViewSettings),
    ),
    (
        "PUT /api/v1/partners/{p}/sso",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "GET /api/v1/partners/{p}/sso/exemptions",
        Access::Partner(Permission::ViewUsers),
    ),
    (
        "POST /api/v1/partners/{p}/sso/exemptions",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "DELETE /api/v1/partners/{p}/sso/exemptions/{user}",
        Access::Partner(Permission::ManageUsers),
    ),
    ("GET /api/v1/auth/sso/{p}/start", Access::Public),
    ("GET /api/v1/auth/sso/callback", Access::Public),
    ("GET /api/v1/auth/sso/choose", Access::Public),
    ("POST /api/v1/auth/sso/choose", Access::Public),
    ("POST /api/v1/auth/sso/confirm", Access::Public),
    ("POST /api/v1/auth/sso/backchannel-logout", Access::Public),
    (
        "POST /api/v1/partners/{p}/scim/token",
        Access::Partner(Permission::ManageUsers),
    ),
    (
        "DELETE /api/v1/partners/{p}/scim/token",
        Access::Partner(Permission::ManageUsers),
    ),
    // SCIM: the partner's SCIM token, checked by each handler (crates/web/src/scim.rs).
    ("GET /scim/v2/{p}/ServiceProviderConfig", Access::Public),
    ("GET /scim/v2/{p}/ResourceTypes", Access::Public),
    ("GET /scim/v2/{p}/ResourceTypes/{id}", Access::Public),
    ("GET /scim/v2/{p}/Schemas", Access::Public),
    ("GET /scim/v2/{p}/Schemas/{id}", Access::Public),
    ("GET /scim/v2/{p}/Users", Access::Public),
    ("POST /scim/v2/{p}/Users", Access::Public),
    ("POST /scim/v2/{p}/Users/.search", Access::Public),
    ("POST /scim/v2/{p}/.search", Access::Public),
    ("GET /scim/v2/{p}/Users/{id}", Access::Public),
    ("PUT /scim/v2/{p}/Users/{id}", Access::Public),
    ("PATCH /scim/v2/{p}/Users/{id}", Access::Public),
    ("DELETE /scim/v2/{p}/Users/{id}", Access::Public),
];

/// Who may call the route `METHOD path` (the path as routed, with `{…}` parameters).
pub fn access_of(method: &str, path: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|(r, _)| {
            r.split_once(' ')
                .is_some_and(|(m, p)| m == method && p == path)
        })
        .map(|(_, a)| *a)
}

/// Largest JSON body of a request, except events.
pub const MAX_BODY: usize = 1024 * 1024;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The whole API as one router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(events::routes())
        .merge(event_types::routes())
        .merge(usage::routes())
        .merge(billing::routes())
        .merge(assets::routes())
        .merge(import::routes())
        .merge(config_api::routes())
        .merge(profiles::routes())
        .merge(email_settings::routes())
        .merge(channels::routes())
        .merge(api_docs::routes())
        .merge(hooks::routes())
        .merge(accounts::routes())
        .merge(invitations::routes())
        .merge(sso::routes())
        .merge(scim::routes())
        .merge(portal::routes())
        .route("/api/v1/openapi.json", get(openapi))
        .route("/healthz", get(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        // Every route above passes the permission check; unrouted requests get 404 without it.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            accounts::enforce,
        ))
        // Unrouted paths: 404 (a SCIM error under /scim/).
        .fallback(scim::fallback)
        // JSON bodies up to 1 MiB (events: 4 MiB, set on their route); larger ones are
        // refused (413) before they are read whole.
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // Every error under /api/ is problem+json, axum's own rejections included.
        .layer(axum::middleware::from_fn(problem::uniform))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
}

async fn health(State(s): State<AppState>) -> impl IntoResponse {
    match s.store.ping().await {
        Ok(()) => (axum::http::StatusCode::OK, "ok\n"),
        Err(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "database unreachable\n",
        ),
    }
}

/// The process is up and answering: nothing else is checked, so an orchestrator restarts a
/// node only when it is stuck, never because the database is away.
async fn livez() -> impl IntoResponse {
    (axum::http::StatusCode::OK, "ok\n")
}

/// Whether this node should be sent traffic: the database answers, its schema has every
/// migration of this build, and the node is not draining. Otherwise 503 problem+json naming
/// what is wrong (`errors[].path`: `database`, `migrations` or `node`).
async fn readyz(State(s): State<AppState>) -> Response {
    use axum::http::StatusCode;
    let not_ready = |path: &str, problem: String| {
        problem::Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Not ready")
            .detail(format!("{path}: {problem}"))
            .field(path, problem)
            .into_response()
    };
    if s.engine.is_draining() {
        return not_ready("node", "draining: the node is shutting down".into());
    }
    if let Err(e) = s.store.ping().await {
        return not_ready("database", format!("unreachable: {e}"));
    }
    match s.store.migrations_missing().await {
        Ok(missing) if missing.is_empty() => (StatusCode::OK, "ready\n").into_response(),
        Ok(missing) => not_ready(
            "migrations",
            format!(
                "not current: the database lacks migration(s) {}",
                missing
                    .iter()
                    .map(|v| format!("{v:04}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(e) => not_ready("migrations", format!("cannot be read: {e}")),
    }
}

#[cfg(test)]
mod tests {
    /// Every source file that adds routes to the router.
    const ROUTE_SOURCES: &[&str] = &[
        include_str!("events.rs"),
        include_str!("event_types.rs"),
        include_str!("usage.rs"),
        include_str!("billing.rs"),
        include_str!("assets.rs"),
        include_str!("import.rs"),
        include_str!("config_api.rs"),
        include_str!("profiles.rs"),
        include_str!("email_settings.rs"),
        include_str!("channels.rs"),
        include_str!("api_docs.rs"),
        include_str!("hooks.rs"),
        include_str!("accounts.rs"),
        include_str!("invitations.rs"),
        include_str!("sso.rs"),
        include_str!("scim.rs"),
        include_str!("lib.rs"),
        include_str!("portal/mod.rs"),
        include_str!("portal/login.rs"),
        include_str!("portal/dashboard.rs"),
        include_str!("portal/clients.rs"),
        include_str!("portal/connections.rs"),
        include_str!("portal/profiles.rs"),
        include_str!("portal/imports.rs"),
        include_str!("portal/billing.rs"),
        include_str!("portal/deliveries.rs"),
        include_str!("portal/notifications.rs"),
        include_str!("portal/audit.rs"),
        include_str!("portal/password.rs"),
        include_str!("portal/sso.rs"),
        include_str!("portal/users.rs"),
        include_str!("portal/security.rs"),
        include_str!("portal/account.rs"),
        include_str!("portal/tokens.rs"),
    ];

    #[test]
    fn the_openapi_document_describes_every_route_and_nothing_else() {
        let doc: serde_json::Value =
            serde_json::from_str(super::OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = Vec::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for method in ops.as_object().expect("operations").keys() {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
        documented.sort();
        // The portal's pages are HTML for people, not part of the API the document describes.
        let mut routes: Vec<String> = super::ROUTES
            .iter()
            .map(|(r, _)| r.to_string())
            .filter(|r| {
                r.split_once(' ')
                    .is_some_and(|(_, path)| !super::portal::is_portal_path(path))
            })
            .collect();
        routes.sort();
        assert_eq!(documented, routes);
    }

    #[test]
    fn the_documented_time_zones_are_the_ones_this_build_knows() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let zones =
            doc["components"]["schemas"]["BillingCalendar"]["properties"]["time_zone"]["enum"]
                .as_array()
                .expect("time_zone lists its zones");
        assert!(zones.len() > 500);
        for z in zones {
            let z = z.as_str().expect("a zone name");
            assert!(
                psabridge_core::billing::BillingCalendar::new(z, 1).is_ok(),
                "{z} is documented but not known"
            );
        }
    }

    #[test]
    fn every_route_listed_exists_in_the_router() {
        // Each listed route answers something other than 404/405 from the router itself.
        let sources = ROUTE_SOURCES.concat();
        for (r, _) in super::ROUTES {
            let path = r.split_once(' ').map(|x| x.1).unwrap_or_default();
            assert!(
                sources.contains(&format!("\"{path}\"")),
                "{path} is not routed"
            );
        }
    }

    #[test]
    fn every_routed_path_has_a_permission_entry() {
        // A route added to the router without an entry in ROUTES would be refused by the
        // middleware at run time; this makes it fail here first.
        let sources = ROUTE_SOURCES.concat();
        let mut routed = 0;
        for piece in sources.split(".route(").skip(1) {
            let Some(path) = piece
                .trim_start()
                .strip_prefix('"')
                .and_then(|p| p.split('"').next())
                .filter(|p| p.starts_with('/'))
            else {
                continue;
            };
            routed += 1;
            assert!(
                super::ROUTES
                    .iter()
                    .any(|(r, _)| r.split_once(' ').is_some_and(|(_, p)| p == path)),
                "{path} is routed but has no entry in ROUTES"
            );
        }
        assert!(routed >= 30, "found only {routed} routes in the sources");
        // Each entry is unique.
        let mut seen = std::collections::HashSet::new();
        for (r, _) in super::ROUTES {
            assert!(seen.insert(*r), "{r} is listed twice");
        }
    }

    #[test]
    fn reads_need_only_read_permissions_and_writes_never_do() {
        use super::Access;
        for (r, access) in super::ROUTES {
            let method = r.split(' ').next().unwrap_or_default();
            if let Access::Partner(p) | Access::Acting(p) = access {
                assert_eq!(p.is_read_only(), method == "GET", "{r} needs {p:?}");
            }
        }
    }
}
