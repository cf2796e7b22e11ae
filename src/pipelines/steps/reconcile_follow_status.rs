//! `reconcile_follow_status`: make `LINE Follow _N` in HubSpot agree with LINE again.
//!
//! Webhooks keep the property current, but a missed unfollow (LINE's redelivery is best
//! effort), an edit by hand or a restored backup leaves it wrong. The step walks the friends
//! linehub has linked to a contact for this account, a page at a time, reads their contacts'
//! `LINE Follow _N`, asks LINE whether each user is a friend now (a profile answer means yes; 404
//! means blocked or gone), and queues a write for every contact that disagrees. It reports how
//! many changed, each way. Resumes after the last page it committed.
//!
//! ```yaml
//! - reconcile_follow_status:
//!     page_size: 100   # optional, 1-100
//! ```

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::{Step, StepError};
use crate::pipelines::{Checks, Page, StepContext};
use crate::hubspot::{api, reads};
use crate::store::Op;
use crate::sync::link::{follow_value, observation_applies, observe_follow};
use crate::sync::properties::Field;

/// The `with:` block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileFollowStatus {
    /// Contacts checked per page, 1-100 (default 100).
    #[serde(default)]
    pub page_size: Option<Spanned<u32>>,
}

/// Where a run resumes: the last LINE user id of the last committed page.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    after: Option<String>,
}

impl Step for ReconcileFollowStatus {
    const KIND: &'static str = "reconcile_follow_status";

    fn check(&self, checks: &mut Checks<'_>) {
        checks.range(self.page_size.as_ref(), "page_size", 1, api::BATCH_LIMIT as u32);
    }

    async fn run(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let size = self.page_size.as_ref().map_or(api::BATCH_LIMIT, |p| p.value as usize);
        let mut cursor: Cursor = ctx.cursor()?.unwrap_or_default();
        let follow = ctx.property(Field::Follow);
        loop {
            let linked = ctx.store.linked_friends(ctx.serial, cursor.after.clone(), size).await?;
            let Some((last, _)) = linked.last().cloned() else {
                return Ok(());
            };
            let ids: Vec<String> = linked.iter().map(|(_, c)| c.clone()).collect();
            let contacts = reads::contacts(&ctx.hubspot, &ids, std::slice::from_ref(&follow)).await?;
            let users: Vec<String> = linked.iter().map(|(u, _)| u.clone()).collect();
            // A profile answer (or 404) shows whether the user follows as of the moment linehub asked.
            let observed_at = ctx.clock.now_ms();
            let profiles = ctx.profiles(&users).await?;
            let states = ctx.friend_states(&users).await?;
            let mut page = Page::default();
            for ((user, contact_id), profile) in linked.into_iter().zip(profiles) {
                let Some(contact) = contacts.iter().find(|c| c.id == contact_id) else {
                    ctx.report.count("contact_missing", 1);
                    continue;
                };
                ctx.report.count("checked", 1);
                let following = profile.is_some();
                let truth = follow_value(following);
                let state = states.get(&user).cloned().unwrap_or_default();
                if !observation_applies(&state, observed_at) {
                    // A follow or unfollow newer than LINE's answer was applied meanwhile.
                    ctx.report.count("newer_event", 1);
                    continue;
                }
                page.friends.push(((ctx.serial, user.clone()), observe_follow(&state, following, observed_at)));
                let current = contact.properties.get(&follow).map(String::as_str);
                if current == Some(truth) {
                    ctx.report.count("in_sync", 1);
                    continue;
                }
                ctx.report.count("changed", 1);
                ctx.report.count(if following { "to_yes" } else { "to_no" }, 1);
                ctx.report.sample("changed", || {
                    format!("contact {contact_id} ({user}): {follow}: {} → {truth}", current.unwrap_or("(none)"))
                });
                let properties = [(follow.clone(), truth.to_string())].into_iter().collect();
                page.ops.push(Op::Contact { user_id: user, properties, create: false });
            }
            cursor.after = Some(last);
            ctx.commit(&cursor, page).await?;
        }
    }
}
