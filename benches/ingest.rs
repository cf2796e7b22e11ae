//! Webhook ingest benchmark: linehub's durable path against a bare hyper server answering 200.
//!
//! Both servers get the same load in one run: first an open loop at a fixed rate (default
//! 1,000 req/s, latency measured from each request's scheduled send time, so a stall is not
//! hidden), then a closed loop with many connections to find the most each can take. linehub
//! verifies the signature, parses the body and commits the event to its SQLite inbox with fsync
//! (group commit) before answering; the bare server only reads the body.
//!
//! Run: `cargo bench --bench ingest` (options: `-- --rate 1000 --seconds 5 --connections 64`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use linehub::daemon::Daemon;
use linehub::line::signature;
use tokio::net::{TcpListener, TcpStream};

/// The allocator the `linehub` binary uses, so both servers run on what production runs on.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "bench-channel-secret-0123456789abcdef";

struct Options {
    rate: u64,
    seconds: u64,
    connections: usize,
}

fn options() -> Options {
    let mut o = Options { rate: 1000, seconds: 5, connections: 64 };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--rate", Some(v)) => o.rate = v,
            ("--seconds", Some(v)) => o.seconds = v,
            ("--connections", Some(v)) => o.connections = v as usize,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

/// One pre-signed request: a single `message` event with a unique `webhookEventId`.
fn payload(n: usize) -> (Bytes, String) {
    let body = format!(
        r#"{{"destination":"U0123456789abcdef0123456789abcdef","events":[{{"type":"message","mode":"active","timestamp":{ts},"webhookEventId":"01BENCH{n:019}","deliveryContext":{{"isRedelivery":false}},"replyToken":"b60d432864f44d079f6d8efe86cf404b","source":{{"type":"user","userId":"U{user:032x}"}},"message":{{"id":"{n}","type":"text","quoteToken":"q","text":"こんにちは {n}"}}}}]}}"#,
        ts = 1_700_000_000_000u64 + n as u64,
        user = n % 5000
    );
    let sig = signature::sign(SECRET.as_bytes(), body.as_bytes());
    (Bytes::from(body), sig)
}

async fn bare_hyper() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from_static(b"{}"))))
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

async fn linehub(dir: &std::path::Path) -> Daemon {
    let text = format!(
        "server:\n  listen: \"127.0.0.1:0\"\n  public_base_url: \"https://bench.test\"\nstore:\n  path: \"{}\"\nplan: starter\nhubspot:\n  token: t\naccounts:\n  - id: bench\n    channel_secret: \"{SECRET}\"\n    channel_access_token: t\n",
        dir.join("bench.db").display()
    );
    let config = linehub::settings::Settings::load_str(&dir.join("config.yaml"), &text).unwrap();
    Daemon::start(config, TcpListener::bind("127.0.0.1:0").await.unwrap()).await.unwrap()
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    sender
}

async fn send(sender: &mut Sender, addr: SocketAddr, (body, sig): &(Bytes, String)) -> bool {
    let req = Request::post("/line/bench/webhook")
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .header("x-line-signature", sig.as_str())
        .body(Full::new(body.clone()))
        .unwrap();
    match sender.send_request(req).await {
        Ok(res) => {
            let ok = res.status() == 200;
            let _ = res.into_body().collect().await;
            ok
        }
        Err(_) => false,
    }
}

struct OpenLoop {
    p50: Duration,
    p99: Duration,
    max: Duration,
    errors: usize,
    achieved_rps: f64,
}

