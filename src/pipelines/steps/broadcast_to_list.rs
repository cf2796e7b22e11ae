//! `broadcast_to_list`: send up to 5 messages to the LINE users of a HubSpot list.
//!
//! Two phases, both resumable:
//! 1. Plan. Page through the list's members, read each contact's `LINE User ID _N` and `LINE
//!    Follow _N`, and store every recipient once (contacts without an id for this account, and
//!    those known to have blocked it, are counted and skipped). Then cut the recipients into
//!    chunks of at most 500 (LINE's multicast limit, [`MULTICAST_RECIPIENTS`]), each with its
//!    own `X-Line-Retry-Key`, all stored before the first request leaves.
//! 2. Send. Each chunk goes out as one multicast carrying its key. A 200, or a 409 "the retry
//!    key is already accepted" (an earlier attempt went through), marks the chunk sent in the
//!    same transaction that queues `LINE Last Broadcast _N` and `LINE Last Broadcast Date _N` for
//!    each recipient's contact. A failed attempt is retried with the same key, so a crash or a
//!    lost answer at any point never sends a chunk twice. A chunk whose fate is unknown after its
//!    key expired (LINE keeps keys 24 hours) is reported and never resent.
//!
//! Before each chunk the account's monthly quota is checked: a chunk that would exceed it holds
//! the account's sends (see `enforce_plan_limits`) and the run stops, to resume when it fits.
//!
//! ```yaml
//! - broadcast_to_list:
//!     list_id: "42"
//!     messages:                     # 1-5
//!       - text: "Spring sale starts today"
//!       - sticker: { package_id: "446", sticker_id: "1988" }
//!       - image: { original_content_url: "https://…/a.jpg", preview_image_url: "https://…/a-s.jpg" }
//!     notification_disabled: false  # optional
//! ```

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use serde_saphyr::Spanned;

use super::{Step, StepError};
use crate::pipelines::{Checks, Page, StepContext};
use crate::hubspot::{HubSpotError, api, reads};
use crate::line::client::{LineError, MessageQuota, SendOutcome};
use crate::line::limits::{MAX_MESSAGES, MAX_TEXT_UNITS, MULTICAST_RECIPIENTS, RETRY_KEY_SAFE_MS, text_units};
use crate::retry::{Backoff, retry};
use crate::store::Op;
use crate::sync::broadcast::{Recipient, last_broadcast_properties, recipient};
use crate::sync::properties::Field;

/// Attempts per chunk within one run (the same key each time).
const ATTEMPTS: u32 = 3;

/// The `with:` block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastToList {
    /// The HubSpot list whose contacts receive the messages: the number in the list's URL.
    pub list_id: Spanned<String>,
    /// One to five messages, sent together.
    pub messages: Spanned<Vec<Message>>,
    /// Deliver without a notification sound (default false).
    #[serde(default)]
    pub notification_disabled: Option<bool>,
}

/// One message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    /// `- text: "…"`: up to 5,000 characters (UTF-16 units, as LINE counts).
    Text(Spanned<String>),
    /// `- sticker: { package_id, sticker_id }` from LINE's sticker list.
    Sticker(Sticker),
    /// `- image: { original_content_url, preview_image_url }`: HTTPS JPEG or PNG.
    Image(Image),
}

/// A sticker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sticker {
    /// Package id.
    pub package_id: Spanned<String>,
    /// Sticker id.
    pub sticker_id: Spanned<String>,
}

/// An image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// The image (HTTPS, JPEG or PNG, ≤10 MB).
    pub original_content_url: Spanned<String>,
    /// Its preview (HTTPS, ≤1 MB).
    pub preview_image_url: Spanned<String>,
}

impl Message {
    /// The LINE message object.
    pub fn to_line(&self) -> Value {
        match self {
            Message::Text(t) => json!({ "type": "text", "text": t.value }),
            Message::Sticker(s) => {
                json!({ "type": "sticker", "packageId": s.package_id.value, "stickerId": s.sticker_id.value })
            }
            Message::Image(i) => json!({
                "type": "image",
                "originalContentUrl": i.original_content_url.value,
                "previewImageUrl": i.preview_image_url.value,
            }),
        }
    }
}

/// Which phase a run is in, and where planning resumes.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    /// Chunks are cut: only sending is left.
    sending: bool,
    /// Every list page is stored: only cutting chunks is left.
    listed: bool,
    /// The list page after the last one stored.
    after: Option<String>,
}

impl Step for BroadcastToList {
    const KIND: &'static str = "broadcast_to_list";

