//! Running one pipeline: claim it, run its steps account by account, record the run.
//!
//! - One copy at a time. In this process a set of running names refuses a second start; across
//!   processes (the daemon's scheduler and `linehub pipeline run`) the store's claim refuses it
//!   while the other owner's heartbeat is fresh ([`LEASE_MS`]).
//! - Recorded. Every run is a `pipeline_runs` row: start, end, counts per step and account, the
//!   error, and the checkpoint (step, account, the step's cursor, counts so far).
//! - Resumable. A run that did not finish (a crash, a failed step, held sends) is resumed by the
//!   next run of the same pipeline, from its checkpoint, as long as the definition is unchanged;
//!   an edited pipeline starts over and the old run is marked abandoned.
//! - Fenced. A run paused past its lease may be taken over; every write it makes afterwards
//!   (heartbeat, page commit, checkpoint, finish) is refused by the store, and the run stops
//!   with [`RunError::TakenOver`], leaving the run to its new owner.
//! - Dry runs are recorded too, never claim, never resume, and change nothing.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::Pipeline;
use super::checkpoint::{Checkpoint, SavedOutcome};
use super::context::StepContext;
use super::report::StepReport;
use super::steps::StepError;
use crate::clock::Clock;
use crate::config::Config;
use crate::hubspot::HubSpotClient;
use crate::line::client::LineClient;
use crate::store::pipelines::{ClaimOutcome, RunState};
use crate::store::{Store, StoreError};

/// How long a run's owner may go without a heartbeat before another may take its run over.
pub const LEASE_MS: i64 = 90_000;
/// How often a running pipeline shows it is alive.
const HEARTBEAT: Duration = Duration::from_secs(20);

/// Why a run did not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No pipeline has this name.
    #[error("no pipeline named `{name}` (pipelines: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
    /// It is running already, here or in another process.
    #[error("pipeline `{pipeline}` is already running (run {run_id}); it was not started again")]
    AlreadyRunning {
        /// The pipeline.
        pipeline: String,
        /// The running run, when known (0: in this process, not yet recorded).
        run_id: i64,
    },
    /// The run was paused past its lease and another owner took it over; this copy stopped
    /// without recording anything more, and the other owner's run stands.
    #[error(
        "pipeline `{pipeline}` run {run_id} was taken over by another owner after its lease expired; this copy stopped"
    )]
    TakenOver {
        /// The pipeline.
        pipeline: String,
        /// The run, now the other owner's.
        run_id: i64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one step did for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// Step index in the pipeline.
    pub step: usize,
    /// The step's kind.
    pub kind: &'static str,
    /// The account.
    pub account: String,
    /// Counts, samples, notes.
    pub report: StepReport,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The run's id in the store.
    pub run_id: i64,
    /// The pipeline.
    pub pipeline: String,
    /// Nothing was changed.
    pub dry_run: bool,
    /// It continued an interrupted run.
    pub resumed: bool,
    /// How it ended.
    pub state: RunState,
    /// Each step and account, in order (resumed runs include what the earlier attempt did).
    pub steps: Vec<StepOutcome>,
    /// Why it failed or was held.
    pub error: Option<String>,
}

impl RunReport {
    /// The sum of count `name` over every step and account.
    pub fn total(&self, name: &str) -> u64 {
        self.steps.iter().map(|s| s.report.get(name)).sum()
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            RunState::Done => "done",
            RunState::Failed => "failed",
            RunState::Held => "held",
        };
        let mode = if self.dry_run { ", dry run: nothing was changed" } else { "" };
        let resumed = if self.resumed { ", resumed" } else { "" };
        writeln!(f, "pipeline {}: {state} (run {}{resumed}{mode})", self.pipeline, self.run_id)?;
        for s in &self.steps {
            let counts: Vec<String> = s.report.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(f, "  {}. {} [{}]: {}", s.step + 1, s.kind, s.account, counts.join(" "))?;
            for line in &s.report.samples {
                writeln!(f, "       {line}")?;
            }
            for line in &s.report.notes {
                writeln!(f, "     note: {line}")?;
            }
        }
        if let Some(e) = &self.error {
            writeln!(f, "  error: {e}")?;
        }
        Ok(())
    }
}

/// Runs pipelines; shared by the scheduler, the daemon's callers and the CLI.
pub struct Runner {
    store: Store,
    line: LineClient,
    hubspot: HubSpotClient,
    clock: Arc<dyn Clock>,
    outbox: Arc<Notify>,
    high_water: Option<u64>,
    /// Identifies this runner's claims in the store.
    owner: String,
    /// Pipelines running in this process, with their run ids once claimed (0 before).
    running: Mutex<HashMap<String, i64>>,
}

