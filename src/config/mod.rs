//! linehub's configuration: one YAML file, checked whole before anything uses it.
//!
//! `config.yaml` names where the daemon listens, where its store lives, the HubSpot portal, LINE's
//! API hosts, the connector plan and the connected LINE Official Accounts (see
//! `config.example.yaml`, where every key is commented). Two types keep the file honest: the raw
//! YAML model in [`raw`], and the checked [`Config`] that only [`load`] can produce. Every error
//! names file, line and field (the located errors of [`crate::yaml`]). [`watch`] notices when the
//! file or its pipelines directory changes on disk; [`reload`] says what a new config changes and
//! which settings only a restart can change.
//!
//! Arrows point one way: this module knows nothing of pipelines. The pipelines of
//! `pipelines_dir` know this config's accounts, and `crate::settings` loads the two together,
//! so a config and its pipelines are always accepted (or refused) as one.

mod load;
mod raw;
pub mod reload;
mod secret;
mod validate;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use crate::yaml::{ConfigError, ConfigErrors, parse_yaml};
pub use load::{load, load_str};
pub use secret::{ExpandError, Secret, expand_env, expand_with, redact_url};

/// A checked configuration. Build one with [`load`] or [`load_str`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; relative paths inside it were resolved against its directory.
    pub source: PathBuf,
    /// The HTTP listener.
    pub server: ServerConfig,
    /// The SQLite store.
    pub store: StoreConfig,
    /// The connector plan, which caps how many accounts may be active.
    pub plan: PlanTier,
    /// The HubSpot portal.
    pub hubspot: HubSpotConfig,
    /// LINE's API hosts.
    pub line: LineConfig,
    /// Connected LINE Official Accounts, in file order (serials live in the store, not here).
    pub accounts: Vec<Account>,
    /// Where pipeline files are read from (`pipelines_dir`, default `pipelines` beside the
    /// config file); a directory that does not exist means no pipelines.
    pub pipelines_dir: PathBuf,
}

impl Config {
    /// The account whose webhook path segment is `id`, active or not.
    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// Accounts that take webhooks and are synced.
    pub fn active_accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.iter().filter(|a| a.active)
    }
}

/// `server:`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address the HTTP listener binds, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// How LINE and HubSpot reach this daemon (behind a reverse proxy), without a trailing slash.
    pub public_base_url: String,
    /// Requests with larger bodies are refused with 413.
    pub max_body_bytes: usize,
}

/// `store:`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The SQLite database file.
    pub path: PathBuf,
}

/// `hubspot:`.
#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    /// API root, `https://api.hubapi.com` unless pointed at the sandbox.
    pub base_url: String,
    /// Private-app or service-key token.
    pub token: Secret,
    /// The HubSpot app's client secret, which signs the requests HubSpot sends to linehub (the
    /// "Push LINE message" workflow action). Without it those routes answer 404.
    pub client_secret: Option<Secret>,
    /// Whether HubSpot's v2 signatures (no timestamp, so replayable) are accepted besides v3.
    /// Off unless `hubspot.accept_v2_signatures: true`.
    pub accept_v2_signatures: bool,
    /// Requests allowed per rolling 10 seconds (from `tier`, or set directly).
    pub requests_per_10s: u32,
    /// How long one request may take before it counts as failed.
    pub timeout: std::time::Duration,
    /// Domain of the placeholder email given to contacts known only by their LINE user id.
    pub dummy_email_domain: String,
}

impl HubSpotConfig {
    /// The placeholder email of a LINE user: unique per user, lowercase, never deliverable
    /// unless the domain is made so. It also makes contact creation idempotent: a second create
    /// for the same user gets HubSpot's 409 with the existing contact's id.
    pub fn dummy_email(&self, user_id: &str) -> String {
        format!("{}@{}", user_id.to_ascii_lowercase(), self.dummy_email_domain)
    }
}

