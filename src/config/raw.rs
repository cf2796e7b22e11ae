//! What the YAML says, before it is checked.
//!
//! These types mirror `config.yaml` one to one and reject unknown keys, so a typo is a load error
//! with its line. They are never used by the daemon directly: [`super::validate`] turns them into a
//! [`super::Config`], and that is the only way to get one. Values whose later checks need a
//! position keep it with [`Spanned`].

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The top level of `config.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    pub store: RawStore,
    pub plan: Spanned<String>,
    pub hubspot: RawHubSpot,
    #[serde(default)]
    pub line: RawLine,
    pub accounts: Vec<RawAccount>,
    #[serde(default)]
    pub pipelines_dir: Option<Spanned<String>>,
}

/// `server:`: where the daemon listens and how it is reached from outside.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Spanned<String>,
    pub public_base_url: Spanned<String>,
    #[serde(default)]
    pub max_body_bytes: Option<Spanned<u64>>,
}

/// `store:`: the SQLite file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub path: Spanned<String>,
}

/// `hubspot:`: the portal linehub writes to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHubSpot {
    #[serde(default)]
    pub base_url: Option<Spanned<String>>,
    pub token: Spanned<String>,
    #[serde(default)]
    pub client_secret: Option<Spanned<String>>,
    #[serde(default)]
    pub accept_v2_signatures: Option<Spanned<bool>>,
    #[serde(default)]
    pub tier: Option<Spanned<String>>,
    #[serde(default)]
    pub requests_per_10s: Option<Spanned<u32>>,
    #[serde(default)]
    pub timeout_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub dummy_email_domain: Option<Spanned<String>>,
}

/// `line:`: LINE's API hosts; only tests and the sandbox change them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLine {
    #[serde(default)]
    pub api_base_url: Option<Spanned<String>>,
    #[serde(default)]
    pub data_api_base_url: Option<Spanned<String>>,
    #[serde(default)]
    pub login_base_url: Option<Spanned<String>>,
    #[serde(default)]
    pub liff_sdk_url: Option<Spanned<String>>,
}

/// One entry of `accounts:`: a connected LINE Official Account.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub id: Spanned<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub channel_secret: Spanned<String>,
    pub channel_access_token: Spanned<String>,
    #[serde(default)]
    pub active: Option<Spanned<bool>>,
    #[serde(default)]
    pub login: Option<RawLogin>,
}

/// `accounts[].login:`: the LINE Login channel that links LINE users to HubSpot contacts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogin {
    pub channel_id: Spanned<String>,
    pub channel_secret: Spanned<String>,
    #[serde(default)]
    pub liff_id: Option<Spanned<String>>,
    #[serde(default)]
    pub after_login_url: Option<Spanned<String>>,
    #[serde(default)]
    pub email: Option<Spanned<bool>>,
    #[serde(default)]
    pub bot_prompt: Option<Spanned<String>>,
}
