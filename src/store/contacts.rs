//! Which HubSpot contact a LINE user is, and the open task linehub gave its owner.
//!
//! The link is learned from HubSpot's answers (a create's id, a 409's "Existing ID"), never from
//! search, whose index lags writes. A link is dropped when HubSpot says the contact is gone, so
//! the next follow or message recreates it.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::{Requested, Store, StoreError};

/// Records (or replaces) links, made at `now`, inside an existing write transaction.
pub(super) fn link(conn: &rusqlite::Connection, links: &[(String, String)], now: i64) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO contact_links (user_id, contact_id, linked_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id) DO UPDATE SET contact_id = excluded.contact_id, linked_at = excluded.linked_at",
    )?;
    for (user, contact) in links {
        stmt.execute(params![user, contact, now])?;
    }
    Ok(())
}

impl Store {
    /// The contact ids of these LINE users, where known.
    pub async fn contact_links(&self, user_ids: Vec<String>) -> Result<HashMap<String, String>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT contact_id FROM contact_links WHERE user_id = ?1")?;
            let mut out = HashMap::new();
            for u in user_ids {
                if let Some(c) = stmt.query_row([&u], |r| r.get::<_, String>(0)).optional()? {
                    out.insert(u, c);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Records (or replaces) the contact of each LINE user, learned at `now`.
    pub async fn link_contacts(&self, links: Vec<(String, String)>, now: i64) -> Result<(), StoreError> {
        if links.is_empty() {
            return Ok(());
        }
        self.write(move |conn| link(conn, &links, now)).await
    }

    /// Forgets the contacts of these users (HubSpot no longer has them).
    pub async fn unlink_contacts(&self, user_ids: Vec<String>) -> Result<(), StoreError> {
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached("DELETE FROM contact_links WHERE user_id = ?1")?;
            for u in user_ids {
                stmt.execute([u])?;
            }
            Ok(())
        })
        .await
    }

    /// The task linehub last asked for, for each of these contacts that has one.
    pub async fn owner_tasks(&self, contact_ids: Vec<String>) -> Result<HashMap<String, Requested>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT task_id FROM owner_tasks WHERE contact_id = ?1")?;
            let mut out = HashMap::new();
            for c in contact_ids {
                if let Some(t) = stmt.query_row([&c], |r| r.get::<_, Option<String>>(0)).optional()? {
                    out.insert(c, Requested::from_id(t));
                }
            }
            Ok(out)
        })
        .await
    }

    /// Remembers, before asking HubSpot, that a task for `contact` is being asked for at `now`:
    /// if the answer never comes, the next pass looks for the task instead of making another.
    pub async fn ask_owner_task(&self, contact: String, now: i64) -> Result<(), StoreError> {
        self.write(move |conn| upsert_task(conn, &contact, None, now)).await
    }

    /// Records the task HubSpot made (or that was found) for each contact, and deletes the outbox
    /// rows that asked for them, in one transaction.
    pub async fn record_owner_tasks(
        &self,
        tasks: Vec<(String, String)>,
        done_rows: Vec<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            for (contact, task) in tasks {
                upsert_task(conn, &contact, Some(&task), now)?;
            }
            let mut del = conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
            for id in done_rows {
                del.execute([id])?;
            }
            Ok(())
        })
        .await
    }
}

/// Sets the task of `contact`: `None` while it is asked for and its id unknown.
fn upsert_task(conn: &rusqlite::Connection, contact: &str, task: Option<&str>, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO owner_tasks (contact_id, task_id, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (contact_id) DO UPDATE SET task_id = excluded.task_id, created_at = excluded.created_at",
    )?
    .execute(params![contact, task, now])
    .map(|_| ())
}
