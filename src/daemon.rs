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
//! nothing; every problem is logged with file, line and field.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

use crate::apply::Applier;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigErrors};
use crate::http::{self, AppState};
use crate::hubspot::writer::{DrainReport, Writer};
use crate::hubspot::{HubSpotClient, properties};
use crate::line::client::LineClient;
use crate::pipelines::{RunError, RunReport, Runner, Scheduler};
use crate::sends::{SendReport, Sender};
use crate::store::{Store, StoreError};

/// Outbox rows above which pipeline steps wait for the background writer to catch up.
const PIPELINE_HIGH_WATER: u64 = 10_000;

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
    config: watch::Sender<Arc<Config>>,
    stop: Option<oneshot::Sender<()>>,
    stopping: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    loops: Vec<JoinHandle<()>>,
    /// One reload at a time (SIGHUP and the file watcher may fire together).
    reloading: tokio::sync::Mutex<()>,
    /// Reloads refused so far.
    reload_failures: AtomicU64,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// New accounts, with their serials.
    pub accounts_added: Vec<(String, i64)>,
    /// Accounts no longer in the file (their data and serial stay).
    pub accounts_removed: Vec<String>,
    /// Accounts that became active or inactive.
    pub accounts_toggled: Vec<String>,
    /// Pipelines added.
    pub pipelines_added: Vec<String>,
    /// Pipelines removed.
    pub pipelines_removed: Vec<String>,
    /// Pipelines whose definition changed.
    pub pipelines_changed: Vec<String>,
    /// Reading, validating and swapping took this long.
    pub elapsed: Duration,
}

