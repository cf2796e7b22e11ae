//! The step registry: one file per step kind, one trait, one enum variant each.
//!
//! To add a step kind `frobnicate`: write `frobnicate.rs` here with its `with:` struct
//! (`#[serde(deny_unknown_fields)]`, documented field by field: that is the user reference) and
//! its [`Step`] impl, add one variant to [`StepSpec`], and the compiler points at every match
//! that needs an arm. Add an example under `pipelines/`; a test checks that every kind has one.
//!
//! A step runs once per account of its pipeline, with a [`StepContext`]: the account, the
//! clients, the store, the cursor to resume from, and the report it fills. It commits each page
//! of work with [`StepContext::commit`], which stores the page's writes and the cursor in one
//! transaction (and does nothing in a dry run).

pub mod broadcast_to_list;
pub mod enforce_plan_limits;
pub mod import_friends;
pub mod import_line_ids_from_list;
pub mod reconcile_follow_status;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_saphyr::Spanned;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::{Account, Config};
use crate::hubspot::{HubSpotClient, HubSpotError};
use crate::line::client::{LineClient, LineError, Profile};
use crate::line::limits::PROFILE_CONCURRENCY;
use crate::store::pipelines::PipelineCommit;
use crate::store::{Op, Store, StoreError};
use crate::sync::FriendState;
use crate::sync::properties::Field;
use crate::yaml::ConfigError;

/// How many per-contact samples a report keeps of each kind (linked, malformed, …).
pub const SAMPLES: usize = 5;

/// One kind of pipeline step.
pub trait Step {
    /// The YAML key, the file name and the name in reports.
    const KIND: &'static str;

    /// Checks what serde cannot (ranges, formats), reporting each problem with its location.
    fn check(&self, checks: &mut Checks<'_>);

    /// Runs the step for `ctx.account`. Reads freely; writes only through `ctx.commit` (or,
    /// for sends, the store's broadcast records), and never in a dry run.
    fn run(&self, ctx: &mut StepContext) -> impl Future<Output = Result<(), StepError>> + Send;
}

/// Every step kind, by its YAML key: `- import_friends: { page_size: 1000 }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepSpec {
    /// See [`import_line_ids_from_list`].
    ImportLineIdsFromList(import_line_ids_from_list::ImportLineIdsFromList),
    /// See [`import_friends`].
    ImportFriends(import_friends::ImportFriends),
    /// See [`reconcile_follow_status`].
    ReconcileFollowStatus(reconcile_follow_status::ReconcileFollowStatus),
    /// See [`enforce_plan_limits`].
    EnforcePlanLimits(enforce_plan_limits::EnforcePlanLimits),
    /// See [`broadcast_to_list`].
    BroadcastToList(broadcast_to_list::BroadcastToList),
}

/// The YAML key of every step kind, in registry order.
pub const KINDS: &[&str] = &[
    import_line_ids_from_list::ImportLineIdsFromList::KIND,
    import_friends::ImportFriends::KIND,
    reconcile_follow_status::ReconcileFollowStatus::KIND,
    enforce_plan_limits::EnforcePlanLimits::KIND,
    broadcast_to_list::BroadcastToList::KIND,
];

impl StepSpec {
    /// The step's YAML key.
    pub fn kind(&self) -> &'static str {
        match self {
            StepSpec::ImportLineIdsFromList(_) => import_line_ids_from_list::ImportLineIdsFromList::KIND,
            StepSpec::ImportFriends(_) => import_friends::ImportFriends::KIND,
            StepSpec::ReconcileFollowStatus(_) => reconcile_follow_status::ReconcileFollowStatus::KIND,
            StepSpec::EnforcePlanLimits(_) => enforce_plan_limits::EnforcePlanLimits::KIND,
            StepSpec::BroadcastToList(_) => broadcast_to_list::BroadcastToList::KIND,
        }
    }

    /// Checks the `with:` block.
    pub fn check(&self, checks: &mut Checks<'_>) {
        match self {
            StepSpec::ImportLineIdsFromList(s) => s.check(checks),
            StepSpec::ImportFriends(s) => s.check(checks),
            StepSpec::ReconcileFollowStatus(s) => s.check(checks),
            StepSpec::EnforcePlanLimits(s) => s.check(checks),
            StepSpec::BroadcastToList(s) => s.check(checks),
        }
    }

    /// Runs the step for one account.
    pub async fn run(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        match self {
            StepSpec::ImportLineIdsFromList(s) => s.run(ctx).await,
            StepSpec::ImportFriends(s) => s.run(ctx).await,
            StepSpec::ReconcileFollowStatus(s) => s.run(ctx).await,
            StepSpec::EnforcePlanLimits(s) => s.run(ctx).await,
            StepSpec::BroadcastToList(s) => s.run(ctx).await,
        }
    }
}

/// Collects the problems of one step's `with:` block, located in its file.
pub struct Checks<'a> {
    file: &'a Path,
    prefix: String,
    errors: Vec<ConfigError>,
}

