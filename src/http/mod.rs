//! The HTTP surface: one router, one file per surface.
//!
//! - [`webhook`]: `POST /line/{account_id}/webhook`, LINE's events into the inbox.
//! - [`hubspot_action`]: `POST /hubspot/actions/push-line-message`, the signed workflow action.
//! - [`login`]: `/line/{account_id}/login…` and `/line/{account_id}/liff…`, ID linking through
//!   LINE Login and LIFF, with the login's QR codes and the email permission's sample page.
//! - [`ops`]: `GET /healthz` for load balancers and systemd watchdogs.
//!
//! Refused requests are logged through [`refusals`]: the first of a kind at once, the rest as
//! one summary a minute, so nobody can flood the log from the outside.
//!
//! The server is `run(listener, state, shutdown)`, so the daemon, the demo and the tests serve
//! the same code on whatever listener they bound; [`server`] is its accept loop, with the caps
//! and timeouts that keep the public port from being exhausted.

mod hubspot_action;
mod login;
mod ops;
pub mod refusals;
pub mod server;
mod webhook;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;

use self::refusals::Refusals;
use crate::settings::Settings;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The config and pipelines in force; replaced whole on reload.
    pub settings: watch::Receiver<Arc<Settings>>,
    /// The store the inbox lives in.
    pub store: Store,
    /// Woken after events are committed, so they are applied without polling delay.
    pub inbox: std::sync::Arc<tokio::sync::Notify>,
    /// Woken after a send is committed, so it goes out without polling delay.
    pub sends: std::sync::Arc<tokio::sync::Notify>,
    /// Woken after a login is committed, so the writer links it without polling delay.
    pub outbox: std::sync::Arc<tokio::sync::Notify>,
    /// LINE Login's endpoints.
    pub login: crate::line::login::LoginClient,
    /// The time signatures are checked against.
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
    /// Refused requests of the current minute, summarised instead of logged one by one.
    pub refusals: Arc<Refusals>,
    /// The heartbeats of the threads and loops health answers for: the store's writer and
    /// checkpointer, and the daemon's background loops when it runs them.
    pub beats: Arc<Vec<Arc<crate::liveness::Beat>>>,
}

/// Builds the router. The body limit is fixed when the router is built.
pub fn router(state: AppState) -> Router {
    let max_body = state.settings.borrow().config.server.max_body_bytes;
    Router::new()
        .route("/line/{account_id}/webhook", post(webhook::receive))
        .route("/hubspot/actions/push-line-message", post(hubspot_action::push_line_message))
        .route("/line/{account_id}/login", get(login::start))
        .route("/line/{account_id}/login/callback", get(login::callback))
        .route("/line/{account_id}/login/qr.png", get(login::qr_png))
        .route("/line/{account_id}/login/qr.svg", get(login::qr_svg))
        .route("/line/{account_id}/login/sample", get(login::sample))
        .route("/line/{account_id}/liff", get(login::liff_page))
        .route("/line/{account_id}/liff/link", post(login::liff_link))
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
    let (refusals, clock) = (state.refusals.clone(), state.clock.clone());
    let summaries = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            every.tick().await;
            refusals.log_summaries(clock.now_ms());
        }
    });
    let served = server::serve(listener, router(state), shutdown).await;
    summaries.abort();
    served
}
