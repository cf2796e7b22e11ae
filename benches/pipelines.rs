//! Pipelines benchmark: `import_friends` of a million friends, and config reload time.
//!
//! 1. Import. The sandbox (a child process running this same binary, so that its million
//!    friends and contacts do not count in linehub's memory) plays a verified LINE account with
//!    N friends and a HubSpot Professional portal (190 requests per rolling 10 s). A daemon
//!    running in the background (writer and scheduler loops, system clock) runs the
//!    `import_friends` pipeline: followers pages of 1,000, a profile read per friend, one
//!    contact create per friend through the outbox and the writer (batches of 100). Figures:
//!    wall time until every contact is in HubSpot, against the rate-limit bound (N/100 batch
//!    calls at 190 per 10 s), HubSpot requests, 429s and the busiest 10 s window, and linehub's
//!    peak RSS (`VmHWM`; the sandbox's is reported apart).
//! 2. Reload. A config with 50 accounts and 20 pipelines: `Daemon::reload` (read, validate
//!    whole, serials, swap) timed over repeated reloads, after the first one that adds them.
//!
//! Run: `cargo bench --bench pipelines` (options: `-- --friends 1000000 --reloads 20`; a quick
//! run: `-- --friends 20000`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use linehub::clock::SystemClock;
use linehub::daemon::{Daemon, Options};
use linehub_sandbox::{ChannelSpec, Profile, Sandbox, SandboxConfig};
use tokio::net::TcpListener;

/// The allocator the `linehub` binary uses.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "bench-access-token";
const SECRET: &str = "bench-channel-secret-0123456789abcdef";
const PRO_PER_10S: u32 = 190;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Peak resident memory of process `pid` ("self" for this one), in MB.
fn peak_rss_mb(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The child: a sandbox with `friends` friends, serving until its stdin closes.
fn serve_sandbox(friends: usize) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let cfg = SandboxConfig { hubspot_burst_per_10s: PRO_PER_10S, ..SandboxConfig::default() };
        let sandbox = Sandbox::start(listener, cfg).await.expect("sandbox");
        let line = sandbox.line();
        line.add_channel(ChannelSpec::new(TOKEN, SECRET)).expect("channel");
        for i in 0..friends {
            let mut profile = Profile::named(format!("Friend {i}"));
            profile.picture_url = Some(format!("https://profile.line-scdn.net/bench/{i}"));
            line.add_friend(TOKEN, &format!("U{:032x}", 0x1000_0000 + i), profile).expect("friend");
        }
        println!("READY {}", sandbox.base_url());
        std::io::stdout().flush().expect("stdout");
        // Serve until the parent closes our stdin (it exits, or is done).
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                line.clear();
            }
        })
        .await
        .expect("stdin");
        sandbox.shutdown().await;
    });
}

fn write_config(dir: &Path, upstream: &str, accounts: usize, plan: &str) -> std::path::PathBuf {
    let mut text = format!(
        "server:\n  listen: \"127.0.0.1:0\"\n  public_base_url: \"https://bench.test\"\nstore:\n  path: \"{}\"\nplan: {plan}\nhubspot:\n  base_url: \"{upstream}\"\n  token: sandbox-hubspot-token\n  tier: professional\nline:\n  api_base_url: \"{upstream}\"\naccounts:\n",
        dir.join("bench.db").display()
    );
    for i in 0..accounts {
        let id = if i == 0 { "bench".to_string() } else { format!("shop-{i:02}") };
        let token = if i == 0 { TOKEN.to_string() } else { format!("token-{i}") };
        text.push_str(&format!(
            "  - id: {id}\n    channel_secret: \"{SECRET}\"\n    channel_access_token: \"{token}\"\n"
        ));
    }
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).expect("config");
    path
}

