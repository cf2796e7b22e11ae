//! `POST /line/{account_id}/webhook` from the outside: signatures, envelope, dedupe, durability.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn setup() -> (tempfile::TempDir, linehub::daemon::Daemon, reqwest::Client) {
    let dir = tempfile::tempdir().unwrap();
    // Queues driven by the test (none here): what the store holds is what ingest left, not what
    // a background applier made of it meanwhile.
    let settings = ConfigFile::standard(dir.path(), "http://127.0.0.1:9").load();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = linehub::daemon::Options::manual(std::sync::Arc::new(linehub::clock::SystemClock));
    let daemon = linehub::daemon::Daemon::start_with(settings, listener, options).await.unwrap();
    (dir, daemon, reqwest::Client::new())
}

#[tokio::test]
async fn a_signed_event_is_stored_before_200() {
    let (_dir, daemon, client) = setup().await;
    let body = body(vec![text_event("01J0000000000000000000000A", "U1", 1_700_000_000_000, "hello")]);
    let res = post_signed_webhook(&client, daemon.addr(), "tokyo", TOKYO_SECRET, body).await;
    assert_eq!(res.status(), 200);
    let row = daemon.store().inbox_get("01J0000000000000000000000A").await.unwrap().expect("stored");
    assert_eq!(row.event.account_id, "tokyo");
    assert_eq!(row.event.event_type, "message");
    assert_eq!(row.event.user_id.as_deref(), Some("U1"));
    assert_eq!(row.event.event_ts, 1_700_000_000_000);
    assert_eq!(row.state, "pending");
}

#[tokio::test]
async fn utf8_emoji_and_a_trailing_newline_are_signed_over_the_exact_bytes() {
    let (_dir, daemon, client) = setup().await;
    let mut raw = body(vec![text_event("01J0000000000000000000000B", "U1", 1, "こんにちは 👋🏽 สวัสดี")]);
    raw.push(b'\n');
    let res = post_signed_webhook(&client, daemon.addr(), "tokyo", TOKYO_SECRET, raw).await;
    assert_eq!(res.status(), 200);
    let row = daemon.store().inbox_get("01J0000000000000000000000B").await.unwrap().expect("stored");
    assert!(row.event.body.contains("こんにちは 👋🏽 สวัสดี"), "raw text kept: {}", row.event.body);
}

#[tokio::test]
async fn bad_or_missing_signatures_are_refused_and_nothing_is_stored() {
    let (_dir, daemon, client) = setup().await;
    let raw = body(vec![text_event("01J0000000000000000000000C", "U1", 1, "hi")]);
    let good = sign_webhook(TOKYO_SECRET, &raw);

    let mut tampered = raw.clone();
    let pos = tampered.iter().position(|&b| b == b'h').unwrap();
    tampered[pos] = b'H';
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("tampered byte", tampered, Some(good.clone())),
        ("wrong secret", raw.clone(), Some(sign_webhook(OSAKA_SECRET, &raw))),
        ("missing header", raw.clone(), None),
        ("not base64", raw.clone(), Some("%%%".into())),
        ("empty header", raw.clone(), Some(String::new())),
    ];
    for (name, body, sig) in cases {
        let res = post_webhook(&client, daemon.addr(), "tokyo", body, sig).await;
        assert_eq!(res.status(), 401, "{name}");
    }
    // The right signature for another account's secret is refused on this account too.
    let res = post_signed_webhook(&client, daemon.addr(), "osaka", TOKYO_SECRET, raw).await;
    assert_eq!(res.status(), 401);
    assert_eq!(daemon.store().inbox_len().await.unwrap(), 0);
}

