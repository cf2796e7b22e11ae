//! What a step sees while it runs for one account, and how it commits its work.
//!
//! The runner builds a [`StepContext`] per step and account: the account, the clients, the
//! store, the cursor to resume from, and the report the step fills. A step commits each
//! [`Page`] of work with [`StepContext::commit`], which stores the page's writes and the run's
//! checkpoint in one transaction (and does nothing in a dry run), so a crash never loses or
//! repeats a page.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Notify;

use super::checkpoint::{Checkpoint, CheckpointError, SavedOutcome};
use super::report::StepReport;
use super::steps::StepError;
use crate::clock::Clock;
use crate::config::{Account, Config};
use crate::hubspot::HubSpotClient;
use crate::line::client::{LineClient, LineError, Profile};
use crate::line::limits::PROFILE_CONCURRENCY;
use crate::store::pipelines::{PipelineCommit, RunLease};
use crate::store::{Op, Store, StoreError};
use crate::sync::FriendState;
use crate::sync::properties::Field;

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

/// Everything a step sees while it runs for one account.
pub struct StepContext {
    /// The run's id in the store.
    pub run_id: i64,
    /// Who runs it (this runner's claim): every write of the run names it, so a run taken over
    /// by another owner stops here.
    pub(crate) owner: String,
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
    /// The cursor an interrupted run left for this step and account, once. A cursor that does
    /// not have the step's shape is an error, never a silent start from the beginning.
    pub fn cursor<T: DeserializeOwned>(&mut self) -> Result<Option<T>, CheckpointError> {
        let Some(value) = self.cursor.take() else { return Ok(None) };
        serde_json::from_value(value).map(Some).map_err(|cause| CheckpointError::CorruptCursor {
            step: self.step,
            account: self.account.id.clone(),
            cause,
        })
    }

    /// The checkpoint text for `cursor`, for store calls that commit their own records with it.
    pub fn checkpoint_text<C: Serialize>(&self, cursor: &C) -> Result<String, CheckpointError> {
        let mut cp = self.base.clone();
        cp.cursor = Some(serde_json::to_value(cursor).map_err(|cause| CheckpointError::Unwritable { cause })?);
        cp.outcomes.push(SavedOutcome {
            step: self.step,
            account: self.account.id.clone(),
            counts: self.report.counts.clone(),
        });
        cp.encode()
    }

    /// Commits `page` and the step's `cursor` in one transaction; a dry run commits nothing.
    pub async fn commit<C: Serialize>(&mut self, cursor: &C, page: Page) -> Result<(), StepError> {
        if self.dry_run {
            return Ok(());
        }
        let checkpoint = self.checkpoint_text(cursor)?;
        let queued = !page.ops.is_empty();
        if queued {
            self.outbox_room().await?;
        }
        self.store
            .pipeline_commit(PipelineCommit {
                run_id: self.run_id,
                owner: self.owner.clone(),
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

    /// Whether this is the step's first account in this run (no other account's pass of it
    /// has finished): work shared by every account, such as rotating a contact's link token,
    /// is done once, here.
    pub fn first_account(&self) -> bool {
        !self.base.outcomes.iter().any(|o| o.step == self.step)
    }

    /// The run as this runner claimed it, for store calls that record the run's work.
    pub fn lease(&self) -> RunLease {
        RunLease { run_id: self.run_id, owner: self.owner.clone() }
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