impl<'a> Checks<'a> {
    /// Checks for the step whose fields are under `prefix` (e.g. `steps[1].import_friends`).
    pub fn new(file: &'a Path, prefix: String) -> Checks<'a> {
        Checks { file, prefix, errors: Vec::new() }
    }

    /// Records that `field` (relative to the step, located by `at`) is wrong.
    pub fn error<T>(&mut self, at: &Spanned<T>, field: &str, message: impl Into<String>) {
        let field = format!("{}.{field}", self.prefix);
        self.errors.push(ConfigError::at_span(self.file, at, field, message));
    }

    /// Checks that an optional number lies in `min..=max`.
    pub fn range<T: PartialOrd + Copy + std::fmt::Display>(
        &mut self,
        v: Option<&Spanned<T>>,
        field: &str,
        min: T,
        max: T,
    ) {
        if let Some(v) = v
            && (v.value < min || v.value > max)
        {
            self.error(v, field, format!("must be between {min} and {max}, not {}", v.value));
        }
    }

    /// Checks a HubSpot list id (digits only, as in the list's URL).
    pub fn list_id(&mut self, v: &Spanned<String>, field: &str) {
        if v.value.is_empty() || !v.value.bytes().all(|b| b.is_ascii_digit()) {
            self.error(v, field, format!("`{}` is not a HubSpot list id (the number in the list's URL)", v.value));
        }
    }

    /// The problems found.
    pub fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }
}

/// Why a step stopped.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A LINE call failed.
    #[error("LINE: {0}")]
    Line(#[from] LineError),
    /// A HubSpot read failed.
    #[error("HubSpot: {0}")]
    HubSpot(#[from] HubSpotError),
    /// The store failed; nothing of the current page was committed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The step cannot do its work as configured; the message says what to change.
    #[error("{0}")]
    Refused(String),
    /// Sends are held (message quota); the run resumes when they may go.
    #[error("sends held: {0}")]
    Held(String),
}

/// What one step did (or, in a dry run, would do) for one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    /// Named counts, e.g. `contacts_queued: 120`.
    pub counts: BTreeMap<String, u64>,
    /// Up to [`SAMPLES`] per-contact lines of each kind: the diff written, or why a contact was
    /// left alone.
    pub samples: Vec<String>,
    /// Samples kept so far, by kind.
    #[serde(skip)]
    sampled: BTreeMap<String, usize>,
    /// Remarks for the operator (warnings, what would happen next).
    pub notes: Vec<String>,
}

impl StepReport {
    /// A report that starts from `counts` (a resumed run's).
    pub fn with_counts(counts: BTreeMap<String, u64>) -> StepReport {
        StepReport { counts, ..StepReport::default() }
    }

    /// Adds `n` to count `name`.
    pub fn count(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.to_string()).or_default() += n;
    }

    /// A count (0 when never counted).
    pub fn get(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// Keeps `line` if there is room for another sample of `kind`.
    pub fn sample(&mut self, kind: &str, line: impl FnOnce() -> String) {
        let n = self.sampled.entry(kind.to_string()).or_default();
        if *n < SAMPLES {
            *n += 1;
            self.samples.push(line());
        }
    }

    /// Adds a remark.
    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }
}

/// One page of work to commit with the step's cursor.
#[derive(Debug, Default)]
pub struct Page {
    /// New friend states by (serial, user).
    pub friends: Vec<((i64, String), FriendState)>,
    /// LINE user → contact links learned from HubSpot (existing links are kept).
    pub links: Vec<(String, String)>,
    /// HubSpot writes to queue.
    pub ops: Vec<Op>,
    /// A broadcast chunk marked sent by this page: (chunk number).
    pub chunk_sent: Option<i64>,
}

/// The run-wide part of a checkpoint a context needs to write its own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The step being run (index in the pipeline).
    pub step: usize,
    /// The account being run (index in the pipeline's accounts).
    pub account: usize,
    /// The step's own resume point for that account.
    pub cursor: Option<Value>,
    /// Counts of the steps and accounts already done, and of the current one so far.
    pub outcomes: Vec<SavedOutcome>,
}

/// A finished (or current) step's counts, as kept in a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedOutcome {
    /// Step index.
    pub step: usize,
    /// Account id.
    pub account: String,
    /// The report's counts.
    pub counts: BTreeMap<String, u64>,
}

/// Everything a step sees while it runs for one account.
pub struct StepContext {
    /// The run's id in the store.
    pub run_id: i64,
    /// The pipeline's name.
    pub pipeline: String,
    /// This step's index in the pipeline.
    pub step: usize,
    /// Whether nothing may change.
    pub dry_run: bool,
    /// The config in force when the run started.
    pub config: Arc<Config>,
    /// The account this step runs for.
    pub account: Account,
    /// Its serial: the N of its properties.
    pub serial: i64,
    /// The store.
    pub store: Store,
    /// LINE's Messaging API.
    pub line: LineClient,
    /// HubSpot, for reads.
    pub hubspot: HubSpotClient,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// What the step did so far.
    pub report: StepReport,
    /// Woken when outbox rows are queued.
    pub(crate) outbox: Arc<Notify>,
    /// When a writer drains in the background: the outbox length to stay under.
    pub(crate) high_water: Option<u64>,
    /// The step's resume point, taken by [`StepContext::cursor`].
    pub(crate) cursor: Option<Value>,
    /// The checkpoint this context extends.
    pub(crate) base: Checkpoint,
}

