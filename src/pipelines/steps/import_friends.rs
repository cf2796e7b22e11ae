//! `import_friends`: every friend of the account becomes (or updates) a HubSpot contact.
//!
//! Pages through `GET /v2/bot/followers/ids` with LINE's cursor, one page at a time: the friends
//! linehub has not linked yet (or that it knows as blocked, or without a profile read) get their
//! profile read and a contact write queued (`create`: a friend without a contact gets one, with
//! the placeholder email). Each page is committed with the cursor, so an interrupted import
//! resumes where it stopped, and memory stays flat however many friends there are: nothing but
//! the current page is held. With a writer draining in the background, the step waits while the
//! outbox is long instead of queueing a million rows at once.
//!
//! Only verified and premium Official Accounts may list their friends; LINE answers others 403,
//! and the step says so (use webhooks and `import_line_ids_from_list` there instead).
//!
//! ```yaml
//! - import_friends:
//!     page_size: 1000   # optional, 1-1000
//!     profiles: true    # optional: read name and picture of new friends (default true)
//!     refresh: false    # optional: write every friend, even those already linked (default false)
//! ```

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::{Step, StepError};
use crate::pipelines::{Checks, Page, StepContext};
use crate::line::client::{LineError, Profile};
use crate::line::limits::FOLLOWERS_PAGE;
use crate::store::Op;
use crate::sync::link::link_properties;

/// The `with:` block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportFriends {
    /// Friends asked for per page, 1-1000 (default 1000).
    #[serde(default)]
    pub page_size: Option<Spanned<u32>>,
    /// Read each new friend's profile for name and picture (default true).
    #[serde(default)]
    pub profiles: Option<bool>,
    /// Write every friend, even those linehub already linked (default false: only new ones).
    #[serde(default)]
    pub refresh: Option<bool>,
}

/// Where a run resumes: LINE's cursor of the next page.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    start: Option<String>,
}

impl Step for ImportFriends {
    const KIND: &'static str = "import_friends";

    fn check(&self, checks: &mut Checks<'_>) {
        checks.range(self.page_size.as_ref(), "page_size", 1, FOLLOWERS_PAGE);
    }

    async fn run(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let page_size = self.page_size.as_ref().map_or(FOLLOWERS_PAGE, |p| p.value);
        let (profiles, refresh) = (self.profiles.unwrap_or(true), self.refresh.unwrap_or(false));
        let mut cursor: Cursor = ctx.cursor()?.unwrap_or_default();
        let token = ctx.account.channel_access_token.clone();
        loop {
            // The list and the profiles show who follows as of the moment linehub asked.
            let observed_at = ctx.clock.now_ms();
            let friends = ctx
                .line
                .followers(&token, cursor.start.as_deref(), page_size)
                .await
                .map_err(|e| not_verified(e, &ctx.account.id))?;
            ctx.report.count("pages", 1);
            ctx.report.count("friends", friends.user_ids.len() as u64);
            let states = ctx.friend_states(&friends.user_ids).await?;
            let seen = friends.user_ids.len() as u64;
            let new: Vec<String> = friends
                .user_ids
                .into_iter()
                .filter(|u| {
                    let s = states.get(u);
                    refresh
                        || s.is_none_or(|s| {
                            s.following != Some(true) || s.synced_on.is_none() || (profiles && !s.profile_fetched)
                        })
                })
                .collect();
            ctx.report.count("unchanged", seen - new.len() as u64);
            let read = if profiles { ctx.profiles(&new).await? } else { Vec::new() };
            let mut page = Page::default();
            for (i, user) in new.into_iter().enumerate() {
                let profile = read.get(i).cloned().flatten();
                if profiles && profile.is_none() {
                    // Blocked or left between the two calls: not a friend any more.
                    ctx.report.count("gone", 1);
                    continue;
                }
                let state = states.get(&user).cloned().unwrap_or_default();
                let (props, next) = link_properties(
                    ctx.serial,
                    &user,
                    profile.as_ref().map(Profile::contact_fields),
                    &state,
                    None,
                    observed_at,
                );
                ctx.report.count("queued", 1);
                ctx.report.sample("queued", || {
                    let set: Vec<String> = props.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    format!("{user}: create or update the contact: {}", set.join(", "))
                });
                page.friends.push(((ctx.serial, user.clone()), next));
                page.ops.push(Op::Contact { user_id: user, properties: props, create: true });
            }
            cursor.start = friends.next;
            ctx.commit(&cursor, page).await?;
            if cursor.start.is_none() {
                return Ok(());
            }
        }
    }
}

/// LINE's 403 on followers means the account may not list its friends: say what to do.
fn not_verified(e: LineError, account: &str) -> StepError {
    match e.status() {
        Some(403) => StepError::Refused(format!(
            "LINE refused to list the friends of `{account}` (403): only verified or premium Official Accounts may \
             (LINE Official Account Manager > Settings > Account verification). Until then friends arrive through \
             webhooks, and contacts with known LINE ids can be linked with import_line_ids_from_list"
        )),
        _ => StepError::Line(e),
    }
}
