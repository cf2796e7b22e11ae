//! Account serials: each LINE account gets a number N the first time it is seen.
//!
//! N names the account's HubSpot properties (`line_user_id_N`, …), so it must never change: it is
//! assigned once, stored, never reused (AUTOINCREMENT), and does not depend on the order of the
//! accounts in the YAML. A removed account keeps its row, so adding it back restores its number.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

impl Store {
    /// Returns the serial of each account id, assigning new ones (first seen at `now`) in the
    /// order given.
    pub async fn ensure_serials(&self, ids: Vec<String>, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        self.write(move |conn| {
            // Look before inserting: a conflicting INSERT would still advance AUTOINCREMENT and
            // leave gaps in the numbering.
            let mut select = conn.prepare_cached("SELECT serial FROM accounts WHERE account_id = ?1")?;
            let mut insert = conn.prepare_cached("INSERT INTO accounts (account_id, first_seen) VALUES (?1, ?2)")?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let serial = match select.query_row([&id], |r| r.get(0)).optional()? {
                    Some(serial) => serial,
                    None => {
                        insert.execute(params![id, now])?;
                        conn.last_insert_rowid()
                    }
                };
                out.push((id, serial));
            }
            Ok(out)
        })
        .await
    }

    /// Every account ever seen with its serial, including removed ones.
    pub async fn serials(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT account_id, serial FROM accounts ORDER BY serial")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }
}