/// HubSpot's API burst limit per private app and 10 seconds, by the portal's subscription.
pub fn hubspot_requests_per_10s(tier: &str) -> Option<u32> {
    match tier {
        "free" | "starter" => Some(100),
        "professional" | "enterprise" => Some(190),
        "api_limit_increase" => Some(250),
        _ => None,
    }
}

/// `line:`.
#[derive(Debug, Clone)]
pub struct LineConfig {
    /// Messaging API root, `https://api.line.me`.
    pub api_base_url: String,
    /// Content API root, `https://api-data.line.me`.
    pub data_api_base_url: String,
    /// LINE Login root, `https://access.line.me`.
    pub login_base_url: String,
    /// Where the LIFF page loads LINE's LIFF SDK from.
    pub liff_sdk_url: String,
}

/// One connected LINE Official Account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Stable identifier used in the webhook URL `/line/{id}/webhook`.
    pub id: String,
    /// Human-readable name for logs and reports.
    pub name: String,
    /// Messaging API channel secret: the key of `X-Line-Signature`.
    pub channel_secret: Secret,
    /// Messaging API channel access token.
    pub channel_access_token: Secret,
    /// Inactive accounts keep their data and serial but take no webhooks.
    pub active: bool,
    /// The LINE Login channel that links this account's users to contacts; without it every
    /// login route answers 404.
    pub login: Option<LoginConfig>,
}

/// `accounts[].login:`: ID linking through LINE Login (and LIFF) for one account.
#[derive(Debug, Clone)]
pub struct LoginConfig {
    /// The LINE Login channel id: `client_id` of the login, `aud` of its ID tokens.
    pub channel_id: String,
    /// The LINE Login channel secret: exchanges codes and signs web-login ID tokens.
    pub channel_secret: Secret,
    /// The LIFF app (of this Login channel) whose endpoint is `/line/{account}/liff`.
    pub liff_id: Option<String>,
    /// Where a person lands after linking (e.g. `https://line.me/R/ti/p/@…` to open the chat);
    /// without it, linehub shows a page saying the account is linked.
    pub after_login_url: Option<String>,
    /// Whether the `email` scope is asked for (needs LINE's email permission).
    pub email: bool,
    /// The add-friend prompt shown with the consent screen.
    pub bot_prompt: BotPrompt,
}

/// LINE Login's `bot_prompt`: how the person is offered to add the account as a friend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotPrompt {
    /// An add-friend option on the consent screen.
    Normal,
    /// A separate add-friend screen after consent.
    Aggressive,
    /// No prompt.
    Off,
}

impl BotPrompt {
    /// The `bot_prompt` parameter of the authorize URL, when one is sent.
    pub fn param(self) -> Option<&'static str> {
        match self {
            BotPrompt::Normal => Some("normal"),
            BotPrompt::Aggressive => Some("aggressive"),
            BotPrompt::Off => None,
        }
    }
}

/// The connector plan; it caps the number of active accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanTier {
    /// Evaluation: 2 accounts.
    Trial,
    /// 2 accounts.
    Starter,
    /// 10 accounts.
    Professional,
    /// 50 accounts.
    Enterprise,
}

impl PlanTier {
    /// Every tier, for messages that list the choices.
    pub const ALL: [PlanTier; 4] = [PlanTier::Trial, PlanTier::Starter, PlanTier::Professional, PlanTier::Enterprise];

    /// How many accounts may be active at once.
    pub fn max_active_accounts(self) -> usize {
        match self {
            PlanTier::Trial | PlanTier::Starter => 2,
            PlanTier::Professional => 10,
            PlanTier::Enterprise => 50,
        }
    }

    /// The name used in YAML.
    pub fn name(self) -> &'static str {
        match self {
            PlanTier::Trial => "trial",
            PlanTier::Starter => "starter",
            PlanTier::Professional => "professional",
            PlanTier::Enterprise => "enterprise",
        }
    }

    /// Parses the YAML name.
    pub fn from_name(name: &str) -> Option<PlanTier> {
        PlanTier::ALL.into_iter().find(|t| t.name() == name)
    }
}
