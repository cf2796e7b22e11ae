//! Shared helpers for the end-to-end tests: a config in a temp dir, a started daemon, signed
//! webhook requests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use linehub::config::{self, Config};
use linehub::daemon::Daemon;
use linehub::line::signature;
use tokio::net::TcpListener;

/// The channel secret of account `tokyo` in [`config_text`].
pub const TOKYO_SECRET: &str = "tokyo-channel-secret-0123456789ab";
/// The channel secret of account `osaka`.
pub const OSAKA_SECRET: &str = "osaka-channel-secret-0123456789ab";

/// A config with two accounts whose store lives in `dir`; the HubSpot and LINE hosts point at
/// `upstream` (a sandbox, or nothing listening when a test does not reach them).
pub fn config_text(dir: &Path, upstream: &str) -> String {
    format!(
        r#"server:
  listen: "127.0.0.1:0"
  public_base_url: "https://linehub.test"
  max_body_bytes: 65536
store:
  path: "{store}"
plan: starter
hubspot:
  base_url: "{upstream}"
  token: "sandbox-hubspot-token"
line:
  api_base_url: "{upstream}"
  data_api_base_url: "{upstream}"
  login_base_url: "{upstream}"
accounts:
  - id: tokyo
    channel_secret: "{TOKYO_SECRET}"
    channel_access_token: "tokyo-access-token"
  - id: osaka
    channel_secret: "{OSAKA_SECRET}"
    channel_access_token: "osaka-access-token"
"#,
        store = dir.join("linehub.db").display()
    )
}

/// Writes [`config_text`] to `dir/config.yaml` and returns its path.
pub fn write_config(dir: &Path, upstream: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, config_text(dir, upstream)).unwrap();
    path
}

/// Loads [`config_text`] for `dir`.
pub fn config(dir: &Path, upstream: &str) -> Config {
    config::load_str(&dir.join("config.yaml"), &config_text(dir, upstream)).unwrap()
}

/// Starts a daemon on an ephemeral port.
pub async fn start(config: Config) -> Daemon {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Daemon::start(config, listener).await.unwrap()
}

/// A `message` event with the given id, user and text.
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

/// A webhook body around `events`.
pub fn body(events: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "destination": "U0123456789abcdef0123456789abcdef", "events": events }))
        .unwrap()
}

/// Posts `body` to `/line/{account}/webhook` with `signature` (none when `None`).
pub async fn post(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    account: &str,
    body: Vec<u8>,
    signature: Option<String>,
) -> reqwest::Response {
    try_post(client, addr, account, body, signature).await.unwrap()
}

/// [`post`], returning transport errors (for tests that kill the daemon).
pub async fn try_post(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
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

/// Posts `body` signed with `secret`.
pub async fn post_signed(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    account: &str,
    secret: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let sig = signature::sign(secret.as_bytes(), &body);
    post(client, addr, account, body, Some(sig)).await
}
