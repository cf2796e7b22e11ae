//! The real binary, killed with SIGKILL while webhooks stream in: every event that was answered
//! 200 is in the store after the crash, and the daemon starts again on the crashed database.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rand::{Rng, SeedableRng};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn_daemon(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_linehub"))
        .args(["run", "--config"])
        .arg(config)
        .env("LINEHUB_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

async fn wait_healthy(client: &reqwest::Client, addr: std::net::SocketAddr) {
    for _ in 0..200 {
        if let Ok(res) = client.get(format!("http://{addr}/healthz")).send().await
            && res.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("daemon did not become healthy at {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_answered_200_survive_sigkill() {
    let seed: u64 = std::env::var("LINEHUB_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("crash test seed: {seed} (rerun with LINEHUB_CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = config_text(dir.path(), "http://127.0.0.1:9").replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, text).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();

    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let rounds = 4;
    for round in 0..rounds {
        let mut child = spawn_daemon(&config_path);
        wait_healthy(&client, addr).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut senders = Vec::new();
        for sender in 0..8 {
            let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
            senders.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let ids: Vec<String> = (0..3).map(|k| format!("r{round}s{sender}n{n}k{k}")).collect();
                    let events = ids.iter().map(|id| text_event(id, &format!("U{sender}"), n as i64, "hi")).collect();
                    n += 1;
                    let raw = body(events);
                    let sig = linehub::line::signature::sign(TOKYO_SECRET.as_bytes(), &raw);
                    match try_post(&client, addr, "tokyo", raw, Some(sig)).await {
                        Ok(res) if res.status() == 200 => acked.lock().unwrap().extend(ids),
                        Ok(res) => panic!("unexpected status {}", res.status()),
                        // The daemon died mid-request: not acknowledged, so not promised.
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            }));
        }
        let kill_after = Duration::from_millis(rng.random_range(100..600));
        tokio::time::sleep(kill_after).await;
        child.kill().unwrap(); // SIGKILL: no shutdown path runs.
        child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in senders {
            // A sender may be blocked in a request to the dead daemon; the client timeout ends it.
            s.await.unwrap();
        }
        println!(
            "round {round}: killed after {kill_after:?}, {} events acknowledged so far",
            acked.lock().unwrap().len()
        );
    }

    // Restart once more on the crashed database: it opens and serves.
    let mut child = spawn_daemon(&config_path);
    wait_healthy(&client, addr).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let store = linehub::store::Store::open(&dir.path().join("linehub.db")).unwrap();
    let stored: HashSet<String> = store.inbox_ids().await.unwrap().into_iter().collect();
    let acked = acked.lock().unwrap();
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(acked.len() > 100, "the load was too light to prove anything: {}", acked.len());
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}