    fn check(&self, checks: &mut Checks<'_>) {
        checks.list_id(&self.list_id, "list_id");
        let messages = &self.messages.value;
        if messages.is_empty() || messages.len() > MAX_MESSAGES {
            checks.error(
                &self.messages,
                "messages",
                format!("needs 1 to {MAX_MESSAGES} messages, not {}", messages.len()),
            );
        }
        for (i, m) in messages.iter().enumerate() {
            match m {
                Message::Text(t) => {
                    let len = text_units(&t.value);
                    if t.value.trim().is_empty() || len > MAX_TEXT_UNITS {
                        checks.error(
                            t,
                            &format!("messages[{i}].text"),
                            format!("must hold 1 to {MAX_TEXT_UNITS} characters, not {len}"),
                        );
                    }
                }
                Message::Sticker(s) => {
                    for (v, name) in [(&s.package_id, "package_id"), (&s.sticker_id, "sticker_id")] {
                        if v.value.is_empty() || !v.value.bytes().all(|b| b.is_ascii_digit()) {
                            checks.error(
                                v,
                                &format!("messages[{i}].sticker.{name}"),
                                format!("`{}` is not a number", v.value),
                            );
                        }
                    }
                }
                Message::Image(img) => {
                    for (v, name) in [
                        (&img.original_content_url, "original_content_url"),
                        (&img.preview_image_url, "preview_image_url"),
                    ] {
                        if !v.value.starts_with("https://") || v.value.len() > 2000 {
                            checks.error(
                                v,
                                &format!("messages[{i}].image.{name}"),
                                "must be an https:// URL of at most 2000 characters",
                            );
                        }
                    }
                }
            }
        }
    }

    async fn run(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        if ctx.dry_run {
            return self.preview(ctx).await;
        }
        let mut cursor: Cursor = ctx.cursor()?.unwrap_or_default();
        let step = ctx.step as i64;
        if !cursor.sending {
            self.plan(ctx, &mut cursor).await?;
        }
        let mut left = self.quota_left(ctx).await?;
        let progress = ctx.store.broadcast_progress(ctx.run_id, step, ctx.account.id.clone()).await?;
        let mut pending = progress.recipients.saturating_sub(progress.sent_recipients);
        if let Some(reason) = ctx.store.send_holds().await?.remove(&ctx.account.id) {
            if left.is_some_and(|left| left < pending) {
                return Err(StepError::Held(reason));
            }
            ctx.store.set_send_hold(ctx.account.id.clone(), None, ctx.clock.now_ms()).await?;
            ctx.report.note(format!("released the held sends of `{}`: they fit the quota now", ctx.account.id));
        }
        let messages: Vec<Value> = self.messages.value.iter().map(Message::to_line).collect();
        while let Some(chunk) = ctx.store.broadcast_next_chunk(ctx.run_id, step, ctx.account.id.clone()).await? {
            let now = ctx.clock.now_ms();
            if chunk.first_attempt_at.is_some_and(|t| now - t > RETRY_KEY_SAFE_MS) {
                let why = "its outcome is unknown and its retry key has expired; not resent, to never send twice";
                ctx.store
                    .broadcast_chunk_failed(ctx.run_id, step, ctx.account.id.clone(), chunk.chunk, why.into(), true)
                    .await?;
                ctx.report.count("expired_chunks", 1);
                ctx.report.note(format!("chunk {} ({} recipients): {why}", chunk.chunk, chunk.recipients.len()));
                continue;
            }
            let n = chunk.recipients.len() as u64;
            if chunk.attempts == 0 && left.is_some_and(|left| left < n) {
                return Err(self.hold(ctx, pending, left.unwrap_or(0)).await?);
            }
            ctx.store.broadcast_attempt(ctx.lease(), step, ctx.account.id.clone(), chunk.chunk, now).await?;
            let to: Vec<String> = chunk.recipients.iter().map(|(u, _)| u.clone()).collect();
            match self.send(ctx, &to, &messages, &chunk.retry_key).await {
                Ok(SendOutcome::Accepted { request_id }) => {
                    tracing::info!(pipeline = %ctx.pipeline, account = %ctx.account.id, chunk = chunk.chunk, recipients = n, request_id = %request_id, "multicast accepted");
                    left = left.map(|l| l.saturating_sub(n));
                }
                Ok(SendOutcome::AlreadyAccepted { accepted_request_id }) => {
                    tracing::info!(pipeline = %ctx.pipeline, account = %ctx.account.id, chunk = chunk.chunk, accepted_request_id = %accepted_request_id, "multicast had already been accepted");
                    ctx.report.count("replayed_chunks", 1);
                }
                Err(e) => {
                    ctx.store
                        .broadcast_chunk_failed(
                            ctx.run_id,
                            step,
                            ctx.account.id.clone(),
                            chunk.chunk,
                            e.to_string(),
                            false,
                        )
                        .await?;
                    if e.is_monthly_limit() {
                        return Err(self.hold(ctx, pending, left.unwrap_or(0)).await?);
                    }
                    return Err(StepError::Line(e));
                }
            }
            pending = pending.saturating_sub(n);
            ctx.report.count("sent_chunks", 1);
            ctx.report.count("sent_recipients", n);
            let properties = last_broadcast_properties(ctx.serial, &ctx.pipeline, ctx.clock.now_ms());
            let mut page = Page { chunk_sent: Some(chunk.chunk), ..Page::default() };
            for (user, contact) in chunk.recipients {
                page.links.push((user.clone(), contact));
                page.ops.push(Op::Contact { user_id: user, properties: properties.clone(), create: false });
            }
            ctx.commit(&cursor, page).await?;
        }
        Ok(())
    }
}

