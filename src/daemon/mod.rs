//! The running service: store, account serials, HTTP listener, the inbox applier, the sender,
//! the HubSpot writer and the pipeline scheduler, started together and stopped together.
//!
//! [`Daemon::start`] is used by `linehub run` and `linehub demo`: everything runs in the
//! background. Tests use [`Daemon::start_with`] and [`Options::manual`] to drive the queues
//! themselves ([`Daemon::apply_inbox`], [`Daemon::send_pending`], [`Daemon::drain_outbox`],
//! [`Daemon::settle`], [`Daemon::run_pipeline`], [`Daemon::run_due_pipelines`]) on a clock they
//! control, so they wait for nothing and sleep nowhere.
//!
//! [`Daemon::reload`] re-reads `config.yaml` and the pipelines, validates them whole and swaps
//! them in atomically: webhooks, the applier and the scheduler see the new config from then on.
//! A config that fails validation, or that changes a setting only a restart can change, changes
//! nothing; every problem is logged with file, line and field. What a reload changes is decided
//! by [`crate::settings`] and [`crate::config::reload`]; this module only swaps. The background
//! loops live in `loops.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

use crate::apply::Applier;
use crate::clock::{Clock, SystemClock};
pub use crate::config::reload::ReloadOutcome;
use crate::config::{Config, ConfigErrors};
use crate::http::{self, AppState};
use crate::hubspot::HubSpotClient;
use crate::hubspot::writer::{DrainReport, Writer};
use crate::line::client::LineClient;
use crate::line::login::LoginClient;
use crate::liveness::Beat;
use crate::pipelines::{RunError, RunReport, Runner, Scheduler};
use crate::sends::{SendReport, Sender};
use crate::settings::Settings;
use crate::store::{Store, StoreError};

mod loops;

use loops::{apply_loop, ensure_properties, properties_ready, schedule_loop, send_loop, write_loop};

/// Outbox rows above which pipeline steps wait for the background writer to catch up.
const PIPELINE_HIGH_WATER: u64 = 10_000;

/// How long a background loop may work on one round before health calls it stuck: longer than
/// any legitimate round (a drain of the outbox under HubSpot's rate limits, a batch of LINE
/// profile lookups, each request bounded by its timeout).
const LOOP_STUCK_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

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
    settings: watch::Receiver<Arc<Settings>>,
    applier: Applier,
    writer: Writer,
    clock: Arc<dyn Clock>,
    /// Woken when the inbox gets events.
    inbox: Arc<Notify>,
    /// Woken when the outbox gets rows.
    outbox: Arc<Notify>,
    /// Carries out the sends HubSpot asks for.
    sender: Sender,
    /// Woken when a send is stored.
    sends: Arc<Notify>,
    /// Set once the HubSpot properties of every active account are known to exist.
    properties_ready: std::sync::atomic::AtomicBool,
    /// Runs pipelines (the scheduler's and those asked for).
    runner: Runner,
    /// When each scheduled pipeline runs next.
    scheduler: std::sync::Mutex<Scheduler>,
}

