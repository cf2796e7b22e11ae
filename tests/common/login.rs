//! ID linking from the outside: a sandbox with a LINE Login channel for `tokyo`, a daemon that
//! announces its real address (so LINE's redirects come back to it), and a browser-like client
//! that keeps cookies, follows redirects and submits LINE's consent form.

use std::net::SocketAddr;

use linehub::clock::Clock;
use linehub::daemon::Daemon;
use linehub::settings::Settings;
use linehub_sandbox::{LoginChannelSpec, LoginConsent};
use tokio::net::TcpListener;

use super::{ConfigFile, OSAKA_SECRET, TOKYO_SECRET, post_signed_webhook};

/// The LINE Login channel of account `tokyo`.
pub const LOGIN_CHANNEL: &str = "1650000001";
/// Its channel secret (the key of web-login ID tokens).
pub const LOGIN_SECRET: &str = "tokyo-login-channel-secret";
/// Its LIFF app.
pub const LIFF_ID: &str = "1650000001-AbCdEfGh";
/// Serial of `tokyo` (the first account).
pub const TOKYO_SERIAL: i64 = 1;

/// A sandbox and a manually driven daemon whose `tokyo` account has a `login:` block.
pub struct LoginWorld {
    /// The simulators.
    pub sandbox: linehub_sandbox::Sandbox,
    /// The daemon.
    pub daemon: Daemon,
    /// Its clock.
    pub clock: std::sync::Arc<linehub::clock::ManualClock>,
    /// Holds the store and config.
    pub dir: tempfile::TempDir,
    /// A browser: cookies kept, redirects followed.
    pub browser: reqwest::Client,
    /// Bot user id of `tokyo`.
    pub bot: String,
}

/// A page as the browser ended on it.
#[derive(Debug)]
pub struct Landed {
    /// Final status.
    pub status: u16,
    /// Final URL.
    pub url: String,
    /// Body.
    pub body: String,
}

/// The `login:` block most tests use: email asked for, LIFF configured.
pub fn login_block(extra: &str) -> String {
    format!("channel_id: \"{LOGIN_CHANNEL}\"\nchannel_secret: \"{LOGIN_SECRET}\"\nemail: true\n{extra}")
}

impl LoginWorld {
    /// A world whose `tokyo` login block is `login_yaml`.
    pub async fn new(login_yaml: &str) -> LoginWorld {
        let sandbox = super::start_sandbox().await;
        let bot =
            sandbox.line().add_channel(linehub_sandbox::ChannelSpec::new("tokyo-access-token", TOKYO_SECRET)).unwrap();
        sandbox.line().add_channel(linehub_sandbox::ChannelSpec::new("osaka-access-token", OSAKA_SECRET)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut channel =
            LoginChannelSpec::new(LOGIN_CHANNEL, LOGIN_SECRET, format!("http://{addr}/line/tokyo/login/callback"));
        channel.linked_bot_access_token = Some("tokyo-access-token".into());
        channel.liff_ids = vec![LIFF_ID.into()];
        channel.email_permission = true;
        sandbox.line().add_login_channel(channel).unwrap();
        let dir = tempfile::tempdir().unwrap();
        ConfigFile::standard(dir.path(), &sandbox.base_url())
            .public_base_url(&format!("http://{addr}"))
            .login("tokyo", login_yaml)
            .write();
        let settings = Settings::load(&dir.path().join("config.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let clock = std::sync::Arc::new(linehub::clock::ManualClock::new());
        let daemon =
            Daemon::start_with(settings, listener, linehub::daemon::Options::manual(clock.clone())).await.unwrap();
        let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
        LoginWorld { sandbox, daemon, clock, dir, browser, bot }
    }

    /// The daemon's address.
    pub fn addr(&self) -> SocketAddr {
        self.daemon.addr()
    }

    /// `http://{daemon}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// Scripts who logs in next, and what they decide.
    pub fn script(&self, consent: LoginConsent) {
        self.sandbox.line().script_login(LOGIN_CHANNEL, consent).unwrap();
    }

    /// A person who allows the login, shares `email` (when given) and adds the account.
    pub fn person(user: &str, name: &str, email: Option<&str>) -> LoginConsent {
        let mut c = LoginConsent::allow(user, name);
        c.email = email.map(str::to_string);
        c.grant_email = email.is_some();
        c.add_friend = true;
        c
    }

    /// Opens `path` on the daemon (a login link) and, on LINE's consent page, presses
    /// `decision` (`allow` or `deny`); returns where the browser ends.
    pub async fn open_login(&self, path: &str, decision: &str) -> Landed {
        let res = self.browser.get(self.url(path)).send().await.unwrap();
        let page = land(res).await;
        let Some(session) = hidden_field(&page.body, "session") else {
            return page;
        };
        let consent = format!("{}/oauth2/v2.1/authorize/consent", self.sandbox.base_url());
        let res = self
            .browser
            .post(consent)
            .form(&[("session", session.as_str()), ("decision", decision)])
            .send()
            .await
            .unwrap();
        land(res).await
    }

    /// Delivers `events` to `tokyo`'s webhook, signed as LINE signs.
    pub async fn deliver(&self, events: Vec<serde_json::Value>) -> u16 {
        let raw = linehub_sandbox::webhook::body(&self.bot, events);
        let http = reqwest::Client::new();
        post_signed_webhook(&http, self.addr(), "tokyo", TOKYO_SECRET, raw).await.status().as_u16()
    }

    /// Applies the inbox and drains the outbox.
    pub async fn settle(&self) {
        self.daemon.settle().await.unwrap();
    }

    /// Now, on the daemon's clock.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The live (not archived, not merged away) contacts holding `property = value`.
    pub fn contacts(&self, property: &str, value: &str) -> Vec<linehub_sandbox::Contact> {
        self.sandbox.hubspot().find_by_property(property, value).into_iter().filter(|c| !c.archived).collect()
    }
}

/// Reads a response to its end.
pub async fn land(res: reqwest::Response) -> Landed {
    let status = res.status().as_u16();
    let url = res.url().to_string();
    let body = res.text().await.unwrap();
    Landed { status, url, body }
}

/// The value of the hidden input `name` in an HTML form.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    Some(tag[v..v + tag[v..].find('"')?].to_string())
}
