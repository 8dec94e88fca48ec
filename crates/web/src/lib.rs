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
//! - [`hooks`]: signed ticket-change callouts from PSAs.
//! - [`auth`]: bearer tokens and partner scope.
//! - [`problem`]: `application/problem+json` errors that name each bad field.

pub mod auth;
pub mod config_api;
pub mod email_settings;
pub mod events;
pub mod hooks;
pub mod problem;
mod profiles;
mod test_notification;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use psabridge_core::catalog::Catalog;
use psabridge_engine::Engine;
use psabridge_store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub engine: Engine,
    pub catalog: Arc<Catalog>,
    pub tokens: Arc<auth::TokenCache>,
    pub partners: Arc<events::PartnerCache>,
    /// Where PSAs can reach this service (for webhooks); `None` when they cannot.
    pub public_url: Option<String>,
}

impl AppState {
    pub fn new(engine: Engine, public_url: Option<String>) -> AppState {
        AppState {
            store: engine.store.clone(),
            catalog: engine.catalog.clone(),
            engine,
            tokens: Arc::new(auth::TokenCache::new(Duration::from_secs(10))),
            partners: Arc::new(events::PartnerCache::new()),
            public_url,
        }
    }
}

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The whole API as one router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(events::routes())
        .merge(config_api::routes())
        .merge(profiles::routes())
        .merge(email_settings::routes())
        .merge(hooks::routes())
        .route("/api/v1/openapi.json", get(openapi))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        // 1000 events of a few KB each; larger bodies are refused before parsing.
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
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

/// Prometheus text exposition of the engine's counters.
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    use psabridge_engine::Stats;
    let st = &s.engine.stats;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, v: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        ));
    };
    counter(
        "psabridge_events_routed_total",
        "Events routed to at least one PSA connection.",
        Stats::get(&st.events_routed),
    );
    counter(
        "psabridge_events_skipped_total",
        "Events that no rule sent to a PSA.",
        Stats::get(&st.events_skipped),
    );
    counter(
        "psabridge_tickets_created_total",
        "PSA tickets created.",
        Stats::get(&st.tickets_created),
    );
    counter(
        "psabridge_notes_added_total",
        "Notes added to open PSA tickets.",
        Stats::get(&st.notes_added),
    );
    counter(
        "psabridge_delivery_failures_total",
        "Failed delivery attempts.",
        Stats::get(&st.delivery_failures),
    );
    counter(
        "psabridge_deliveries_dead_total",
        "Deliveries given up on.",
        Stats::get(&st.deliveries_dead),
    );
    counter(
        "psabridge_deliveries_expired_total",
        "Deliveries kept unsent because their event is older than the replay window.",
        Stats::get(&st.deliveries_expired),
    );
    counter(
        "psabridge_tickets_found_closed_total",
        "Open tickets found closed in the PSA.",
        Stats::get(&st.tickets_found_closed),
    );
    counter(
        "psabridge_psa_requests_total",
        "HTTP requests sent to PSAs by this node.",
        s.engine.psa_calls(),
    );
    if let Ok(counts) = s.store.delivery_counts().await {
        out.push_str(
            "# HELP psabridge_deliveries Deliveries by state.\n# TYPE psabridge_deliveries gauge\n",
        );
        for (state, n) in counts {
            out.push_str(&format!("psabridge_deliveries{{state=\"{state}\"}} {n}\n"));
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        out,
    )
}