/// A started daemon.
pub struct Daemon {
    addr: SocketAddr,
    core: Arc<Core>,
    settings: watch::Sender<Arc<Settings>>,
    stop: Option<oneshot::Sender<()>>,
    stopping: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    /// The background loops by name (empty when the caller drives the queues).
    loops: std::sync::Mutex<Vec<(&'static str, JoinHandle<()>)>>,
    /// One reload at a time (SIGHUP and the file watcher may fire together).
    reloading: tokio::sync::Mutex<()>,
    /// Reloads refused so far.
    reload_failures: AtomicU64,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The files do not validate; the old config keeps running.
    #[error("the new config is invalid; keeping the running one:\n{0}")]
    Invalid(ConfigErrors),
    /// Settings changed that only a restart can change; the old config keeps running.
    #[error("the new config changes settings that need a restart; keeping the running one: {}", .0.join("; "))]
    NeedsRestart(Vec<String>),
    /// The store could not assign serials to new accounts.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Daemon {
    /// Starts everything in the background on the system clock.
    pub async fn start(settings: Settings, listener: TcpListener) -> anyhow::Result<Daemon> {
        Daemon::start_with(settings, listener, Options::default()).await
    }

    /// Opens the store, gives every configured account its serial, and starts serving.
    pub async fn start_with(settings: Settings, listener: TcpListener, options: Options) -> anyhow::Result<Daemon> {
        let config = settings.config.clone();
        let store = Store::open(&config.store.path)
            .with_context(|| format!("opening the store at {}", config.store.path.display()))?;
        let ids = config.accounts.iter().map(|a| a.id.clone()).collect();
        for (id, serial) in
            store.ensure_serials(ids, options.clock.now_ms()).await.context("assigning account serials")?
        {
            tracing::info!(account = %id, serial, "account ready");
        }
        let line = LineClient::new(&config.line.api_base_url).context("building the LINE client")?;
        let hubspot = HubSpotClient::from_config(&config.hubspot)
            .context("building the HubSpot client")?
            .shared_with_store(&config.store.path);
        let writer = Writer::new(hubspot.clone(), store.clone(), options.clock.clone(), config.hubspot.clone());
        let sender = Sender::new(store.clone(), line.clone(), hubspot.clone(), options.clock.clone());
        let outbox = Arc::new(Notify::new());
        let runner = Runner::new(
            store.clone(),
            line.clone(),
            hubspot,
            options.clock.clone(),
            outbox.clone(),
            options.background.then_some(PIPELINE_HIGH_WATER),
        );
        let mut scheduler = Scheduler::new();
        scheduler.sync(&settings.pipelines, options.clock.now_ms());
        let addr = listener.local_addr().context("reading the listener address")?;
        let (settings_tx, settings_rx) = watch::channel(Arc::new(settings));
        let inbox = Arc::new(Notify::new());
        let sends = Arc::new(Notify::new());
        let core = Arc::new(Core {
            store: store.clone(),
            settings: settings_rx.clone(),
            applier: Applier::new(store.clone(), line, options.clock.clone()),
            writer,
            clock: options.clock.clone(),
            inbox: inbox.clone(),
            outbox,
            sender,
            sends: sends.clone(),
            properties_ready: std::sync::atomic::AtomicBool::new(false),
            runner,
            scheduler: std::sync::Mutex::new(scheduler),
        });
        let loop_beats = ["applier loop", "HubSpot writer loop", "sender loop", "scheduler loop"]
            .map(|name| Beat::new(name, LOOP_STUCK_AFTER));
        let mut beats = store.beats();
        if options.background {
            beats.extend(loop_beats.iter().cloned());
        }
        let state = AppState {
            settings: settings_rx,
            store,
            inbox,
            sends,
            outbox: core.outbox.clone(),
            login: LoginClient::new(&config.line).context("building the LINE Login client")?,
            clock: options.clock.clone(),
            refusals: Arc::default(),
            beats: Arc::new(beats),
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(http::run(listener, state, async {
            let _ = stop_rx.await;
        }));
        let (stopping, stop_watch) = watch::channel(false);
        let mut loops = Vec::new();
        if options.background {
            let [apply, write, send, schedule] = loop_beats;
            let name = |beat: &Beat| beat.name();
            loops.push((name(&apply), tokio::spawn(apply_loop(core.clone(), stop_watch.clone(), apply))));
            loops.push((name(&write), tokio::spawn(write_loop(core.clone(), stop_watch.clone(), write))));
            loops.push((name(&send), tokio::spawn(send_loop(core.clone(), stop_watch.clone(), send))));
            loops.push((name(&schedule), tokio::spawn(schedule_loop(core.clone(), stop_watch, schedule))));
        }
        tracing::info!(%addr, "linehub listening");
        Ok(Daemon {
            addr,
            core,
            settings: settings_tx,
            stop: Some(stop_tx),
            stopping,
            server,
            loops: std::sync::Mutex::new(loops),
            reloading: tokio::sync::Mutex::new(()),
            reload_failures: AtomicU64::new(0),
        })
    }

    /// The address the HTTP listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store the daemon writes to.
    pub fn store(&self) -> &Store {
        &self.core.store
    }

    /// The config and pipelines in force.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.borrow().clone()
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.settings.borrow().config.clone()
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

    /// Tries every send due now (workflow pushes) once.
    pub async fn send_pending(&self) -> anyhow::Result<SendReport> {
        Ok(self.core.sender.drain(&self.config()).await?)
    }

    /// Ensures properties (once), applies the inbox, tries the sends due, and drains the outbox
    /// until nothing is due now. While HubSpot is unreachable it applies the inbox and writes
    /// nothing.
    pub async fn settle(&self) -> anyhow::Result<DrainReport> {
        self.apply_inbox().await?;
        self.send_pending().await?;
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

    /// Runs pipeline `name` now (resuming its interrupted run, if any); a dry run changes
    /// nothing. A step failure is a report with state `failed`, not an `Err`.
    pub async fn run_pipeline(&self, name: &str, dry_run: bool) -> Result<RunReport, RunError> {
        let settings = self.settings();
        self.core.runner.run(settings.config.clone(), &settings.pipelines, name, dry_run).await
    }

    /// Runs, one after the other, the scheduled pipelines due at the clock's now (what the
    /// background scheduler does by itself).
    pub async fn run_due_pipelines(&self) -> Vec<Result<RunReport, RunError>> {
        let settings = self.settings();
        let due = {
            let mut s = self.core.scheduler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = self.core.clock.now_ms();
            s.sync(&settings.pipelines, now);
            s.due(&settings.pipelines, now)
        };
        let mut out = Vec::new();
        for name in due {
            out.push(self.core.runner.run(settings.config.clone(), &settings.pipelines, &name, false).await);
        }
        out
    }

    /// When scheduled pipeline `name` runs next (ms), if it is scheduled.
    pub fn next_pipeline_run(&self, name: &str) -> Option<i64> {
        self.core.scheduler.lock().ok().and_then(|s| s.next_run(name))
    }

    /// Re-reads the config file and the pipelines, validates them whole, and swaps them in.
    /// New accounts get their serial now and their HubSpot properties before the writer writes
    /// again; removed accounts stop taking webhooks and keep their data. On any problem nothing
    /// changes, and each problem is logged with file, line and field.
    pub async fn reload(&self) -> Result<ReloadOutcome, ReloadError> {
        let _one = self.reloading.lock().await;
        let started = Instant::now();
        let old = self.settings();
        let result = async {
            let new = Settings::load(&old.config.source).map_err(ReloadError::Invalid)?;
            let fixed = old.needs_restart(&new);
            if !fixed.is_empty() {
                return Err(ReloadError::NeedsRestart(fixed));
            }
            let ids = new.config.accounts.iter().map(|a| a.id.clone()).collect();
            let serials = self.core.store.ensure_serials(ids, self.core.clock.now_ms()).await?;
            Ok((new, serials))
        }
        .await;
        let (new, serials) = match result {
            Ok(ok) => ok,
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::SeqCst);
                match &e {
                    ReloadError::Invalid(errors) => {
                        for problem in &errors.0 {
                            tracing::error!(file = %problem.file.display(), line = problem.line, field = %problem.field, "config reload refused: {problem}");
                        }
                    }
                    e => tracing::error!("config reload refused: {e}"),
                }
                return Err(e);
            }
        };
        let mut outcome = old.compare(&new, &serials);
        let wants_properties = outcome.wants_properties();
        self.settings.send_replace(Arc::new(new));
        {
            let settings = self.settings();
            let mut s = self.core.scheduler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            s.sync(&settings.pipelines, self.core.clock.now_ms());
        }
        if wants_properties {
            // The writer ensures them before its next write.
            self.core.properties_ready.store(false, std::sync::atomic::Ordering::SeqCst);
            self.core.outbox.notify_one();
        }
        outcome.elapsed = started.elapsed();
        tracing::info!("config reloaded: {outcome}");
        Ok(outcome)
    }

    /// Test hook: aborts background loop `name` (as named by `/healthz`: "applier loop",
    /// "HubSpot writer loop", "sender loop", "scheduler loop"), as a panic in it would end it,
    /// and waits until it has ended. Returns whether such a loop was running.
    #[doc(hidden)]
    pub async fn kill_loop_for_tests(&self, name: &str) -> bool {
        let found = {
            let mut loops = self.loops.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            loops.iter().position(|(n, _)| *n == name).map(|i| loops.remove(i).1)
        };
        match found {
            Some(handle) => {
                handle.abort();
                let _ = handle.await;
                true
            }
            None => false,
        }
    }

    /// How many reloads were refused since start.
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::SeqCst)
    }

    /// Stops accepting, lets in-flight requests finish, stops the loops, and waits for them.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.stopping.send(true);
        let loops = std::mem::take(self.loops.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner));
        for (_, l) in loops {
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
    total.notes += r.notes;
    total.completions += r.completions;
    total.retried += r.retried;
    total.dead += r.dead;
    total.calls += r.calls;
}