#[tokio::test]
async fn the_signature_header_name_is_matched_case_insensitively() {
    let (_dir, daemon, _client) = setup().await;
    let raw = body(vec![text_event("01J0000000000000000000000D", "U1", 1, "hi")]);
    let sig = sign_webhook(TOKYO_SECRET, &raw);
    for (i, name) in ["X-LINE-SIGNATURE", "X-Line-Signature", "x-line-signature"].iter().enumerate() {
        let mut stream = tokio::net::TcpStream::connect(daemon.addr()).await.unwrap();
        let head = format!(
            "POST /line/tokyo/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{name}: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            raw.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&raw).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{name} (try {i}): {response}");
    }
}

#[tokio::test]
async fn a_valid_signature_over_invalid_json_is_400_and_nothing_is_stored() {
    let (_dir, daemon, client) = setup().await;
    for raw in [&b"{\"events\": [ {"[..], b"null", b"{\"events\":\"no\"}", b""] {
        let res = post_signed_webhook(&client, daemon.addr(), "tokyo", TOKYO_SECRET, raw.to_vec()).await;
        assert_eq!(res.status(), 400, "{}", String::from_utf8_lossy(raw));
    }
    assert_eq!(daemon.store().inbox_len().await.unwrap(), 0);
}

#[tokio::test]
async fn the_verify_button_gets_200_with_nothing_stored() {
    let (_dir, daemon, client) = setup().await;
    let res = post_signed_webhook(&client, daemon.addr(), "tokyo", TOKYO_SECRET, body(vec![])).await;
    assert_eq!(res.status(), 200);
    assert_eq!(daemon.store().inbox_len().await.unwrap(), 0);
}

#[tokio::test]
async fn an_unknown_account_is_404() {
    let (_dir, daemon, client) = setup().await;
    let raw = body(vec![text_event("01J0000000000000000000000E", "U1", 1, "hi")]);
    let res = post_signed_webhook(&client, daemon.addr(), "nagoya", TOKYO_SECRET, raw).await;
    assert_eq!(res.status(), 404);
    assert_eq!(daemon.store().inbox_len().await.unwrap(), 0);
}

#[tokio::test]
async fn a_redelivered_event_is_stored_once() {
    let (_dir, daemon, client) = setup().await;
    let first = text_event("01J0000000000000000000000F", "U1", 5, "hi");
    let mut again = first.clone();
    again["deliveryContext"]["isRedelivery"] = true.into();
    let res = post_signed_webhook(&client, daemon.addr(), "tokyo", TOKYO_SECRET, body(vec![first])).await;
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["stored"], 1);
    let res = post_signed_webhook(&client, daemon.addr(), "tokyo", TOKYO_SECRET, body(vec![again])).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["duplicates"], 1);
    assert_eq!(daemon.store().inbox_len().await.unwrap(), 1);
    let row = daemon.store().inbox_get("01J0000000000000000000000F").await.unwrap().unwrap();
    assert!(!row.event.redelivery, "the first delivery is what is kept");
}

#[tokio::test]
async fn unknown_event_types_are_stored_not_refused() {
    let (_dir, daemon, client) = setup().await;
    let odd = serde_json::json!({"type": "somethingLineAddsLater", "timestamp": 9, "webhookEventId": "01J0000000000000000000000G", "mode": "active"});
    let res = post_signed_webhook(&client, daemon.addr(), "tokyo", TOKYO_SECRET, body(vec![odd])).await;
    assert_eq!(res.status(), 200);
    let row = daemon.store().inbox_get("01J0000000000000000000000G").await.unwrap().unwrap();
    assert_eq!(row.event.event_type, "somethingLineAddsLater");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let (_dir, daemon, client) = setup().await;
    let big = "x".repeat(70_000);
    let raw = body(vec![text_event("01J0000000000000000000000H", "U1", 1, &big)]);
    let res = post_signed_webhook(&client, daemon.addr(), "tokyo", TOKYO_SECRET, raw).await;
    assert_eq!(res.status(), 413);
    assert_eq!(daemon.store().inbox_len().await.unwrap(), 0);
}

