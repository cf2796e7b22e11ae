//! The real binary, killed with SIGKILL while webhooks stream in: every event that was answered
//! 200 is in the store after the crash, and the daemon starts again on the crashed database.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rand::{Rng, SeedableRng};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_answered_200_survive_sigkill() {
    let seed: u64 = std::env::var("LINEHUB_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("crash test seed: {seed} (rerun with LINEHUB_CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config_path = ConfigFile::standard(dir.path(), "http://127.0.0.1:9").port(port).write();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let health = format!("http://{addr}/healthz");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();

    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let rounds = 4;
    for round in 0..rounds {
        let mut daemon = Process::daemon(&config_path, "warn");
        wait_up(&client, &health).await;
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
                    let sig = sign_webhook(TOKYO_SECRET, &raw);
                    match try_post_webhook(&client, addr, "tokyo", raw, Some(sig)).await {
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
        daemon.kill(); // SIGKILL: no shutdown path runs.
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
    let mut daemon = Process::daemon(&config_path, "warn");
    wait_up(&client, &health).await;
    daemon.kill();

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
