//! Who may open the store while another process has it: one `linehub run` per store, the
//! read-only commands beside it, and a schema left alone by commands that only read.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_store_refuses_to_start_and_names_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let first_port = free_port();
    let config = ConfigFile::standard(dir.path(), "http://127.0.0.1:9").port(first_port).write();
    let mut first = Process::daemon(&config, "warn");
    wait_up(&client, &format!("http://127.0.0.1:{first_port}/healthz")).await;

    // Same store, another port: only the store is shared.
    let second_port = free_port();
    let second_config = dir.path().join("second.yaml");
    std::fs::write(&second_config, ConfigFile::standard(dir.path(), "http://127.0.0.1:9").port(second_port).text())
        .unwrap();
    let mut second = Process::spawn(
        linehub()
            .args(["run", "--config"])
            .arg(&second_config)
            .env("LINEHUB_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait() {
            break status;
        }
        let serving = client.get(format!("http://127.0.0.1:{second_port}/healthz")).send().await;
        assert!(serving.is_err(), "a second daemon serves on the store the first one runs on");
        assert!(Instant::now() < deadline, "the second daemon neither served nor exited");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let mut stderr = String::new();
    second.child().stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    let pid = first.child().id();
    assert!(stderr.contains("already") && stderr.contains(&format!("pid {pid}")), "{stderr}");

    // The commands that only read work beside the running daemon.
    for args in [&["outbox", "list"][..], &["sends"], &["pipeline", "list"]] {
        let (ok, text) = output(linehub().args(args).arg("--config").arg(&config));
        assert!(ok, "{args:?}: {text}");
    }

    // Once the first daemon is gone, the store is free again.
    first.kill();
    let mut again = Process::daemon(&second_config, "warn");
    wait_up(&client, &format!("http://127.0.0.1:{second_port}/healthz")).await;
    again.kill();
}

#[test]
fn the_listing_commands_read_an_older_store_without_migrating_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::standard(dir.path(), "http://127.0.0.1:9").write();
    let db = dir.path().join("linehub.db");
    {
        // A store an older linehub left at schema version 1 (only the inbox and serials).
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE inbox (webhook_event_id TEXT PRIMARY KEY);
             CREATE TABLE accounts (serial INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL UNIQUE,
                                    first_seen INTEGER NOT NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    for args in [&["outbox", "list"][..], &["sends"]] {
        let (ok, text) = output(linehub().args(args).arg("--config").arg(&config));
        assert!(!ok, "{args:?} read a store whose schema is older than it knows: {text}");
        assert!(text.contains("schema version 1") && text.contains("linehub run"), "{args:?}: {text}");
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 1, "a listing command migrated the store");
    let tables: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(tables, 2, "a listing command created tables");
}

#[test]
fn the_listing_commands_do_not_create_a_store_that_is_not_there() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::standard(dir.path(), "http://127.0.0.1:9").write();
    for (args, empty) in [(&["outbox", "list"][..], "no dead-lettered writes"), (&["sends"], "no sends yet")] {
        let (ok, text) = output(linehub().args(args).arg("--config").arg(&config));
        assert!(ok && text.contains(empty), "{args:?}: {text}");
        assert!(!dir.path().join("linehub.db").exists(), "{args:?} created the store");
    }
}
