//! The running service: store, account serials, HTTP listener, the inbox applier and the HubSpot
//! writer, started together and stopped together.
//!
//! [`Daemon::start`] is used by `linehub run` and `linehub demo`: everything runs in the
//! background. Tests use [`Daemon::start_with`] and [`Options::manual`] to drive the queues
//! themselves ([`Daemon::apply_inbox`], [`Daemon::drain_outbox`], [`Daemon::settle`]) on a clock
//! they control, so they wait for nothing and sleep nowhere.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

use crate::apply::Applier;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::{self, AppState};
use crate::hubspot::writer::{DrainReport, Writer};
use crate::hubspot::{HubSpotClient, properties};
use crate::line::client::LineClient;
use crate::store::Store;

/// How a daemon runs.
#[derive(Clone)]
pub struct Options {
    /// The time source for queue scheduling.
    pub clock: Arc<dyn Clock>,
    /// Run the applier and writer loops in the background (false: the caller drives them).
    pub background: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { clock: Arc::new(SystemClock), background: true }
    }
}

impl Options {
    /// Queues driven by the caller, on `clock`.
    pub fn manual(clock: Arc<dyn Clock>) -> Options {
        Options { clock, background: false }
    }
}

/// The parts the background loops and the test drivers share.
struct Core {
    store: Store,
    config: watch::Receiver<Arc<Config>>,
    applier: Applier,
    writer: Writer,
    clock: Arc<dyn Clock>,
    /// Woken when the inbox gets events.
    inbox: Arc<Notify>,
    /// Woken when the outbox gets rows.
    outbox: Notify,
    /// Set once the HubSpot properties of every active account are known to exist.
    properties_ready: std::sync::atomic::AtomicBool,
}

/// A started daemon.
pub struct Daemon {
    addr: SocketAddr,
    core: Arc<Core>,
    config: watch::Sender<Arc<Config>>,
    stop: Option<oneshot::Sender<()>>,
    stopping: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    loops: Vec<JoinHandle<()>>,
}

impl Daemon {
    /// Starts everything in the background on the system clock.
    pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Daemon> {
        Daemon::start_with(config, listener, Options::default()).await
    }

    /// Opens the store, gives every configured account its serial, and starts serving.
    pub async fn start_with(config: Config, listener: TcpListener, options: Options) -> anyhow::Result<Daemon> {
        let store = Store::open(&config.store.path)
            .with_context(|| format!("opening the store at {}", config.store.path.display()))?;
        let ids = config.accounts.iter().map(|a| a.id.clone()).collect();
        for (id, serial) in store.ensure_serials(ids).await.context("assigning account serials")? {
            tracing::info!(account = %id, serial, "account ready");
        }
        let line = LineClient::new(&config.line.api_base_url).context("building the LINE client")?;
        let hubspot = HubSpotClient::new(
            &config.hubspot.base_url,
            config.hubspot.token.clone(),
            config.hubspot.requests_per_10s,
            config.hubspot.timeout,
        )
        .context("building the HubSpot client")?;
        let writer = Writer::new(hubspot, store.clone(), options.clock.clone(), config.hubspot.clone());
        let addr = listener.local_addr().context("reading the listener address")?;
        let (config_tx, config_rx) = watch::channel(Arc::new(config));
        let inbox = Arc::new(Notify::new());
        let core = Arc::new(Core {
            store: store.clone(),
            config: config_rx.clone(),
            applier: Applier::new(store.clone(), line, options.clock.clone()),
            writer,
            clock: options.clock.clone(),
            inbox: inbox.clone(),
            outbox: Notify::new(),
            properties_ready: std::sync::atomic::AtomicBool::new(false),
        });
        let state = AppState { config: config_rx, store, inbox };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(http::run(listener, state, async {
            let _ = stop_rx.await;
        }));
        let (stopping, stop_watch) = watch::channel(false);
        let mut loops = Vec::new();
        if options.background {
            loops.push(tokio::spawn(apply_loop(core.clone(), stop_watch.clone())));
            loops.push(tokio::spawn(write_loop(core.clone(), stop_watch)));
        }
        tracing::info!(%addr, "linehub listening");
        Ok(Daemon { addr, core, config: config_tx, stop: Some(stop_tx), stopping, server, loops })
    }

