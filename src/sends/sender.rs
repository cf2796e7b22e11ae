//! The sender: carries out stored sends, exactly once each.
//!
//! For a send that has not been tried yet it reads the contact from HubSpot (its `LINE User ID
//! _N` for the account, and the properties its tokens use), renders the messages and fixes both
//! in the store. Then each attempt is recorded before it is made and pushed with the send's
//! `X-Line-Retry-Key`: a 409 "already accepted" means an earlier attempt went through. LINE
//! errors that may pass (5xx, a timeout, a rate limit) are retried with backoff under the same
//! key for as long as LINE remembers it; past that the outcome is unknowable, and the send
//! fails rather than risk a second delivery. A finished send leaves its HubSpot writes (the
//! timeline note, the action's completion) in the outbox, in the same transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::Value;

use super::{Draft, DueSend, SEND_DEADLINE_MS};
use crate::clock::{Clock, millis};
use crate::config::{Account, Config};
use crate::hubspot::html::{self, escape};
use crate::hubspot::{HubSpotClient, HubSpotError, api, reads};
use crate::line::client::{LineClient, LineError, SendOutcome};
use crate::line::limits::{MAX_TEXT_UNITS, RETRY_KEY_SAFE_MS, text_units};
use crate::retry::Backoff;
use crate::store::{Op, Store, StoreError};
use crate::sync::properties::Field;

/// How long a send waits when HubSpot cannot be read.
const HUBSPOT_WAIT_MS: i64 = 30_000;
/// Sends taken per batch (one HubSpot read prepares them all).
const BATCH: usize = 100;
/// Pushes in flight at once.
const CONCURRENT_PUSHES: usize = 8;

/// What one [`Sender::drain`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    /// Sends LINE accepted (now, or earlier as a 409 showed).
    pub sent: usize,
    /// Sends that failed for good.
    pub failed: usize,
    /// Sends that wait for another attempt.
    pub postponed: usize,
}

/// Carries out the store's pending sends.
#[derive(Clone)]
pub struct Sender {
    store: Store,
    line: LineClient,
    hubspot: HubSpotClient,
    clock: Arc<dyn Clock>,
}

/// A send's LINE user and rendered messages.
type Prepared = (String, Vec<Value>);

/// How one send ended this time.
enum Step {
    Sent(String, Vec<Value>),
    Failed(String),
    Later(i64, String),
}

impl Sender {
    /// A sender over `store`, pushing with `line` and reading contacts with `hubspot`.
    pub fn new(store: Store, line: LineClient, hubspot: HubSpotClient, clock: Arc<dyn Clock>) -> Sender {
        Sender { store, line, hubspot, clock }
    }

    /// Tries every send due now once. Returns what happened; a store failure stops it.
    pub async fn drain(&self, config: &Config) -> Result<SendReport, StoreError> {
        let mut report = SendReport::default();
        let serials: BTreeMap<String, i64> = self.store.serials().await?.into_iter().collect();
        let mut seen = BTreeSet::new();
        loop {
            let due = self.store.sends_due(self.clock.now_ms(), BATCH).await?;
            let fresh: Vec<DueSend> = due.into_iter().filter(|s| seen.insert(s.id)).collect();
            if fresh.is_empty() {
                return Ok(report);
            }
            let mut ready = Vec::new();
            let mut unprepared = Vec::new();
            for send in fresh {
                if send.callback_id.is_some() && self.clock.now_ms() - send.created_at > SEND_DEADLINE_MS {
                    let why = "not sent within 47 hours of the workflow's request; HubSpot stops waiting soon after";
                    self.record(&send, None, Step::Failed(why.into()), &mut report).await?;
                    continue;
                }
                let account = config.account(&send.account_id).filter(|a| a.active);
                match (account, serials.get(&send.account_id), send.prepared.clone()) {
                    (Some(account), Some(_), Some(prepared)) => ready.push((send, account.clone(), prepared)),
                    (Some(account), Some(&serial), None) => unprepared.push((send, account, serial)),
                    _ => {
                        let why = format!("account `{}` is not active in linehub's config", send.account_id);
                        self.record(&send, None, Step::Failed(why), &mut report).await?;
                    }
                }
            }
            // One HubSpot read for every send that has no recipient yet.
            let prepared = self.prepare(&unprepared).await;
            let mut fixed = Vec::new();
            for ((send, account, _), outcome) in unprepared.into_iter().zip(prepared) {
                match outcome {
                    Ok(p) => {
                        fixed.push((send.id, p.0.clone(), p.1.clone()));
                        ready.push((send, account.clone(), p));
                    }
                    Err(step) => self.record(&send, Some(account), step, &mut report).await?,
                }
            }
            self.store.send_prepare(fixed).await?;
            // Pushes go out a few at a time; each is recorded as soon as LINE answers.
            let results: Vec<Result<(), StoreError>> = futures_util::stream::iter(ready)
                .map(|(send, account, prepared): (DueSend, Account, Prepared)| async move {
                    let step = self.attempt(&account, &send, prepared).await?;
                    let mut one = SendReport::default();
                    self.record(&send, Some(&account), step, &mut one).await?;
                    Ok::<_, StoreError>(one)
                })
                .buffer_unordered(CONCURRENT_PUSHES)
                .map(|r| {
                    r.map(|one| {
                        report.sent += one.sent;
                        report.failed += one.failed;
                        report.postponed += one.postponed;
                    })
                })
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<()>, StoreError>>()?;
        }
    }

