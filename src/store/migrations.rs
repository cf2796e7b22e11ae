//! Schema migrations, applied in order at open and recorded in `PRAGMA user_version`.
//!
//! Append new steps at the end; never edit one that has shipped.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

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
    // 6: the last profile read of each friend, so a contact deleted in HubSpot is recreated whole.
    "ALTER TABLE friends ADD COLUMN display_name TEXT;
    ALTER TABLE friends ADD COLUMN picture_url TEXT;",
    // 7: ID linking through LINE Login: attempts in flight (state, nonce, PKCE verifier), link
    // tokens for marketing emails (hashed) and who used them, and links an operator must see.
    "CREATE TABLE login_attempts (
        state         TEXT PRIMARY KEY,
        account_id    TEXT    NOT NULL,
        via           TEXT    NOT NULL,
        nonce         TEXT    NOT NULL,
        code_verifier TEXT    NOT NULL,
        link_token    TEXT,
        created_at    INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL,
        used_at       INTEGER
    ) STRICT;
    CREATE INDEX login_attempts_expiry ON login_attempts (expires_at);
    CREATE TABLE link_tokens (
        token_hash TEXT PRIMARY KEY,
        contact_id TEXT    NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX link_tokens_contact ON link_tokens (contact_id);
    CREATE TABLE link_token_uses (
        token_hash TEXT    NOT NULL,
        account_id TEXT    NOT NULL,
        user_id    TEXT    NOT NULL,
        used_at    INTEGER NOT NULL,
        PRIMARY KEY (token_hash, account_id)
    ) STRICT;
    CREATE TABLE link_problems (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        kind       TEXT    NOT NULL,
        account_id TEXT    NOT NULL,
        user_id    TEXT    NOT NULL,
        contact_id TEXT,
        other_contact_id TEXT,
        detail     TEXT    NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;",
];

/// The schema version this build expects.
pub const LATEST: usize = STEPS.len();

/// Brings the schema up to [`LATEST`], each step in its own transaction; returns the version
/// found. Each transaction takes the write lock (`BEGIN IMMEDIATE`) before it reads the version,
/// so two processes opening one store at once never run a step twice.
pub fn migrate(conn: &mut Connection) -> Result<usize, StoreError> {
    let mut found = None;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        let first = *found.get_or_insert(version);
        if version > LATEST {
            return Err(StoreError::TooNew { found: version, supported: LATEST });
        }
        let Some(step) = STEPS.get(version) else { return Ok(first) };
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", (version + 1) as i64)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::mpsc;

    use super::*;

    /// Told once when the connection under test first waits for the write lock.
    static WAITING: Mutex<Option<mpsc::Sender<()>>> = Mutex::new(None);

    fn report_waiting(_: i32) -> bool {
        if let Some(tx) = WAITING.lock().ok().and_then(|mut w| w.take()) {
            let _ = tx.send(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
        true
    }

    #[test]
    fn a_store_two_processes_open_at_once_is_migrated_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("linehub.db");
        // The other process: holds the write lock while it migrates.
        let other = Connection::open(&path).unwrap();
        other.pragma_update(None, "journal_mode", "WAL").unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let (tx, waiting) = mpsc::channel();
        *WAITING.lock().unwrap() = Some(tx);
        let ours = std::thread::spawn(move || {
            let mut conn = Connection::open(&path)?;
            conn.busy_handler(Some(report_waiting))?;
            migrate(&mut conn)
        });
        waiting.recv().unwrap();
        for step in STEPS {
            other.execute_batch(step).unwrap();
        }
        other.pragma_update(None, "user_version", LATEST as i64).unwrap();
        other.execute_batch("COMMIT").unwrap();
        let found = ours.join().unwrap_or_else(|_| panic!("the migration panicked"));
        assert_eq!(found.unwrap_or_else(|e| panic!("the second migration failed: {e}")), LATEST);
    }

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
        assert_eq!(migrate(&mut conn).unwrap_or_else(|e| panic!("{e}")), 4);
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
