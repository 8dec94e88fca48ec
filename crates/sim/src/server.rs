//! The HTTP server every simulator runs on: our own accept loop over hyper, so that a fault
//! can close a connection without answering (axum's `serve` offers no way to) and shutdown can
//! stop held requests.
//!
//! Each connection gets a [`Conn`] handle in its requests' extensions; a handler that wants
//! the connection gone notifies it and never answers, and the connection task drops the
//! socket. HTTP/1.1 with keep-alive, as the vendors' front ends speak to clients.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
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

/// Where a simulator is reached: `public_url` (without a trailing slash) when given, else
/// `http://<listener address>` with an unspecified address read as 127.0.0.1.
pub fn base_url(listening: SocketAddr, public_url: Option<&str>) -> String {
    let host = if listening.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), listening.port())
    } else {
        listening
    };
    public_url
        .map(|u| u.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("http://{host}"))
}

/// Stops the server when the last handle goes.
struct StopOnDrop(watch::Sender<bool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

/// A simulator's running server task. Clones share it; it runs until [`Serving::shutdown`] or
/// until the last clone is dropped.
#[derive(Clone)]
pub struct Serving {
    stop: Arc<StopOnDrop>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Serving {
    /// Serve `router` on `listener`; `simulator` names it in logs.
    pub fn start(listener: TcpListener, router: Router, simulator: &'static str) -> Serving {
        Serving::spawn(move |stopped| serve(listener, router, stopped, simulator))
    }

    /// Spawn `run`, told through its receiver when to stop (for simulators with more to do
    /// around [`serve`]).
    pub fn spawn<F, Fut>(run: F) -> Serving
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(stopped));
        Serving {
            stop: Arc::new(StopOnDrop(stop)),
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Stop serving (held requests are cut) and wait for the task to end.
    pub async fn shutdown(self) {
        let _ = self.stop.0.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
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
