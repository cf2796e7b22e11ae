//! One-to-one sends: what HubSpot asked linehub to send, until LINE has it and HubSpot knows.
//!
//! A send is stored before HubSpot gets its answer, keyed by the workflow action's callback id
//! (a redelivered request finds the row already there), with a retry key chosen at that moment.
//! Before the first attempt the rendered messages and the recipient are fixed in the row, so
//! every attempt sends the same thing under the same key. Finishing a send (sent or failed) and
//! queueing its HubSpot writes (timeline note, action completion) is one transaction.

use std::collections::{HashMap, HashSet};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::outbox::{self, Op};
use super::{Requested, Store, StoreError};

/// What storing a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new send, with its id.
    New(i64),
    /// The callback id was stored before (a redelivery); the existing send's id.
    Duplicate(i64),
}

/// A send to store. `D` is a message draft as the sends module defines it; the store keeps the
/// drafts as JSON and never looks inside.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSend<D> {
    /// HubSpot's id for the action execution; it keys the send, so a redelivery is stored once.
    pub callback_id: String,
    /// The linehub account to send from.
    pub account_id: String,
    /// The HubSpot contact.
    pub contact_id: String,
    /// The messages before tokens are filled in.
    pub drafts: Vec<D>,
    /// Deliver without a notification sound.
    pub notification_disabled: bool,
    /// The LINE user to send to, when the request named one (else the contact's `LINE User ID
    /// _N` is read before the first attempt).
    pub recipient: Option<String>,
}

/// A send that is due (`D`: a message draft, see [`NewSend`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DueSend<D> {
    /// Row id.
    pub id: i64,
    /// The action execution to complete, if HubSpot asked through a workflow.
    pub callback_id: Option<String>,
    /// The linehub account to send from.
    pub account_id: String,
    /// The HubSpot contact.
    pub contact_id: String,
    /// The messages before tokens are filled in.
    pub drafts: Vec<D>,
    /// Deliver without a notification sound.
    pub notification_disabled: bool,
    /// `X-Line-Retry-Key` of every attempt.
    pub retry_key: String,
    /// Fixed before the first attempt: the LINE user and the rendered messages.
    pub prepared: Option<(String, Vec<Value>)>,
    /// The LINE user the request named, if any (see [`NewSend::recipient`]).
    pub recipient: Option<String>,
    /// Attempts made so far.
    pub attempts: i64,
    /// When the first attempt was made (ms).
    pub first_attempt_at: Option<i64>,
    /// When HubSpot asked for it (ms).
    pub created_at: i64,
}

/// A send as `linehub sends` and tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRow {
    /// Row id.
    pub id: i64,
    /// The workflow action execution, if any.
    pub callback_id: Option<String>,
    /// The account.
    pub account_id: String,
    /// The contact.
    pub contact_id: String,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// LINE's request id once sent.
    pub request_id: Option<String>,
    /// Why it failed, or the last transient error.
    pub error: Option<String>,
}

