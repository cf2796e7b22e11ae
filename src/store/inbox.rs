//! The inbox: every webhook event linehub has accepted, keyed by LINE's `webhookEventId`.
//!
//! A webhook is answered 200 only after its events are committed here, so this table is the
//! promise that nothing accepted is lost. The key makes redeliveries change nothing. Events keep
//! their raw JSON exactly as LINE sent it; `state` records what processing made of each.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

/// One event as it goes into the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEvent {
    /// LINE's `webhookEventId` (a ULID), or a digest of the raw event when LINE sent none.
    pub webhook_event_id: String,
    /// The config account that received it.
    pub account_id: String,
    /// The event `type`, `unknown` when absent.
    pub event_type: String,
    /// `source.userId`, when present.
    pub user_id: Option<String>,
    /// The event `timestamp` in ms: the order events are applied in.
    pub event_ts: i64,
    /// `deliveryContext.isRedelivery`.
    pub redelivery: bool,
    /// The event's raw JSON.
    pub body: String,
}

/// What one insert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxOutcome {
    /// Events that were new.
    pub stored: usize,
    /// Events already in the inbox (redeliveries); left untouched.
    pub duplicates: usize,
}

/// An inbox row as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRow {
    /// The event as stored.
    pub event: InboxEvent,
    /// When linehub committed it (ms).
    pub received_at: i64,
    /// `pending`, `applied` or `skipped`.
    pub state: String,
    /// Why it was skipped, or the last processing error.
    pub note: Option<String>,
}

impl Store {
    /// Commits `events`, received at `now`, durably; events already present are counted as
    /// duplicates and not changed.
    pub async fn inbox_insert(&self, events: Vec<InboxEvent>, now: i64) -> Result<InboxOutcome, StoreError> {
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(
                "INSERT INTO inbox (webhook_event_id, account_id, event_type, user_id, event_ts, received_at, redelivery, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (webhook_event_id) DO NOTHING",
            )?;
            let mut outcome = InboxOutcome::default();
            for e in &events {
                let n = stmt.execute(params![
                    e.webhook_event_id,
                    e.account_id,
                    e.event_type,
                    e.user_id,
                    e.event_ts,
                    now,
                    e.redelivery,
                    e.body
                ])?;
                if n == 1 {
                    outcome.stored += 1;
                } else {
                    outcome.duplicates += 1;
                }
            }
            Ok(outcome)
        })
        .await
    }

    /// Number of events in the inbox.
    pub async fn inbox_len(&self) -> Result<u64, StoreError> {
        self.read(|conn| conn.query_row("SELECT COUNT(*) FROM inbox", [], |r| r.get::<_, i64>(0)))
            .await
            .map(|n| u64::try_from(n).unwrap_or(0))
    }

    /// Answers when a read connection works: a health check that costs the same whatever the
    /// store holds.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    /// One event by its `webhookEventId`.
    pub async fn inbox_get(&self, webhook_event_id: &str) -> Result<Option<InboxRow>, StoreError> {
        let id = webhook_event_id.to_string();
        self.read(move |conn| {
            conn.query_row(
                "SELECT webhook_event_id, account_id, event_type, user_id, event_ts, redelivery, body, received_at, state, note
                 FROM inbox WHERE webhook_event_id = ?1",
                [id],
                |r| {
                    Ok(InboxRow {
                        event: InboxEvent {
                            webhook_event_id: r.get(0)?,
                            account_id: r.get(1)?,
                            event_type: r.get(2)?,
                            user_id: r.get(3)?,
                            event_ts: r.get(4)?,
                            redelivery: r.get(5)?,
                            body: r.get(6)?,
                        },
                        received_at: r.get(7)?,
                        state: r.get(8)?,
                        note: r.get(9)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    /// All `webhookEventId`s in the inbox (for checks after a crash).
    pub async fn inbox_ids(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT webhook_event_id FROM inbox")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }
}
