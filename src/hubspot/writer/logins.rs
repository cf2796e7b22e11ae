//! The writer's ID linking: a committed LINE Login becomes the LINE identity of one contact.
//!
//! For each login the writer reads what the linking rules need ([`crate::sync::login`]): the
//! contact a link token names, the contact with the email LINE vouched for (a consistent read
//! by email, never search), and the contact the user has now (linehub's link, else the
//! placeholder email). HubSpot answers a merged id with the surviving record, and the writer
//! follows it. Then it carries out the plan: merge the placeholder into the contact found,
//! write the LINE properties, or create the contact; or record a conflict and change nothing.
//!
//! Every step is safe to repeat after a crash: reads change nothing; a merge already done shows
//! as the placeholder's id answering with the survivor, so it is not asked for twice; a create
//! that already happened answers 409 with the contact's id.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use super::batch::Group;
use super::{DrainReport, Writer, WriterError};
use crate::hubspot::api;
use crate::hubspot::error::HubSpotError;
use crate::store::Op;
use crate::store::logins::LinkProblem;
use crate::sync::login::{CurrentContact, LinkFacts, LinkPlan, plan};

/// Why a login was not linked this time.
enum LinkError {
    /// HubSpot refused or failed a call: handled like any other write's failure.
    HubSpot(HubSpotError),
    /// The store failed: the drain stops, the row stays.
    Store(crate::store::StoreError),
}

impl From<HubSpotError> for LinkError {
    fn from(e: HubSpotError) -> LinkError {
        LinkError::HubSpot(e)
    }
}

impl From<crate::store::StoreError> for LinkError {
    fn from(e: crate::store::StoreError) -> LinkError {
        LinkError::Store(e)
    }
}

/// What linking one login did.
enum Linked {
    /// The user is linked to `contact`; `merged` was merged into it.
    Contact { contact: String, merged: Option<String>, created: bool },
    /// Two real contacts: nothing changed.
    Conflict { kept: String, wanted: String },
}

