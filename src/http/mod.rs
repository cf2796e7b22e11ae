//! The HTTP surface: one router, one file per surface.
//!
//! - [`webhook`]: `POST /line/{account_id}/webhook`, LINE's events into the inbox.
//! - [`ops`]: `GET /healthz` for load balancers and systemd watchdogs.
//!
//! The server is `run(listener, state, shutdown)`, so the daemon, the demo and the tests serve
//! the same code on whatever listener they bound.

mod ops;
mod webhook;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The config in force; replaced whole on reload.
    pub config: watch::Receiver<Arc<Config>>,
    /// The store the inbox lives in.
    pub store: Store,
    /// Woken after events are committed, so they are applied without polling delay.
    pub inbox: std::sync::Arc<tokio::sync::Notify>,
}

/// Builds the router. The body limit is fixed when the router is built.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.borrow().server.max_body_bytes;
    Router::new()
        .route("/line/{account_id}/webhook", post(webhook::receive))
        .route("/healthz", get(ops::healthz))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
