//! An in-process daemon, alone or beside an in-process sandbox ([`World`]), for tests that
//! drive the daemon's queues and clock directly.

use std::path::PathBuf;

use linehub::clock::Clock;
use linehub::daemon::Daemon;
use linehub::settings::Settings;
use serde_json::Value;
use tokio::net::TcpListener;

use super::{
    ConfigFile, HUBSPOT_TOKEN, OSAKA_SECRET, TOKYO_SECRET, post_action, post_signed_action, post_signed_webhook,
};

/// A sandbox with its default settings on an ephemeral port.
pub async fn start_sandbox() -> linehub_sandbox::Sandbox {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    linehub_sandbox::Sandbox::start(listener, linehub_sandbox::SandboxConfig::default()).await.unwrap()
}

/// Starts a daemon on `settings` and an ephemeral port.
pub async fn start_daemon(settings: Settings) -> Daemon {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Daemon::start(settings, listener).await.unwrap()
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
        let sandbox = start_sandbox().await;
        let mut bots = std::collections::HashMap::new();
        for (id, token, secret) in
            [("tokyo", "tokyo-access-token", TOKYO_SECRET), ("osaka", "osaka-access-token", OSAKA_SECRET)]
        {
            let bot = sandbox.line().add_channel(linehub_sandbox::ChannelSpec::new(token, secret)).unwrap();
            bots.insert(id, bot);
        }
        let dir = tempfile::tempdir().unwrap();
        let clock = std::sync::Arc::new(linehub::clock::ManualClock::new());
        let daemon = World::manual_daemon(&dir, &sandbox, clock.clone()).await;
        World { sandbox, daemon, clock, bots, dir, http: reqwest::Client::new() }
    }

    /// A daemon on `dir`'s config (written first if missing), driven by `clock`.
    async fn manual_daemon(
        dir: &tempfile::TempDir,
        sandbox: &linehub_sandbox::Sandbox,
        clock: std::sync::Arc<linehub::clock::ManualClock>,
    ) -> Daemon {
        let file = ConfigFile::standard(dir.path(), &sandbox.base_url());
        if !file.path().exists() {
            file.write();
        }
        let settings = Settings::load(&file.path()).unwrap_or_else(|e| panic!("{e}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Daemon::start_with(settings, listener, linehub::daemon::Options::manual(clock)).await.unwrap()
    }

    /// Stops the daemon and starts a new one on the same store (a restart).
    pub async fn restart(&mut self) {
        let fresh = World::manual_daemon(&self.dir, &self.sandbox, self.clock.clone()).await;
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
            .bearer_auth(HUBSPOT_TOKEN)
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
        post_signed_webhook(&self.http, self.daemon.addr(), account, secret, raw).await.status().as_u16()
    }

    /// Posts a workflow-action request `body` with `headers`; returns the status and JSON answer.
    pub async fn post_action(&self, body: Vec<u8>, headers: Vec<(&'static str, String)>) -> (u16, Value) {
        post_action(&self.http, self.daemon.addr(), body, headers).await
    }

    /// Posts a workflow-action request `body` signed the v3 way at the daemon's now, as HubSpot does.
    pub async fn post_signed_action(&self, body: Vec<u8>) -> (u16, Value) {
        post_signed_action(&self.http, self.daemon.addr(), body, self.clock.now_ms()).await
    }

    /// The one contact holding `property = value`; panics if there are none or several.
    pub fn contact(&self, property: &str, value: &str) -> linehub_sandbox::Contact {
        let found: Vec<_> =
            self.sandbox.hubspot().find_by_property(property, value).into_iter().filter(|c| !c.archived).collect();
        assert_eq!(found.len(), 1, "contacts with {property}={value}: {found:#?}");
        found.into_iter().next().unwrap()
    }
}
