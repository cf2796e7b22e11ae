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
/// The HubSpot app's client secret in [`config_text`]: it signs workflow action requests.
pub const HUBSPOT_CLIENT_SECRET: &str = "hubspot-app-client-secret-5e0d";
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
  client_secret: "{HUBSPOT_CLIENT_SECRET}"
  timeout_secs: 2
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

/// A sandbox with LINE channels for `tokyo` and `osaka`, and a daemon whose queues the test
/// drives on a manual clock.
pub struct World {
    /// The simulators.
    pub sandbox: linehub_sandbox::Sandbox,
    /// The daemon under test.
    pub daemon: Daemon,
    /// The daemon's clock.
    pub clock: std::sync::Arc<linehub::clock::ManualClock>,
    /// Bot user id of each account, for webhook `destination`.
    pub bots: std::collections::HashMap<&'static str, String>,
    /// Holds the store and config.
    pub dir: tempfile::TempDir,
    /// HTTP client for webhooks.
    pub http: reqwest::Client,
}

impl World {
    /// Starts a sandbox and a manually driven daemon pointed at it.
    pub async fn new() -> World {
        let sandbox = linehub_sandbox::Sandbox::start(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            linehub_sandbox::SandboxConfig::default(),
        )
        .await
        .unwrap();
        let mut bots = std::collections::HashMap::new();
        for (id, token, secret) in
            [("tokyo", "tokyo-access-token", TOKYO_SECRET), ("osaka", "osaka-access-token", OSAKA_SECRET)]
        {
            let bot = sandbox.line().add_channel(linehub_sandbox::ChannelSpec::new(token, secret)).unwrap();
            bots.insert(id, bot);
        }
        let dir = tempfile::tempdir().unwrap();
        let clock = std::sync::Arc::new(linehub::clock::ManualClock::new());
        let daemon = World::start_daemon(&dir, &sandbox, clock.clone()).await;
        World { sandbox, daemon, clock, bots, dir, http: reqwest::Client::new() }
    }

    async fn start_daemon(
        dir: &tempfile::TempDir,
        sandbox: &linehub_sandbox::Sandbox,
        clock: std::sync::Arc<linehub::clock::ManualClock>,
    ) -> Daemon {
        let path = dir.path().join("config.yaml");
        if !path.exists() {
            write_config(dir.path(), &sandbox.base_url());
        }
        let config = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Daemon::start_with(config, listener, linehub::daemon::Options::manual(clock)).await.unwrap()
    }

    /// Stops the daemon and starts a new one on the same store (a restart).
    pub async fn restart(&mut self) {
        let fresh = World::start_daemon(&self.dir, &self.sandbox, self.clock.clone()).await;
        let old = std::mem::replace(&mut self.daemon, fresh);
        old.shutdown().await.unwrap();
    }

    /// The config file the daemon reads (and re-reads on reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// Writes `dir/pipelines/{file}`; the daemon sees it after a reload.
    pub fn write_pipeline(&self, file: &str, yaml: &str) -> PathBuf {
        let dir = self.dir.path().join("pipelines");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        std::fs::write(&path, yaml).unwrap();
        path
    }

    /// Writes `yaml` as pipeline `file` and reloads, expecting the reload to succeed.
    pub async fn add_pipeline(&self, file: &str, yaml: &str) {
        self.write_pipeline(file, yaml);
        self.daemon.reload().await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// Creates a custom text contact property, as a HubSpot admin would.
    pub async fn create_text_property(&self, name: &str) {
        let res = self
            .http
            .post(format!("{}/crm/v3/properties/contacts", self.sandbox.base_url()))
            .bearer_auth("sandbox-hubspot-token")
            .json(&serde_json::json!({
                "name": name, "label": name, "type": "string", "fieldType": "text", "groupName": "contactinformation"
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }

    /// `n` new friends of `account`, named `Friend i`, with contacts in HubSpot that carry
    /// `LINE User ID _serial`; returns (user, contact id) pairs.
    pub fn friends_with_contacts(&self, account: &str, serial: i64, n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| {
                let user = linehub_sandbox::webhook::random_user_id();
                self.friend(account, &user, &format!("Friend {i}"));
                let email = format!("friend{i}-{}@example.com", &user[1..9]);
                let id = self
                    .sandbox
                    .hubspot()
                    .create_contact(&[("email", &email), (&format!("line_user_id_{serial}"), &user)])
                    .unwrap();
                (user, id)
            })
            .collect()
    }

    /// Makes `user` a friend of `account` in the simulated LINE.
    pub fn friend(&self, account: &str, user: &str, name: &str) {
        let mut profile = linehub_sandbox::Profile::named(name);
        profile.picture_url = Some(format!("https://profile.line-scdn.net/{user}"));
        self.sandbox.line().add_friend(&format!("{account}-access-token"), user, profile).unwrap();
    }

    /// Delivers `events` to `account`'s webhook, signed as LINE signs; returns the status.
    pub async fn deliver(&self, account: &str, events: Vec<serde_json::Value>) -> u16 {
        let raw = linehub_sandbox::webhook::body(&self.bots[account], events);
        let secret = if account == "tokyo" { TOKYO_SECRET } else { OSAKA_SECRET };
        post_signed(&self.http, self.daemon.addr(), account, secret, raw).await.status().as_u16()
    }

    /// The one contact holding `property = value`; panics if there are none or several.
    pub fn contact(&self, property: &str, value: &str) -> linehub_sandbox::Contact {
        let found: Vec<_> =
            self.sandbox.hubspot().find_by_property(property, value).into_iter().filter(|c| !c.archived).collect();
        assert_eq!(found.len(), 1, "contacts with {property}={value}: {found:#?}");
        found.into_iter().next().unwrap()
    }
}
