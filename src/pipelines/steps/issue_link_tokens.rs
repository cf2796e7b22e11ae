//! `issue_link_tokens`: give each contact of a HubSpot list a link token for LINE login links in
//! emails.
//!
//! Email linkage: a marketing email carries
//! `{public_base_url}/line/{account}/login?link={{contact.linehub_link_token}}`; the login route
//! looks the token up by its hash and links the LINE user who logs in to that contact, and only
//! that one, until the token expires. This step fills `linehub_link_token` (one property for all
//! accounts) ahead of the email. For each member of the list:
//!
//! - a token linehub issued to that very contact, and not yet expired, is kept, and valid for
//!   `valid_for_days` from now (no HubSpot write);
//! - otherwise (no token, an expired one, one typed by hand or copied from another contact, or
//!   `rotate: true`) a
//!   new token is minted, its hash stored first, then the property written through the writer.
//!   Rotating also drops the contact's older tokens: links in earlier emails stop working.
//!
//! The step runs once per account of its pipeline, but the token belongs to the contact: the
//! first account's pass issues (and rotates); later passes keep what it issued, even while its
//! writes still wait in the outbox. Counts: `kept`, `issued` (the contact had no token linehub
//! issued to it), `rotated`. Tokens never appear in reports. Resumes from the last list page it
//! committed; a dry run stores and writes nothing.
//!
//! ```yaml
//! - issue_link_tokens:
//!     list_id: "123"       # the number in the list's URL
//!     valid_for_days: 30   # optional, 1-365 (default 30)
//!     rotate: false        # optional: replace every member's token, old links stop working (default false)
//!     page_size: 250       # optional, 1-250
//! ```

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::import_line_ids_from_list::missing_list;
use super::{Step, StepError};
use crate::hubspot::{api, reads};
use crate::login::{hash_link_token, new_link_token};
use crate::pipelines::{Checks, Page, StepContext};
use crate::store::Op;
use crate::sync::properties::LINK_TOKEN;

/// How long a token stays valid when `valid_for_days` is not given.
const DEFAULT_VALID_FOR_DAYS: u32 = 30;
/// The longest `valid_for_days` accepted.
const MAX_VALID_FOR_DAYS: u32 = 365;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// The `with:` block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueLinkTokens {
    /// The HubSpot list whose contacts get tokens: its id, the number in the list's URL.
    pub list_id: Spanned<String>,
    /// Days a token stays valid from this run, 1-365 (default 30). Kept tokens are extended.
    #[serde(default)]
    pub valid_for_days: Option<Spanned<u32>>,
    /// Replace every member's token with a new one; links with the old tokens stop working
    /// (default false: keep the tokens linehub issued).
    #[serde(default)]
    pub rotate: Option<bool>,
    /// List members read per page, 1-250 (default 250).
    #[serde(default)]
    pub page_size: Option<Spanned<u32>>,
}

/// Where a run resumes: the list page after the last one committed.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    after: Option<String>,
}

/// One page's tokens to store: (hash, contact).
#[derive(Default)]
struct Tokens {
    /// Tokens kept: their expiry moves.
    kept: Vec<(String, String)>,
    /// Tokens minted: stored before their writes are queued.
    minted: Vec<(String, String)>,
}

impl Step for IssueLinkTokens {
    const KIND: &'static str = "issue_link_tokens";

    fn check(&self, checks: &mut Checks<'_>) {
        checks.list_id(&self.list_id, "list_id");
        checks.range(self.valid_for_days.as_ref(), "valid_for_days", 1, MAX_VALID_FOR_DAYS);
        checks.range(self.page_size.as_ref(), "page_size", 1, api::LIST_PAGE_LIMIT);
    }

