//! The writer: the only code that writes contact state to HubSpot.
//!
//! It drains the store's outbox. Rows due now are read whole per key and coalesced: every
//! pending change of one contact becomes one set of properties, later values winning. Known
//! contacts are updated with `batch/update`, unknown ones created with `batch/create` (≤100 per
//! call). A LINE user's contact is found from linehub's own link table and from HubSpot's
//! answers, never by search, whose index lags: a create carries the user's placeholder email, so
//! a contact that already exists answers 409 with its id and is updated instead. Writes keyed by
//! contact id (a contact's link token) are updated in batches of their own, never create a
//! contact, and are dropped, with a log line, when the contact is gone.
//!
//! Failures stay in the outbox with their retry state: a 429 or an outage pauses the whole
//! portal and reschedules the rows (exponential backoff with jitter; the rate-limit headers set
//! the wait); a 207 retries only the members that failed; a batch refused as a whole for good
//! (any 4xx) is split until the member to blame is alone; a contact deleted in HubSpot is
//! unlinked and created again; a permanent rejection is retried a few times and then
//! dead-lettered for an operator (`linehub outbox list|retry`). Waits follow the one retry
//! policy ([`crate::retry`]) on the injected clock.
//!
//! This file holds the drain loop and failure handling; each kind of write has its own file:
//! [`contacts`] (update, create, look up), [`logins`] (ID linking through LINE Login: find,
//! merge, link), [`tasks`] (owner tasks), [`send_log`] (timeline notes
//! and workflow action completions), and [`batch`] the coalescing and batch-answer plumbing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use super::client::HubSpotClient;
use super::error::HubSpotError;
use crate::clock::{Clock, millis};
use crate::config::HubSpotConfig;
use crate::retry::Backoff;
use crate::store::{Op, Store, StoreError};

mod batch;
mod contacts;
mod logins;
mod send_log;
mod tasks;

use batch::{BatchError, Group, by_contact_id, chunks, coalesce, user_of};

/// Permanent failures tolerated before a row is dead-lettered.
const MAX_PERMANENT_ATTEMPTS: i64 = 3;
/// How HubSpot names a property that does not exist, in a whole answer or a batch member's.
const PROPERTY_DOESNT_EXIST: &str = "PROPERTY_DOESNT_EXIST";
/// Keys taken per pass; a few full batches.
const KEYS_PER_PASS: usize = 500;
/// Passes per drain.
const MAX_PASSES: usize = 1000;

/// What one [`Writer::drain`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DrainReport {
    /// Outbox rows HubSpot has taken.
    pub rows_done: usize,
    /// Contacts created.
    pub created: usize,
    /// Contacts updated.
    pub updated: usize,
    /// Owner tasks created.
    pub tasks: usize,
    /// Timeline notes of LINE sends created.
    pub notes: usize,
    /// Workflow action executions completed.
    pub completions: usize,
    /// Rows rescheduled after a failure.
    pub retried: usize,
    /// Rows dead-lettered.
    pub dead: usize,
    /// HubSpot calls made.
    pub calls: usize,
}

/// Why a drain stopped early.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The store failed; nothing was lost, the rows are still there.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Drains the outbox of one portal.
pub struct Writer {
    client: HubSpotClient,
    store: Store,
    clock: Arc<dyn Clock>,
    config: HubSpotConfig,
    /// Nothing is sent before this time (ms): set by a 429 or an outage, for the whole portal.
    paused_until: AtomicI64,
    /// Consecutive portal-wide failures, for the pause's backoff.
    outage_streak: AtomicI64,
    /// Set when HubSpot says a property is missing: the properties must be ensured again.
    properties_stale: AtomicBool,
    /// Serials whose properties exist (see [`Writer::set_property_serials`]).
    property_serials: std::sync::RwLock<Vec<i64>>,
}

impl Writer {
    /// A writer for the portal in `config`.
    pub fn new(client: HubSpotClient, store: Store, clock: Arc<dyn Clock>, config: HubSpotConfig) -> Writer {
        Writer {
            client,
            store,
            clock,
            config,
            paused_until: AtomicI64::new(0),
            outage_streak: AtomicI64::new(0),
            properties_stale: AtomicBool::new(false),
            property_serials: std::sync::RwLock::default(),
        }
    }

    /// The account serials whose properties exist in HubSpot (the active accounts): a contact is
    /// created with what linehub knows of the user on each of them.
    pub fn set_property_serials(&self, serials: Vec<i64>) {
        if let Ok(mut s) = self.property_serials.write() {
            *s = serials;
        }
    }

    /// The HubSpot client (shared with property setup, so both count against one limiter).
    pub fn client(&self) -> &HubSpotClient {
        &self.client
    }

