//! The writer: the only code that writes contact state to HubSpot.
//!
//! It drains the store's outbox. Rows due now are read whole per key and coalesced: every
//! pending change of one contact becomes one set of properties, later values winning. Known
//! contacts are updated with `batch/update`, unknown ones created with `batch/create` (≤100 per
//! call). A LINE user's contact is found from linehub's own link table and from HubSpot's
//! answers, never by search, whose index lags: a create carries the user's placeholder email, so
//! a contact that already exists answers 409 with its id and is updated instead.
//!
//! Failures stay in the outbox with their retry state: a 429 or an outage pauses the whole
//! portal and reschedules the rows (exponential backoff with jitter; the rate-limit headers set
//! the wait); a 207 retries only the members that failed; a contact deleted in HubSpot is
//! unlinked and created again; a permanent rejection is retried a few times and then
//! dead-lettered for an operator (`linehub outbox list|retry`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::Method;
use serde_json::{Value, json};

use super::api;
use super::client::HubSpotClient;
use super::error::{HubSpotError, existing_id};
use crate::clock::Clock;
use crate::config::HubSpotConfig;
use crate::store::{Op, OutboxRow, Store, StoreError};

mod send_log;

pub(crate) use send_log::note_marker;

/// Permanent failures tolerated before a row is dead-lettered.
const MAX_PERMANENT_ATTEMPTS: i64 = 3;
/// Keys taken per pass; a few full batches.
const KEYS_PER_PASS: usize = 500;
/// How owner tasks linehub creates are titled; also how it recognises its own.
const TASK_SUBJECT: &str = "Reply on LINE";
/// A change that must not create a contact waits this long for one to appear…
const PARKED_FOR_MS: i64 = 24 * 3600 * 1000;
/// …this many times, then it is dropped.
const PARKED_LOOKUPS: i64 = 7;
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

/// One coalesced write: the rows it came from and what they add up to.
#[derive(Debug, Clone)]
struct Group {
    ids: Vec<i64>,
    attempts: i64,
    op: Op,
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
        let (sends, groups): (Vec<Group>, Vec<Group>) =
            groups.into_iter().partition(|g| matches!(g.op, Op::SendNote { .. } | Op::CompleteAction { .. }));
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

    /// `batch/update` of linked contacts. Returns false when the portal paused.
    async fn update_contacts(
        &self,
        chunk: Vec<(String, Group)>,
        report: &mut DrainReport,
    ) -> Result<bool, WriterError> {
        let inputs: Vec<Value> = chunk.iter().map(|(id, g)| json!({ "id": id, "properties": props(&g.op) })).collect();
        let path = format!("{}/batch/update", api::CONTACTS);
        report.calls += 1;
        let reply = match self.client.send(Method::POST, &path, &[], Some(&json!({ "inputs": inputs }))).await {
            Ok(reply) => reply,
            Err(e) => return self.failed_call(e, chunk.into_iter().map(|(_, g)| g).collect(), report).await,
        };
        self.healthy();
        let ok: Vec<String> = reply.body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect();
        let missing: Vec<String> = batch_errors(&reply.body)
            .into_iter()
            .filter(|e| e.category == "OBJECT_NOT_FOUND" || e.message.to_ascii_lowercase().contains("not found"))
            .flat_map(|e| e.ids)
            .collect();
        let mut done = Vec::new();
        let mut gone_users = Vec::new();
        let mut failed = Vec::new();
        for (contact, g) in chunk {
            if ok.contains(&contact) {
                report.updated += 1;
                done.extend(g.ids);
            } else if missing.contains(&contact) {
                // Deleted in HubSpot: forget the link; the rows stay due and create it again.
                tracing::info!(contact = %contact, user = user_of(&g.op), "contact was deleted in HubSpot; it will be recreated");
                gone_users.push(user_of(&g.op).to_string());
            } else {
                failed.push(g);
            }
        }
        self.finish(done, report).await?;
        if !gone_users.is_empty() {
            self.store.unlink_contacts(gone_users).await?;
        }
        self.fail_unanswered(failed, reply.status, &batch_errors(&reply.body), report).await?;
        Ok(true)
    }

