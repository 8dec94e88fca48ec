//! The HTTP server every simulator runs on: our own accept loop over hyper, so that a fault
//! can close a connection without answering (axum's `serve` offers no way to) and shutdown can
//! stop held requests.
//!
//! Each connection gets a [`Conn`] handle in its requests' extensions; a handler that wants
//! the connection gone notifies it and never answers, and the connection task drops the
//! socket. HTTP/1.1 with keep-alive, as the vendors' front ends speak to clients.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// A request's connection, for handlers that must close it unanswered.
#[derive(Clone)]
pub struct Conn {
    kill: Arc<Notify>,
}

impl Conn {
    /// Close the connection without an answer. The caller should then never answer.
    pub fn kill(&self) {
        self.kill.notify_one();
    }
}

/// Serve `router` on `listener` until `stop` turns true; `simulator` names it in logs.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
    simulator: &'static str,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(connection(stream, router.clone(), stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "the {simulator} simulator could not accept a connection");
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
        // Dropping the connection closes the socket with nothing sent.
        _ = kill.notified() => {}
        _ = stop.changed() => {
            http.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), http.as_mut()).await;
        }
    }
}

/// Close the request's connection unanswered; without one (a request not served here), a 502.
pub async fn drop_connection(conn: Option<Conn>) -> Response {
    match conn {
        Some(c) => {
            c.kill();
            std::future::pending::<Response>().await
        }
        None => StatusCode::BAD_GATEWAY.into_response(),
    }
}