/// Removes a name from the running set when the run ends, however it ends.
struct Running<'a> {
    set: &'a Mutex<HashMap<String, i64>>,
    name: String,
}

impl Running<'_> {
    fn claimed(&self, run_id: i64) {
        if let Ok(mut set) = self.set.lock() {
            set.insert(self.name.clone(), run_id);
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.name);
        }
    }
}

impl Runner {
    /// A runner. `outbox` is woken when rows are queued; `high_water`, when a writer drains the
    /// outbox in the background, is the outbox length steps wait below.
    pub fn new(
        store: Store,
        line: LineClient,
        hubspot: HubSpotClient,
        clock: Arc<dyn Clock>,
        outbox: Arc<Notify>,
        high_water: Option<u64>,
    ) -> Runner {
        let token: [u8; 8] = rand::random();
        let owner = format!("{}-{}", std::process::id(), token.iter().map(|b| format!("{b:02x}")).collect::<String>());
        Runner { store, line, hubspot, clock, outbox, high_water, owner, running: Mutex::default() }
    }

    /// Pipelines whose last run was interrupted while another owner ran it (a crash): the
    /// daemon resumes them at start.
    pub async fn interrupted(&self) -> Result<Vec<String>, StoreError> {
        self.store.interrupted_pipelines(self.owner.clone()).await
    }

    /// Runs the pipeline called `name` among `pipelines`, on `config`'s accounts (resuming its
    /// interrupted run, if any).
    pub async fn run(
        &self,
        config: Arc<Config>,
        pipelines: &[Pipeline],
        name: &str,
        dry_run: bool,
    ) -> Result<RunReport, RunError> {
        let Some(pipeline) = pipelines.iter().find(|p| p.name == name).cloned() else {
            let known: Vec<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
            return Err(RunError::Unknown {
                name: name.to_string(),
                known: if known.is_empty() { "none".into() } else { known.join(", ") },
            });
        };
        let _running = if dry_run {
            None
        } else {
            let mut set = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(&run_id) = set.get(name) {
                return Err(RunError::AlreadyRunning { pipeline: name.to_string(), run_id });
            }
            set.insert(name.to_string(), 0);
            Some(Running { set: &self.running, name: name.to_string() })
        };
        let now = self.clock.now_ms();
        let claim = match self.store.claim_run(name, &pipeline.fingerprint, &self.owner, now, LEASE_MS, dry_run).await?
        {
            ClaimOutcome::Claimed(c) => c,
            ClaimOutcome::Busy { run_id, .. } => {
                return Err(RunError::AlreadyRunning { pipeline: name.to_string(), run_id });
            }
        };
        if let Some(r) = &_running {
            r.claimed(claim.run_id);
        }
        if let Some(old) = claim.abandoned {
            tracing::warn!(pipeline = name, run = old, "an interrupted run was abandoned: the pipeline changed since");
        }
        let resumed = claim.resumed.is_some();
        // A checkpoint that cannot be read fails the run below: starting over could do work twice.
        let checkpoint = claim.resumed.as_deref().map(Checkpoint::decode).transpose();
        tracing::info!(pipeline = name, run = claim.run_id, dry_run, resumed, "pipeline started");
        let mut report = RunReport {
            run_id: claim.run_id,
            pipeline: name.to_string(),
            dry_run,
            resumed,
            state: RunState::Done,
            steps: Vec::new(),
            error: None,
        };
        let work = async {
            let checkpoint = checkpoint?.unwrap_or_default();
            self.steps(&config, &pipeline, claim.run_id, dry_run, checkpoint, &mut report).await
        };
        let result = if dry_run {
            work.await
        } else {
            tokio::select! {
                r = work => r,
                lost = self.heartbeat(claim.run_id) => Err(StepError::Store(lost)),
            }
        };
        let taken_over = RunError::TakenOver { pipeline: name.to_string(), run_id: claim.run_id };
        if let Err(StepError::Store(StoreError::RunTakenOver { holder, .. })) = &result {
            // Another owner runs it now: record nothing more, stop here.
            tracing::warn!(pipeline = name, run = claim.run_id, holder = ?holder, "pipeline run was taken over after its lease expired; this copy stopped");
            return Err(taken_over);
        }
        if let Err(e) = result {
            report.state = if matches!(e, StepError::Held(_)) { RunState::Held } else { RunState::Failed };
            report.error = Some(e.to_string());
        }
        let counts: BTreeMap<String, &BTreeMap<String, u64>> = report
            .steps
            .iter()
            .map(|s| (format!("{}.{}@{}", s.step + 1, s.kind, s.account), &s.report.counts))
            .collect();
        let counts = serde_json::to_string(&counts).unwrap_or_default();
        match self
            .store
            .finish_run(
                claim.run_id,
                self.owner.clone(),
                report.state,
                counts,
                report.error.clone(),
                self.clock.now_ms(),
            )
            .await
        {
            Err(StoreError::RunTakenOver { holder, .. }) => {
                tracing::warn!(pipeline = name, run = claim.run_id, holder = ?holder, "pipeline run was taken over after its lease expired; this copy stopped");
                return Err(taken_over);
            }
            other => other?,
        }
        self.outbox.notify_one();
        match &report.error {
            None => tracing::info!(pipeline = name, run = claim.run_id, "pipeline finished"),
            Some(e) => {
                tracing::warn!(pipeline = name, run = claim.run_id, error = %e, "pipeline stopped; the next run resumes it")
            }
        }
        Ok(report)
    }