    /// `batch/create` of unknown contacts with their placeholder email. Returns false when the
    /// portal paused.
    async fn create_contacts(&self, chunk: Vec<Group>, report: &mut DrainReport) -> Result<bool, WriterError> {
        let inputs: Vec<Value> = chunk
            .iter()
            .map(|g| {
                let user = user_of(&g.op);
                let mut p = props(&g.op);
                p.insert("email".into(), self.config.dummy_email(user));
                json!({ "properties": p, "objectWriteTraceId": user })
            })
            .collect();
        let path = format!("{}/batch/create", api::CONTACTS);
        report.calls += 1;
        let reply = match self.client.send(Method::POST, &path, &[], Some(&json!({ "inputs": inputs }))).await {
            Ok(reply) => reply,
            Err(HubSpotError::Conflict { .. }) if chunk.len() > 1 => {
                // A duplicate failed the whole batch: create one by one to learn which.
                for g in chunk {
                    if !Box::pin(self.create_contacts(vec![g], report)).await? {
                        return Ok(false);
                    }
                }
                return Ok(true);
            }
            Err(HubSpotError::Conflict { existing_id: Some(id), .. }) if chunk.len() == 1 => {
                let user = user_of(&chunk[0].op).to_string();
                self.store.link_contacts(vec![(user, id)]).await?;
                return Ok(true);
            }
            Err(e) => return self.failed_call(e, chunk, report).await,
        };
        self.healthy();
        let by_email = ids_by_email(&reply.body);
        let errors = batch_errors(&reply.body);
        let mut links = Vec::new();
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for g in chunk {
            let user = user_of(&g.op).to_string();
            if let Some(id) = by_email.get(&self.config.dummy_email(&user)) {
                report.created += 1;
                links.push((user, id.clone()));
                done.extend(g.ids);
            } else if let Some(id) =
                errors.iter().find(|e| e.trace_ids.contains(&user)).and_then(|e| existing_id(&e.message))
            {
                // Exists already (an earlier attempt, another account of the same person):
                // link it; the rows stay due and become an update.
                links.push((user, id));
            } else {
                failed.push(g);
            }
        }
        report.rows_done += done.len();
        self.store.outbox_done_linking(done, links).await?;
        self.fail_unanswered(failed, reply.status, &errors, report).await?;
        Ok(true)
    }

    /// Changes that must not create a contact (an unfollow from someone linehub never saw):
    /// look the contact up by its placeholder email; apply if found, drop if not.
    async fn find_contacts(&self, chunk: Vec<Group>, report: &mut DrainReport) -> Result<bool, WriterError> {
        let inputs: Vec<Value> =
            chunk.iter().map(|g| json!({ "id": self.config.dummy_email(user_of(&g.op)) })).collect();
        let body = json!({ "idProperty": "email", "properties": ["email"], "inputs": inputs });
        let path = format!("{}/batch/read", api::CONTACTS);
        report.calls += 1;
        let reply = match self.client.send(Method::POST, &path, &[], Some(&body)).await {
            Ok(reply) => reply,
            Err(e) => return self.failed_call(e, chunk, report).await,
        };
        self.healthy();
        let by_email = ids_by_email(&reply.body);
        let mut links = Vec::new();
        let mut dropped = Vec::new();
        let mut parked = Vec::new();
        for g in chunk {
            let user = user_of(&g.op).to_string();
            match by_email.get(&self.config.dummy_email(&user)) {
                Some(id) => links.push((user, id.clone())),
                // No contact yet. Keep the change: an event that creates the contact (an older
                // follow that arrives late, say) is coalesced with it, so the block is not lost.
                None if g.attempts + 1 < PARKED_LOOKUPS => parked.push(g),
                None => {
                    tracing::info!(user = %user, "no HubSpot contact for this LINE user after a week; change dropped");
                    dropped.extend(g.ids);
                }
            }
        }
        self.store.link_contacts(links).await?;
        self.finish(dropped, report).await?;
        let at = self.clock.now_ms() + PARKED_FOR_MS;
        for g in parked {
            self.store.outbox_failed(g.ids, "no contact yet for this LINE user".into(), at, false).await?;
        }
        Ok(true)
    }