    /// The address the HTTP listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store the daemon writes to.
    pub fn store(&self) -> &Store {
        &self.core.store
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// Creates any missing LINE property group and properties in HubSpot.
    pub async fn ensure_properties(&self) -> anyhow::Result<usize> {
        let created = ensure_properties(&self.core).await?;
        self.core.properties_ready.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(created)
    }

    /// Applies every pending inbox event; returns how many were processed.
    pub async fn apply_inbox(&self) -> anyhow::Result<usize> {
        let config = self.config();
        let mut total = 0;
        loop {
            let n = self.core.applier.apply_batch(&config).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Writes everything due now to HubSpot.
    pub async fn drain_outbox(&self) -> anyhow::Result<DrainReport> {
        Ok(self.core.writer.drain().await?)
    }

    /// Ensures properties (once), applies the inbox and drains the outbox until nothing is due
    /// now. While HubSpot is unreachable it applies the inbox and writes nothing.
    pub async fn settle(&self) -> anyhow::Result<DrainReport> {
        self.apply_inbox().await?;
        if !properties_ready(&self.core).await {
            return Ok(DrainReport::default());
        }
        let mut total = DrainReport::default();
        loop {
            let r = self.drain_outbox().await?;
            let idle = r == DrainReport::default();
            add(&mut total, &r);
            if idle || self.core.writer.paused_until().is_some() {
                return Ok(total);
            }
        }
    }

    /// Stops accepting, lets in-flight requests finish, stops the loops, and waits for them.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.stopping.send(true);
        for l in self.loops.drain(..) {
            let _ = l.await;
        }
        (&mut self.server).await.context("the HTTP server task failed")?.context("the HTTP server failed")
    }
}

fn add(total: &mut DrainReport, r: &DrainReport) {
    total.rows_done += r.rows_done;
    total.created += r.created;
    total.updated += r.updated;
    total.tasks += r.tasks;
    total.retried += r.retried;
    total.dead += r.dead;
    total.calls += r.calls;
}

/// Ensures the properties if they are not known to exist (or HubSpot reported one missing).
/// Returns whether they exist now; failures are logged, as the writer will try again.
async fn properties_ready(core: &Core) -> bool {
    use std::sync::atomic::Ordering;
    if core.writer.take_properties_stale() {
        core.properties_ready.store(false, Ordering::SeqCst);
    }
    if core.properties_ready.load(Ordering::SeqCst) {
        return true;
    }
    match ensure_properties(core).await {
        Ok(_) => {
            core.properties_ready.store(true, Ordering::SeqCst);
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "HubSpot properties could not be ensured; will retry");
            false
        }
    }
}

async fn ensure_properties(core: &Core) -> anyhow::Result<usize> {
    let config = core.config.borrow().clone();
    let serials = core.store.serials().await?;
    let accounts: Vec<(String, i64)> =
        serials.into_iter().filter(|(id, _)| config.account(id).is_some_and(|a| a.active)).collect();
    let created = properties::ensure(core.writer.client(), &accounts).await?;
    if created > 0 {
        tracing::info!(created, "HubSpot properties created");
    }
    Ok(created)
}

/// Waits for `notify`, `timeout` or a stop, whichever first. Returns false on stop.
async fn wait(notify: &Notify, timeout: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = notify.notified() => true,
        _ = tokio::time::sleep(timeout) => true,
        _ = stop.changed() => false,
    }
}

async fn apply_loop(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    loop {
        loop {
            let config = core.config.borrow().clone();
            match core.applier.apply_batch(&config).await {
                Ok(0) => break,
                Ok(_) => core.outbox.notify_one(),
                Err(e) => {
                    tracing::error!(error = %e, "applying inbox events failed; retrying");
                    break;
                }
            }
        }
        if !wait(&core.inbox, Duration::from_secs(1), &mut stop).await || *stop.borrow() {
            return;
        }
    }
}

async fn write_loop(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    let mut failures = 0i64;
    loop {
        if !properties_ready(&core).await {
            failures += 1;
            if !wait(&core.outbox, crate::hubspot::writer::backoff(failures), &mut stop).await {
                return;
            }
            continue;
        }
        failures = 0;
        if let Err(e) = core.writer.drain().await {
            tracing::error!(error = %e, "draining the outbox failed; retrying");
        }
        let now = core.clock.now_ms();
        let next_due = core.store.outbox_next_due().await.ok().flatten();
        let wake = [next_due, core.writer.paused_until()].into_iter().flatten().max().unwrap_or(now + 5_000);
        let sleep = Duration::from_millis(u64::try_from((wake - now).clamp(10, 5_000)).unwrap_or(5_000));
        if !wait(&core.outbox, sleep, &mut stop).await || *stop.borrow() {
            return;
        }
    }
}
