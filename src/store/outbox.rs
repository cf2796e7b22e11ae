//! The outbox: every HubSpot write linehub owes, until HubSpot has taken it.
//!
//! Rows are added in the same transaction that marks their inbox event applied, so an event
//! leads to its writes exactly once. Each row carries its own retry state (`attempts`,
//! `next_attempt_at`, `last_error`); success deletes it; a row that keeps failing for a
//! permanent reason is marked dead, where `linehub outbox list` shows it and `linehub outbox
//! retry` puts it back. Rows with the same `key` (one contact, one task) are coalesced into one
//! write by the writer, in `id` order, so later values win.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// A HubSpot write linehub owes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Set `properties` on the contact of LINE user `user_id`; create the contact if `create`
    /// and it does not exist.
    Contact {
        /// The LINE user.
        user_id: String,
        /// Internal property name → value.
        properties: BTreeMap<String, String>,
        /// Whether a missing contact is created.
        create: bool,
    },
    /// Set `properties` on contact `contact_id` (a write not tied to a LINE user, such as the
    /// contact's link token). Never creates a contact: one deleted meanwhile is skipped.
    ContactById {
        /// The contact's record id.
        contact_id: String,
        /// Internal property name → value.
        properties: BTreeMap<String, String>,
    },
    /// Make sure the contact's owner has one open task to answer the user on LINE.
    OwnerTask {
        /// The LINE user.
        user_id: String,
        /// The account the message came to (for the task text).
        account: String,
        /// The message awaiting an answer.
        summary: String,
    },
    /// Log a LINE message linehub sent on the contact's timeline, as a note.
    SendNote {
        /// The send (see [`crate::store::sends`]); at most one note per send.
        send_id: i64,
        /// The contact.
        contact_id: String,
        /// The note's text.
        body: String,
    },
    /// Give the contact a LINE Login resolves to the user's LINE identity (see
    /// [`crate::sync::login`]): found by link token or email, the placeholder merged into it,
    /// or made.
    LinkLogin {
        /// The login attempt's state: one row per login.
        login: String,
        /// The account logged in to.
        account: String,
        /// The LINE user LINE vouched for.
        user_id: String,
        /// The LINE properties to set (`LINE User ID/Name/Picture/Follow/ID Sync Date _N`).
        properties: BTreeMap<String, String>,
        /// The email LINE vouched for, normalised.
        email: Option<String>,
        /// The contact a link token named.
        token_contact: Option<String>,
    },
    /// Tell HubSpot that a "Push LINE message" workflow action has finished.
    CompleteAction {
        /// The send it asked for.
        send_id: i64,
        /// HubSpot's id of the action execution.
        callback_id: String,
        /// The action's output fields, `hs_execution_state` included.
        outputs: BTreeMap<String, String>,
    },
}

impl Op {
    /// The coalescing key: rows with the same key become one write.
    pub fn key(&self) -> String {
        match self {
            Op::Contact { user_id, .. } => format!("contact:{user_id}"),
            Op::ContactById { contact_id, .. } => format!("contact-id:{contact_id}"),
            Op::OwnerTask { user_id, .. } => format!("task:{user_id}"),
            Op::SendNote { send_id, .. } => format!("note:{send_id}"),
            Op::CompleteAction { callback_id, .. } => format!("callback:{callback_id}"),
            Op::LinkLogin { login, .. } => format!("login:{login}"),
        }
    }
}

/// An outbox row as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Row id; also the order rows were written in.
    pub id: i64,
    /// Coalescing key.
    pub key: String,
    /// The write.
    pub op: Op,
    /// Failed attempts so far.
    pub attempts: i64,
    /// When the row may be tried again (ms).
    pub next_attempt_at: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Given up on until an operator retries it.
    pub dead: bool,
}

/// Adds `ops` to the outbox inside an existing write transaction.
pub fn push(conn: &Connection, ops: &[Op], now: i64) -> rusqlite::Result<()> {
    let mut stmt =
        conn.prepare_cached("INSERT INTO outbox (key, op, created_at, next_attempt_at) VALUES (?1, ?2, ?3, ?3)")?;
    for op in ops {
        let json = serde_json::to_string(op).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        stmt.execute(params![op.key(), json, now])?;
    }
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    let json: String = r.get(2)?;
    let op = serde_json::from_str(&json)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(OutboxRow {
        id: r.get(0)?,
        key: r.get(1)?,
        op,
        attempts: r.get(3)?,
        next_attempt_at: r.get(4)?,
        last_error: r.get(5)?,
        dead: r.get(6)?,
    })
}

const COLUMNS: &str = "id, key, op, attempts, next_attempt_at, last_error, dead";

impl Store {
    /// Live rows of every key that has a row due at `now`, in id order, at most `limit` keys.
    /// Whole keys are returned, so a coalesced write never skips an older row of its key.
    pub async fn outbox_due(&self, now: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(move |conn| {
            // The oldest due rows name the keys (a bounded scan in id order)…
            let mut due = conn.prepare_cached(
                "SELECT key FROM outbox WHERE dead = 0 AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2",
            )?;
            let mut keys: Vec<String> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            let scanned = due.query_map(params![now, (limit * 16) as i64], |r| r.get::<_, String>(0))?;
            for key in scanned {
                let key = key?;
                if seen.insert(key.clone()) {
                    keys.push(key);
                    if keys.len() == limit {
                        break;
                    }
                }
            }
            // …and each key is read whole, due or not.
            let mut of_key =
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE dead = 0 AND key = ?1 ORDER BY id"))?;
            let mut rows = Vec::new();
            for key in keys {
                for r in of_key.query_map([key], row)? {
                    rows.push(r?);
                }
            }
            rows.sort_by_key(|r| r.id);
            Ok(rows)
        })
        .await
    }