    /// One open task per contact owner: read owners, check the task linehub gave last, create
    /// a task only when there is none open.
    async fn owner_tasks(&self, tasks: Vec<Group>, report: &mut DrainReport) -> Result<(), WriterError> {
        let links = self.store.contact_links(tasks.iter().map(|g| user_of(&g.op).to_string()).collect()).await?;
        let (linked, unlinked): (Vec<Group>, Vec<Group>) =
            tasks.into_iter().partition(|g| links.contains_key(user_of(&g.op)));
        if !unlinked.is_empty() {
            // The contact is not created yet (its write failed this pass): try with it.
            let ids = unlinked.into_iter().flat_map(|g| g.ids).collect();
            let at = self.clock.now_ms() + 5_000;
            self.store.outbox_postpone(ids, at, "waiting for the contact to exist".into()).await?;
        }
        for chunk in linked.chunks(api::BATCH_LIMIT) {
            let contact_ids: Vec<String> = chunk.iter().map(|g| links[user_of(&g.op)].clone()).collect();
            let owners = match self.read(api::CONTACTS, &contact_ids, "hubspot_owner_id", report).await {
                Ok(v) => v,
                Err(e) => {
                    self.failed_call(e, chunk.to_vec(), report).await?;
                    return Ok(());
                }
            };
            let open = self.store.owner_tasks(contact_ids.clone()).await?;
            let task_ids: Vec<String> = open.values().filter(|t| !t.is_empty()).cloned().collect();
            let statuses = match self.read(api::TASKS, &task_ids, "hs_task_status", report).await {
                Ok(v) => v,
                Err(e) => {
                    self.failed_call(e, chunk.to_vec(), report).await?;
                    return Ok(());
                }
            };
            // Rows that need no task (no owner, or one still open), finished together.
            let mut settled = Vec::new();
            for (g, contact) in chunk.iter().zip(&contact_ids) {
                let Op::OwnerTask { user_id, account, summary } = &g.op else { continue };
                let owner = owners.get(contact).cloned().flatten().filter(|o| !o.is_empty());
                let Some(owner) = owner else {
                    tracing::info!(contact = %contact, user = %user_id, "contact has no owner; no task created");
                    settled.extend(g.ids.iter().copied());
                    continue;
                };
                let mut still_open = open
                    .get(contact)
                    .and_then(|t| statuses.get(t))
                    .cloned()
                    .flatten()
                    .is_some_and(|s| s != "COMPLETED");
                if open.get(contact).is_some_and(String::is_empty) {
                    // A task was asked for but its id never came back (a timeout, a crash):
                    // HubSpot may have it. Adopt it rather than create a second one.
                    match self.find_open_task(contact, report).await {
                        Ok(Some(task)) => {
                            self.store.record_owner_tasks(vec![(contact.clone(), task)], Vec::new()).await?;
                            still_open = true;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            let group = g.clone();
                            if !self.failed_call(e, vec![group], report).await? {
                                self.finish(settled, report).await?;
                                return Ok(());
                            }
                            continue;
                        }
                    }
                }
                if still_open {
                    settled.extend(g.ids.iter().copied());
                    continue;
                }
                let body = json!({
                    "properties": {
                        "hs_timestamp": self.hs_timestamp(),
                        "hs_task_subject": format!("{TASK_SUBJECT} ({account})"),
                        "hs_task_body": truncate(summary, 60_000),
                        "hubspot_owner_id": owner,
                        "hs_task_status": "NOT_STARTED",
                        "hs_task_priority": "MEDIUM",
                        "hs_task_type": "TODO",
                    },
                    "associations": [{
                        "to": { "id": contact },
                        "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": api::TASK_TO_CONTACT }],
                    }],
                });
                // Remember that a task is on its way before asking for it (see above).
                self.store.record_owner_tasks(vec![(contact.clone(), String::new())], Vec::new()).await?;
                report.calls += 1;
                match self.client.send(Method::POST, api::TASKS, &[], Some(&body)).await {
                    Ok(reply) => {
                        self.healthy();
                        let task = reply.body["id"].as_str().unwrap_or_default().to_string();
                        self.store.record_owner_tasks(vec![(contact.clone(), task)], g.ids.clone()).await?;
                        report.tasks += 1;
                        report.rows_done += g.ids.len();
                    }
                    Err(e) => {
                        let group = g.clone();
                        if !self.failed_call(e, vec![group], report).await? {
                            self.finish(settled, report).await?;
                            return Ok(());
                        }
                    }
                }
            }
            self.finish(settled, report).await?;
        }
        Ok(())
    }

    /// An open task linehub made for `contact`, found through the contact's associations (which,
    /// unlike search, are up to date at once).
    async fn find_open_task(&self, contact: &str, report: &mut DrainReport) -> Result<Option<String>, HubSpotError> {
        report.calls += 1;
        let path = format!("{}/{contact}", api::CONTACTS);
        let reply = self.client.send(Method::GET, &path, &[("associations", "tasks".to_string())], None).await?;
        let ids = associated_ids(&reply.body, "tasks");
        if ids.is_empty() {
            return Ok(None);
        }
        report.calls += 1;
        let body = json!({ "properties": ["hs_task_status", "hs_task_subject"], "inputs": ids });
        let tasks = self.client.send(Method::POST, &format!("{}/batch/read", api::TASKS), &[], Some(&body)).await?;
        self.healthy();
        Ok(tasks.body["results"].as_array().into_iter().flatten().find_map(|t| {
            let p = &t["properties"];
            let ours = p["hs_task_subject"].as_str().is_some_and(|s| s.starts_with(TASK_SUBJECT));
            let open = p["hs_task_status"].as_str().is_some_and(|s| s != "COMPLETED");
            (ours && open).then(|| t["id"].as_str().map(str::to_string)).flatten()
        }))
    }

    /// `batch/read` of one property of `ids`; absent records map to nothing.
    async fn read(
        &self,
        object: &str,
        ids: &[String],
        property: &str,
        report: &mut DrainReport,
    ) -> Result<HashMap<String, Option<String>>, HubSpotError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let inputs: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
        let body = json!({ "properties": [property], "inputs": inputs });
        report.calls += 1;
        let reply = self.client.send(Method::POST, &format!("{object}/batch/read"), &[], Some(&body)).await?;
        self.healthy();
        Ok(reply.body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                Some((r["id"].as_str()?.to_string(), r["properties"][property].as_str().map(str::to_string)))
            })
            .collect())
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
            let wait = match &e {
                HubSpotError::RateLimited { retry_after, .. } => *retry_after,
                _ => backoff(streak),
            };
            let until = self.clock.now_ms() + millis(wait);
            self.paused_until.fetch_max(until, Ordering::SeqCst);
            tracing::warn!(error = %e, pause = ?wait, "HubSpot write paused");
            let ids: Vec<i64> = groups.into_iter().flat_map(|g| g.ids).collect();
            report.retried += ids.len();
            self.store.outbox_postpone(ids, until, e.to_string()).await?;
            return Ok(false);
        }
        if let HubSpotError::Rejected { message, .. } = &e
            && message.contains("PROPERTY_DOESNT_EXIST")
        {
            self.properties_stale.store(true, Ordering::SeqCst);
        }
        if groups.len() > 1 && matches!(e, HubSpotError::Rejected { .. }) {
            // One bad member can fail a whole batch: split it so the others go through.
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
                    Op::OwnerTask { .. } => {
                        self.fail_groups(half, &e, report).await?;
                        true
                    }
                    Op::SendNote { .. } => Box::pin(self.send_notes(half, report)).await?,
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
            let attempts = g.attempts + 1;
            let dead = !e.is_transient() && !stale && attempts >= MAX_PERMANENT_ATTEMPTS;
            let at = self.clock.now_ms() + millis(backoff(attempts));
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

    fn healthy(&self) {
        self.outage_streak.store(0, Ordering::SeqCst);
    }
}