/// Sends `rate` req/s for `seconds`, spread over connections; latency from the scheduled time.
async fn open_loop(addr: SocketAddr, payloads: Arc<Vec<(Bytes, String)>>, offset: usize, o: &Options) -> OpenLoop {
    let total = (o.rate * o.seconds) as usize;
    let interval = Duration::from_nanos(1_000_000_000 / o.rate);
    let lanes = 32usize;
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let payloads = payloads.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut i = lane;
            while i < total {
                let due = start + interval * i as u32;
                tokio::time::sleep_until(due.into()).await;
                if !send(&mut sender, addr, &payloads[offset + i]).await {
                    errors += 1;
                }
                lat.push(due.elapsed());
                i += lanes;
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::with_capacity(total);
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    OpenLoop {
        p50: pct(0.50),
        p99: pct(0.99),
        max: *all.last().unwrap(),
        errors,
        achieved_rps: total as f64 / elapsed.as_secs_f64(),
    }
}

/// As many requests as `connections` keep-alive connections can push in `seconds`.
/// For the bare server payloads may repeat (`wrap`); linehub gets each event once.
async fn closed_loop(
    addr: SocketAddr,
    payloads: Arc<Vec<(Bytes, String)>>,
    offset: usize,
    wrap: bool,
    o: &Options,
) -> (f64, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let mut tasks = Vec::new();
    for _ in 0..o.connections {
        let (payloads, next) = (payloads.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let (mut done, mut errors) = (0usize, 0usize);
            while Instant::now() < deadline {
                let mut i = offset + next.fetch_add(1, Ordering::Relaxed);
                if wrap {
                    i %= payloads.len();
                }
                let Some(p) = payloads.get(i) else { break };
                if send(&mut sender, addr, p).await {
                    done += 1;
                } else {
                    errors += 1;
                }
            }
            (done, errors)
        }));
    }
    let start = Instant::now();
    let (mut done, mut errors) = (0, 0);
    for t in tasks {
        let (d, e) = t.await.unwrap();
        done += d;
        errors += e;
    }
    (done as f64 / start.elapsed().as_secs_f64(), errors)
}

fn main() {
    let o = options();
    let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (bare, daemon) = server_rt.block_on(async { (bare_hyper().await, linehub(dir.path()).await) });
    let lh = daemon.addr();

    // Enough unique events for both phases on both servers (closed loop capped generously).
    let per_phase_open = (o.rate * o.seconds) as usize;
    let closed_cap = 80_000 * o.seconds as usize;
    eprintln!("signing {} payloads…", per_phase_open + closed_cap);
    let payloads: Arc<Vec<_>> = Arc::new((0..per_phase_open + closed_cap).map(payload).collect());

    client_rt.block_on(async {
        eprintln!("open loop at {} req/s for {} s …", o.rate, o.seconds);
        let bare_open = open_loop(bare, payloads.clone(), 0, &o).await;
        let lh_open = open_loop(lh, payloads.clone(), 0, &o).await;
        eprintln!("closed loop with {} connections for {} s …", o.connections, o.seconds);
        let (bare_rps, bare_err) = closed_loop(bare, payloads.clone(), per_phase_open, true, &o).await;
        let (lh_rps, lh_err) = closed_loop(lh, payloads.clone(), per_phase_open, false, &o).await;

        println!();
        println!("webhook ingest: linehub (verify + parse + fsync'd inbox commit) vs bare hyper answering 200");
        println!("{:<34} {:>14} {:>14} {:>10}", "", "bare hyper", "linehub", "ratio");
        println!("{:<34} {:>14.0} {:>14.0} {:>10.2}", "max throughput (req/s)", bare_rps, lh_rps, lh_rps / bare_rps);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<34} {:>14.0} {:>14.0}",
            format!("achieved at {} req/s offered", o.rate),
            bare_open.achieved_rps,
            lh_open.achieved_rps
        );
        println!("{:<34} {:>14.2} {:>14.2}", "p50 latency (ms)", ms(bare_open.p50), ms(lh_open.p50));
        println!("{:<34} {:>14.2} {:>14.2}", "p99 latency (ms)", ms(bare_open.p99), ms(lh_open.p99));
        println!("{:<34} {:>14.2} {:>14.2}", "max latency (ms)", ms(bare_open.max), ms(lh_open.max));
        println!("{:<34} {:>14} {:>14}", "errors", bare_open.errors + bare_err, lh_open.errors + lh_err);
        let stored = daemon.store().inbox_len().await.unwrap();
        println!("{:<34} {:>14} {:>14}", "events in linehub's inbox", "-", stored);
        println!();
        println!(
            "goal: throughput ratio >= 0.5 -> {}; p99 <= 10 ms at {} req/s -> {}",
            if lh_rps / bare_rps >= 0.5 { "met" } else { "NOT met" },
            o.rate,
            if ms(lh_open.p99) <= 10.0 { "met" } else { "NOT met" }
        );
    });
}
