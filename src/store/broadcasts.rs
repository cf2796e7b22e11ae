//! Broadcasts: recipients, chunks with their retry keys, and send holds.
//!
//! Broadcasts are planned before anything is sent: recipients are stored, then cut into chunks
//! of at most the multicast limit, each with its `X-Line-Retry-Key`, in one transaction. A chunk
//! is marked sent in the same transaction that queues its recipients' "sent" records (see
//! [`super::pipelines::PipelineCommit`]), so a resumed run sends only chunks not known to be
//! sent, and resends an uncertain one with its original key. An account whose sends would
//! exceed its monthly message quota is held until they fit.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::pipelines::RunLease;
use super::retry_key::retry_key;
use super::{Store, StoreError};

/// A planned broadcast chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Its number within the step and account, from 0.
    pub chunk: i64,
    /// The `X-Line-Retry-Key` every attempt carries.
    pub retry_key: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When it was first attempted (ms).
    pub first_attempt_at: Option<i64>,
    /// Its recipients: (LINE user, contact id).
    pub recipients: Vec<(String, String)>,
}

/// Where a broadcast stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastProgress {
    /// Recipients stored.
    pub recipients: u64,
    /// Chunks cut (0 while still planning).
    pub chunks: u64,
    /// Chunks known to be sent.
    pub sent_chunks: u64,
    /// Recipients in chunks known to be sent.
    pub sent_recipients: u64,
    /// Chunks whose outcome is unknown and whose retry key has expired: never resent.
    pub expired_chunks: u64,
}