impl Store {
    /// Stores `request` (once per callback id), with its retry key, due at `now`.
    pub async fn send_insert<D: Serialize + Send + 'static>(
        &self,
        request: NewSend<D>,
        now: i64,
    ) -> Result<Stored, StoreError> {
        self.write(move |conn| {
            let existing: Option<i64> = conn
                .query_row("SELECT id FROM sends WHERE callback_id = ?1", [&request.callback_id], |r| r.get(0))
                .optional()?;
            if let Some(id) = existing {
                return Ok(Stored::Duplicate(id));
            }
            let drafts = serde_json::to_string(&request.drafts)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            conn.execute(
                "INSERT INTO sends (origin, callback_id, account_id, contact_id, drafts, notification_disabled,
                                    retry_key, next_attempt_at, created_at, user_id)
                 VALUES ('workflow', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
                params![
                    request.callback_id,
                    request.account_id,
                    request.contact_id,
                    drafts,
                    request.notification_disabled,
                    super::retry_key::retry_key(),
                    now,
                    request.recipient
                ],
            )?;
            Ok(Stored::New(conn.last_insert_rowid()))
        })
        .await
    }

    /// Pending sends due at `now`, oldest first, at most `limit`.
    pub async fn sends_due<D: DeserializeOwned + Send + 'static>(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DueSend<D>>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, callback_id, account_id, contact_id, drafts, notification_disabled, retry_key,
                        user_id, payload, attempts, first_attempt_at, created_at
                 FROM sends WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now, limit as i64], |r| {
                let drafts: String = r.get(4)?;
                let user: Option<String> = r.get(7)?;
                let payload: Option<String> = r.get(8)?;
                Ok(DueSend {
                    id: r.get(0)?,
                    callback_id: r.get(1)?,
                    account_id: r.get(2)?,
                    contact_id: r.get(3)?,
                    drafts: serde_json::from_str(&drafts).map_err(|e| json_error(4, e))?,
                    notification_disabled: r.get(5)?,
                    retry_key: r.get(6)?,
                    prepared: match (&user, payload) {
                        (Some(u), Some(p)) => {
                            Some((u.clone(), serde_json::from_str(&p).map_err(|e| json_error(8, e))?))
                        }
                        _ => None,
                    },
                    recipient: user,
                    attempts: r.get(9)?,
                    first_attempt_at: r.get(10)?,
                    created_at: r.get(11)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// When the next pending send falls due, if any.
    pub async fn sends_next_due(&self) -> Result<Option<i64>, StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT MIN(next_attempt_at) FROM sends WHERE state = 'pending'", [], |r| r.get(0))
        })
        .await
    }

    /// Fixes the recipient and rendered messages of sends before their first attempt:
    /// (send id, LINE user, messages).
    pub async fn send_prepare(&self, sends: Vec<(i64, String, Vec<Value>)>) -> Result<(), StoreError> {
        if sends.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached("UPDATE sends SET user_id = ?2, payload = ?3 WHERE id = ?1")?;
            for (id, user, payload) in sends {
                let payload = serde_json::to_string(&payload)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                stmt.execute(params![id, user, payload])?;
            }
            Ok(())
        })
        .await
    }

    /// Records that an attempt is about to be made (durably, before it is).
    pub async fn send_attempt(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE sends SET attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?2)
                 WHERE id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
        .await
    }

    /// Tries send `id` again at `at`, remembering why it has not gone yet.
    pub async fn send_postpone(&self, id: i64, at: i64, error: String) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute("UPDATE sends SET next_attempt_at = ?2, error = ?3 WHERE id = ?1", params![id, at, error])?;
            Ok(())
        })
        .await
    }

    /// Ends send `id` as sent (`request_id`) or failed (`error`), queueing `ops` with it.
    pub async fn send_finish(
        &self,
        id: i64,
        outcome: Result<String, String>,
        ops: Vec<Op>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            let (state, request_id, error) = match outcome {
                Ok(request_id) => ("sent", Some(request_id), None),
                Err(error) => ("failed", None, Some(error)),
            };
            let changed = conn.execute(
                "UPDATE sends SET state = ?2, request_id = ?3, error = ?4, finished_at = ?5
                 WHERE id = ?1 AND state = 'pending'",
                params![id, state, request_id, error, now],
            )?;
            if changed == 1 {
                outbox::push(conn, &ops, now)?;
            }
            Ok(())
        })
        .await
    }

    /// The notes asked for or made for `ids`, by send id (absent: never asked for).
    pub async fn send_notes(&self, ids: Vec<i64>) -> Result<HashMap<i64, Requested>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT note_id FROM sends WHERE id = ?1 AND (note_id IS NOT NULL OR note_asked = 1)",
            )?;
            let mut out = HashMap::new();
            for id in ids {
                if let Some(note) = stmt.query_row([id], |r| r.get::<_, Option<String>>(0)).optional()? {
                    out.insert(id, Requested::from_id(note));
                }
            }
            Ok(out)
        })
        .await
    }

    /// Remembers, before asking HubSpot, that the notes of these sends are being asked for.
    pub async fn ask_send_notes(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached("UPDATE sends SET note_asked = 1 WHERE id = ?1")?;
            for id in ids {
                stmt.execute([id])?;
            }
            Ok(())
        })
        .await
    }

    /// Records the notes HubSpot made (or that were found) for sends, finishing `done` outbox
    /// rows, in one transaction.
    pub async fn record_send_notes(&self, notes: Vec<(i64, String)>, done: Vec<i64>) -> Result<(), StoreError> {
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached("UPDATE sends SET note_id = ?2, note_asked = 1 WHERE id = ?1")?;
            for (id, note) in notes {
                stmt.execute(params![id, note])?;
            }
            let mut stmt = conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
            for row in done {
                stmt.execute([row])?;
            }
            Ok(())
        })
        .await
    }

    /// Of `ids`, the sends whose action completion was asked for before.
    pub async fn completions_asked(&self, ids: Vec<i64>) -> Result<HashSet<i64>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT completion_asked FROM sends WHERE id = ?1")?;
            let mut out = HashSet::new();
            for id in ids {
                if stmt.query_row([id], |r| r.get::<_, bool>(0)).optional()? == Some(true) {
                    out.insert(id);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Remembers, before asking, that the completion of `ids` is being asked for.
    pub async fn ask_completions(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached("UPDATE sends SET completion_asked = 1 WHERE id = ?1")?;
            for id in ids {
                stmt.execute([id])?;
            }
            Ok(())
        })
        .await
    }

    /// Sends, newest first, at most `limit`.
    pub async fn sends(&self, limit: usize) -> Result<Vec<SendRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, callback_id, account_id, contact_id, state, attempts, request_id, error
                 FROM sends ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| {
                Ok(SendRow {
                    id: r.get(0)?,
                    callback_id: r.get(1)?,
                    account_id: r.get(2)?,
                    contact_id: r.get(3)?,
                    state: r.get(4)?,
                    attempts: r.get(5)?,
                    request_id: r.get(6)?,
                    error: r.get(7)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

fn json_error(column: usize, e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}
