//! The running service: store, account serials and the HTTP listener, started together and
//! stopped together.
//!
//! [`Daemon::start`] is used by `linehub run`, `linehub demo` and the tests alike: it takes a
//! checked [`Config`] and a bound listener, and returns a handle that reports the address, gives
//! access to the store and shuts everything down cleanly.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::store::Store;

/// A started daemon.
pub struct Daemon {
    addr: SocketAddr,
    store: Store,
    config: watch::Sender<Arc<Config>>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Daemon {
    /// Opens the store, gives every configured account its serial, and starts serving.
    pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Daemon> {
        let store = Store::open(&config.store.path)
            .with_context(|| format!("opening the store at {}", config.store.path.display()))?;
        let ids = config.accounts.iter().map(|a| a.id.clone()).collect();
        for (id, serial) in store.ensure_serials(ids).await.context("assigning account serials")? {
            tracing::info!(account = %id, serial, "account ready");
        }
        let addr = listener.local_addr().context("reading the listener address")?;
        let (config_tx, config_rx) = watch::channel(Arc::new(config));
        let state = AppState { config: config_rx, store: store.clone() };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(http::run(listener, state, async {
            let _ = stop_rx.await;
        }));
        tracing::info!(%addr, "linehub listening");
        Ok(Daemon { addr, store, config: config_tx, stop: Some(stop_tx), server })
    }

    /// The address the HTTP listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store the daemon writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.server).await.context("the HTTP server task failed")?.context("the HTTP server failed")
    }
}