async fn import(friends: usize) {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .args(["--serve-sandbox", &friends.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sandbox child");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut ready).expect("ready line");
    let upstream = ready.trim().strip_prefix("READY ").expect("READY <url>").to_string();
    let child_pid = child.id().to_string();
    println!("sandbox ready with {friends} friends (pid {child_pid}, {:.0} MB)", peak_rss_mb(&child_pid));

    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &upstream, 1, "trial");
    std::fs::create_dir(dir.path().join("pipelines")).expect("pipelines dir");
    std::fs::write(
        dir.path().join("pipelines/import.yaml"),
        "accounts: [bench]\nsteps:\n  - import_friends: { page_size: 1000 }\n",
    )
    .expect("pipeline");
    let config = linehub::settings::Settings::load(&path).expect("config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let options = Options { clock: Arc::new(SystemClock), background: true };
    let daemon = Daemon::start_with(config, listener, options).await.expect("daemon");
    let rss_before = peak_rss_mb("self");

    let started = Instant::now();
    let report = daemon.run_pipeline("import", false).await.expect("run");
    let step_done = started.elapsed();
    assert!(report.error.is_none(), "{report}");
    let mut last = Instant::now();
    loop {
        let left = daemon.store().outbox_len().await.expect("outbox");
        if left == 0 {
            break;
        }
        if last.elapsed() > Duration::from_secs(30) {
            println!("  … {left} outbox rows left at {:.0} s", started.elapsed().as_secs_f64());
            last = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = started.elapsed();
    let http = reqwest::Client::new();
    let stats: serde_json::Value =
        http.get(format!("{upstream}/_sandbox/hubspot/stats")).send().await.expect("stats").json().await.expect("json");
    let health: serde_json::Value =
        http.get(format!("{upstream}/_sandbox/health")).send().await.expect("health").json().await.expect("json");
    let requests = stats["requests"].as_u64().unwrap_or(0);
    let creates = stats["byEndpoint"]["POST /crm/v3/objects/contacts/batch/create"].as_u64().unwrap_or(0);
    // HubSpot admits 190 requests in any 10 s: the fastest possible import of N friends.
    let bound = requests as f64 / (f64::from(PRO_PER_10S) / 10.0);
    println!("import_friends: {friends} friends");
    println!("  contacts in HubSpot: {}", health["hubspotContacts"]);
    println!("  step (LINE pages, profiles, outbox): {:.1} s", step_done.as_secs_f64());
    println!("  wall time until every contact is written: {:.1} s", total.as_secs_f64());
    println!(
        "  rate-limit bound for its {requests} HubSpot requests ({creates} batch creates) at {PRO_PER_10S}/10 s: {bound:.1} s → {:.1}% of the bound's speed",
        bound / total.as_secs_f64() * 100.0
    );
    println!(
        "  HubSpot: busiest 10 s window {} of {PRO_PER_10S}, 429s {}, contract violations {}",
        stats["peakInWindow"], stats["rateLimited"], stats["violations"]
    );
    println!("  {}", report.to_string().lines().nth(1).unwrap_or_default().trim());
    println!(
        "  peak RSS: linehub {:.1} MB (before the import {rss_before:.1} MB); sandbox child {:.0} MB",
        peak_rss_mb("self"),
        peak_rss_mb(&child_pid)
    );
    daemon.shutdown().await.expect("shutdown");
    drop(child.stdin.take());
    let _ = child.wait();
}

async fn reload(reloads: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), "http://127.0.0.1:1", 1, "enterprise");
    let config = linehub::settings::Settings::load(&path).expect("config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let daemon = Daemon::start_with(config, listener, Options::manual(Arc::new(SystemClock))).await.expect("daemon");

    write_config(dir.path(), "http://127.0.0.1:1", 50, "enterprise");
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).expect("pipelines dir");
    let zones = ["Asia/Tokyo", "Asia/Taipei", "Asia/Bangkok"];
    for i in 0..20 {
        let accounts: Vec<String> = (0..5)
            .map(|k| if (i * 5 + k) % 50 == 0 { "bench".into() } else { format!("shop-{:02}", (i * 5 + k) % 50) })
            .collect();
        let yaml = format!(
            "description: bench {i}\nschedule: {{ cron: \"{} {} * * *\", time_zone: {} }}\naccounts: [{}]\nsteps:\n  - enforce_plan_limits: {{}}\n  - import_friends: {{ page_size: 1000 }}\n  - reconcile_follow_status: {{}}\n  - import_line_ids_from_list: {{ list_id: \"{i}\", property: line_id_from_form }}\n  - broadcast_to_list:\n      list_id: \"{i}\"\n      messages:\n        - text: \"Hello {i}\"\n        - sticker: {{ package_id: \"446\", sticker_id: \"1988\" }}\n",
            i % 60,
            i % 24,
            zones[i % 3],
            accounts.join(", ")
        );
        std::fs::write(pipelines.join(format!("p{i:02}.yaml")), yaml).expect("pipeline");
    }
    let first = Instant::now();
    let outcome = daemon.reload().await.expect("first reload");
    let first = first.elapsed();
    assert_eq!((outcome.accounts_added.len(), outcome.pipelines_added.len()), (49, 20));
    let mut times = Vec::new();
    for n in 0..reloads {
        // Each reload sees one pipeline changed.
        let file = pipelines.join("p00.yaml");
        let text = std::fs::read_to_string(&file).expect("read");
        std::fs::write(&file, text.replace(&format!("Hello 0{}", n.saturating_sub(1)), &format!("Hello 0{n}")))
            .expect("write");
        let t = Instant::now();
        daemon.reload().await.expect("reload");
        times.push(t.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("reload: 50 accounts, 20 pipelines (5 steps each)");
    println!("  first reload (adds 49 accounts with serials, 20 pipelines): {:.1} ms", ms(first));
    println!(
        "  {} reloads: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        times.len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    daemon.shutdown().await.expect("shutdown");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve-sandbox") {
        let friends = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(0);
        serve_sandbox(friends);
        return;
    }
    let friends = arg("--friends", 1_000_000);
    let reloads = arg("--reloads", 20);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        reload(reloads.max(1)).await;
        if friends > 0 {
            import(friends).await;
        }
    });
}
