//! Friend state per account and user, and the one transaction that applies inbox events.
//!
//! Applying an event means: store the new friend state, queue its HubSpot writes in the outbox,
//! and mark the event applied (or skipped, with the reason). These happen together or not at
//! all, so a crash at any point neither loses an event's writes nor queues them twice.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::outbox::{self, Op};
use super::{Store, StoreError};
use crate::sync::FriendState;

/// The outcome of processing one inbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Its writes are queued.
    Applied,
    /// It changes nothing; why.
    Skipped(String),
}

/// Everything one batch of inbox processing commits.
#[derive(Debug, Default)]
pub struct AppliedBatch {
    /// New friend states, by (serial, user).
    pub friends: HashMap<(i64, String), FriendState>,
    /// Writes to queue, in order.
    pub ops: Vec<Op>,
    /// Each processed event and what became of it.
    pub events: Vec<(String, EventOutcome)>,
}

/// Stores friend states inside an existing write transaction.
pub fn put_friends<'a>(
    conn: &rusqlite::Connection,
    friends: impl Iterator<Item = (&'a (i64, String), &'a FriendState)>,
) -> rusqlite::Result<()> {
    let mut friend = conn.prepare_cached(
        "INSERT INTO friends (serial, user_id, follow_ts, response_ts, synced_on, profile_fetched, following,
                              display_name, picture_url)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (serial, user_id) DO UPDATE SET follow_ts = excluded.follow_ts,
           response_ts = excluded.response_ts, synced_on = excluded.synced_on,
           profile_fetched = excluded.profile_fetched, following = excluded.following,
           display_name = excluded.display_name, picture_url = excluded.picture_url",
    )?;
    for ((serial, user), s) in friends {
        friend.execute(params![
            serial,
            user,
            s.follow_ts,
            s.response_ts,
            s.synced_on,
            s.profile_fetched,
            s.following,
            s.name,
            s.picture
        ])?;
    }
    Ok(())
}

/// A friend state from a row of `follow_ts, response_ts, synced_on, profile_fetched, following,
/// display_name, picture_url`.
pub(super) fn friend_state(r: &rusqlite::Row<'_>) -> rusqlite::Result<FriendState> {
    Ok(FriendState {
        follow_ts: r.get(0)?,
        response_ts: r.get(1)?,
        synced_on: r.get(2)?,
        profile_fetched: r.get(3)?,
        following: r.get(4)?,
        name: r.get(5)?,
        picture: r.get(6)?,
    })
}

/// Stores friend states observed by a pipeline step inside an existing write transaction,
/// merged with what is stored now, so an event applied after the step read the state is never
/// undone: per field the newer observation wins (the follow state by `follow_ts`, a tie going
/// to the page; `response_ts` the later; a sync date and a profile read, once known, stay).
/// Returns the friends whose stored follow state was newer than the page's: the page's
/// `Follow` writes for them are out of date.
pub fn merge_friends<'a>(
    conn: &rusqlite::Connection,
    friends: impl Iterator<Item = (&'a (i64, String), &'a FriendState)>,
) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut read = conn.prepare_cached(
        "SELECT follow_ts, response_ts, synced_on, profile_fetched, following, display_name, picture_url
         FROM friends WHERE serial = ?1 AND user_id = ?2",
    )?;
    let mut merged = Vec::new();
    let mut stale = Vec::new();
    for (key, page) in friends {
        let stored = read.query_row(params![key.0, key.1], friend_state).optional()?;
        let Some(stored) = stored else {
            merged.push((key, page.clone()));
            continue;
        };
        let mut next = page.clone();
        if stored.follow_ts.is_some_and(|t| page.follow_ts.is_none_or(|p| t > p)) {
            next.follow_ts = stored.follow_ts;
            next.following = stored.following;
            stale.push(key.clone());
        }
        next.response_ts = stored.response_ts.max(page.response_ts);
        next.synced_on = stored.synced_on.or(next.synced_on);
        next.profile_fetched |= stored.profile_fetched;
        if next.name.is_none() {
            next.name = stored.name;
            next.picture = stored.picture;
        }
        merged.push((key, next));
    }
    put_friends(conn, merged.iter().map(|(k, s)| (*k, s)))?;
    Ok(stale)
}

impl Store {
    /// Pending inbox events in the order they are applied: by event time, then arrival.
    pub async fn inbox_pending(&self, limit: usize) -> Result<Vec<(String, String, String)>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT webhook_event_id, account_id, body FROM inbox WHERE state = 'pending'
                 ORDER BY event_ts, received_at, webhook_event_id LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
        .await
    }

    /// What linehub knows about these friends (default for unknown ones).
    pub async fn friend_states(
        &self,
        keys: Vec<(i64, String)>,
    ) -> Result<HashMap<(i64, String), FriendState>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT follow_ts, response_ts, synced_on, profile_fetched, following, display_name, picture_url
                 FROM friends WHERE serial = ?1 AND user_id = ?2",
            )?;
            let mut out = HashMap::new();
            for (serial, user) in keys {
                let state = stmt.query_row(params![serial, user], friend_state).optional()?.unwrap_or_default();
                out.insert((serial, user), state);
            }
            Ok(out)
        })
        .await
    }

    /// What linehub knows of each of these users on every account, by user: (serial, state).
    pub async fn friends_of_users(
        &self,
        users: Vec<String>,
    ) -> Result<HashMap<String, Vec<(i64, FriendState)>>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT follow_ts, response_ts, synced_on, profile_fetched, following, display_name, picture_url,
                        serial
                 FROM friends WHERE user_id = ?1 ORDER BY serial",
            )?;
            let mut out = HashMap::new();
            for user in users {
                let rows = stmt.query_map([&user], |r| Ok((r.get::<_, i64>(7)?, friend_state(r)?)))?;
                out.insert(user, rows.collect::<Result<Vec<_>, _>>()?);
            }
            Ok(out)
        })
        .await
    }

    /// Commits one batch: friend states, outbox rows (due at `now`) and inbox states, atomically.
    pub async fn apply_batch(&self, batch: AppliedBatch, now: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            put_friends(conn, batch.friends.iter())?;
            outbox::push(conn, &batch.ops, now)?;
            let mut mark = conn.prepare_cached("UPDATE inbox SET state = ?2, note = ?3 WHERE webhook_event_id = ?1")?;
            for (id, outcome) in &batch.events {
                match outcome {
                    EventOutcome::Applied => mark.execute(params![id, "applied", Option::<String>::None])?,
                    EventOutcome::Skipped(why) => mark.execute(params![id, "skipped", why])?,
                };
            }
            Ok(())
        })
        .await
    }

    /// Friends of account `serial` that are linked to a contact, by user id after `after`:
    /// (LINE user, contact id), at most `limit`.
    pub async fn linked_friends(
        &self,
        serial: i64,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT f.user_id, l.contact_id FROM friends f JOIN contact_links l ON l.user_id = f.user_id
                 WHERE f.serial = ?1 AND f.user_id > ?2 ORDER BY f.user_id LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(params![serial, after.unwrap_or_default(), limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }
}
