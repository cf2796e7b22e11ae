//! The public listener cannot be exhausted: thousands of idle or slow connections and a flood of
//! unsigned 1 MiB posts do not stop signed LINE webhooks from being accepted, idle connections
//! are closed, and the daemon's memory stays bounded.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Resident memory of process `pid` in MB.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slow_and_unsigned_floods_do_not_stop_signed_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = ConfigFile::standard(dir.path(), "http://127.0.0.1:9").port(port).write();
    let text = std::fs::read_to_string(&config).unwrap().replace("max_body_bytes: 65536", "max_body_bytes: 2097152");
    std::fs::write(&config, text).unwrap();
    let mut daemon = Process::daemon(&config, "error");
    let pid = daemon.child().id();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    wait_up(&http, &format!("http://{addr}/healthz")).await;
    let rss_before = rss_mb(pid);

    // 3,000 connections that never send a byte, and 300 that send half a header, slowly.
    let mut idle = Vec::new();
    for _ in 0..3000 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /line/tokyo/webhook HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        slow.push(s);
    }
    // 200 unsigned posts of 1 MiB at once, each refused before its body is read.
    let mib = vec![b'x'; 1 << 20];
    let floods: Vec<_> = (0..200)
        .map(|_| {
            let (http, body) = (http.clone(), mib.clone());
            tokio::spawn(async move {
                http.post(format!("http://{addr}/line/tokyo/webhook"))
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();

    let started = Instant::now();
    let good = body(vec![text_event("01HLISTENERLISTENERLISTENE", "U1", 2, "hello")]);
    let res = post_signed_webhook(&http, addr, "tokyo", TOKYO_SECRET, good).await;
    assert_eq!(res.status(), 200, "a signed webhook is accepted during the flood");
    assert!(started.elapsed() < Duration::from_secs(5), "and promptly: {:?}", started.elapsed());
    for f in floods {
        let status = f.await.unwrap();
        assert!(status == 401 || status == 0, "unsigned posts are refused, not stored: {status}");
    }
    let rss_during = rss_mb(pid);
    assert!(rss_during - rss_before < 150.0, "memory grew from {rss_before:.0} MB to {rss_during:.0} MB");

    // Idle and slow connections are closed once they have had their time to send headers.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut closed = 0;
    for s in idle.iter_mut().take(50).chain(slow.iter_mut().take(50)) {
        let mut buf = [0u8; 512];
        // Read to the end: hyper may answer 408 first; the connection must then close.
        let ended = async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), ended).await.is_ok() {
            closed += 1;
        }
    }
    assert_eq!(closed, 100, "idle and slow connections are closed after the header timeout");
    let status = daemon.try_wait();
    assert!(status.is_none(), "the daemon is still running: {status:?}");
}
