//! HubSpot's "Push LINE message" workflow-action requests to the daemon: the body HubSpot sends,
//! its signature (the sandbox's HubSpot signer) and the POST.

use std::net::SocketAddr;

use linehub_sandbox::{hubspot_actions, hubspot_signing};
use serde_json::{Value, json};

/// The action's URL as HubSpot calls it (the configs' `public_base_url`); signatures cover it.
pub const ACTION_URL: &str = "https://linehub.test/hubspot/actions/push-line-message";

/// A request body as HubSpot sends it when a workflow enrolls contact `contact` (a numeric id).
pub fn action_body(callback: &str, contact: &str, inputs: Value) -> Vec<u8> {
    hubspot_actions::execution_request(callback, contact.parse::<u64>().unwrap(), inputs).to_string().into_bytes()
}

/// The v3 signature headers HubSpot puts on `body` sent at `now_ms`, with client secret `secret`.
pub fn action_headers(secret: &str, body: &[u8], now_ms: i64) -> Vec<(&'static str, String)> {
    hubspot_signing::headers_v3(secret, "POST", ACTION_URL, body, now_ms)
}

/// Posts `body` with `headers` to the daemon's action endpoint at `addr`, returning transport
/// errors (for tests that kill the daemon).
pub async fn try_post_action(
    http: &reqwest::Client,
    addr: SocketAddr,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
) -> reqwest::Result<reqwest::Response> {
    let mut req = http
        .post(format!("http://{addr}/hubspot/actions/push-line-message"))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        req = req.header(name, value);
    }
    req.send().await
}

/// [`try_post_action`]; returns the status and the JSON answer (null when there is none).
pub async fn post_action(
    http: &reqwest::Client,
    addr: SocketAddr,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
) -> (u16, Value) {
    let res = try_post_action(http, addr, body, headers).await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Posts `body` signed the v3 way with [`HUBSPOT_CLIENT_SECRET`](super::HUBSPOT_CLIENT_SECRET)
/// at `now_ms`, as HubSpot does.
pub async fn post_signed_action(http: &reqwest::Client, addr: SocketAddr, body: Vec<u8>, now_ms: i64) -> (u16, Value) {
    let headers = action_headers(super::HUBSPOT_CLIENT_SECRET, &body, now_ms);
    post_action(http, addr, body, headers).await
}