/// Exponential backoff with jitter: 1 s, 2 s, 4 s … up to 150 s, each plus a random part of
/// itself (so attempts spread out), which keeps every wait under 5 minutes.
pub fn backoff(attempt: i64) -> Duration {
    let n = usize::try_from(attempt.clamp(0, 64)).unwrap_or(0);
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(150))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(n)
        .unwrap_or(Duration::from_secs(300))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Merges every row of a key into one write, in row order (later values win).
fn coalesce(rows: Vec<OutboxRow>) -> Vec<Group> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Group> = HashMap::new();
    for row in rows {
        match groups.get_mut(&row.key) {
            None => {
                order.push(row.key.clone());
                groups.insert(row.key, Group { ids: vec![row.id], attempts: row.attempts, op: row.op });
            }
            Some(g) => {
                g.ids.push(row.id);
                g.attempts = g.attempts.max(row.attempts);
                match (&mut g.op, row.op) {
                    (Op::Contact { properties, create, .. }, Op::Contact { properties: newer, create: c, .. }) => {
                        properties.extend(newer);
                        *create |= c;
                    }
                    (Op::OwnerTask { summary, .. }, Op::OwnerTask { summary: newer, .. }) => *summary = newer,
                    _ => {}
                }
            }
        }
    }
    order.into_iter().filter_map(|k| groups.remove(&k)).collect()
}