impl fmt::Display for ReloadOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        let added: Vec<String> = self.accounts_added.iter().map(|(id, n)| format!("{id} (serial {n})")).collect();
        write!(
            f,
            "accounts added: {}; removed: {}; toggled: {}; pipelines added: {}; removed: {}; changed: {} ({:?})",
            list(&added),
            list(&self.accounts_removed),
            list(&self.accounts_toggled),
            list(&self.pipelines_added),
            list(&self.pipelines_removed),
            list(&self.pipelines_changed),
            self.elapsed
        )
    }
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
    pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Daemon> {
        Daemon::start_with(config, listener, Options::default()).await
    }

    /// Opens the store, gives every configured account its serial, and starts serving.
    pub async fn start_with(config: Config, listener: TcpListener, options: Options) -> anyhow::Result<Daemon> {
        let store = Store::open(&config.store.path)
            .with_context(|| format!("opening the store at {}", config.store.path.display()))?;
        let ids = config.accounts.iter().map(|a| a.id.clone()).collect();
        for (id, serial) in
            store.ensure_serials(ids, options.clock.now_ms()).await.context("assigning account serials")?
        {
            tracing::info!(account = %id, serial, "account ready");
        }
        let line = LineClient::new(&config.line.api_base_url).context("building the LINE client")?;
        let hubspot = HubSpotClient::from_config(&config.hubspot).context("building the HubSpot client")?;
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
        scheduler.sync(&config.pipelines, options.clock.now_ms());
        let addr = listener.local_addr().context("reading the listener address")?;
        let (config_tx, config_rx) = watch::channel(Arc::new(config));
        let inbox = Arc::new(Notify::new());
        let sends = Arc::new(Notify::new());
        let core = Arc::new(Core {
            store: store.clone(),
            config: config_rx.clone(),
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
        let state = AppState { config: config_rx, store, inbox, sends, clock: options.clock.clone() };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(http::run(listener, state, async {
            let _ = stop_rx.await;
        }));
        let (stopping, stop_watch) = watch::channel(false);
        let mut loops = Vec::new();
        if options.background {
            loops.push(tokio::spawn(apply_loop(core.clone(), stop_watch.clone())));
            loops.push(tokio::spawn(write_loop(core.clone(), stop_watch.clone())));
            loops.push(tokio::spawn(send_loop(core.clone(), stop_watch.clone())));
            loops.push(tokio::spawn(schedule_loop(core.clone(), stop_watch)));
        }
        tracing::info!(%addr, "linehub listening");
        Ok(Daemon {
            addr,
            core,
            config: config_tx,
            stop: Some(stop_tx),
            stopping,
            server,
            loops,
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
        self.core.runner.run(self.config(), name, dry_run).await
    }

    /// Runs, one after the other, the scheduled pipelines due at the clock's now (what the
    /// background scheduler does by itself).
    pub async fn run_due_pipelines(&self) -> Vec<Result<RunReport, RunError>> {
        let config = self.config();
        let due = {
            let mut s = self.core.scheduler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = self.core.clock.now_ms();
            s.sync(&config.pipelines, now);
            s.due(&config.pipelines, now)
        };
        let mut out = Vec::new();
        for name in due {
            out.push(self.core.runner.run(config.clone(), &name, false).await);
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
        let old = self.config();
        let result = async {
            let new = crate::config::load(&old.source).map_err(ReloadError::Invalid)?;
            let fixed = needs_restart(&old, &new);
            if !fixed.is_empty() {
                return Err(ReloadError::NeedsRestart(fixed));
            }
            let ids = new.accounts.iter().map(|a| a.id.clone()).collect();
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
        let mut outcome = compare(&old, &new, &serials);
        let wants_properties = !outcome.accounts_added.is_empty() || !outcome.accounts_toggled.is_empty();
        self.config.send_replace(Arc::new(new));
        {
            let config = self.config();
            let mut s = self.core.scheduler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            s.sync(&config.pipelines, self.core.clock.now_ms());
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
    total.notes += r.notes;
    total.completions += r.completions;
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

/// Settings read once at start; a reload that changes one is refused, naming it.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, a: String, b: String, show: bool| {
        if a != b {
            let values = if show { format!(" ({a} → {b})") } else { " (value not shown)".to_string() };
            out.push(format!("{name} changed{values}; restart linehub to apply it"));
        }
    };
    check("server.listen", old.server.listen.to_string(), new.server.listen.to_string(), true);
    check("server.max_body_bytes", old.server.max_body_bytes.to_string(), new.server.max_body_bytes.to_string(), true);
    check("store.path", old.store.path.display().to_string(), new.store.path.display().to_string(), true);
    let (h, n) = (&old.hubspot, &new.hubspot);
    check("hubspot.base_url", h.base_url.clone(), n.base_url.clone(), true);
    check("hubspot.token", h.token.expose().to_string(), n.token.expose().to_string(), false);
    check("hubspot.requests_per_10s", h.requests_per_10s.to_string(), n.requests_per_10s.to_string(), true);
    check("hubspot.timeout_secs", h.timeout.as_secs().to_string(), n.timeout.as_secs().to_string(), true);
    check("hubspot.dummy_email_domain", h.dummy_email_domain.clone(), n.dummy_email_domain.clone(), true);
    check("line.api_base_url", old.line.api_base_url.clone(), new.line.api_base_url.clone(), true);
    check("line.data_api_base_url", old.line.data_api_base_url.clone(), new.line.data_api_base_url.clone(), true);
    check("line.login_base_url", old.line.login_base_url.clone(), new.line.login_base_url.clone(), true);
    out
}

/// What changed between two configs.
fn compare(old: &Config, new: &Config, serials: &[(String, i64)]) -> ReloadOutcome {
    let mut o = ReloadOutcome::default();
    for a in &new.accounts {
        match old.account(&a.id) {
            None => {
                o.accounts_added.push((a.id.clone(), serials.iter().find(|(id, _)| id == &a.id).map_or(0, |(_, n)| *n)))
            }
            Some(b) if b.active != a.active => o.accounts_toggled.push(a.id.clone()),
            Some(_) => {}
        }
    }
    o.accounts_removed = old.accounts.iter().filter(|a| new.account(&a.id).is_none()).map(|a| a.id.clone()).collect();
    for p in &new.pipelines {
        match old.pipelines.iter().find(|q| q.name == p.name) {
            None => o.pipelines_added.push(p.name.clone()),
            Some(q) => {
                let schedule = |x: &crate::pipelines::Pipeline| {
                    x.schedule.as_ref().map(|s| format!("{} {}", s.cron, s.time_zone.name()))
                };
                if q.fingerprint != p.fingerprint || schedule(q) != schedule(p) {
                    o.pipelines_changed.push(p.name.clone());
                }
            }
        }
    }
    o.pipelines_removed = old
        .pipelines
        .iter()
        .filter(|q| !new.pipelines.iter().any(|p| p.name == q.name))
        .map(|q| q.name.clone())
        .collect();
    o
}

/// Runs scheduled pipelines when they are due, and resumes at start the runs a crash
/// interrupted. Stopping cancels the runs in progress and marks them interrupted.
async fn schedule_loop(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    let mut config_rx = core.config.clone();
    let mut runs: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
    // Interrupted runs are looked for at start, and again every 30 s while some remain (their
    // owner's lease may not have expired yet).
    let mut look_for_interrupted = true;
    let mut next_look = 0i64;
    loop {
        let config = config_rx.borrow_and_update().clone();
        let now = core.clock.now_ms();
        let mut due = {
            let mut s = core.scheduler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            s.sync(&config.pipelines, now);
            s.due(&config.pipelines, now)
        };
        if look_for_interrupted && now >= next_look {
            let mut names = core.runner.interrupted().await.unwrap_or_default();
            names.retain(|name| config.pipelines.iter().any(|p| &p.name == name) && !due.contains(name));
            look_for_interrupted = !names.is_empty();
            next_look = now + 30_000;
            due.extend(names);
        }
        for name in due {
            let (core, config) = (core.clone(), config.clone());
            runs.spawn(async move {
                match core.runner.run(config, &name, false).await {
                    Ok(report) => tracing::info!(pipeline = %name, "{report}"),
                    Err(e @ RunError::AlreadyRunning { .. }) => tracing::info!(pipeline = %name, "{e}"),
                    Err(e) => tracing::error!(pipeline = %name, error = %e, "pipeline could not start"),
                }
            });
        }
        while runs.try_join_next().is_some() {}
        let now = core.clock.now_ms();
        let wake = core.scheduler.lock().ok().and_then(|s| s.next_wake()).unwrap_or(now + 60_000);
        let wake = if look_for_interrupted { wake.min(next_look) } else { wake };
        let sleep = Duration::from_millis(u64::try_from((wake - now).clamp(10, 60_000)).unwrap_or(60_000));
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = config_rx.changed() => {}
            _ = stop.changed() => {
                let active = core.runner.active_runs();
                runs.shutdown().await;
                core.runner.interrupt(active).await;
                return;
            }
        }
    }
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
            if !wait(&core.outbox, crate::retry::backoff(failures), &mut stop).await {
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

/// Carries out stored sends as they arrive and when their retries fall due.
async fn send_loop(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    loop {
        let config = core.config.borrow().clone();
        match core.sender.drain(&config).await {
            Ok(r) if r.sent + r.failed > 0 => core.outbox.notify_one(),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "sending failed; retrying"),
        }
        let now = core.clock.now_ms();
        let wake = core.store.sends_next_due().await.ok().flatten().unwrap_or(now + 5_000);
        let sleep = Duration::from_millis(u64::try_from((wake - now).clamp(10, 5_000)).unwrap_or(5_000));
        if !wait(&core.sends, sleep, &mut stop).await || *stop.borrow() {
            return;
        }
    }
}
