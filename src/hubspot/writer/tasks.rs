//! The writer's owner tasks: one open "Reply on LINE" task per contact owner.
//!
//! The rule (no owner, no task; one open task at a time; adopt a task asked for whose answer
//! never came) is the domain's ([`crate::sync::owner_task`]). This file gathers what the rule
//! needs from HubSpot (the contact's owner, the status of the task linehub gave last, the
//! contact's tasks when an earlier request went unanswered) and carries out its decision. A
//! task is recorded as asked for before the request, so a crash or a lost answer never makes a
//! second one.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};

use super::batch::{Group, associated_ids, user_of};
use super::{DrainReport, Writer, WriterError};
use crate::hubspot::HubSpotError;
use crate::hubspot::{api, html};
use crate::retry::Backoff;
use crate::store::{Op, Requested};
use crate::sync::owner_task::{LastTask, TaskDecision, is_open_linehub_task, owner_task, task_subject};

/// How long a task waits for its contact's create (which failed this pass) before it is tried
/// again.
const WAIT_FOR_CONTACT_MS: i64 = 5_000;

impl Writer {
    /// One open task per contact owner: read owners, check the task linehub gave last, create
    /// a task only when the rule says so.
    pub(super) async fn owner_tasks(&self, tasks: Vec<Group>, report: &mut DrainReport) -> Result<(), WriterError> {
        let links = self.store.contact_links(tasks.iter().map(|g| user_of(&g.op).to_string()).collect()).await?;
        let (linked, unlinked): (Vec<Group>, Vec<Group>) =
            tasks.into_iter().partition(|g| links.contains_key(user_of(&g.op)));
        if !unlinked.is_empty() {
            self.wait_for_contacts(unlinked, report).await?;
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
            let last = self.store.owner_tasks(contact_ids.clone()).await?;
            let task_ids: Vec<String> = last
                .values()
                .filter_map(|t| match t {
                    Requested::Made(id) => Some(id.clone()),
                    Requested::Asked => None,
                })
                .collect();
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
                let last_task = match last.get(contact) {
                    None => LastTask::None,
                    Some(Requested::Asked) => LastTask::Asked,
                    Some(Requested::Made(id)) => LastTask::from_status(statuses.get(id).cloned().flatten().as_deref()),
                };
                let mut decision = owner_task(owner.is_some(), last_task);
                if decision == TaskDecision::LookForAsked {
                    match self.find_open_task(contact, report).await {
                        Ok(Some(task)) => {
                            self.store
                                .record_owner_tasks(vec![(contact.clone(), task)], Vec::new(), self.clock.now_ms())
                                .await?;
                            decision = owner_task(true, LastTask::Open);
                        }
                        Ok(None) => decision = owner_task(true, LastTask::None),
                        Err(e) => {
                            if !self.failed_call(e, vec![g.clone()], report).await? {
                                self.finish(settled, report).await?;
                                return Ok(());
                            }
                            continue;
                        }
                    }
                }
                let owner = match (decision, owner) {
                    (TaskDecision::Create, Some(owner)) => owner,
                    (TaskDecision::NoOwner, _) => {
                        tracing::info!(contact = %contact, user = %user_id, "contact has no owner; no task created");
                        settled.extend(g.ids.iter().copied());
                        continue;
                    }
                    // An open task already reminds the owner.
                    _ => {
                        settled.extend(g.ids.iter().copied());
                        continue;
                    }
                };
                let body = task_body(contact, &owner, account, summary, &self.hs_timestamp());
                // Remember that a task is on its way before asking for it (see above).
                self.store.ask_owner_task(contact.clone(), self.clock.now_ms()).await?;
                report.calls += 1;
                match self.client.send(Method::POST, api::TASKS, &[], Some(&body)).await {
                    Ok(reply) => {
                        self.healthy();
                        match reply.body["id"].as_str() {
                            Some(task) => {
                                let now = self.clock.now_ms();
                                self.store
                                    .record_owner_tasks(vec![(contact.clone(), task.to_string())], g.ids.clone(), now)
                                    .await?;
                            }
                            // An answer without an id: the task stays asked for, and the next
                            // pass adopts it from the contact's tasks.
                            None => self.store.outbox_done(g.ids.clone()).await?,
                        }
                        report.tasks += 1;
                        report.rows_done += g.ids.len();
                    }
                    Err(e) => {
                        if !self.failed_call(e, vec![g.clone()], report).await? {
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

    /// Tasks of users whose contact does not exist yet. While the contact's write is still in
    /// the outbox they wait for it without counting an attempt; once it is gone (dead-lettered,
    /// or dropped because the contact must not be created) they count attempts and are
    /// dead-lettered like any write that cannot succeed, where `linehub outbox list` shows them.
    async fn wait_for_contacts(&self, unlinked: Vec<Group>, report: &mut DrainReport) -> Result<(), WriterError> {
        let contact_key = |g: &Group| {
            Op::Contact { user_id: user_of(&g.op).to_string(), properties: Default::default(), create: false }.key()
        };
        let live = self.store.outbox_live_keys(unlinked.iter().map(contact_key).collect()).await?;
        let now = self.clock.now_ms();
        for g in unlinked {
            if live.contains(&contact_key(&g)) {
                let reason = "waiting for the contact to exist".to_string();
                self.store.outbox_postpone(g.ids, now + WAIT_FOR_CONTACT_MS, reason).await?;
                continue;
            }
            let attempts = g.attempts + 1;
            let dead = attempts >= super::MAX_PERMANENT_ATTEMPTS;
            if dead {
                tracing::error!(rows = ?g.ids, "owner task dead-lettered: its contact was never written; see `linehub outbox list`");
                report.dead += g.ids.len();
            } else {
                report.retried += g.ids.len();
            }
            let reason =
                "the contact does not exist and its write is not queued (dead-lettered or dropped)".to_string();
            self.store.outbox_failed(g.ids, reason, Backoff::QUEUE.due_at(now, attempts), dead).await?;
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
            is_open_linehub_task(p["hs_task_subject"].as_str(), p["hs_task_status"].as_str())
                .then(|| t["id"].as_str().map(str::to_string))
                .flatten()
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
}

/// The task HubSpot is asked to make for `owner` about a message to `account`; the message is
/// the user's text, escaped, since HubSpot shows the body as rich text.
fn task_body(contact: &str, owner: &str, account: &str, summary: &str, now: &str) -> Value {
    json!({
        "properties": {
            "hs_timestamp": now,
            "hs_task_subject": task_subject(account),
            "hs_task_body": html::text_to_html(summary, api::MAX_BODY_CHARS),
            "hubspot_owner_id": owner,
            "hs_task_status": "NOT_STARTED",
            "hs_task_priority": "MEDIUM",
            "hs_task_type": "TODO",
        },
        "associations": [{
            "to": { "id": contact },
            "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": api::TASK_TO_CONTACT }],
        }],
    })
}