    /// One attempt of a send to the recipient and messages fixed for it.
    async fn attempt(&self, account: &Account, send: &DueSend, (user, messages): Prepared) -> Result<Step, StoreError> {
        let now = self.clock.now_ms();
        if send.first_attempt_at.is_some_and(|t| now - t > RETRY_KEY_SAFE_MS) {
            return Ok(Step::Failed(
                "its outcome is unknown and its retry key has expired; not resent, to never send twice".into(),
            ));
        }
        self.store.send_attempt(send.id, now).await?;
        let token = &account.channel_access_token;
        let outcome = self.line.push(token, &user, &messages, send.notification_disabled, &send.retry_key).await;
        Ok(match outcome {
            Ok(SendOutcome::Accepted { request_id }) => Step::Sent(request_id, messages),
            Ok(SendOutcome::AlreadyAccepted { accepted_request_id }) => {
                tracing::info!(send = send.id, request = %accepted_request_id, "push had already been accepted");
                Step::Sent(accepted_request_id, messages)
            }
            Err(e) if e.is_monthly_limit() => Step::Failed("the account's monthly message limit is reached".into()),
            Err(e) if e.is_transient() => Step::Later(Backoff::QUEUE.due_at(now, send.attempts + 1), e.to_string()),
            Err(e) => Step::Failed(refusal(&e)),
        })
    }

    /// The LINE user and the rendered messages of each send, or why there are none, from one
    /// HubSpot read of their contacts (at most [`BATCH`]).
    async fn prepare(&self, sends: &[(DueSend, &Account, i64)]) -> Vec<Result<Prepared, Step>> {
        if sends.is_empty() {
            return Vec::new();
        }
        let mut names = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for (send, _, serial) in sends {
            names.insert(Field::UserId.name(*serial));
            send.drafts.iter().for_each(|d| d.token_names(&mut names));
            ids.insert(send.contact_id.clone());
        }
        let names: Vec<String> = names.into_iter().collect();
        let ids: Vec<String> = ids.into_iter().collect();
        let contacts: BTreeMap<String, BTreeMap<String, String>> =
            match reads::contacts(&self.hubspot, &ids, &names).await {
                Ok(found) => found.into_iter().map(|c| (c.id, c.properties.into_iter().collect())).collect(),
                Err(HubSpotError::NotFound(_)) => BTreeMap::new(),
                Err(e) => {
                    let now = self.clock.now_ms();
                    let wait = match e.retry_after() {
                        Some(after) => Some(millis(after)),
                        None if e.is_transient() => Some(HUBSPOT_WAIT_MS),
                        None => None,
                    };
                    return sends
                        .iter()
                        .map(|_| match wait {
                            Some(ms) => Err(Step::Later(now + ms, e.to_string())),
                            None => Err(Step::Failed(format!("the contact could not be read: {e}"))),
                        })
                        .collect();
                }
            };
        sends.iter().map(|(send, _, serial)| render(send, *serial, contacts.get(&send.contact_id))).collect()
    }

    async fn record(
        &self,
        send: &DueSend,
        account: Option<&Account>,
        step: Step,
        report: &mut SendReport,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut ops = Vec::new();
        let outcome = match step {
            Step::Later(at, error) => {
                tracing::warn!(send = send.id, error = %error, "LINE push postponed");
                report.postponed += 1;
                return self.store.send_postpone(send.id, at, error).await;
            }
            Step::Sent(request_id, messages) => {
                tracing::info!(send = send.id, account = %send.account_id, contact = %send.contact_id, request = %request_id, "LINE push sent");
                report.sent += 1;
                let name = account.map_or(send.account_id.as_str(), |a| a.name.as_str());
                ops.push(Op::SendNote {
                    send_id: send.id,
                    contact_id: send.contact_id.clone(),
                    body: note(send, name, &messages, &request_id),
                });
                if let Some(callback_id) = &send.callback_id {
                    ops.push(completion(send.id, callback_id, "SUCCESS", [("line_request_id", request_id.clone())]));
                }
                Ok(request_id)
            }
            Step::Failed(error) => {
                tracing::warn!(send = send.id, account = %send.account_id, contact = %send.contact_id, error = %error, "LINE push failed");
                report.failed += 1;
                if let Some(callback_id) = &send.callback_id {
                    ops.push(completion(send.id, callback_id, "FAIL_CONTINUE", [("error", error.clone())]));
                }
                Err(error)
            }
        };
        self.store.send_finish(send.id, outcome, ops, now).await
    }
}