    /// The runs this runner has going.
    pub fn active_runs(&self) -> Vec<i64> {
        match self.running.lock() {
            Ok(set) => set.values().copied().filter(|&id| id > 0).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Marks `runs` (from [`Runner::active_runs`], whose tasks were then cancelled because
    /// linehub is stopping) as interrupted, so the next start resumes them at once.
    pub async fn interrupt(&self, runs: Vec<i64>) {
        for run_id in runs {
            if let Err(e) = self.store.interrupt_run(run_id, self.owner.clone(), self.clock.now_ms()).await {
                tracing::warn!(run = run_id, error = %e, "could not mark an interrupted pipeline run");
            }
        }
    }

    /// Shows this runner is alive until the run it accompanies ends; returns only when another
    /// owner has taken the run over, which stops the run.
    async fn heartbeat(&self, run_id: i64) -> StoreError {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            match self.store.heartbeat_run(run_id, self.owner.clone(), self.clock.now_ms()).await {
                Ok(()) => {}
                Err(lost @ StoreError::RunTakenOver { .. }) => return lost,
                Err(e) => tracing::warn!(run = run_id, error = %e, "pipeline heartbeat failed"),
            }
        }
    }

    /// Runs every step for every account from `checkpoint` on, filling `report`.
    async fn steps(
        &self,
        config: &Arc<Config>,
        pipeline: &super::Pipeline,
        run_id: i64,
        dry_run: bool,
        mut checkpoint: Checkpoint,
        report: &mut RunReport,
    ) -> Result<(), StepError> {
        let serials = self.store.ensure_serials(pipeline.accounts.clone(), self.clock.now_ms()).await?;
        let mut done: Vec<SavedOutcome> = Vec::new();
        for (i, step) in pipeline.steps.iter().enumerate() {
            for (j, account_id) in pipeline.accounts.iter().enumerate() {
                let resuming = (i, j) == (checkpoint.step, checkpoint.account);
                let saved = checkpoint.outcomes.iter().find(|o| o.step == i && &o.account == account_id).cloned();
                if (i, j) < (checkpoint.step, checkpoint.account) {
                    // Done before the interruption: keep what it counted.
                    if let Some(o) = saved {
                        report.steps.push(StepOutcome {
                            step: i,
                            kind: step.kind(),
                            account: account_id.clone(),
                            report: StepReport::with_counts(o.counts.clone()),
                        });
                        done.push(o);
                    }
                    continue;
                }
                let mut outcome = StepOutcome {
                    step: i,
                    kind: step.kind(),
                    account: account_id.clone(),
                    report: StepReport::default(),
                };
                let account = config.account(account_id).filter(|a| a.active).cloned();
                let serial = serials.iter().find(|(id, _)| id == account_id).map(|(_, s)| *s);
                let (Some(account), Some(serial)) = (account, serial) else {
                    outcome.report.note(format!("account `{account_id}` is inactive; skipped"));
                    report.steps.push(outcome);
                    continue;
                };
                let mut ctx = StepContext {
                    run_id,
                    owner: self.owner.clone(),
                    pipeline: pipeline.name.clone(),
                    step: i,
                    dry_run,
                    config: config.clone(),
                    account,
                    serial,
                    store: self.store.clone(),
                    line: self.line.clone(),
                    hubspot: self.hubspot.clone(),
                    clock: self.clock.clone(),
                    report: StepReport::with_counts(if resuming {
                        saved.map(|o| o.counts).unwrap_or_default()
                    } else {
                        BTreeMap::new()
                    }),
                    outbox: self.outbox.clone(),
                    high_water: self.high_water,
                    cursor: if resuming { checkpoint.cursor.take() } else { None },
                    base: Checkpoint { step: i, account: j, cursor: None, outcomes: done.clone() },
                };
                let result = step.run(&mut ctx).await;
                outcome.report = ctx.report;
                let saved =
                    SavedOutcome { step: i, account: account_id.clone(), counts: outcome.report.counts.clone() };
                report.steps.push(outcome);
                result?;
                done.push(saved);
                if !dry_run {
                    let next = Checkpoint { step: i, account: j + 1, cursor: None, outcomes: done.clone() };
                    let text = next.encode()?;
                    self.store.save_checkpoint(run_id, self.owner.clone(), text, self.clock.now_ms()).await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::clock::SystemClock;

    /// A config with one account and one pipeline, its store in `dir`.
    fn config(dir: &Path) -> (Config, Vec<Pipeline>) {
        let yaml = format!(
            "server: {{ listen: \"127.0.0.1:0\", public_base_url: \"https://linehub.test\" }}\n\
             store: {{ path: \"{}\" }}\nplan: starter\nhubspot: {{ token: \"t\", base_url: \"http://127.0.0.1:9\" }}\n\
             line: {{ api_base_url: \"http://127.0.0.1:9\" }}\n\
             accounts:\n  - {{ id: tokyo, channel_secret: \"s\", channel_access_token: \"t\" }}\n",
            dir.join("linehub.db").display()
        );
        let config = crate::config::load_str(&dir.join("config.yaml"), &yaml).unwrap_or_else(|e| panic!("{e}"));
        let pipeline = "accounts: [tokyo]\nsteps:\n  - reconcile_follow_status: {}\n";
        let pipeline = super::super::spec::load_str(&dir.join("nightly.yaml"), pipeline, &config.accounts)
            .unwrap_or_else(|e| panic!("{e}"));
        (config, vec![pipeline])
    }

    /// A run that crashed leaving `checkpoint`, then resumed: its id and the resumed run's report.
    async fn resume_after_crash(checkpoint: &str) -> (i64, RunReport) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (config, pipelines) = config(dir.path());
        let store = Store::open(&config.store.path).unwrap_or_else(|e| panic!("{e}"));
        let fingerprint = pipelines[0].fingerprint.clone();
        let ClaimOutcome::Claimed(first) = store
            .claim_run("nightly", &fingerprint, "1-crashed", 0, LEASE_MS, false)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        else {
            panic!("the first claim is refused");
        };
        store
            .save_checkpoint(first.run_id, "1-crashed".into(), checkpoint.into(), 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .finish_run(first.run_id, "1-crashed".into(), RunState::Failed, "{}".into(), None, 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let line = LineClient::new(&config.line.api_base_url).unwrap_or_else(|e| panic!("{e}"));
        let hubspot = HubSpotClient::from_config(&config.hubspot).unwrap_or_else(|e| panic!("{e}"));
        let runner = Runner::new(store, line, hubspot, Arc::new(SystemClock), Arc::new(Notify::new()), None);
        let report = runner.run(Arc::new(config), &pipelines, "nightly", false).await.unwrap_or_else(|e| panic!("{e}"));
        (first.run_id, report)
    }

    #[tokio::test]
    async fn a_run_whose_checkpoint_cannot_be_read_fails_and_says_so_instead_of_starting_over() {
        let (first, report) = resume_after_crash("{\"step\": \"two\"").await;
        assert_eq!((report.run_id, report.resumed, report.state), (first, true, RunState::Failed));
        let error = report.error.unwrap_or_default();
        assert!(error.contains("checkpoint of the interrupted run cannot be read"), "{error}");
        assert!(report.steps.is_empty(), "no step ran: {:?}", report.steps);
    }

    #[tokio::test]
    async fn a_resume_cursor_its_step_cannot_read_fails_the_run_and_names_the_step() {
        // A well-formed checkpoint whose cursor is not what reconcile_follow_status writes.
        let (first, report) = resume_after_crash(r#"{"step":0,"account":0,"cursor":{"after":5},"outcomes":[]}"#).await;
        assert_eq!((report.run_id, report.resumed, report.state), (first, true, RunState::Failed));
        let error = report.error.unwrap_or_default();
        assert!(error.contains("resume point of step 1 for account `tokyo`"), "{error}");
    }
}
