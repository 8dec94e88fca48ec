//! Wiring: the one place that puts store, engine, connectors and HTTP API together.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use psabridge_core::catalog::Catalog;
use psabridge_engine::{ConnectorRegistry, Engine, EngineConfig};
use psabridge_store::Store;
use psabridge_store::seal::KeyRing;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running product: API + engine on one store.
pub struct Running {
    pub store: Store,
    pub engine: Engine,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    tracker: TaskTracker,
    /// On SQLite, this process's exclusive hold on the database (released at exit).
    _single_node: Option<psabridge_store::cluster::SingleNodeLock>,
}

impl Running {
    /// Stop taking requests, let the engine finish what it holds, close the database.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.store.close().await;
    }
}

/// How people reach the API, beyond the defaults.
#[derive(Default)]
pub struct PeopleOptions {
    /// Where account emails (invitations) go; `None`: the `[smtp]` server of the engine's
    /// configuration, else nowhere (the operator issues links with `psabridge invite`).
    pub account_mailer: Option<Arc<dyn psabridge_engine::mail::Mailer>>,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Open the store (migrating it) and start the API on `listener` and the engine beside it.
pub async fn start(
    store_options: &psabridge_store::StoreOptions,
    keys: KeyRing,
    catalog: Catalog,
    engine_config: EngineConfig,
    listener: TcpListener,
    public_url: Option<String>,
    people: PeopleOptions,
) -> Result<Running> {
    // SQLite is one node: a second serving process on the same file is refused before it
    // opens anything.
    let single_node = psabridge_store::cluster::lock_single_node(&store_options.url)
        .with_context(|| "database_url: refused".to_string())?;
    let store = Store::open(store_options, keys).await.with_context(|| {
        format!(
            "database_url: cannot open {}",
            psabridge_store::redact_url(&store_options.url)
        )
    })?;
    let outbound = psabridge_psa::Outbound::new(engine_config.outbound.clone());
    let engine = Engine::new(
        store.clone(),
        ConnectorRegistry::with_outbound(outbound),
        Arc::new(catalog),
        engine_config,
    );
    // The catalog file seeds the event types; from now on the store's rows are the catalog,
    // changed through the API and followed by every node.
    engine
        .catalog
        .follow(&store, chrono::Utc::now().timestamp_millis())
        .await
        .context("event types: cannot seed or read them")?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    engine.spawn(shutdown.clone(), &tracker);
    let addr = listener.local_addr()?;
    let mut state = psabridge_web::AppState::new(engine.clone(), public_url.clone());
    // Session cookies are Secure, except for a plain-http service on the loopback interface
    // (the demo), where browsers and clients would otherwise not send them back.
    let plain_http_loopback = addr.ip().is_loopback()
        && public_url
            .as_deref()
            .is_none_or(|u| u.starts_with("http://"));
    state.accounts = Arc::new(psabridge_web::accounts::AccountsConfig {
        secure_cookies: !plain_http_loopback,
        mailer: people.account_mailer,
        trusted_proxies: people.trusted_proxies,
        ..Default::default()
    });
    // The portal is served here too: invitation links open its page, and logins through an
    // identity provider end on it (its chooser and confirmation pages) instead of in JSON.
    let portal = public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    state.sso = Arc::new(psabridge_web::sso::SsoConfig::with_portal_url(Some(portal)));
    let app = psabridge_web::router(state)
        // The client address, for login throttling and the audit log.
        .into_make_service_with_connect_info::<SocketAddr>();
    let stop = shutdown.clone();
    tracker.spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        {
            tracing::error!(error = %e, "the HTTP server failed");
        }
    });
    Ok(Running {
        store,
        engine,
        addr,
        shutdown,
        tracker,
        _single_node: single_node,
    })
}

/// Stop after a stop signal: claim nothing more, let in-flight deliveries and ingest commits
/// finish (deliveries within the engine's drain time, then given back), close the database.
/// Bounded: a second signal, or the drain time plus a margin, ends the wait.
pub async fn drain(running: Running) {
    let bound = running.engine.config.drain_timeout + std::time::Duration::from_secs(10);
    tracing::info!(within = ?bound, "stopping: draining in-flight work");
    tokio::select! {
        _ = running.stop() => tracing::info!("stopped"),
        _ = tokio::time::sleep(bound) => tracing::warn!("the drain took too long; exiting"),
        _ = stop_signal() => tracing::warn!("asked again to stop; exiting without waiting"),
    }
}