    /// Deletes rows HubSpot has taken and records the contacts learned, in one transaction.
    pub async fn outbox_done_linking(
        &self,
        ids: Vec<i64>,
        links: Vec<(String, String)>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            super::contacts::link(conn, &links, now)?;
            let mut stmt = conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
            for id in ids {
                stmt.execute([id])?;
            }
            Ok(())
        })
        .await
    }

    /// When the next live row falls due, if any.
    pub async fn outbox_next_due(&self) -> Result<Option<i64>, StoreError> {
        self.read(|conn| conn.query_row("SELECT MIN(next_attempt_at) FROM outbox WHERE dead = 0", [], |r| r.get(0)))
            .await
    }

    /// Deletes rows HubSpot has taken.
    pub async fn outbox_done(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
            for id in ids {
                stmt.execute([id])?;
            }
            Ok(())
        })
        .await
    }

    /// Records a failed attempt: try again at `next_attempt_at`, or mark dead.
    pub async fn outbox_failed(
        &self,
        ids: Vec<i64>,
        error: String,
        next_attempt_at: i64,
        dead: bool,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3, dead = ?4 WHERE id = ?1",
            )?;
            for id in ids {
                stmt.execute(params![id, next_attempt_at, error, dead])?;
            }
            Ok(())
        })
        .await
    }

    /// Moves rows to be due at `at` without counting an attempt (rate limit, portal-wide pause).
    pub async fn outbox_postpone(&self, ids: Vec<i64>, at: i64, reason: String) -> Result<(), StoreError> {
        self.write(move |conn| {
            let mut stmt =
                conn.prepare_cached("UPDATE outbox SET next_attempt_at = ?2, last_error = ?3 WHERE id = ?1")?;
            for id in ids {
                stmt.execute(params![id, at, reason])?;
            }
            Ok(())
        })
        .await
    }

    /// Every row, or only dead ones, for `linehub outbox list`.
    pub fn outbox_list_blocking(&self, dead_only: bool) -> Result<Vec<OutboxRow>, StoreError> {
        self.read_blocking(|conn| {
            let mut stmt =
                conn.prepare(&format!("SELECT {COLUMNS} FROM outbox WHERE dead = 1 OR ?1 = 0 ORDER BY id"))?;
            let rows = stmt.query_map([dead_only], row)?;
            rows.collect()
        })
    }

    /// Puts dead rows back in the queue, due now (`ids` empty = all dead rows). Returns how many.
    pub async fn outbox_retry(&self, ids: Vec<i64>, now: i64) -> Result<usize, StoreError> {
        self.write(move |conn| {
            if ids.is_empty() {
                return conn
                    .execute("UPDATE outbox SET dead = 0, attempts = 0, next_attempt_at = ?1 WHERE dead = 1", [now]);
            }
            let mut stmt = conn.prepare_cached(
                "UPDATE outbox SET dead = 0, attempts = 0, next_attempt_at = ?2 WHERE dead = 1 AND id = ?1",
            )?;
            let mut n = 0;
            for id in ids {
                n += stmt.execute(params![id, now])?;
            }
            Ok(n)
        })
        .await
    }

    /// Which of `keys` still have a live (not dead) row.
    pub async fn outbox_live_keys(&self, keys: Vec<String>) -> Result<std::collections::HashSet<String>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT 1 FROM outbox WHERE dead = 0 AND key = ?1 LIMIT 1")?;
            let mut live = std::collections::HashSet::new();
            for key in keys {
                if stmt.exists([&key])? {
                    live.insert(key);
                }
            }
            Ok(live)
        })
        .await
    }

    /// The value property `property` of each of `contacts` will have once their live
    /// [`Op::ContactById`] rows are written (the latest row wins); contacts without one are left
    /// out. A step reads it beside HubSpot's value, so it sees what an earlier step queued.
    pub async fn pending_contact_values(
        &self,
        contacts: Vec<String>,
        property: String,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE dead = 0 AND key = ?1 ORDER BY id"))?;
            let mut out = BTreeMap::new();
            for contact in contacts {
                let op = Op::ContactById { contact_id: contact.clone(), properties: BTreeMap::new() };
                for r in stmt.query_map([op.key()], row)? {
                    if let Op::ContactById { properties, .. } = r?.op
                        && let Some(value) = properties.get(&property)
                    {
                        out.insert(contact.clone(), value.clone());
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// Number of live (not dead) rows.
    pub async fn outbox_len(&self) -> Result<u64, StoreError> {
        self.read(|conn| conn.query_row("SELECT COUNT(*) FROM outbox WHERE dead = 0", [], |r| r.get::<_, i64>(0)))
            .await
            .map(|n| u64::try_from(n).unwrap_or(0))
    }
}