/// The `{"id"}` inputs of the records of `kind` a contact read with `associations=kind` lists.
fn associated_ids(contact: &Value, kind: &str) -> Vec<Value> {
    contact["associations"][kind]["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(|id| json!({ "id": id })))
        .collect()
}

/// Contact ids of a batch answer's results, by their (lowercased) email.
fn ids_by_email(body: &Value) -> HashMap<String, String> {
    body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["properties"]["email"].as_str()?.to_ascii_lowercase(), r["id"].as_str()?.to_string())))
        .collect()
}

fn user_of(op: &Op) -> &str {
    match op {
        Op::Contact { user_id, .. } | Op::OwnerTask { user_id, .. } => user_id,
        Op::SendNote { .. } | Op::CompleteAction { .. } => "",
    }
}

fn props(op: &Op) -> BTreeMap<String, String> {
    match op {
        Op::Contact { properties, .. } => properties.clone(),
        Op::OwnerTask { .. } | Op::SendNote { .. } | Op::CompleteAction { .. } => BTreeMap::new(),
    }
}

fn chunks<T>(items: Vec<T>) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(api::BATCH_LIMIT).collect());
    }
    out
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// One member error of a 207 answer.
struct BatchError {
    category: String,
    message: String,
    /// `context.ids`: the records concerned (batch read/update).
    ids: Vec<String>,
    /// `context.objectWriteTraceId`: the inputs concerned (batch create).
    trace_ids: Vec<String>,
}

fn batch_errors(body: &Value) -> Vec<BatchError> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
    };
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| BatchError {
            category: e["category"].as_str().unwrap_or_default().to_string(),
            message: e["message"].as_str().unwrap_or_default().to_string(),
            ids: strings(&e["context"]["ids"]),
            trace_ids: strings(&e["context"]["objectWriteTraceId"]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact_row(id: i64, user: &str, props: &[(&str, &str)], create: bool) -> OutboxRow {
        let op = Op::Contact {
            user_id: user.into(),
            properties: props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            create,
        };
        OutboxRow { id, key: op.key(), op, attempts: id % 2, next_attempt_at: 0, last_error: None, dead: false }
    }

    #[test]
    fn rows_of_one_contact_coalesce_with_later_values_winning() {
        let groups = coalesce(vec![
            contact_row(1, "U1", &[("line_follow_1", "Yes"), ("line_user_id_1", "U1")], true),
            contact_row(2, "U2", &[("line_follow_1", "Yes")], true),
            contact_row(3, "U1", &[("line_follow_1", "No")], false),
            contact_row(4, "U1", &[("line_follow_2", "Yes")], false),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].ids, [1, 3, 4]);
        assert_eq!(groups[0].attempts, 1);
        let Op::Contact { properties, create, .. } = &groups[0].op else { panic!() };
        assert_eq!(properties["line_follow_1"], "No");
        assert_eq!(properties["line_follow_2"], "Yes");
        assert_eq!(properties["line_user_id_1"], "U1");
        assert!(create);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) >= Duration::from_secs(1) && backoff(0) < Duration::from_secs(3));
        assert!(backoff(3) >= Duration::from_secs(8));
        for _ in 0..100 {
            assert!(backoff(40) < Duration::from_secs(300));
        }
    }
}
