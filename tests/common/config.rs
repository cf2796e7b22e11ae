//! Config files for the daemon under test: one renderer for every variant the tests need.

use std::path::{Path, PathBuf};

use linehub::settings::Settings;

/// The channel secret of account `tokyo` in [`ConfigFile::standard`].
pub const TOKYO_SECRET: &str = "tokyo-channel-secret-0123456789ab";
/// The channel secret of account `osaka` in [`ConfigFile::standard`].
pub const OSAKA_SECRET: &str = "osaka-channel-secret-0123456789ab";
/// The HubSpot app's client secret in [`ConfigFile::standard`]: it signs workflow action requests.
pub const HUBSPOT_CLIENT_SECRET: &str = "hubspot-app-client-secret-5e0d";
/// The HubSpot token every config uses; the sandbox accepts it.
pub const HUBSPOT_TOKEN: &str = "sandbox-hubspot-token";

/// Writes `text` as `dir/config.yaml` and returns its path.
pub fn write_config_text(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The settings tests vary in a config whose store is `dir/linehub.db`; renders as YAML.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    dir: PathBuf,
    listen: String,
    max_body_bytes: Option<u64>,
    plan: &'static str,
    upstream: Option<String>,
    client_secret: Option<String>,
    tier: Option<&'static str>,
    timeout_secs: Option<u64>,
    /// (id, channel secret, channel access token).
    accounts: Vec<(String, String, String)>,
    /// `server.public_base_url`, when not the default `https://linehub.test`.
    public_base_url: Option<String>,
    /// (account id, the YAML lines of its `login:` block, indented for the account's mapping).
    logins: Vec<(String, String)>,
}

impl ConfigFile {
    /// The usual config: accounts `tokyo` and `osaka` on the starter plan, 64 KiB bodies, the
    /// HubSpot app's client secret, a 2 s HubSpot timeout, and HubSpot and LINE at `upstream`
    /// (a sandbox, or nothing listening when a test does not reach them).
    pub fn standard(dir: &Path, upstream: &str) -> ConfigFile {
        ConfigFile {
            max_body_bytes: Some(65536),
            plan: "starter",
            upstream: Some(upstream.to_string()),
            client_secret: Some(HUBSPOT_CLIENT_SECRET.to_string()),
            timeout_secs: Some(2),
            ..ConfigFile::bare(dir)
        }
        .account("tokyo", TOKYO_SECRET, "tokyo-access-token")
        .account("osaka", OSAKA_SECRET, "osaka-access-token")
    }

    /// A minimal config: plan trial, no accounts, defaults elsewhere.
    pub fn bare(dir: &Path) -> ConfigFile {
        ConfigFile {
            dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".into(),
            max_body_bytes: None,
            plan: "trial",
            upstream: None,
            client_secret: None,
            tier: None,
            timeout_secs: None,
            accounts: Vec::new(),
            public_base_url: None,
            logins: Vec::new(),
        }
    }

    /// Announces `url` as `server.public_base_url` (the address LINE sends people back to).
    pub fn public_base_url(mut self, url: &str) -> ConfigFile {
        self.public_base_url = Some(url.to_string());
        self
    }

    /// Gives account `id` a `login:` block made of `yaml` (one `key: value` per line).
    pub fn login(mut self, id: &str, yaml: &str) -> ConfigFile {
        self.logins.push((id.to_string(), yaml.to_string()));
        self
    }

    /// Listens on `127.0.0.1:port` (for a child process, whose address the test must know).
    pub fn port(mut self, port: u16) -> ConfigFile {
        self.listen = format!("127.0.0.1:{port}");
        self
    }

    /// On plan `plan`.
    pub fn plan(mut self, plan: &'static str) -> ConfigFile {
        self.plan = plan;
        self
    }

    /// HubSpot and LINE at `url`.
    pub fn upstream(mut self, url: &str) -> ConfigFile {
        self.upstream = Some(url.to_string());
        self
    }

    /// Workflow action requests signed with `secret`.
    pub fn client_secret(mut self, secret: &str) -> ConfigFile {
        self.client_secret = Some(secret.to_string());
        self
    }

    /// On HubSpot tier `tier`.
    pub fn tier(mut self, tier: &'static str) -> ConfigFile {
        self.tier = Some(tier);
        self
    }

    /// HubSpot requests time out after `secs`.
    pub fn timeout_secs(mut self, secs: u64) -> ConfigFile {
        self.timeout_secs = Some(secs);
        self
    }

    /// Without the accounts listed so far.
    pub fn without_accounts(mut self) -> ConfigFile {
        self.accounts.clear();
        self
    }

    /// One more account.
    pub fn account(mut self, id: &str, secret: &str, token: &str) -> ConfigFile {
        self.accounts.push((id.to_string(), secret.to_string(), token.to_string()));
        self
    }

    /// The YAML.
    pub fn text(&self) -> String {
        let public = self.public_base_url.as_deref().unwrap_or("https://linehub.test");
        let mut t = format!("server:\n  listen: \"{}\"\n  public_base_url: \"{public}\"\n", self.listen);
        if let Some(n) = self.max_body_bytes {
            t += &format!("  max_body_bytes: {n}\n");
        }
        t += &format!("store:\n  path: \"{}\"\nplan: {}\nhubspot:\n", self.dir.join("linehub.db").display(), self.plan);
        if let Some(url) = &self.upstream {
            t += &format!("  base_url: \"{url}\"\n");
        }
        t += &format!("  token: \"{HUBSPOT_TOKEN}\"\n");
        if let Some(secret) = &self.client_secret {
            t += &format!("  client_secret: \"{secret}\"\n");
        }
        if let Some(tier) = self.tier {
            t += &format!("  tier: {tier}\n");
        }
        if let Some(secs) = self.timeout_secs {
            t += &format!("  timeout_secs: {secs}\n");
        }
        if let Some(url) = &self.upstream {
            t += &format!(
                "line:\n  api_base_url: \"{url}\"\n  data_api_base_url: \"{url}\"\n  login_base_url: \"{url}\"\n  liff_sdk_url: \"{url}/liff/sdk.js\"\n"
            );
        }
        if self.accounts.is_empty() {
            t += "accounts: []\n";
        } else {
            t += "accounts:\n";
        }
        for (id, secret, token) in &self.accounts {
            t += &format!("  - id: {id}\n    channel_secret: \"{secret}\"\n    channel_access_token: \"{token}\"\n");
            for (_, block) in self.logins.iter().filter(|(account, _)| account == id) {
                t += "    login:\n";
                for line in block.lines() {
                    t += &format!("      {line}\n");
                }
            }
        }
        t
    }

    /// Where [`ConfigFile::write`] puts it: `dir/config.yaml`.
    pub fn path(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }

    /// Writes it to [`ConfigFile::path`], which it returns.
    pub fn write(&self) -> PathBuf {
        write_config_text(&self.dir, &self.text())
    }

    /// Loads it as if read from [`ConfigFile::path`] (nothing is written).
    pub fn load(&self) -> Settings {
        Settings::load_str(&self.path(), &self.text()).unwrap_or_else(|e| panic!("{e}"))
    }
}
