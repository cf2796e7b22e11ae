//! LINE webhooks as LINE sends them to the daemon: events, bodies, signatures and the POST.
//! Signatures come from the sandbox's signer, independent of the daemon's own verifier.

use std::net::SocketAddr;

/// `x-line-signature` for `body` under a channel secret, computed by the sandbox.
pub use linehub_sandbox::webhook::sign as sign_webhook;

/// A `message` event with the given webhook event id, user, timestamp and text.
pub fn text_event(id: &str, user: &str, ts: i64, text: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "message",
        "mode": "active",
        "timestamp": ts,
        "webhookEventId": id,
        "deliveryContext": { "isRedelivery": false },
        "replyToken": "b60d432864f44d079f6d8efe86cf404b",
        "source": { "type": "user", "userId": user },
        "message": { "id": "325708", "type": "text", "quoteToken": "q3Plxr4AgKd", "text": text }
    })
}

/// A webhook body around `events`, not checked against LINE's contract (tests send odd events).
pub fn body(events: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "destination": "U0123456789abcdef0123456789abcdef", "events": events }))
        .unwrap()
}

/// Posts `body` to `/line/{account}/webhook` with `signature` (none when `None`).
pub async fn post_webhook(
    client: &reqwest::Client,
    addr: SocketAddr,
    account: &str,
    body: Vec<u8>,
    signature: Option<String>,
) -> reqwest::Response {
    try_post_webhook(client, addr, account, body, signature).await.unwrap()
}

/// [`post_webhook`], returning transport errors (for tests that kill the daemon).
pub async fn try_post_webhook(
    client: &reqwest::Client,
    addr: SocketAddr,
    account: &str,
    body: Vec<u8>,
    signature: Option<String>,
) -> reqwest::Result<reqwest::Response> {
    let mut req = client
        .post(format!("http://{addr}/line/{account}/webhook"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(sig) = signature {
        req = req.header("x-line-signature", sig);
    }
    req.send().await
}

/// Posts `body` signed with channel secret `secret`, as LINE does.
pub async fn post_signed_webhook(
    client: &reqwest::Client,
    addr: SocketAddr,
    account: &str,
    secret: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let sig = sign_webhook(secret, &body);
    post_webhook(client, addr, account, body, Some(sig)).await
}