impl StepContext {
    /// The cursor an interrupted run left for this step and account, once.
    pub fn cursor<T: DeserializeOwned>(&mut self) -> Option<T> {
        self.cursor.take().and_then(|v| serde_json::from_value(v).ok())
    }

    fn checkpoint<C: Serialize>(&self, cursor: &C) -> String {
        let mut cp = self.base.clone();
        cp.cursor = serde_json::to_value(cursor).ok();
        cp.outcomes.push(SavedOutcome {
            step: self.step,
            account: self.account.id.clone(),
            counts: self.report.counts.clone(),
        });
        serde_json::to_string(&cp).unwrap_or_default()
    }

    /// Commits `page` and the step's `cursor` in one transaction; a dry run commits nothing.
    pub async fn commit<C: Serialize>(&mut self, cursor: &C, page: Page) -> Result<(), StepError> {
        if self.dry_run {
            return Ok(());
        }
        let queued = !page.ops.is_empty();
        if queued {
            self.outbox_room().await?;
        }
        let checkpoint = self.checkpoint(cursor);
        self.store
            .pipeline_commit(PipelineCommit {
                run_id: self.run_id,
                checkpoint,
                friends: page.friends,
                links: page.links,
                ops: page.ops,
                chunk_sent: page.chunk_sent.map(|c| (self.step as i64, self.account.id.clone(), c)),
                now: self.clock.now_ms(),
            })
            .await?;
        if queued {
            self.outbox.notify_one();
        }
        Ok(())
    }

    /// The checkpoint text for `cursor`, for store calls that commit their own records with it.
    pub fn checkpoint_text<C: Serialize>(&self, cursor: &C) -> String {
        self.checkpoint(cursor)
    }

    /// Waits while the outbox holds more than the high-water mark and a background writer is
    /// draining it, so a million-friend import streams instead of piling up.
    async fn outbox_room(&self) -> Result<(), StepError> {
        let Some(high) = self.high_water else { return Ok(()) };
        while self.store.outbox_len().await? >= high {
            self.outbox.notify_one();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Today in UTC, as HubSpot `date` properties take it.
    pub fn today(&self) -> String {
        crate::sync::rules::day_of(self.clock.now_ms())
    }

    /// The internal name of `field` for this account.
    pub fn property(&self, field: Field) -> String {
        field.name(self.serial)
    }

    /// Profiles of `users` as this account sees them (`None`: not a friend), read
    /// [`PROFILE_CONCURRENCY`] at a time, in order.
    pub async fn profiles(&self, users: &[String]) -> Result<Vec<Option<Profile>>, LineError> {
        let token = self.account.channel_access_token.clone();
        let reads: Vec<_> = users
            .iter()
            .cloned()
            .map(|u| {
                let (line, token) = (self.line.clone(), token.clone());
                async move { line.profile(&token, &u).await }
            })
            .collect();
        futures_util::stream::iter(reads).buffered(PROFILE_CONCURRENCY).collect::<Vec<_>>().await.into_iter().collect()
    }

    /// What linehub knows of these users of this account.
    pub async fn friend_states(&self, users: &[String]) -> Result<HashMap<String, FriendState>, StoreError> {
        let keys = users.iter().map(|u| (self.serial, u.clone())).collect();
        Ok(self.store.friend_states(keys).await?.into_iter().map(|((_, u), s)| (u, s)).collect())
    }
}

/// `name: old → new, …` for the properties that would change; empty when none would.
pub fn diff(current: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> String {
    new.iter()
        .filter(|(k, v)| current.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {} → {v}", current.get(k).map_or("(none)", String::as_str)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn step_kinds_are_unique_and_match_their_file_names() {
        let unique: HashSet<_> = KINDS.iter().collect();
        assert_eq!(unique.len(), KINDS.len(), "{KINDS:?}");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pipelines/steps");
        for kind in KINDS {
            assert!(dir.join(format!("{kind}.rs")).is_file(), "no src/pipelines/steps/{kind}.rs");
        }
    }

    #[test]
    fn every_example_pipeline_loads_and_every_step_kind_has_one() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let pipelines =
            crate::pipelines::load_dir(&root.join("pipelines"), &["tokyo-store"]).unwrap_or_else(|e| panic!("{e}"));
        let used: HashSet<&str> = pipelines.iter().flat_map(|p| p.steps.iter().map(StepSpec::kind)).collect();
        for kind in KINDS {
            assert!(used.contains(kind), "no example in pipelines/ uses `{kind}`");
        }
    }
}
