//! Schema migrations, applied in order at open and recorded in `PRAGMA user_version`.
//!
//! Append new steps at the end; never edit one that has shipped.

use rusqlite::Connection;

/// Each entry moves the schema from version `i` to `i + 1`.
const STEPS: &[&str] = &[
    // 1: the inbox of webhook events and the account serials.
    "CREATE TABLE inbox (
        webhook_event_id TEXT PRIMARY KEY,
        account_id       TEXT    NOT NULL,
        event_type       TEXT    NOT NULL,
        user_id          TEXT,
        event_ts         INTEGER NOT NULL,
        received_at      INTEGER NOT NULL,
        redelivery       INTEGER NOT NULL DEFAULT 0,
        body             TEXT    NOT NULL,
        state            TEXT    NOT NULL DEFAULT 'pending',
        note             TEXT
    ) STRICT;
    CREATE INDEX inbox_pending ON inbox (event_ts) WHERE state = 'pending';
    CREATE TABLE accounts (
        serial      INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id  TEXT    NOT NULL UNIQUE,
        first_seen  INTEGER NOT NULL
    );",
    // 2: contact sync: what linehub knows per friend, which contact a LINE user is, the outbox
    // of HubSpot writes, and the open task per contact.
    "CREATE TABLE friends (
        serial          INTEGER NOT NULL,
        user_id         TEXT    NOT NULL,
        follow_ts       INTEGER,
        response_ts     INTEGER,
        synced_on       TEXT,
        profile_fetched INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (serial, user_id)
    ) STRICT;
    CREATE TABLE contact_links (
        user_id    TEXT PRIMARY KEY,
        contact_id TEXT    NOT NULL,
        linked_at  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        key             TEXT    NOT NULL,
        op              TEXT    NOT NULL,
        created_at      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        dead            INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX outbox_due ON outbox (dead, next_attempt_at);
    CREATE INDEX outbox_key ON outbox (key);
    CREATE TABLE owner_tasks (
        contact_id TEXT PRIMARY KEY,
        task_id    TEXT    NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;",
    // 3: pipelines: whether a friend follows (for reconciling), pipeline runs with their
    // checkpoints, broadcast recipients and chunks (retry keys stored before the first send),
    // and accounts whose sends are held for their message quota.
    "ALTER TABLE friends ADD COLUMN following INTEGER;
    CREATE TABLE pipeline_runs (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        pipeline     TEXT    NOT NULL,
        spec_hash    TEXT    NOT NULL,
        dry_run      INTEGER NOT NULL,
        state        TEXT    NOT NULL,
        started_at   INTEGER NOT NULL,
        ended_at     INTEGER,
        heartbeat_at INTEGER NOT NULL,
        owner        TEXT    NOT NULL,
        counts       TEXT    NOT NULL DEFAULT '{}',
        error        TEXT,
        checkpoint   TEXT
    ) STRICT;
    CREATE INDEX pipeline_runs_by_name ON pipeline_runs (pipeline, id);
    CREATE TABLE broadcast_recipients (
        run_id     INTEGER NOT NULL,
        step       INTEGER NOT NULL,
        account_id TEXT    NOT NULL,
        user_id    TEXT    NOT NULL,
        contact_id TEXT    NOT NULL,
        chunk      INTEGER,
        PRIMARY KEY (run_id, step, account_id, user_id)
    ) STRICT;
    CREATE INDEX broadcast_recipients_by_chunk ON broadcast_recipients (run_id, step, account_id, chunk);
    CREATE TABLE broadcast_chunks (
        run_id           INTEGER NOT NULL,
        step             INTEGER NOT NULL,
        account_id       TEXT    NOT NULL,
        chunk            INTEGER NOT NULL,
        retry_key        TEXT    NOT NULL UNIQUE,
        recipients       INTEGER NOT NULL,
        state            TEXT    NOT NULL DEFAULT 'pending',
        attempts         INTEGER NOT NULL DEFAULT 0,
        first_attempt_at INTEGER,
        sent_at          INTEGER,
        last_error       TEXT,
        PRIMARY KEY (run_id, step, account_id, chunk)
    ) STRICT;
    CREATE TABLE send_holds (
        account_id TEXT PRIMARY KEY,
        reason     TEXT    NOT NULL,
        held_at    INTEGER NOT NULL
    ) STRICT;",
    // 4: one-to-one sends asked for by HubSpot (the "Push LINE message" workflow action).
    "CREATE TABLE sends (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        origin           TEXT    NOT NULL,
        callback_id      TEXT    UNIQUE,
        account_id       TEXT    NOT NULL,
        contact_id       TEXT    NOT NULL,
        drafts           TEXT    NOT NULL,
        notification_disabled INTEGER NOT NULL,
        retry_key        TEXT    NOT NULL UNIQUE,
        state            TEXT    NOT NULL DEFAULT 'pending',
        user_id          TEXT,
        payload          TEXT,
        attempts         INTEGER NOT NULL DEFAULT 0,
        first_attempt_at INTEGER,
        next_attempt_at  INTEGER NOT NULL,
        request_id       TEXT,
        error            TEXT,
        note_id          TEXT,
        completion_asked INTEGER NOT NULL DEFAULT 0,
        created_at       INTEGER NOT NULL,
        finished_at      INTEGER
    ) STRICT;
    CREATE INDEX sends_due ON sends (state, next_attempt_at);",
    // 5: "asked for, id unknown" is its own state, not an empty id: an owner task's id is NULL
    // until HubSpot gives it, and a send's note has a flag of its own.
    "CREATE TABLE owner_tasks_v5 (
        contact_id TEXT PRIMARY KEY,
        task_id    TEXT,
        created_at INTEGER NOT NULL
    ) STRICT;
    INSERT INTO owner_tasks_v5 SELECT contact_id, NULLIF(task_id, ''), created_at FROM owner_tasks;
    DROP TABLE owner_tasks;
    ALTER TABLE owner_tasks_v5 RENAME TO owner_tasks;
    ALTER TABLE sends ADD COLUMN note_asked INTEGER NOT NULL DEFAULT 0;
    UPDATE sends SET note_asked = 1, note_id = NULL WHERE note_id = '';",
];

/// The schema version this build expects.
pub const LATEST: usize = STEPS.len();

/// Brings the schema up to [`LATEST`], each step in its own transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<usize> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?.try_into().unwrap_or(0);
    for (i, step) in STEPS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asked_for_records_become_their_own_state() {
        let mut conn = Connection::open_in_memory().unwrap();
        for step in &STEPS[..4] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute_batch(
            "INSERT INTO owner_tasks VALUES ('c1', '', 1), ('c2', 't2', 1);
             INSERT INTO sends (origin, callback_id, account_id, contact_id, drafts, notification_disabled,
                                retry_key, next_attempt_at, created_at, note_id)
             VALUES ('workflow', 'a', 'x', 'c1', '[]', 0, 'k1', 0, 0, ''),
                    ('workflow', 'b', 'x', 'c1', '[]', 0, 'k2', 0, 0, 'n2'),
                    ('workflow', 'c', 'x', 'c1', '[]', 0, 'k3', 0, 0, NULL);",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 4);
        let tasks: Vec<(String, Option<String>)> = conn
            .prepare("SELECT contact_id, task_id FROM owner_tasks ORDER BY contact_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tasks, [("c1".into(), None), ("c2".into(), Some("t2".into()))]);
        let notes: Vec<(Option<String>, bool)> = conn
            .prepare("SELECT note_id, note_asked FROM sends ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(notes, [(None, true), (Some("n2".into()), false), (None, false)]);
    }
}