#[cfg(test)]
mod tests {
    /// Every route of the router, as `METHOD path`. Adding a route without documenting it in
    /// openapi.json (and here) fails this test.
    const ROUTES: &[&str] = &[
        "POST /api/v1/events",
        "GET /api/v1/events/{id}",
        "GET /api/v1/event-types",
        "POST /api/v1/partners",
        "GET /api/v1/partners",
        "GET /api/v1/partners/{p}",
        "PATCH /api/v1/partners/{p}",
        "POST /api/v1/tokens",
        "POST /api/v1/partners/{p}/tokens",
        "DELETE /api/v1/partners/{p}/tokens/{id}",
        "GET /api/v1/partners/{p}/clients",
        "GET /api/v1/partners/{p}/clients/{client}",
        "PUT /api/v1/partners/{p}/clients/{client}",
        "PUT /api/v1/partners/{p}/clients/{client}/mappings/{connection}",
        "DELETE /api/v1/partners/{p}/clients/{client}/mappings/{connection}",
        "GET /api/v1/partners/{p}/mappings",
        "POST /api/v1/partners/{p}/connections",
        "GET /api/v1/partners/{p}/connections",
        "GET /api/v1/partners/{p}/connections/{id}",
        "PATCH /api/v1/partners/{p}/connections/{id}",
        "DELETE /api/v1/partners/{p}/connections/{id}",
        "POST /api/v1/partners/{p}/connections/{id}/connect",
        "GET /api/v1/partners/{p}/connections/{id}/lists",
        "GET /api/v1/partners/{p}/connections/{id}/companies",
        "GET /api/v1/partners/{p}/connections/{id}/companies/{company}/contacts",
        "GET /api/v1/partners/{p}/connections/{id}/companies/{company}/contracts",
        "GET /api/v1/partners/{p}/connections/{id}/groups",
        "GET /api/v1/partners/{p}/connections/{id}/rules",
        "PUT /api/v1/partners/{p}/connections/{id}/rules/{event_type}",
        "DELETE /api/v1/partners/{p}/connections/{id}/rules/{event_type}",
        "GET /api/v1/partners/{p}/event-sets",
        "POST /api/v1/partners/{p}/event-sets",
        "GET /api/v1/partners/{p}/event-sets/{set}",
        "PUT /api/v1/partners/{p}/event-sets/{set}",
        "DELETE /api/v1/partners/{p}/event-sets/{set}",
        "GET /api/v1/partners/{p}/connections/{id}/templates",
        "POST /api/v1/partners/{p}/connections/{id}/templates",
        "GET /api/v1/partners/{p}/connections/{id}/templates/{template}",
        "PUT /api/v1/partners/{p}/connections/{id}/templates/{template}",
        "DELETE /api/v1/partners/{p}/connections/{id}/templates/{template}",
        "GET /api/v1/partners/{p}/connections/{id}/integration-rules",
        "POST /api/v1/partners/{p}/connections/{id}/integration-rules",
        "PUT /api/v1/partners/{p}/connections/{id}/integration-rules/{rule}",
        "DELETE /api/v1/partners/{p}/connections/{id}/integration-rules/{rule}",
        "POST /api/v1/partners/{p}/connections/{id}/integration-rules/{rule}/default",
        "POST /api/v1/partners/{p}/connections/{id}/mappings/copy",
        "GET /api/v1/partners/{p}/deliveries",
        "GET /api/v1/partners/{p}/audit",
        "POST /api/v1/partners/{p}/clients/{client}/test-notification",
        "POST /api/v1/partners/{p}/deliveries/retry",
        "POST /api/v1/partners/{p}/deliveries/{id}/retry",
        "GET /api/v1/partners/{p}/email-settings",
        "PUT /api/v1/partners/{p}/email-settings/{event_type}",
        "POST /hooks/autotask/{connection}",
        "GET /api/v1/openapi.json",
        "GET /healthz",
        "GET /metrics",
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
        let mut routes: Vec<String> = ROUTES.iter().map(|s| s.to_string()).collect();
        routes.sort();
        assert_eq!(documented, routes);
    }

    #[test]
    fn every_route_listed_exists_in_the_router() {
        // Each listed route answers something other than 404/405 from the router itself.
        let sources = [
            include_str!("events.rs"),
            include_str!("config_api.rs"),
            include_str!("profiles.rs"),
            include_str!("email_settings.rs"),
            include_str!("hooks.rs"),
            include_str!("lib.rs"),
        ]
        .concat();
        for r in ROUTES {
            let path = r.split_once(' ').map(|x| x.1).unwrap_or_default();
            assert!(
                sources.contains(&format!("\"{path}\"")),
                "{path} is not routed"
            );
        }
    }
}