impl BroadcastToList {
    /// Phase 1: stores the recipients page by page, then cuts them into keyed chunks.
    async fn plan(&self, ctx: &mut StepContext, cursor: &mut Cursor) -> Result<(), StepError> {
        let step = ctx.step as i64;
        while !cursor.listed {
            let (recipients, after) = self.recipients_page(ctx, cursor.after.as_deref()).await?;
            cursor.listed = after.is_none();
            cursor.after = after;
            let text = ctx.checkpoint_text(&*cursor)?;
            ctx.store
                .broadcast_add_recipients(
                    ctx.lease(),
                    step,
                    ctx.account.id.clone(),
                    recipients,
                    text,
                    ctx.clock.now_ms(),
                )
                .await?;
        }
        cursor.sending = true;
        let text = ctx.checkpoint_text(&*cursor)?;
        let chunks = ctx
            .store
            .broadcast_make_chunks(
                ctx.lease(),
                step,
                ctx.account.id.clone(),
                MULTICAST_RECIPIENTS,
                text,
                ctx.clock.now_ms(),
            )
            .await?;
        let progress = ctx.store.broadcast_progress(ctx.run_id, step, ctx.account.id.clone()).await?;
        ctx.report.count("recipients", progress.recipients);
        ctx.report.count("chunks", chunks);
        Ok(())
    }

    /// One page of list members → (LINE user, contact) recipients, and the next page's cursor.
    async fn recipients_page(
        &self,
        ctx: &mut StepContext,
        after: Option<&str>,
    ) -> Result<(Vec<(String, String)>, Option<String>), StepError> {
        let list = self.list_id.value.as_str();
        let members =
            reads::list_members(&ctx.hubspot, list, after, api::LIST_PAGE_LIMIT).await.map_err(|e| match e {
                HubSpotError::NotFound(_) => StepError::Refused(format!(
                    "HubSpot has no list {list}; check list_id (the number in the list's URL)"
                )),
                e => StepError::HubSpot(e),
            })?;
        let (id_prop, follow_prop) = (ctx.property(Field::UserId), ctx.property(Field::Follow));
        let wanted = [id_prop.clone(), follow_prop.clone()];
        let mut out = Vec::new();
        for ids in members.record_ids.chunks(api::BATCH_LIMIT) {
            for c in reads::contacts(&ctx.hubspot, ids, &wanted).await? {
                ctx.report.count("members", 1);
                let user = c.properties.get(&id_prop).map(String::as_str);
                match recipient(user, c.properties.get(&follow_prop).map(String::as_str)) {
                    Recipient::NoLineId => ctx.report.count("without_line_id", 1),
                    Recipient::Malformed(u) => {
                        ctx.report.count("malformed", 1);
                        ctx.report
                            .sample("malformed", || format!("contact {}: `{u}` is not a LINE user id; skipped", c.id));
                    }
                    Recipient::NotFollowing => ctx.report.count("not_following", 1),
                    Recipient::Send(u) => out.push((u.to_string(), c.id.clone())),
                }
            }
        }
        Ok((out, members.after))
    }

