//! The listener: linehub's own accept loop, so the public port cannot be exhausted.
//!
//! LINE and HubSpot reach linehub over the internet, and so can anyone else. Each connection is
//! served by hyper with a header-read timeout (a client that sends headers slowly, or holds an
//! idle keep-alive connection, is closed after [`HEADER_READ_TIMEOUT`]); connections are capped at
//! [`MAX_CONNECTIONS`] (past it a new one is closed at once, and the oldest idle ones go away by
//! the timeout); and every request gets [`REQUEST_TIMEOUT`] to finish, body included, with at
//! most [`MAX_IN_FLIGHT`] handled at once (past that: 503, which LINE redelivers). Handlers refuse
//! what they can (unknown account, no signature, a declared body over the limit) before they read
//! a body. On shutdown the listener stops accepting and in-flight requests finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Open connections at most; a file-descriptor limit of twice this leaves room for the store.
pub const MAX_CONNECTIONS: usize = 8192;
/// How long a connection may take to send a request's headers, or sit idle between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take, body and answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests handled at once at most.
pub const MAX_IN_FLIGHT: usize = 1024;
/// How long shutdown waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let app = app.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let in_flight = in_flight.clone();
        async move { limit(in_flight, req, next).await }
    }));
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or the peer gave up before accept: go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {DRAIN:?}; stopping anyway");
    }
    Ok(())
}

/// Caps requests in flight and the time each may take.
async fn limit(in_flight: Arc<Semaphore>, req: Request, next: Next) -> Response {
    let Ok(_permit) = in_flight.try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "busy; retry later").into_response();
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(response) => response,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "the request took too long").into_response(),
    }
}
