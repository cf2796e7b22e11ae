//! `/healthz` answers for the threads and loops linehub's promises depend on, and the WAL stays
//! bounded: a dead or stuck one is named in a 503, and a long reader does not leave the WAL file
//! large.

mod common;

use std::time::Duration;

use common::*;
use linehub::daemon::Daemon;
use serde_json::Value;

/// The WAL file may be this large at most once readers have moved on and a checkpoint ran.
const WAL_BOUND: u64 = 8 * 1024 * 1024;

async fn setup() -> (tempfile::TempDir, Daemon, reqwest::Client) {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(ConfigFile::standard(dir.path(), "http://127.0.0.1:9").load()).await;
    (dir, daemon, reqwest::Client::new())
}

async fn health(client: &reqwest::Client, daemon: &Daemon) -> (u16, Value) {
    let res = client.get(format!("http://{}/healthz", daemon.addr())).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn names(answer: &Value, what: &str) -> bool {
    answer["problems"].as_array().is_some_and(|p| p.iter().any(|p| p.as_str().is_some_and(|p| p.contains(what))))
}

#[tokio::test]
async fn health_is_503_naming_the_store_writer_thread_once_it_has_died() {
    let (_dir, daemon, client) = setup().await;
    assert_eq!(health(&client, &daemon).await.0, 200);
    daemon.store().kill_writer_for_tests();
    let (status, answer) = health(&client, &daemon).await;
    assert_eq!(status, 503, "{answer}");
    assert!(names(&answer, "store writer thread has stopped"), "{answer}");
}

#[tokio::test]
async fn health_is_503_naming_the_store_checkpoint_thread_once_it_has_died() {
    let (_dir, daemon, client) = setup().await;
    assert_eq!(health(&client, &daemon).await.0, 200);
    let store = daemon.store().clone();
    tokio::task::spawn_blocking(move || store.kill_checkpointer_for_tests()).await.unwrap();
    let (status, answer) = health(&client, &daemon).await;
    assert_eq!(status, 503, "{answer}");
    assert!(names(&answer, "store checkpoint thread has stopped"), "{answer}");
}

#[tokio::test]
async fn health_is_503_naming_each_background_loop_once_it_has_died() {
    let (_dir, daemon, client) = setup().await;
    assert_eq!(health(&client, &daemon).await.0, 200);
    for name in ["applier loop", "HubSpot writer loop", "sender loop", "scheduler loop"] {
        assert!(daemon.kill_loop_for_tests(name).await, "{name} runs");
        let (status, answer) = health(&client, &daemon).await;
        assert_eq!(status, 503, "{answer}");
        assert!(names(&answer, &format!("{name} has stopped")), "{name}: {answer}");
    }
}

#[tokio::test]
async fn the_wal_stays_bounded_while_thousands_of_webhooks_are_written_past_a_long_reader() {
    let (dir, daemon, client) = setup().await;
    let text = "x".repeat(2_000);
    let mut next = 0usize;
    let mut deliver = async |webhooks: usize| {
        for _ in 0..webhooks {
            let events = (0..20)
                .map(|_| {
                    next += 1;
                    text_event(&format!("01J{next:023}"), "U1", 1_700_000_000_000, &text)
                })
                .collect();
            let res = post_signed_webhook(&client, daemon.addr(), "tokyo", TOKYO_SECRET, body(events)).await;
            assert_eq!(res.status(), 200);
        }
    };
    let wal = dir.path().join("linehub.db-wal");
    let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());

    // A reader holds an old snapshot (a long listing) while webhooks keep coming.
    let reader = rusqlite::Connection::open(dir.path().join("linehub.db")).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader.query_row("SELECT COUNT(*) FROM inbox", [], |r| r.get(0)).unwrap();
    deliver(100).await;
    let grown = wal_size();
    assert!(grown > WAL_BOUND, "the reader makes the WAL grow past the bound ({grown} bytes)");

    // It moves on; thousands more webhooks arrive.
    reader.execute_batch("COMMIT").unwrap();
    deliver(100).await;
    let store = daemon.store().clone();
    tokio::task::spawn_blocking(move || store.wait_for_checkpoints(3)).await.unwrap();
    let size = wal_size();
    assert!(size <= WAL_BOUND, "the WAL file is {size} bytes once the reader has gone (it grew to {grown})");
    assert_eq!(daemon.store().inbox_len().await.unwrap(), 4_000);
    let answer = health(&client, &daemon).await.1;
    assert!(answer["wal_bytes"].as_u64().is_some_and(|n| n <= WAL_BOUND), "health reports the WAL size: {answer}");
}

#[tokio::test]
async fn health_is_503_naming_the_store_writer_thread_while_it_is_stuck_and_200_once_it_moves_again() {
    let w = World::new().await;
    let (store, get) = (w.daemon.store().clone(), || async {
        let res = w.http.get(format!("http://{}/healthz", w.daemon.addr())).send().await.unwrap();
        (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
    });
    let checkpoint = || {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.wait_for_checkpoints(1))
    };
    let held = store.hold_writer_for_tests().expect("a writable store");
    assert_eq!(get().await.0, 200, "busy, but not for long yet");
    w.clock.advance(Duration::from_secs(61));
    checkpoint().await.unwrap();
    let (status, answer) = get().await;
    assert_eq!(status, 503, "{answer}");
    assert!(names(&answer, "store writer thread is stuck"), "{answer}");

    drop(held);
    store.simulate_full_disk(false).await.unwrap();
    checkpoint().await.unwrap();
    let (status, answer) = get().await;
    assert_eq!(status, 200, "{answer}");
}
