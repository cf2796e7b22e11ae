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