    /// Whether HubSpot reported a missing property since the last call (and clears the flag).
    pub fn take_properties_stale(&self) -> bool {
        self.properties_stale.swap(false, Ordering::SeqCst)
    }

    /// When the portal-wide pause ends (ms), if one is in force.
    pub fn paused_until(&self) -> Option<i64> {
        let until = self.paused_until.load(Ordering::SeqCst);
        (until > self.clock.now_ms()).then_some(until)
    }

    /// Writes everything due now, pass after pass, until nothing is due or the portal pauses.
    pub async fn drain(&self) -> Result<DrainReport, WriterError> {
        let mut report = DrainReport::default();
        // Bounded, so that a record HubSpot keeps bouncing between "exists" and "not found"
        // cannot hold the writer; the next drain continues.
        for _ in 0..MAX_PASSES {
            if self.paused_until().is_some() {
                break;
            }
            let rows = self.store.outbox_due(self.clock.now_ms(), KEYS_PER_PASS).await?;
            if rows.is_empty() {
                break;
            }
            let before = report.clone();
            self.pass(coalesce(rows), &mut report).await?;
            if report.rows_done == before.rows_done
                && report.retried == before.retried
                && report.dead == before.dead
                && report.calls == before.calls
            {
                break;
            }
        }
        Ok(report)
    }