    /// A dry run: who would receive what, and the quota it would use.
    async fn preview(&self, ctx: &mut StepContext) -> Result<(), StepError> {
        let mut seen = HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let (recipients, next) = self.recipients_page(ctx, after.as_deref()).await?;
            for (user, contact) in recipients {
                if seen.insert(user.clone()) {
                    ctx.report.sample("recipient", || {
                        format!("contact {contact} ({user}): would receive {} message(s)", self.messages.value.len())
                    });
                }
            }
            after = next;
            if after.is_none() {
                break;
            }
        }
        let n = seen.len() as u64;
        ctx.report.count("recipients", n);
        ctx.report.count("chunks", n.div_ceil(MULTICAST_RECIPIENTS as u64));
        ctx.report.count("quota_needed", n);
        if let Some(left) = self.quota_left(ctx).await? {
            ctx.report.count("quota_left", left);
            if left < n {
                ctx.report.note(format!(
                    "{n} recipients exceed the {left} messages left this month: the sends would be held"
                ));
            }
        }
        Ok(())
    }

    /// Messages left of the account's monthly quota; `None` when it has no limit.
    async fn quota_left(&self, ctx: &StepContext) -> Result<Option<u64>, StepError> {
        let token = &ctx.account.channel_access_token;
        Ok(match ctx.line.quota(token).await? {
            MessageQuota::Unlimited => None,
            MessageQuota::Limited(limit) => Some(limit.saturating_sub(ctx.line.quota_consumption(token).await?)),
        })
    }

    /// Holds the account's sends and returns the error that stops the run.
    async fn hold(&self, ctx: &mut StepContext, pending: u64, left: u64) -> Result<StepError, StepError> {
        let reason = format!(
            "{pending} recipients still to send exceed the {left} messages left of this month's quota; raise the \
             quota in LINE Official Account Manager or wait for next month, then run the pipeline again"
        );
        ctx.store.set_send_hold(ctx.account.id.clone(), Some(reason.clone()), ctx.clock.now_ms()).await?;
        ctx.report.count("held", 1);
        Ok(StepError::Held(reason))
    }

    /// One multicast, retried in place with the same key on transient failures (the one retry
    /// policy's in-call schedule, on the run's clock).
    async fn send(
        &self,
        ctx: &StepContext,
        to: &[String],
        messages: &[Value],
        key: &str,
    ) -> Result<SendOutcome, LineError> {
        let token = &ctx.account.channel_access_token;
        let quiet = self.notification_disabled.unwrap_or(false);
        retry(
            ctx.clock.as_ref(),
            Backoff::IN_CALL,
            ATTEMPTS,
            LineError::is_transient,
            |e, attempt| {
                tracing::warn!(pipeline = %ctx.pipeline, account = %ctx.account.id, error = %e, attempt, "multicast failed; retrying with the same retry key");
            },
            || ctx.line.multicast(token, to, messages, quiet, key),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let file = Path::new("sale.yaml");
        let step: BroadcastToList = crate::yaml::parse_yaml(file, yaml).unwrap_or_else(|e| panic!("{e}"));
        let mut checks = Checks::new(file, "steps[0].broadcast_to_list".into());
        step.check(&mut checks);
        checks.into_errors().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn message_rules_are_checked_where_they_are_written() {
        assert_eq!(
            problems("list_id: \"42\"\nmessages: []\n"),
            ["sale.yaml:2:11: steps[0].broadcast_to_list.messages: needs 1 to 5 messages, not 0"]
        );
        let six = "messages:\n".to_string() + &"  - text: hi\n".repeat(6);
        assert!(problems(&format!("list_id: \"42\"\n{six}"))[0].contains("not 6"));
        let bad = problems(
            "list_id: \"4x\"\nmessages:\n  - text: \" \"\n  - sticker: { package_id: \"a\", sticker_id: \"1\" }\n  - image: { original_content_url: \"http://x\", preview_image_url: \"https://x\" }\n",
        );
        assert_eq!(bad.len(), 4, "{bad:#?}");
        assert!(bad[0].starts_with("sale.yaml:1:10: steps[0].broadcast_to_list.list_id"), "{bad:#?}");
        assert!(bad[1].starts_with("sale.yaml:3:11: steps[0].broadcast_to_list.messages[0].text"), "{bad:#?}");
        assert!(bad[2].contains("messages[1].sticker.package_id"), "{bad:#?}");
        assert!(bad[3].contains("messages[2].image.original_content_url: must be an https:// URL"), "{bad:#?}");
    }

    #[test]
    fn messages_become_line_message_objects() {
        let file = Path::new("sale.yaml");
        let step: BroadcastToList = crate::yaml::parse_yaml(
            file,
            "list_id: \"1\"\nmessages:\n  - text: セール\n  - sticker: { package_id: \"446\", sticker_id: \"1988\" }\n",
        )
        .unwrap();
        let objects: Vec<Value> = step.messages.value.iter().map(Message::to_line).collect();
        assert_eq!(
            objects,
            [
                json!({"type": "text", "text": "セール"}),
                json!({"type": "sticker", "packageId": "446", "stickerId": "1988"})
            ]
        );
    }
}