    async fn run(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let list = self.list_id.value.as_str();
        let page_size = self.page_size.as_ref().map_or(api::LIST_PAGE_LIMIT, |p| p.value);
        let valid_for = i64::from(self.valid_for_days.as_ref().map_or(DEFAULT_VALID_FOR_DAYS, |d| d.value)) * DAY_MS;
        let first = ctx.first_account();
        let rotate = self.rotate.unwrap_or(false) && first;
        if self.rotate.unwrap_or(false) && !first {
            ctx.report.note(
                "tokens are per contact and were rotated by this step's first account; this account keeps them",
            );
        }
        if ctx.dry_run && !first {
            ctx.report.note(
                "a dry run stores nothing, so this account does not see the tokens the first account would issue; \
                 a real run keeps them",
            );
        }
        let mut cursor: Cursor = ctx.cursor()?.unwrap_or_default();
        let wanted = [LINK_TOKEN.to_string()];
        loop {
            let members = reads::list_members(&ctx.hubspot, list, cursor.after.as_deref(), page_size)
                .await
                .map_err(|e| missing_list(e, list))?;
            let mut page = Page::default();
            let mut tokens = Tokens::default();
            let mut seen = HashSet::new();
            for ids in members.record_ids.chunks(api::BATCH_LIMIT) {
                let contacts = reads::contacts(&ctx.hubspot, ids, &wanted).await?;
                ctx.report.count("contacts_read", contacts.len() as u64);
                let contacts = contacts.into_iter().filter(|c| seen.insert(c.id.clone())).collect();
                sort(ctx, contacts, rotate, &mut tokens, &mut page).await?;
            }
            if !ctx.dry_run {
                // Stored before the writes are queued: HubSpot never holds a token the store
                // does not know.
                let now = ctx.clock.now_ms();
                if !tokens.kept.is_empty() {
                    ctx.store.put_link_tokens(tokens.kept, now + valid_for, false, now).await?;
                }
                if !tokens.minted.is_empty() {
                    ctx.store.put_link_tokens(tokens.minted, now + valid_for, rotate, now).await?;
                }
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

/// Decides, for each contact of one batch, whether its token is kept or a new one minted; adds
/// the tokens to `tokens` and the property writes to `page`.
async fn sort(
    ctx: &mut StepContext,
    contacts: Vec<reads::ContactRead>,
    rotate: bool,
    tokens: &mut Tokens,
    page: &mut Page,
) -> Result<(), StepError> {
    let ids: Vec<String> = contacts.iter().map(|c| c.id.clone()).collect();
    let issued = ctx.store.link_token_hashes(ids.clone(), ctx.clock.now_ms()).await?;
    // A write queued earlier (by this step's first account, say) is what the property will hold.
    let pending = ctx.store.pending_contact_values(ids, LINK_TOKEN.to_string()).await?;
    for c in contacts {
        let current = pending.get(&c.id).or_else(|| c.properties.get(LINK_TOKEN)).map(|t| t.trim());
        let current = current.filter(|t| !t.is_empty());
        let ours = current
            .map(hash_link_token)
            .filter(|hash| issued.get(&c.id).is_some_and(|hashes| hashes.contains(hash)));
        match (ours, current) {
            (Some(hash), _) if !rotate => {
                ctx.report.count("kept", 1);
                tokens.kept.push((hash, c.id));
                continue;
            }
            (Some(_), _) => {
                ctx.report.count("rotated", 1);
                ctx.report.sample("rotated", || {
                    format!("contact {}: token replaced, its old links stop working", c.id)
                });
            }
            (None, Some(_)) => {
                ctx.report.count("issued", 1);
                ctx.report.sample("replaced", || {
                    format!("contact {}: its token was not issued to it by linehub; a new one is written", c.id)
                });
            }
            (None, None) => {
                ctx.report.count("issued", 1);
                ctx.report.sample("issued", || format!("contact {}: token issued", c.id));
            }
        }
        let token = new_link_token();
        tokens.minted.push((hash_link_token(&token), c.id.clone()));
        let properties = BTreeMap::from([(LINK_TOKEN.to_string(), token)]);
        page.ops.push(Op::ContactById { contact_id: c.id, properties });
    }
    Ok(())
}
