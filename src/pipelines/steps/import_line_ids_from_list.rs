//! `import_line_ids_from_list`: link the contacts of a HubSpot list to their LINE users.
//!
//! For contacts whose LINE user id was collected elsewhere (a form, a CSV import) into a contact
//! property: the step pages through the list's members, reads that property, checks each id
//! with LINE (a profile answer means the user is a friend of this account), and fills `LINE User
//! ID/Name/Picture/Follow/ID Sync Date _N` through the writer. The contact is linked to the LINE
//! user, so later webhooks update it instead of creating a placeholder contact.
//!
//! Left alone and reported: contacts without a value, values that are not LINE user ids, users
//! who are not (or no longer) friends, and users linehub already links to another contact
//! (merge those in HubSpot first). Resumes from the last list page it committed.
//!
//! ```yaml
//! - import_line_ids_from_list:
//!     list_id: "123"              # the number in the list's URL
//!     property: line_id_from_form # internal name of the property holding the LINE user id
//!     page_size: 250              # optional, 1-250
//! ```

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::{Step, StepError};
use crate::pipelines::report::diff;
use crate::pipelines::{Checks, Page, StepContext};
use crate::hubspot::{HubSpotError, api, reads};
use crate::store::Op;
use crate::sync::link::{is_line_user_id, link_properties};
use crate::sync::properties::Field;

/// The `with:` block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportLineIdsFromList {
    /// The HubSpot list whose contacts are linked: its id, the number in the list's URL.
    pub list_id: Spanned<String>,
    /// Internal name of the contact property that holds each contact's LINE user id.
    pub property: Spanned<String>,
    /// List members read per page, 1-250 (default 250).
    #[serde(default)]
    pub page_size: Option<Spanned<u32>>,
}

/// Where a run resumes: the list page after the last one committed.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    after: Option<String>,
}

impl Step for ImportLineIdsFromList {
    const KIND: &'static str = "import_line_ids_from_list";

    fn check(&self, checks: &mut Checks<'_>) {
        checks.list_id(&self.list_id, "list_id");
        let p = &self.property.value;
        if p.is_empty()
            || !p.starts_with(|c: char| c.is_ascii_lowercase())
            || !p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            checks.error(
                &self.property,
                "property",
                format!("`{p}` is not a HubSpot internal property name (lower-case snake case)"),
            );
        }
        checks.range(self.page_size.as_ref(), "page_size", 1, api::LIST_PAGE_LIMIT);
    }

    async fn run(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let list = self.list_id.value.as_str();
        let page_size = self.page_size.as_ref().map_or(api::LIST_PAGE_LIMIT, |p| p.value);
        let mut cursor: Cursor = ctx.cursor()?.unwrap_or_default();
        let ours = [Field::UserId, Field::UserName, Field::UserPicture, Field::Follow, Field::IdSyncDate];
        let mut wanted: Vec<String> = ours.iter().map(|f| ctx.property(*f)).collect();
        wanted.push(self.property.value.clone());
        loop {
            let members = reads::list_members(&ctx.hubspot, list, cursor.after.as_deref(), page_size)
                .await
                .map_err(|e| missing_list(e, list))?;
            let mut page = Page::default();
            let mut seen = HashSet::new();
            for ids in members.record_ids.chunks(api::BATCH_LIMIT) {
                let contacts = reads::contacts(&ctx.hubspot, ids, &wanted).await?;
                ctx.report.count("contacts_read", contacts.len() as u64);
                self.link(ctx, contacts, &mut page, &mut seen).await?;
            }
            cursor.after = members.after;
            ctx.report.count("pages", 1);
            ctx.commit(&cursor, page).await?;
            if cursor.after.is_none() {
                return Ok(());
            }
        }
    }
}

impl ImportLineIdsFromList {
    /// Checks one batch of contacts and adds the links and writes to `page`; `seen` holds the
    /// users of the page so far.
    async fn link(
        &self,
        ctx: &mut StepContext,
        contacts: Vec<reads::ContactRead>,
        page: &mut Page,
        seen: &mut HashSet<String>,
    ) -> Result<(), StepError> {
        let mut candidates: Vec<(reads::ContactRead, String)> = Vec::new();
        for c in contacts {
            let Some(raw) = c.properties.get(&self.property.value) else {
                ctx.report.count("without_line_id", 1);
                continue;
            };
            let user = raw.trim().to_string();
            if !is_line_user_id(&user) {
                ctx.report.count("malformed", 1);
                ctx.report.sample("malformed", || {
                    format!("contact {}: `{raw}` is not a LINE user id (U + 32 hex digits); not written", c.id)
                });
                continue;
            }
            if !seen.insert(user.clone()) {
                ctx.report.count("duplicate", 1);
                ctx.report.sample("duplicate", || {
                    format!("contact {}: {user} is also on another contact of this page; not written", c.id)
                });
                continue;
            }
            candidates.push((c, user));
        }
        let users: Vec<String> = candidates.iter().map(|(_, u)| u.clone()).collect();
        let links = ctx.store.contact_links(users.clone()).await?;
        // A profile answer shows the user following as of the moment linehub asked.
        let observed_at = ctx.clock.now_ms();
        let profiles = ctx.profiles(&users).await?;
        let states = ctx.friend_states(&users).await?;
        for ((contact, user), profile) in candidates.into_iter().zip(profiles) {
            if let Some(other) = links.get(&user).filter(|other| **other != contact.id) {
                ctx.report.count("linked_elsewhere", 1);
                ctx.report.sample("linked_elsewhere", || {
                    format!("contact {}: {user} is already linked to contact {other}; merge them in HubSpot, then run again", contact.id)
                });
                continue;
            }
            let Some(profile) = profile else {
                ctx.report.count("not_a_friend", 1);
                ctx.report.sample("not_a_friend", || {
                    format!(
                        "contact {}: {user} is not a friend of `{}` (LINE has no profile); not written",
                        contact.id, ctx.account.id
                    )
                });
                continue;
            };
            let state = states.get(&user).cloned().unwrap_or_default();
            let sync = contact.properties.get(&ctx.property(Field::IdSyncDate)).map(String::as_str);
            let (props, next) = link_properties(ctx.serial, &user, Some(profile.contact_fields()), &state, sync, observed_at);
            let changes = diff(&contact.properties, &props);
            if !links.contains_key(&user) {
                page.links.push((user.clone(), contact.id.clone()));
            }
            page.friends.push(((ctx.serial, user.clone()), next));
            if changes.is_empty() {
                ctx.report.count("unchanged", 1);
                continue;
            }
            ctx.report.count("linked", 1);
            ctx.report.sample("linked", || format!("contact {} ({user}): {changes}", contact.id));
            let properties = props.into_iter().filter(|(k, v)| contact.properties.get(k) != Some(v)).collect();
            page.ops.push(Op::Contact { user_id: user, properties, create: false });
        }
        Ok(())
    }
}

/// A 404 on the list means the id is wrong: say so in the user's terms.
pub(super) fn missing_list(e: HubSpotError, list: &str) -> StepError {
    match e {
        HubSpotError::NotFound(_) => {
            StepError::Refused(format!("HubSpot has no list {list}; check list_id (the number in the list's URL)"))
        }
        e => StepError::HubSpot(e),
    }
}