/// The recipient and rendered messages of `send` from its `contact`, or why it cannot be sent.
fn render(
    send: &DueSend,
    serial: i64,
    contact: Option<&BTreeMap<String, String>>,
) -> Result<(String, Vec<Value>), Step> {
    let Some(properties) = contact else {
        return Err(Step::Failed(format!("contact {} does not exist in HubSpot", send.contact_id)));
    };
    // The LINE user the workflow picked, else the account's `LINE User ID _N`.
    let Some(user) = send.recipient.clone().or_else(|| properties.get(&Field::UserId.name(serial)).cloned()) else {
        return Err(Step::Failed(format!(
            "contact {} has no {} (account `{}`): they are not linked to this LINE account",
            send.contact_id,
            Field::UserId.label(serial),
            send.account_id
        )));
    };
    let messages: Vec<Value> = send.drafts.iter().map(|d| d.render(properties)).collect();
    for (i, m) in messages.iter().enumerate() {
        let units = m["text"].as_str().map_or(0, text_units);
        if units > MAX_TEXT_UNITS {
            return Err(Step::Failed(format!(
                "message {} has {units} characters once its tokens are filled in; LINE takes at most {MAX_TEXT_UNITS}",
                i + 1
            )));
        }
    }
    Ok((user, messages))
}

/// The action completion for `send_id` with `state` and `outputs`.
fn completion<const N: usize>(send_id: i64, callback_id: &str, state: &str, outputs: [(&str, String); N]) -> Op {
    let mut fields: BTreeMap<String, String> = outputs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    fields.insert("hs_execution_state".into(), state.into());
    Op::CompleteAction { send_id, callback_id: callback_id.to_string(), outputs: fields }
}

/// The timeline note of a sent send, in the simple HTML HubSpot shows note bodies as. The
/// marker naming the send comes first, before any outside text (see [`crate::sync::send_note`]);
/// the messages come last and are shortened, when they must be, to keep the note within
/// HubSpot's body limit.
fn note(send: &DueSend, account_name: &str, messages: &[Value], request_id: &str) -> String {
    let via = if send.callback_id.is_some() { "workflow action" } else { "linehub" };
    let mut body = format!(
        "<p>{}</p><p>LINE message sent from {} · {via} · LINE request {}</p><ol>",
        crate::sync::send_note::note_marker(send.id),
        escape(account_name),
        escape(request_id)
    );
    const ITEM: &str = "<li></li>";
    const END: &str = "</ol>";
    let mut room = api::MAX_BODY_CHARS.saturating_sub(body.chars().count() + END.len());
    for m in messages {
        if room <= ITEM.len() {
            break;
        }
        let item = html::text_to_html(&Draft::summary(m), room - ITEM.len());
        room -= ITEM.len() + item.chars().count();
        body.push_str(&format!("<li>{item}</li>"));
    }
    body.push_str(END);
    body
}

/// LINE's refusal, worded for the workflow's history.
fn refusal(e: &LineError) -> String {
    match e.status() {
        Some(400) => format!("LINE refused the message: {e}"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A send of account `tokyo` to contact 501 with one attempt made.
    fn due_send(id: i64, callback_id: Option<&str>) -> DueSend {
        DueSend {
            id,
            callback_id: callback_id.map(str::to_string),
            account_id: "tokyo".into(),
            contact_id: "501".into(),
            drafts: Vec::new(),
            notification_disabled: false,
            retry_key: "k".into(),
            prepared: None,
            recipient: None,
            attempts: 1,
            first_attempt_at: None,
            created_at: 0,
        }
    }

    #[test]
    fn notes_are_escaped_html_that_names_their_send() {
        let send = due_send(7, Some("ap-1"));
        let messages = [
            serde_json::json!({"type": "text", "text": "<b>Hi</b> & bye\nline 2"}),
            serde_json::json!({"type": "sticker"}),
        ];
        let body = note(&send, "Tokyo <shop>", &messages, "req-1");
        assert!(body.contains("Tokyo &lt;shop&gt;"), "{body}");
        assert!(body.contains("<li>&lt;b&gt;Hi&lt;/b&gt; &amp; bye<br>line 2</li><li>[sticker]</li>"), "{body}");
        assert!(body.starts_with("<p>linehub send #7</p>"), "the marker comes first: {body}");
        assert!(body.contains("workflow action · LINE request req-1"), "{body}");
        assert_eq!(crate::sync::send_note::marked_send(&body), Some(7));
    }

    #[test]
    fn a_long_note_is_shortened_in_its_messages_never_in_its_marker() {
        let send = due_send(12, None);
        let quotes = serde_json::json!({"type": "text", "text": "\"".repeat(5000)});
        let body = note(&send, "Tokyo", &vec![quotes; 5], "req-9");
        assert!(body.chars().count() <= api::MAX_BODY_CHARS, "{}", body.chars().count());
        assert!(body.ends_with("</ol>"), "the markup is closed");
        assert_eq!(crate::sync::send_note::marked_send(&body), Some(12));
    }
}
