//! HubSpot writer benchmark: a backlog of webhook events drained against the sandbox at the
//! Professional rate limit, then webhook → contact latency with no backlog.
//!
//! Figures: share of the rate-limit ceiling used while draining (requests sent ÷ what 190 per
//! 10 s allows in the same time), share of requests answered 429, HubSpot requests and contact
//! writes per event after coalescing, end-to-end p50/p95 from webhook to contact visible in the
//! sandbox, and the process's peak RSS (linehub and the in-process sandbox together).
//!
//! Run: `cargo bench --bench writer` (options: `-- --events 100000 --users 20000 --samples 50`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use linehub::clock::SystemClock;
use linehub::daemon::{Daemon, Options};
use linehub::line::signature;
use linehub_sandbox::{ChannelSpec, Sandbox, SandboxConfig, webhook};
use tokio::net::TcpListener;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "bench-channel-secret-0123456789abcdef";
const TOKEN: &str = "bench-access-token";
const PRO_PER_10S: u32 = 190;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn config(dir: &std::path::Path, upstream: &str) -> linehub::settings::Settings {
    let text = format!(
        "server:\n  listen: \"127.0.0.1:0\"\n  public_base_url: \"https://bench.test\"\n  max_body_bytes: 8388608\nstore:\n  path: \"{}\"\nplan: trial\nhubspot:\n  base_url: \"{upstream}\"\n  token: sandbox-hubspot-token\n  tier: professional\nline:\n  api_base_url: \"{upstream}\"\naccounts:\n  - id: bench\n    channel_secret: \"{SECRET}\"\n    channel_access_token: \"{TOKEN}\"\n",
        dir.join("bench.db").display()
    );
    linehub::settings::Settings::load_str(&dir.join("config.yaml"), &text).unwrap()
}

async fn post(http: &reqwest::Client, addr: std::net::SocketAddr, body: Vec<u8>) {
    let sig = signature::sign(SECRET.as_bytes(), &body);
    let res = http
        .post(format!("http://{addr}/line/bench/webhook"))
        .header("x-line-signature", sig)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events = arg("--events", 100_000);
    let users = arg("--users", 20_000);
    let samples = arg("--samples", 50);
    let cfg = SandboxConfig {
        hubspot_burst_per_10s: PRO_PER_10S,
        hubspot_daily_limit: 10_000_000,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), cfg).await.unwrap();
    let bot = sandbox.line().add_channel(ChannelSpec::new(TOKEN, SECRET)).unwrap();
    let user_ids: Vec<String> = (0..users).map(|_| webhook::random_user_id()).collect();
    let http = reqwest::Client::new();

    // Phase 1: a backlog. Events arrive while the writer is stopped, then it drains them.
    let dir = tempfile::tempdir().unwrap();
    let manual = Options { clock: Arc::new(SystemClock), background: false };
    let daemon = Daemon::start_with(
        config(dir.path(), &sandbox.base_url()),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        manual,
    )
    .await
    .unwrap();
    eprintln!("delivering {events} events over {users} users …");
    let t0 = 1_764_000_000_000i64;
    let mut batch = Vec::new();
    for i in 0..events {
        let user = &user_ids[i % users];
        let ts = t0 + i as i64;
        batch.push(match (i / users) % 3 {
            0 => webhook::follow(user, ts, false),
            1 => webhook::text_message(user, ts, "予約の確認をお願いします"),
            _ => webhook::sticker_message(user, ts, "446", "1988"),
        });
        if batch.len() == 200 {
            post(&http, daemon.addr(), webhook::body(&bot, std::mem::take(&mut batch))).await;
        }
    }
    if !batch.is_empty() {
        post(&http, daemon.addr(), webhook::body(&bot, batch)).await;
    }
    let started = Instant::now();
    daemon.apply_inbox().await.unwrap();
    let apply_time = started.elapsed();
    let rows = daemon.store().outbox_len().await.unwrap();
    daemon.ensure_properties().await.unwrap();
    sandbox.hubspot().reset_stats();
    eprintln!("draining {rows} outbox rows at {PRO_PER_10S} requests per 10 s …");
    let started = Instant::now();
    let report = daemon.settle().await.unwrap();
    let drain_time = started.elapsed();
    let stats = sandbox.hubspot().stats();
    let left = daemon.store().outbox_len().await.unwrap();
    let allowed = drain_time.as_secs_f64() / 10.0 * f64::from(PRO_PER_10S);
    let contacts = sandbox.hubspot().contacts().len();
    daemon.shutdown().await.unwrap();

    // Phase 2: no backlog. One follow at a time; time until the contact is in HubSpot.
    let dir2 = tempfile::tempdir().unwrap();
    let daemon =
        Daemon::start(config(dir2.path(), &sandbox.base_url()), TcpListener::bind("127.0.0.1:0").await.unwrap())
            .await
            .unwrap();
    // Let the writer create the properties first, as a running daemon would have.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    for _ in 0..samples {
        let user = webhook::random_user_id();
        let sent = Instant::now();
        post(&http, daemon.addr(), webhook::body(&bot, vec![webhook::follow(&user, t0, false)])).await;
        loop {
            if !sandbox.hubspot().find_by_property("line_user_id_1", &user).is_empty() {
                break;
            }
            assert!(sent.elapsed() < Duration::from_secs(30), "contact never appeared");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    daemon.shutdown().await.unwrap();

    println!();
    println!("HubSpot writer: {events} events over {users} users, Professional limit ({PRO_PER_10S} per 10 s)");
    println!("  inbox -> outbox              {:>10.2} s  ({rows} outbox rows)", apply_time.as_secs_f64());
    println!(
        "  drain                        {:>10.2} s  ({} requests, {left} rows left, {} dead)",
        drain_time.as_secs_f64(),
        stats.requests,
        report.dead
    );
    println!("  contacts in HubSpot          {:>10}", contacts);
    println!(
        "  share of rate-limit ceiling  {:>10.3}  (requests / what {PRO_PER_10S} per 10 s allows in the drain time; goal >= 0.95)",
        stats.requests as f64 / allowed
    );
    println!("  busiest 10 s window          {:>10}  of {}", stats.peak_in_window, stats.burst_limit);
    println!(
        "  share of requests that got 429 {:>8.4}  ({} of {}; goal <= 0.005)",
        stats.rate_limited_share(),
        stats.rate_limited,
        stats.requests
    );
    println!("  HubSpot requests per event   {:>10.4}", stats.requests as f64 / events as f64);
    println!(
        "  contact writes per event     {:>10.4}  ({} creates + {} updates)",
        (report.created + report.updated) as f64 / events as f64,
        report.created,
        report.updated
    );
    println!("webhook -> contact visible, no backlog ({samples} follows)");
    println!(
        "  p50 {:>8.0} ms   p95 {:>8.0} ms   max {:>8.0} ms  (goal p95 <= 2000 ms)",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.95).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3
    );
    println!("peak RSS (linehub + in-process sandbox) {:.0} MB", peak_rss_mb());
    sandbox.assert_no_violations();
}
