//! The HTTP server: an accept loop over hyper, so that a fault can close a connection without
//! answering and shutdown can cut held requests.
//!
//! Each connection puts a [`Conn`] into its requests' extensions; a handler that wants the
//! connection gone calls [`Conn::kill`] and never answers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// The connection a request came on.
#[derive(Clone)]
pub struct Conn {
    kill: Arc<Notify>,
}

impl Conn {
    /// Close the connection with nothing sent.
    pub fn kill(&self) {
        self.kill.notify_one();
    }
}

/// Serve `router` until `stop` turns true.
pub async fn serve(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(connection(stream, router.clone(), stop.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the ConnectWise simulator could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
        }
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = tokio::time::timeout(Duration::from_secs(2), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
}

async fn connection(stream: TcpStream, router: Router, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let kill = Arc::new(Notify::new());
    let conn = Conn { kill: kill.clone() };
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(conn.clone());
        let router = router.clone();
        async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|e| match e {})) }
    });
    let http = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(http);
    tokio::select! {
        _ = http.as_mut() => {}
        _ = kill.notified() => {}
        _ = stop.changed() => {
            http.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), http.as_mut()).await;
        }
    }
}
