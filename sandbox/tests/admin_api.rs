//! The admin API, used by tests that run the daemon in another process against `serve`.

mod common;

use linehub_sandbox::{SandboxConfig, Violation, serve, webhook};
use reqwest::Client;
use serde_json::{Value, json};

/// Starts the standalone server and returns its base URL and the switch that stops it.
async fn standalone() -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, SandboxConfig::default(), async {
        let _ = stopped.await;
    }));
    (base, stop, task)
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    common::status_json(req.send().await.expect("answers")).await
}

#[tokio::test]
async fn a_test_in_another_process_can_set_up_and_inspect_everything() {
    let (base, stop, task) = standalone().await;
    let http = Client::new();
    let url = |p: &str| format!("{base}{p}");

    let (status, health) = send(http.get(url("/_sandbox/health"))).await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")));

    let (status, channel) = send(http.post(url("/_sandbox/line/channels")).json(&json!({
        "accessToken": "tok", "channelSecret": "sec", "monthlyQuota": 100})))
    .await;
    assert_eq!(status, 201);
    let bot = channel["botUserId"].as_str().expect("generated bot id").to_string();
    assert!(bot.starts_with('U') && bot.len() == 33);
    let (status, _) =
        send(http.post(url("/_sandbox/line/channels")).json(&json!({"accessToken": "tok", "channelSecret": "x"})))
            .await;
    assert_eq!(status, 409);

    let (status, friend) = send(http.post(url("/_sandbox/line/friends")).json(&json!({
        "channel": "tok", "displayName": "Ann", "language": "en"})))
    .await;
    assert_eq!(status, 201);
    let user = friend["userId"].as_str().expect("user").to_string();
    let (status, _) =
        send(http.post(url("/_sandbox/line/friends")).json(&json!({"channel": "nope", "displayName": "x"}))).await;
    assert_eq!(status, 404);

    let push = json!({"to": user, "messages": [{"type": "text", "text": "hi"}]});
    let (status, _) = send(http.post(url("/v2/bot/message/push")).bearer_auth("tok").json(&push)).await;
    assert_eq!(status, 200);
    let (_, sent) = send(http.get(url("/_sandbox/line/messages"))).await;
    assert_eq!(sent[0]["deliveredTo"], json!([user]));
    let (_, friends) = send(http.get(url("/_sandbox/line/friends?channel=tok"))).await;
    assert_eq!(friends[0]["profile"]["displayName"], "Ann");

    let (status, created) =
        send(http.post(url("/_sandbox/hubspot/contacts")).json(&json!({"properties": {"email": "a@example.com"}})))
            .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().expect("id").to_string();
    let (_, contacts) = send(http.get(url("/_sandbox/hubspot/contacts"))).await;
    assert_eq!(contacts[0]["properties"]["email"], "a@example.com");
    let (status, _) = send(http.delete(url(&format!("/_sandbox/hubspot/contacts/{id}")))).await;
    assert_eq!(status, 204);
    let (status, _) =
        send(http.get(url(&format!("/crm/v3/objects/contacts/{id}"))).bearer_auth("sandbox-hubspot-token")).await;
    assert_eq!(status, 404);
    let (status, _) = send(http.delete(url(&format!("/_sandbox/hubspot/contacts/{id}")))).await;
    assert_eq!(status, 404, "already archived");

    let (_, owner) = send(
        http.post(url("/_sandbox/hubspot/owners"))
            .json(&json!({"email": "o@example.com", "firstName": "O", "lastName": "W"})),
    )
    .await;
    assert!(owner["id"].is_string());
    let (status, _) =
        send(http.post(url("/_sandbox/hubspot/lists")).json(&json!({"name": "L", "members": ["12345"]}))).await;
    assert_eq!(status, 404);
    let (_, stats) = send(http.get(url("/_sandbox/hubspot/stats"))).await;
    assert_eq!(stats["requests"], 1);
    assert_eq!(stats["byEndpoint"]["GET /crm/v3/objects/contacts/{contactId}"], 1);

    let (_, none) = send(http.get(url("/_sandbox/violations"))).await;
    assert_eq!(none, json!([]));
    let off = json!({"to": webhook::random_user_id(), "messages": []});
    let (status, _) = send(http.post(url("/v2/bot/message/push")).bearer_auth("tok").json(&off)).await;
    assert_eq!(status, 400);
    let (_, seen) = send(http.get(url("/_sandbox/violations"))).await;
    let seen: Vec<Violation> = serde_json::from_value(seen).expect("violations deserialise");
    assert_eq!(seen.len(), 1);
    assert!(seen[0].to_string().contains("minItems is 1"), "{}", seen[0]);
    let (_, taken) = send(http.delete(url("/_sandbox/violations"))).await;
    assert_eq!(taken.as_array().map(Vec::len), Some(1));
    let (_, after) = send(http.get(url("/_sandbox/violations"))).await;
    assert_eq!(after, json!([]));

    stop.send(()).expect("server still running");
    task.await.expect("joins").expect("serves cleanly");
}

#[tokio::test]
async fn a_path_no_simulator_serves_is_a_recorded_404() {
    let h = common::start().await;
    let (status, _) = send(h.http.get(h.url("/oauth/v1/token"))).await;
    assert_eq!(status, 404);
    let (status, _) = send(h.http.get(h.url("/_sandbox/nothing"))).await;
    assert_eq!(status, 404);
    let v = h.sandbox.take_violations();
    assert_eq!(v.len(), 1, "admin typos are not contract violations");
    assert_eq!(v[0].request, "GET /oauth/v1/token");
}

#[tokio::test]
async fn assert_no_violations_lists_every_violation() {
    let h = common::start().await;
    let _ = h.http.get(h.url("/v2/bot/unknown")).bearer_auth(common::LINE_TOKEN).send().await;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.sandbox.assert_no_violations()));
    let message = outcome.expect_err("must panic");
    let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("1 contract violation(s)") && text.contains("GET /v2/bot/unknown"), "{text}");
    h.sandbox.shutdown().await;
}