    async fn pass(&self, groups: Vec<Group>, report: &mut DrainReport) -> Result<(), WriterError> {
        // Logins first: a contact write of the same user then goes to the contact it linked.
        let (logins, groups): (Vec<Group>, Vec<Group>) =
            groups.into_iter().partition(|g| matches!(g.op, Op::LinkLogin { .. }));
        if !logins.is_empty() && !self.link_logins(logins, report).await? {
            return Ok(());
        }
        let (sends, groups): (Vec<Group>, Vec<Group>) =
            groups.into_iter().partition(|g| matches!(g.op, Op::SendNote { .. } | Op::CompleteAction { .. }));
        let (by_id, groups): (Vec<Group>, Vec<Group>) =
            groups.into_iter().partition(|g| matches!(g.op, Op::ContactById { .. }));
        let (contacts, tasks): (Vec<Group>, Vec<Group>) =
            groups.into_iter().partition(|g| matches!(g.op, Op::Contact { .. }));
        let users: Vec<String> = contacts.iter().chain(&tasks).map(|g| user_of(&g.op).to_string()).collect();
        let links = self.store.contact_links(users).await?;

        let mut update = Vec::new();
        let mut create = Vec::new();
        let mut lookup = Vec::new();
        for g in contacts {
            let Op::Contact { user_id, create: may_create, .. } = &g.op else { continue };
            match links.get(user_id) {
                Some(contact) => update.push((contact.clone(), g)),
                None if *may_create => create.push(g),
                None => lookup.push(g),
            }
        }
        for chunk in chunks(update) {
            if !self.update_contacts(chunk, report).await? {
                return Ok(());
            }
        }
        for chunk in chunks(create) {
            if !self.create_contacts(chunk, report).await? {
                return Ok(());
            }
        }
        for chunk in chunks(lookup) {
            if !self.find_contacts(chunk, report).await? {
                return Ok(());
            }
        }
        // Batches of their own: a contact may also have a write by LINE user in this pass, and
        // one batch may not name a record twice.
        for chunk in chunks(by_contact_id(by_id)) {
            if !self.update_contacts(chunk, report).await? {
                return Ok(());
            }
        }
        if !tasks.is_empty() {
            self.owner_tasks(tasks, report).await?;
        }
        if self.paused_until().is_some() {
            return Ok(());
        }
        let (notes, completions): (Vec<Group>, Vec<Group>) =
            sends.into_iter().partition(|g| matches!(g.op, Op::SendNote { .. }));
        if !notes.is_empty() && !self.send_notes(notes, report).await? {
            return Ok(());
        }
        for chunk in chunks(completions) {
            if !self.complete_actions(chunk, report).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Handles a call that failed as a whole. Returns Ok(false) when the portal paused.
    async fn failed_call(
        &self,
        e: HubSpotError,
        groups: Vec<Group>,
        report: &mut DrainReport,
    ) -> Result<bool, WriterError> {
        if e.is_transient() {
            let streak = self.outage_streak.fetch_add(1, Ordering::SeqCst);
            let wait = e.retry_after().unwrap_or_else(|| Backoff::QUEUE.wait(streak));
            let until = self.clock.now_ms() + millis(wait);
            self.paused_until.fetch_max(until, Ordering::SeqCst);
            tracing::warn!(error = %e, pause = ?wait, "HubSpot write paused");
            let ids: Vec<i64> = groups.into_iter().flat_map(|g| g.ids).collect();
            report.retried += ids.len();
            self.store.outbox_postpone(ids, until, e.to_string()).await?;
            return Ok(false);
        }
        if let HubSpotError::Rejected { message, .. } = &e
            && message.contains(PROPERTY_DOESNT_EXIST)
        {
            self.properties_stale.store(true, Ordering::SeqCst);
        }
        if groups.len() > 1 {
            // One bad member can fail a whole batch, whatever HubSpot answers for it (a 400 for
            // a bad value or an expired callback, a 404 for an unknown one, a 409): split it
            // until the bad member is alone, so the others go through.
            let mid = groups.len() / 2;
            let mut groups = groups;
            let tail = groups.split_off(mid);
            for half in [groups, tail] {
                let first = &half[0].op;
                let ok = match first {
                    Op::Contact { .. } => {
                        let links =
                            self.store.contact_links(half.iter().map(|g| user_of(&g.op).to_string()).collect()).await?;
                        if links.is_empty() {
                            Box::pin(self.create_contacts(half, report)).await?
                        } else {
                            let chunk = half
                                .into_iter()
                                .filter_map(|g| links.get(user_of(&g.op)).cloned().map(|c| (c, g)))
                                .collect();
                            Box::pin(self.update_contacts(chunk, report)).await?
                        }
                    }
                    Op::ContactById { .. } => Box::pin(self.update_contacts(by_contact_id(half), report)).await?,
                    Op::OwnerTask { .. } | Op::LinkLogin { .. } => {
                        self.fail_groups(half, &e, report).await?;
                        true
                    }
                    // Refused as a whole, so none was made: create again, nothing to look for.
                    Op::SendNote { .. } => Box::pin(self.create_notes(half, report)).await?,
                    Op::CompleteAction { .. } => Box::pin(self.complete_actions(half, report)).await?,
                };
                if !ok {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        self.fail_groups(groups, &e, report).await?;
        Ok(true)
    }

    /// Fails the members of a batch that HubSpot neither applied nor explained by name, with
    /// the first error it gave for the batch.
    async fn fail_unanswered(
        &self,
        groups: Vec<Group>,
        status: u16,
        errors: &[BatchError],
        report: &mut DrainReport,
    ) -> Result<(), WriterError> {
        if groups.is_empty() {
            return Ok(());
        }
        if errors.iter().any(|e| e.message.contains(PROPERTY_DOESNT_EXIST)) {
            // A property was deleted in HubSpot: it is created again, and the members wait
            // for it without counting towards the dead letter.
            self.properties_stale.store(true, Ordering::SeqCst);
        }
        let message = errors.first().map(|e| e.message.clone()).unwrap_or_else(|| "not in HubSpot's results".into());
        self.fail_groups(groups, &HubSpotError::Rejected { status, category: "BATCH".into(), message }, report).await
    }

    /// Reschedules each group with backoff, or dead-letters it after repeated permanent errors.
    async fn fail_groups(
        &self,
        groups: Vec<Group>,
        e: &HubSpotError,
        report: &mut DrainReport,
    ) -> Result<(), WriterError> {
        let stale = self.properties_stale.load(Ordering::SeqCst);
        for g in groups {
            if stale {
                // Most likely refused for the missing property: wait for it, uncounted.
                let at = Backoff::QUEUE.due_at(self.clock.now_ms(), g.attempts);
                report.retried += g.ids.len();
                self.store.outbox_postpone(g.ids, at, e.to_string()).await?;
                continue;
            }
            let attempts = g.attempts + 1;
            let dead = !e.is_transient() && attempts >= MAX_PERMANENT_ATTEMPTS;
            let at = Backoff::QUEUE.due_at(self.clock.now_ms(), attempts);
            if dead {
                tracing::error!(rows = ?g.ids, error = %e, "HubSpot write dead-lettered; see `linehub outbox list`");
                report.dead += g.ids.len();
            } else {
                report.retried += g.ids.len();
            }
            self.store.outbox_failed(g.ids, e.to_string(), at, dead).await?;
        }
        Ok(())
    }

    async fn finish(&self, ids: Vec<i64>, report: &mut DrainReport) -> Result<(), WriterError> {
        if !ids.is_empty() {
            report.rows_done += ids.len();
            self.store.outbox_done(ids).await?;
        }
        Ok(())
    }

    /// Now, as the `hs_timestamp` of a task or note (ISO 8601, UTC, milliseconds).
    fn hs_timestamp(&self) -> String {
        chrono::DateTime::from_timestamp_millis(self.clock.now_ms())
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// Called as soon as HubSpot answers a call with success, before the outbox hears of it.
    fn healthy(&self) {
        // HubSpot has done the write, the outbox still says it is to do: where the crash suite
        // may end the process.
        crate::crash::point("hubspot.after_answer");
        self.outage_streak.store(0, Ordering::SeqCst);
    }
}