/// Latency buckets (seconds) of every `*_seconds` histogram: PSA requests take from tens of
/// milliseconds to the 30 s timeout; an acknowledgement from a millisecond to seconds.
const SECONDS_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's Prometheus recorder, installed on first use (the `metrics` recorder is global).
fn prometheus() -> Result<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
            &SECONDS_BUCKETS,
        )
        .context("metrics: histogram buckets")?
        .install_recorder()
        .context("metrics: cannot install the Prometheus recorder")?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Metric descriptions, so a scrape says what each series is.
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    use psabridge_engine::metrics as m;
    describe_counter!(
        psabridge_psa::meter::REQUESTS,
        "PSA requests by connection, PSA kind, endpoint template and HTTP status (or timeout/unreachable/lost)."
    );
    describe_histogram!(
        psabridge_psa::meter::REQUEST_SECONDS,
        Unit::Seconds,
        "Latency of PSA requests by connection, PSA kind and endpoint template."
    );
    describe_gauge!(
        m::BUDGET_USED,
        "PSA requests this node sent for the connection in the trailing hour."
    );
    describe_gauge!(
        m::BUDGET_LIMIT,
        "The connection's share of its PSA's hourly request limit."
    );
    describe_gauge!(
        m::BREAKER_OPEN,
        "1 while the connection's breaker holds its deliveries back."
    );
    describe_gauge!(m::PENDING, "Deliveries pending, retrying or in flight.");
    describe_gauge!(
        m::OLDEST_AGE,
        Unit::Seconds,
        "Age of the connection's oldest unfinished delivery."
    );
    describe_gauge!(m::UNROUTED, "Events accepted and not yet routed.");
    describe_counter!(
        m::DELIVERIES,
        "Delivery attempts finished, by outcome (created, noted, closed, nothing, emailed, retry, dead, expired)."
    );
    describe_counter!(
        psabridge_web::events::EVENTS,
        "Events received, by outcome (accepted, duplicate, invalid)."
    );
    describe_histogram!(
        psabridge_web::events::ACK_SECONDS,
        Unit::Seconds,
        "From an ingestion request's arrival to its answer (after the commit), by HTTP status."
    );
}

impl Running {
    /// Serve the Prometheus exposition at `GET /metrics` on `listener`, apart from the API
    /// (operators keep it off the public port). Gauges of the backlog are sampled from the
    /// store on scrape, at most once a second.
    pub fn serve_metrics(&self, listener: TcpListener) -> Result<SocketAddr> {
        let handle = prometheus()?;
        describe_metrics();
        let addr = listener.local_addr()?;
        let engine = self.engine.clone();
        let render = handle.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let engine = engine.clone();
                let render = render.clone();
                async move {
                    psabridge_engine::metrics::sample(&engine).await;
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        render.render(),
                    )
                }
            }),
        );
        let stop = self.shutdown.clone();
        self.tracker.spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
            {
                tracing::error!(error = %e, "the metrics server failed");
            }
        });
        // Histograms keep their samples until upkeep folds them in; do it now and then.
        let stop = self.shutdown.clone();
        self.tracker.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => handle.run_upkeep(),
                }
            }
        });
        Ok(addr)
    }
}

/// Bind the metrics listener. An address the operator chose must be free; the default one
/// may be taken (several nodes or demos on one host): then metrics are not served, with a
/// warning.
pub async fn bind_metrics(addr: Option<&str>) -> Result<Option<TcpListener>> {
    match addr {
        Some(a) if a.eq_ignore_ascii_case("off") => Ok(None),
        Some(a) => {
            Ok(Some(TcpListener::bind(a).await.with_context(|| {
                format!("metrics listen: cannot listen on {a}")
            })?))
        }
        None => match TcpListener::bind(DEFAULT_METRICS_LISTEN).await {
            Ok(l) => Ok(Some(l)),
            Err(e) => {
                tracing::warn!(addr = DEFAULT_METRICS_LISTEN, error = %e, "metrics are not served: the default address is taken (set [metrics] listen)");
                Ok(None)
            }
        },
    }
}

/// Where metrics are served unless configured otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// Resolve when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
