//! A store that cannot commit (a full disk): every request that would need a commit is answered
//! 503 and leaves nothing behind, `/healthz` says so, and everything works again once the store
//! can commit.

mod common;

use common::{World, action_body};
use serde_json::json;

/// A webhook text big enough to need new database pages (LINE allows 5,000 characters; a body
/// is what the daemon stores, whatever its size).
fn long_text() -> String {
    "満".repeat(5000)
}

async fn health(w: &World) -> (u16, serde_json::Value) {
    let res = w.http.get(format!("http://{}/healthz", w.daemon.addr())).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn while_the_store_cannot_commit_webhooks_actions_and_health_get_503_and_redeliveries_succeed_after() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (user, contact) = w.friends_with_contacts("tokyo", 1, 1).remove(0);
    assert_eq!(health(&w).await.0, 200);

    w.daemon.store().simulate_full_disk(true).await.unwrap();
    let event = |redelivery: bool| {
        let mut e = common::text_event("01J00000000000000000000FUL", &user, 1_700_000_000_000, &long_text());
        e["deliveryContext"]["isRedelivery"] = json!(redelivery);
        e
    };
    assert_eq!(w.deliver("tokyo", vec![event(false)]).await, 503, "a webhook the store cannot commit");
    assert_eq!(w.daemon.store().inbox_len().await.unwrap(), 0, "nothing of the refused webhook is stored");

    let action = || action_body("full-1", &contact, json!({ "account": "tokyo", "message_1": long_text() }));
    let (status, answer) = w.post_signed_action(action()).await;
    assert_eq!(status, 503, "a workflow action the store cannot commit: {answer}");
    assert!(w.daemon.store().sends(10).await.unwrap().is_empty(), "nothing of the refused action is stored");

    let (status, answer) = health(&w).await;
    assert_eq!(status, 503, "health while the store cannot commit: {answer}");
    assert!(answer.to_string().contains("store"), "health names the store: {answer}");

    w.daemon.store().simulate_full_disk(false).await.unwrap();
    assert_eq!(w.deliver("tokyo", vec![event(true)]).await, 200, "LINE's redelivery");
    let row = w.daemon.store().inbox_get("01J00000000000000000000FUL").await.unwrap().expect("stored");
    assert!(row.event.redelivery && row.event.body.contains(&long_text()), "{row:?}");
    let (status, answer) = w.post_signed_action(action()).await;
    assert_eq!(status, 200, "HubSpot's retry: {answer}");
    assert_eq!(answer["outputFields"]["hs_execution_state"], "BLOCK", "{answer}");
    let sends = w.daemon.store().sends(10).await.unwrap();
    assert_eq!(sends.len(), 1, "{sends:?}");
    assert_eq!(sends[0].callback_id.as_deref(), Some("full-1"));
    assert_eq!(health(&w).await.0, 200, "health once the store commits again");
}
