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
