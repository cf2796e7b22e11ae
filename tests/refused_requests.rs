//! Refused requests do not flood the log: the real binary, hammered with forged webhooks, posts
//! to accounts that do not exist and forged workflow actions, logs the first refusal of each kind
//! and keeps serving signed webhooks.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_requests_logs_one_line_per_kind_and_signed_webhooks_still_land() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = ConfigFile::standard(dir.path(), "http://127.0.0.1:9").port(port).write();
    let mut daemon = Process::spawn(
        linehub()
            .args(["run", "--config", config.to_str().unwrap()])
            .env("LINEHUB_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    wait_up(&http, &format!("http://{addr}/healthz")).await;

    let forged = body(vec![text_event("forged", "U1", 1, "hi")]);
    for i in 0..200 {
        let res = post_webhook(&http, addr, "tokyo", forged.clone(), Some("bm90IGEgc2lnbmF0dXJl".into())).await;
        assert_eq!(res.status(), 401);
        let res = post_webhook(&http, addr, &format!("nobody-{i}"), forged.clone(), None).await;
        assert_eq!(res.status(), 404);
        let (status, _) =
            post_action(&http, addr, action_body("ap-forged", "501", serde_json::json!({})), Vec::new()).await;
        assert_eq!(status, 401);
    }
    let good = body(vec![text_event("01HGOODGOODGOODGOODGOODGOO", "U1", 2, "hello")]);
    let res = post_signed_webhook(&http, addr, "tokyo", TOKYO_SECRET, good).await;
    assert_eq!(res.status(), 200, "signed webhooks are accepted during the flood");

    daemon.kill();
    let mut log = String::new();
    daemon.child().stderr.take().unwrap().read_to_string(&mut log).unwrap();
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("refused")).collect();
    assert_eq!(refused.len(), 3, "one line per kind (forged signature, unknown account, forged action):\n{log}");
    assert!(refused.iter().any(|l| l.contains("webhook refused") && l.contains("webhook tokyo")), "{log}");
    assert!(refused.iter().any(|l| l.contains("no active account") && l.contains("nobody-0")), "{log}");
    assert!(refused.iter().any(|l| l.contains("workflow action request refused")), "{log}");
}