impl Writer {
    /// Links each login in turn. Returns false when the portal paused.
    pub(super) async fn link_logins(&self, groups: Vec<Group>, report: &mut DrainReport) -> Result<bool, WriterError> {
        for g in groups {
            let Op::LinkLogin { account, user_id, .. } = &g.op else { continue };
            let (account, user) = (account.clone(), user_id.clone());
            match self.link_login(&g.op, report).await {
                Ok(Linked::Contact { contact, merged, created }) => {
                    tracing::info!(account = %account, user = %user, contact = %contact, merged = ?merged, created, "LINE login linked");
                    self.store.link_contacts(vec![(user, contact)], self.clock.now_ms()).await?;
                    report.updated += usize::from(!created);
                    report.created += usize::from(created);
                    self.finish(g.ids, report).await?;
                }
                Ok(Linked::Conflict { kept, wanted }) => {
                    tracing::warn!(
                        account = %account, user = %user, kept = %kept, wanted = %wanted,
                        "LINE login points at another contact with a real email; the link is kept (see `linehub login problems`)"
                    );
                    let problem = LinkProblem {
                        id: 0,
                        kind: "conflict".into(),
                        account_id: account,
                        user_id: user,
                        contact_id: Some(kept),
                        other_contact_id: Some(wanted),
                        detail: "the login resolves to another contact with a real email; contacts with real emails are never merged, so the existing link is kept".into(),
                        created_at: self.clock.now_ms(),
                    };
                    self.store.record_link_problem(problem).await?;
                    self.finish(g.ids, report).await?;
                }
                Err(LinkError::Store(e)) => return Err(e.into()),
                Err(LinkError::HubSpot(e)) => {
                    if !self.failed_call(e, vec![g], report).await? {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }

    async fn link_login(&self, op: &Op, report: &mut DrainReport) -> Result<Linked, LinkError> {
        let Op::LinkLogin { user_id, properties, email, token_contact, .. } = op else {
            let message = "not a login".into();
            return Err(HubSpotError::Rejected { status: 0, category: "LINEHUB".into(), message }.into());
        };
        let placeholder_email = self.config.dummy_email(user_id);
        let token_contact = match token_contact {
            Some(id) => self.read_contact(id, None, report).await?.map(|(id, _)| id),
            None => None,
        };
        let by_email = match email {
            Some(e) if token_contact.is_none() => self.read_contact(e, Some("email"), report).await?.map(|(id, _)| id),
            _ => None,
        };
        let linked = self.store.contact_links(vec![user_id.clone()]).await?;
        let mut current = None;
        if let Some(id) = linked.get(user_id) {
            current = self.read_contact(id, None, report).await?;
        }
        if current.is_none() {
            current = self.read_contact(&placeholder_email, Some("email"), report).await?;
        }
        let current = current.map(|(id, contact_email)| CurrentContact {
            placeholder: contact_email.as_deref().is_none_or(|e| e.eq_ignore_ascii_case(&placeholder_email)),
            id,
        });
        let facts = LinkFacts { token_contact, email: email.clone(), by_email, current };
        match plan(&facts) {
            LinkPlan::Conflict { kept, wanted } => Ok(Linked::Conflict { kept, wanted }),
            LinkPlan::Link { contact, merge, email } => {
                let mut survivor = contact;
                if let Some(placeholder) = &merge {
                    report.calls += 1;
                    let body = json!({ "primaryObjectId": survivor, "objectIdToMerge": placeholder });
                    let reply =
                        self.client.send(Method::POST, &format!("{}/merge", api::CONTACTS), &[], Some(&body)).await?;
                    self.healthy();
                    crate::crash::point("login.after_merge");
                    if let Some(id) = reply.body["id"].as_str() {
                        survivor = id.to_string();
                    }
                    let user = user_id.clone();
                    self.store.follow_merge(user, placeholder.clone(), survivor.clone(), self.clock.now_ms()).await?;
                }
                let mut props = properties.clone();
                if let Some(e) = email {
                    props.insert("email".into(), e);
                }
                self.patch_contact(&survivor, &props, report).await?;
                Ok(Linked::Contact { contact: survivor, merged: merge, created: false })
            }
            LinkPlan::Create { email } => {
                let mut props: BTreeMap<String, String> = properties.clone();
                props.insert("email".into(), email.unwrap_or(placeholder_email));
                report.calls += 1;
                let body = json!({ "properties": props });
                match self.client.send(Method::POST, api::CONTACTS, &[], Some(&body)).await {
                    Ok(reply) => {
                        self.healthy();
                        let id = reply.body["id"].as_str().unwrap_or_default().to_string();
                        if id.is_empty() {
                            let message = "HubSpot created a contact without an id".into();
                            return Err(HubSpotError::Unavailable(message).into());
                        }
                        Ok(Linked::Contact { contact: id, merged: None, created: true })
                    }
                    // Made by an earlier attempt whose answer was lost, or by someone else since.
                    Err(HubSpotError::Conflict { existing_id: Some(id), .. }) => {
                        props.remove("email");
                        self.patch_contact(&id, &props, report).await?;
                        Ok(Linked::Contact { contact: id, merged: None, created: false })
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Reads a contact by id (or by `id_property`) → (the id HubSpot answered with, its email);
    /// `None` when HubSpot has no such contact.
    async fn read_contact(
        &self,
        key: &str,
        id_property: Option<&str>,
        report: &mut DrainReport,
    ) -> Result<Option<(String, Option<String>)>, HubSpotError> {
        let mut query = vec![("properties", "email".to_string())];
        if let Some(p) = id_property {
            query.push(("idProperty", p.to_string()));
        }
        report.calls += 1;
        let path = format!("{}/{}", api::CONTACTS, path_segment(key));
        match self.client.send(Method::GET, &path, &query, None).await {
            Ok(reply) => {
                self.healthy();
                let id = reply.body["id"].as_str().map(str::to_string);
                let email = reply.body["properties"]["email"].as_str().filter(|e| !e.is_empty()).map(str::to_string);
                Ok(id.map(|id| (id, email)))
            }
            Err(HubSpotError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn patch_contact(
        &self,
        id: &str,
        properties: &BTreeMap<String, String>,
        report: &mut DrainReport,
    ) -> Result<(), HubSpotError> {
        report.calls += 1;
        let path = format!("{}/{}", api::CONTACTS, path_segment(id));
        let body: Value = json!({ "properties": properties });
        self.client.send(Method::PATCH, &path, &[], Some(&body)).await?;
        self.healthy();
        Ok(())
    }
}

/// `key` percent-encoded for one path segment (emails carry `+`, `%`, `/` and the like).
fn path_segment(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::path_segment;

    #[test]
    fn emails_are_one_path_segment() {
        assert_eq!(path_segment("a+b/c@example.com"), "a%2Bb%2Fc@example.com");
        assert_eq!(path_segment("12345"), "12345");
    }
}
