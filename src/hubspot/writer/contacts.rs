//! The writer's contact writes: `batch/update` of linked contacts and of writes by contact id,
//! `batch/create` of new ones with their placeholder email (a 409 names the existing contact,
//! which is linked and then updated), and the lookup of contacts for changes that must not
//! create one (an unfollow from someone linehub never saw).

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use super::batch::{Group, batch_errors, contact_of, ids_by_email, props, user_of};
use super::{DrainReport, Writer, WriterError};
use crate::hubspot::api;
use crate::hubspot::error::{HubSpotError, existing_id};
use crate::sync::link::contact_properties;

/// A change that must not create a contact waits this long for one to appear…
const PARKED_FOR_MS: i64 = 24 * 3600 * 1000;
/// …this many times, then it is dropped.
const PARKED_LOOKUPS: i64 = 7;

impl Writer {
    /// `batch/update` of linked contacts. Returns false when the portal paused.
    pub(super) async fn update_contacts(
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
            } else if missing.contains(&contact) && contact_of(&g.op).is_some() {
                // A write to a contact by id: the contact is gone, so is the reason to write.
                tracing::info!(contact = %contact, "contact was deleted in HubSpot; its write is dropped");
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
    pub(super) async fn create_contacts(
        &self,
        chunk: Vec<Group>,
        report: &mut DrainReport,
    ) -> Result<bool, WriterError> {
        // A contact starts from everything linehub knows of the user on each account (it may
        // have been deleted in HubSpot and be coming back), then the changes that create it.
        let users: Vec<String> = chunk.iter().map(|g| user_of(&g.op).to_string()).collect();
        let known = self.store.friends_of_users(users).await?;
        let serials = self.property_serials.read().map(|s| s.clone()).unwrap_or_default();
        let inputs: Vec<Value> = chunk
            .iter()
            .map(|g| {
                let user = user_of(&g.op);
                let mut p = BTreeMap::new();
                for (serial, state) in known.get(user).into_iter().flatten() {
                    if serials.contains(serial) {
                        p.extend(contact_properties(*serial, user, state));
                    }
                }
                p.extend(props(&g.op));
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
                self.store.link_contacts(vec![(user, id)], self.clock.now_ms()).await?;
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
        self.store.outbox_done_linking(done, links, self.clock.now_ms()).await?;
        self.fail_unanswered(failed, reply.status, &errors, report).await?;
        Ok(true)
    }

    /// Changes that must not create a contact (an unfollow from someone linehub never saw):
    /// look the contact up by its placeholder email; apply if found, drop if not.
    pub(super) async fn find_contacts(&self, chunk: Vec<Group>, report: &mut DrainReport) -> Result<bool, WriterError> {
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
        self.store.link_contacts(links, self.clock.now_ms()).await?;
        self.finish(dropped, report).await?;
        let at = self.clock.now_ms() + PARKED_FOR_MS;
        for g in parked {
            self.store.outbox_failed(g.ids, "no contact yet for this LINE user".into(), at, false).await?;
        }
        Ok(true)
    }
}