#[tokio::test]
async fn concurrent_webhooks_are_all_stored() {
    let (_dir, daemon, client) = setup().await;
    let addr = daemon.addr();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let events = vec![
                text_event(&format!("01J{i:023}A"), &format!("U{i}"), i, "a"),
                text_event(&format!("01J{i:023}B"), &format!("U{i}"), i + 1, "b"),
            ];
            post_signed_webhook(
                &client,
                addr,
                if i % 2 == 0 { "tokyo" } else { "osaka" },
                if i % 2 == 0 { TOKYO_SECRET } else { OSAKA_SECRET },
                body(events),
            )
            .await
            .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(daemon.store().inbox_len().await.unwrap(), 400);
}

/// A config listing `ids` in this order, on a plan that fits them.
fn config_with_accounts(dir: &std::path::Path, ids: &[&str]) -> linehub::settings::Settings {
    let file = ConfigFile::standard(dir, "http://127.0.0.1:9").plan("professional").without_accounts();
    ids.iter().fold(file, |file, id| file.account(id, "s", "t")).load()
}

#[tokio::test]
async fn serials_are_stable_across_reorder_and_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected: Vec<(String, i64)> = vec![("tokyo".into(), 1), ("osaka".into(), 2)];
    for ids in [&["tokyo", "osaka"][..], &["kyoto", "osaka", "tokyo"], &["nagoya", "tokyo"], &["osaka", "nagoya"]] {
        let daemon = start_daemon(config_with_accounts(dir.path(), ids)).await;
        for id in ids {
            if !expected.iter().any(|(e, _)| e == id) {
                expected.push((id.to_string(), expected.len() as i64 + 1));
            }
        }
        // Reordering, removing and re-adding never renumber; new accounts get the next number.
        assert_eq!(daemon.store().serials().await.unwrap(), expected, "after starting with {ids:?}");
        daemon.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn an_event_with_a_malformed_user_id_is_stored_skipped_and_touches_no_contact() {
    let w = World::new().await;
    let user = linehub_sandbox::webhook::random_user_id();
    w.friend("tokyo", &user, "Sato");
    assert_eq!(w.deliver("tokyo", vec![linehub_sandbox::webhook::follow(&user, 1_000, false)]).await, 200);
    w.daemon.settle().await.unwrap();
    let contact = w.contact("line_user_id_1", &user);

    // The same id in capitals (its placeholder email would be the same), one too short, and one
    // that would walk out of the profile URL.
    let shouting = format!("U{}", user[1..].to_uppercase());
    let events = vec![
        text_event("01J0000000000000000000000M", &shouting, 2_000, "hijack"),
        text_event("01J0000000000000000000000N", "U123", 3_000, "short"),
        text_event("01J0000000000000000000000P", &format!("{user}/../../followers/ids"), 4_000, "walk"),
    ];
    let res = post_signed_webhook(&w.http, w.daemon.addr(), "tokyo", TOKYO_SECRET, body(events)).await;
    assert_eq!(res.status(), 200, "malformed events are still stored");
    w.daemon.settle().await.unwrap();

    for id in ["01J0000000000000000000000M", "01J0000000000000000000000N", "01J0000000000000000000000P"] {
        let row = w.daemon.store().inbox_get(id).await.unwrap().expect("stored");
        assert_eq!(row.state, "skipped", "{id}");
        assert!(row.note.as_deref().unwrap_or("").contains("not a LINE user id"), "{id}: {:?}", row.note);
    }
    let contacts: Vec<_> = w.sandbox.hubspot().contacts().into_iter().filter(|c| !c.archived).collect();
    assert_eq!(contacts.len(), 1, "{contacts:#?}");
    let after = w.contact("line_user_id_1", &user);
    assert_eq!(after.id, contact.id);
    assert!(!after.properties.contains_key("line_last_response_1"), "{:?}", after.properties);
    w.sandbox.assert_no_violations();
}