impl Store {
    /// Stores broadcast recipients found on one page (a user already stored is kept once) and
    /// the checkpoint after that page.
    pub async fn broadcast_add_recipients(
        &self,
        lease: RunLease,
        step: i64,
        account: String,
        recipients: Vec<(String, String)>,
        checkpoint: String,
        now: i64,
    ) -> Result<(), StoreError> {
        let run_id = lease.run_id;
        self.write_as_run_owner(run_id, lease.owner, move |conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO broadcast_recipients (run_id, step, account_id, user_id, contact_id)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )?;
            for (user, contact) in &recipients {
                insert.execute(params![run_id, step, account, user, contact])?;
            }
            conn.execute(
                "UPDATE pipeline_runs SET checkpoint = ?2, heartbeat_at = ?3 WHERE id = ?1",
                params![run_id, checkpoint, now],
            )?;
            Ok(())
        })
        .await
    }

    /// Cuts the stored recipients into chunks of at most `size`, each with a fresh retry key,
    /// and records the checkpoint, in one transaction. Returns the number of chunks.
    pub async fn broadcast_make_chunks(
        &self,
        lease: RunLease,
        step: i64,
        account: String,
        size: usize,
        checkpoint: String,
        now: i64,
    ) -> Result<u64, StoreError> {
        let run_id = lease.run_id;
        self.write_as_run_owner(run_id, lease.owner, move |conn| {
            let users: Vec<String> = {
                let mut stmt = conn.prepare(
                    "SELECT user_id FROM broadcast_recipients WHERE run_id = ?1 AND step = ?2 AND account_id = ?3
                     ORDER BY rowid",
                )?;
                let rows = stmt.query_map(params![run_id, step, account], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut assign = conn.prepare_cached(
                "UPDATE broadcast_recipients SET chunk = ?5 WHERE run_id = ?1 AND step = ?2 AND account_id = ?3
                 AND user_id = ?4",
            )?;
            let mut chunks = 0u64;
            for (i, group) in users.chunks(size.max(1)).enumerate() {
                for user in group {
                    assign.execute(params![run_id, step, account, user, i as i64])?;
                }
                conn.execute(
                    "INSERT INTO broadcast_chunks (run_id, step, account_id, chunk, retry_key, recipients)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![run_id, step, account, i as i64, retry_key(), group.len() as i64],
                )?;
                chunks += 1;
            }
            conn.execute(
                "UPDATE pipeline_runs SET checkpoint = ?2, heartbeat_at = ?3 WHERE id = ?1",
                params![run_id, checkpoint, now],
            )?;
            Ok(chunks)
        })
        .await
    }

    /// The first chunk not yet sent (nor given up on), with its recipients.
    pub async fn broadcast_next_chunk(
        &self,
        run_id: i64,
        step: i64,
        account: String,
    ) -> Result<Option<Chunk>, StoreError> {
        self.read(move |conn| {
            let head = conn
                .query_row(
                    "SELECT chunk, retry_key, attempts, first_attempt_at FROM broadcast_chunks
                     WHERE run_id = ?1 AND step = ?2 AND account_id = ?3 AND state = 'pending'
                     ORDER BY chunk LIMIT 1",
                    params![run_id, step, account],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((chunk, retry_key, attempts, first_attempt_at)) = head else {
                return Ok(None);
            };
            let mut stmt = conn.prepare_cached(
                "SELECT user_id, contact_id FROM broadcast_recipients
                 WHERE run_id = ?1 AND step = ?2 AND account_id = ?3 AND chunk = ?4 ORDER BY rowid",
            )?;
            let recipients = stmt
                .query_map(params![run_id, step, account, chunk], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Some(Chunk { chunk, retry_key, attempts, first_attempt_at, recipients }))
        })
        .await
    }

    /// Records that a chunk is about to be sent (before the request leaves), as the run's
    /// `owner`: once another owner took the run over it is refused, and nothing is sent.
    pub async fn broadcast_attempt(
        &self,
        lease: RunLease,
        step: i64,
        account: String,
        chunk: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let run_id = lease.run_id;
        self.write_as_run_owner(run_id, lease.owner, move |conn| {
            conn.execute(
                "UPDATE broadcast_chunks SET attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?5)
                 WHERE run_id = ?1 AND step = ?2 AND account_id = ?3 AND chunk = ?4",
                params![run_id, step, account, chunk, now],
            )
            .map(|_| ())
        })
        .await
    }

    /// Records why a chunk's attempt failed; `expired` gives it up for good (its retry key is
    /// too old to resend safely).
    pub async fn broadcast_chunk_failed(
        &self,
        run_id: i64,
        step: i64,
        account: String,
        chunk: i64,
        error: String,
        expired: bool,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE broadcast_chunks SET last_error = ?5, state = CASE WHEN ?6 THEN 'expired' ELSE state END
                 WHERE run_id = ?1 AND step = ?2 AND account_id = ?3 AND chunk = ?4",
                params![run_id, step, account, chunk, error, expired],
            )
            .map(|_| ())
        })
        .await
    }

    /// Where a broadcast stands.
    pub async fn broadcast_progress(
        &self,
        run_id: i64,
        step: i64,
        account: String,
    ) -> Result<BroadcastProgress, StoreError> {
        self.read(move |conn| {
            let recipients: i64 = conn.query_row(
                "SELECT COUNT(*) FROM broadcast_recipients WHERE run_id = ?1 AND step = ?2 AND account_id = ?3",
                params![run_id, step, account],
                |r| r.get(0),
            )?;
            let (chunks, sent_chunks, sent_recipients, expired): (i64, i64, i64, i64) = conn.query_row(
                "SELECT COUNT(*), COALESCE(SUM(state = 'sent'), 0),
                        COALESCE(SUM(CASE WHEN state = 'sent' THEN recipients ELSE 0 END), 0),
                        COALESCE(SUM(state = 'expired'), 0)
                 FROM broadcast_chunks WHERE run_id = ?1 AND step = ?2 AND account_id = ?3",
                params![run_id, step, account],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            Ok(BroadcastProgress {
                recipients: n(recipients),
                chunks: n(chunks),
                sent_chunks: n(sent_chunks),
                sent_recipients: n(sent_recipients),
                expired_chunks: n(expired),
            })
        })
        .await
    }

    /// Recipients waiting in unsent chunks of runs that have not ended, per account.
    pub async fn queued_send_recipients(&self) -> Result<HashMap<String, u64>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT c.account_id, SUM(c.recipients) FROM broadcast_chunks c
                 JOIN pipeline_runs r ON r.id = c.run_id
                 WHERE c.state = 'pending' AND r.state IN ('running', 'failed', 'held')
                 GROUP BY c.account_id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.map(|r| r.map(|(a, n)| (a, u64::try_from(n).unwrap_or(0)))).collect()
        })
        .await
    }

    /// Accounts whose sends are held, with the reason.
    pub async fn send_holds(&self) -> Result<HashMap<String, String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT account_id, reason FROM send_holds")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    /// Holds an account's sends (`Some(reason)`) or releases them (`None`).
    pub async fn set_send_hold(&self, account: String, reason: Option<String>, now: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            match reason {
                Some(reason) => conn.execute(
                    "INSERT INTO send_holds (account_id, reason, held_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (account_id) DO UPDATE SET reason = excluded.reason",
                    params![account, reason, now],
                )?,
                None => conn.execute("DELETE FROM send_holds WHERE account_id = ?1", [account])?,
            };
            Ok(())
        })
        .await
    }
}
