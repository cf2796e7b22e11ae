//! The writer's share of messages out: a timeline note for each LINE send, and the completion
//! of each "Push LINE message" workflow action.
//!
//! Both are done at most once although HubSpot offers no idempotency key for them. Before a
//! call, the store records that it is being asked for. Notes carry their send's id in their
//! text (`linehub send #N`, see [`crate::sync::send_note`]), so after an answer that never came
//! the contact's notes are read and an existing one is adopted instead of made twice. A
//! completion HubSpot refuses as already completed was an earlier attempt's success (HubSpot
//! refuses to complete an execution twice), so it counts as done; any other refusal (an expired
//! or unknown callback) fails like every refused write, up to the dead letter.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};

use super::batch::{Group, associated_ids, batch_errors, chunks};
use super::{DrainReport, Writer, WriterError};
use crate::hubspot::HubSpotError;
use crate::hubspot::api;
use crate::store::{Op, Requested};
use crate::sync::send_note::marked_send;

impl Writer {
    /// Notes for sends, up to 100 per call. Returns false when the portal paused.
    pub(super) async fn send_notes(&self, groups: Vec<Group>, report: &mut DrainReport) -> Result<bool, WriterError> {
        let send_ids: Vec<i64> = groups.iter().filter_map(|g| send_of(&g.op)).collect();
        let known = self.store.send_notes(send_ids).await?;
        let mut create = Vec::new();
        for g in groups {
            let Op::SendNote { send_id, contact_id, .. } = &g.op else { continue };
            match known.get(send_id) {
                Some(Requested::Asked) => match self.find_note(contact_id, *send_id, report).await {
                    Ok(Some(note)) => {
                        self.store.record_send_notes(vec![(*send_id, note)], g.ids.clone()).await?;
                        report.rows_done += g.ids.len();
                    }
                    Ok(None) => create.push(g),
                    Err(e) => {
                        if !self.failed_call(e, vec![g], report).await? {
                            return Ok(false);
                        }
                    }
                },
                Some(Requested::Made(_)) => self.finish(g.ids, report).await?,
                None => create.push(g),
            }
        }
        for chunk in chunks(create) {
            if !self.create_notes(chunk, report).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `batch/create` of notes. Every input carries its send id as `objectWriteTraceId`, so
    /// HubSpot reports a bad member (a contact deleted meanwhile) on its own in a 207 instead
    /// of refusing the batch. Returns false when the portal paused.
    pub(super) async fn create_notes(&self, chunk: Vec<Group>, report: &mut DrainReport) -> Result<bool, WriterError> {
        let now = self.hs_timestamp();
        let inputs: Vec<Value> = chunk
            .iter()
            .filter_map(|g| match &g.op {
                Op::SendNote { send_id, contact_id, body } => Some(json!({
                    "properties": { "hs_timestamp": now, "hs_note_body": body },
                    "associations": [{
                        "to": { "id": contact_id },
                        "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": api::NOTE_TO_CONTACT }],
                    }],
                    "objectWriteTraceId": send_id.to_string(),
                })),
                _ => None,
            })
            .collect();
        let asked: Vec<i64> = chunk.iter().filter_map(|g| send_of(&g.op)).collect();
        self.store.ask_send_notes(asked).await?;
        report.calls += 1;
        let path = format!("{}/batch/create", api::NOTES);
        match self.client.send(Method::POST, &path, &[], Some(&json!({ "inputs": inputs }))).await {
            Ok(reply) => {
                self.healthy();
                let made: HashMap<i64, String> = reply.body["results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| {
                        let send = marked_send(r["properties"]["hs_note_body"].as_str()?)?;
                        Some((send, r["id"].as_str()?.to_string()))
                    })
                    .collect();
                let (done, missing): (Vec<Group>, Vec<Group>) =
                    chunk.into_iter().partition(|g| send_of(&g.op).is_some_and(|id| made.contains_key(&id)));
                let notes = made.into_iter().collect();
                report.notes += done.len();
                let ids: Vec<i64> = done.into_iter().flat_map(|g| g.ids).collect();
                report.rows_done += ids.len();
                self.store.record_send_notes(notes, ids).await?;
                // Members HubSpot did not make (a 207) stay asked-for, so the next pass looks
                // for them first; they fail like any refused write, up to the dead letter, each
                // with the error HubSpot gave for it by its trace id.
                let errors = batch_errors(&reply.body);
                let mut unexplained = Vec::new();
                for g in missing {
                    let trace = send_of(&g.op).map(|id| id.to_string()).unwrap_or_default();
                    match errors.iter().find(|e| e.trace_ids.contains(&trace)) {
                        Some(own) => {
                            let e = HubSpotError::Rejected {
                                status: reply.status,
                                category: own.category.clone(),
                                message: own.message.clone(),
                            };
                            self.fail_groups(vec![g], &e, report).await?;
                        }
                        None => unexplained.push(g),
                    }
                }
                self.fail_unanswered(unexplained, reply.status, &errors, report).await?;
                Ok(true)
            }
            Err(e) => self.failed_call(e, chunk, report).await,
        }
    }

    /// linehub's note for `send_id` among the contact's notes (associations are up to date at
    /// once, unlike search).
    async fn find_note(
        &self,
        contact: &str,
        send_id: i64,
        report: &mut DrainReport,
    ) -> Result<Option<String>, HubSpotError> {
        report.calls += 1;
        let path = format!("{}/{contact}", api::CONTACTS);
        let reply = match self.client.send(Method::GET, &path, &[("associations", "notes".to_string())], None).await {
            Ok(reply) => reply,
            // The contact is gone, and its notes with it: nothing to adopt, nothing to log on.
            Err(HubSpotError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let ids = associated_ids(&reply.body, "notes");
        for chunk in ids.chunks(api::BATCH_LIMIT) {
            report.calls += 1;
            let body = json!({ "properties": ["hs_note_body"], "inputs": chunk });
            let notes = self.client.send(Method::POST, &format!("{}/batch/read", api::NOTES), &[], Some(&body)).await?;
            let found = notes.body["results"].as_array().into_iter().flatten().find_map(|n| {
                let text = n["properties"]["hs_note_body"].as_str()?;
                (marked_send(text) == Some(send_id)).then(|| n["id"].as_str().map(str::to_string)).flatten()
            });
            if found.is_some() {
                self.healthy();
                return Ok(found);
            }
        }
        self.healthy();
        Ok(None)
    }

    /// Completes workflow action executions, up to 100 per call. Returns false when the portal
    /// paused.
    pub(super) async fn complete_actions(
        &self,
        chunk: Vec<Group>,
        report: &mut DrainReport,
    ) -> Result<bool, WriterError> {
        let send_ids: Vec<i64> = chunk.iter().filter_map(|g| send_of(&g.op)).collect();
        let asked_before = self.store.completions_asked(send_ids.clone()).await?;
        let inputs: Vec<Value> = chunk
            .iter()
            .filter_map(|g| match &g.op {
                Op::CompleteAction { callback_id, outputs, .. } => {
                    // HubSpot's reference requires `typedOutputs` on every input; linehub's
                    // outputs are all strings, carried by `outputFields`.
                    Some(json!({ "callbackId": callback_id, "outputFields": outputs, "typedOutputs": {} }))
                }
                _ => None,
            })
            .collect();
        self.store.ask_completions(send_ids.clone()).await?;
        report.calls += 1;
        let path = format!("{}/complete", api::ACTION_CALLBACKS);
        match self.client.send(Method::POST, &path, &[], Some(&json!({ "inputs": inputs }))).await {
            Ok(_) => {
                self.healthy();
                report.completions += chunk.len();
                self.finish(chunk.into_iter().flat_map(|g| g.ids).collect(), report).await?;
                Ok(true)
            }
            Err(e) if chunk.len() == 1 && e.is_already_completed() => {
                // HubSpot completed it already: an earlier attempt whose answer never came.
                let asked = send_ids.iter().all(|id| asked_before.contains(id));
                tracing::info!(error = %e, asked_before = asked, "action completion refused as a repeat; counted as done");
                self.finish(chunk.into_iter().flat_map(|g| g.ids).collect(), report).await?;
                Ok(true)
            }
            Err(e) => self.failed_call(e, chunk, report).await,
        }
    }
}

fn send_of(op: &Op) -> Option<i64> {
    match op {
        Op::SendNote { send_id, .. } | Op::CompleteAction { send_id, .. } => Some(*send_id),
        _ => None,
    }
}
