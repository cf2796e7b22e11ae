//! Turning the raw YAML model into a checked [`Config`], collecting every error at once.
//!
//! Checks: `${ENV}` references resolve, addresses and URLs parse, account ids are unique and fit
//! in a URL path, secrets are not empty, and no more accounts are active than the plan allows.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::raw::{RawAccount, RawConfig, RawLogin};
use super::secret::{Secret, expand_with, redact_url};
use super::{Account, BotPrompt, Config, HubSpotConfig, LineConfig, LoginConfig, PlanTier, ServerConfig, StoreConfig};
use crate::yaml::{ConfigError, ConfigErrors};

/// Default request body limit: LINE sends at most a few hundred KB; 1 MiB leaves headroom.
const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// `.invalid` is reserved (RFC 2606): mail to it can never be delivered to anyone.
const DEFAULT_DUMMY_EMAIL_DOMAIN: &str = "line.linehub.invalid";
/// LINE's LIFF SDK, version 2, as its documentation loads it.
const DEFAULT_LIFF_SDK_URL: &str = "https://static.line-scdn.net/liff/edge/2/sdk.js";

/// Collects errors while checking one file.
struct Checker<'a> {
    file: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error<T>(&mut self, at: &Spanned<T>, field: &str, message: impl Into<String>) {
        self.errors.push(ConfigError::at_span(self.file, at, field, message));
    }

    /// Expands `${ENV}` in a string value; `None` (after recording why) when it cannot.
    fn string(&mut self, value: &Spanned<String>, field: &str) -> Option<String> {
        match expand_with(&value.value, self.env) {
            Ok(s) => Some(s),
            Err(e) => {
                self.error(value, field, e.to_string());
                None
            }
        }
    }

    /// A string that must not be empty once expanded (secrets, tokens).
    fn secret(&mut self, value: &Spanned<String>, field: &str) -> Option<Secret> {
        let s = self.string(value, field)?;
        if s.trim().is_empty() {
            self.error(value, field, "must not be empty");
            return None;
        }
        Some(Secret::new(s))
    }

    /// An `http(s)://` base URL, returned without a trailing slash.
    fn url(&mut self, value: Option<&Spanned<String>>, field: &str, default: &str) -> Option<String> {
        let Some(value) = value else {
            return Some(default.to_string());
        };
        let s = self.string(value, field)?;
        // The value may carry credentials (`user:password@`), so messages show it redacted.
        let shown = redact_url(&s);
        match reqwest::Url::parse(&s) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
                Some(s.trim_end_matches('/').to_string())
            }
            Ok(_) => {
                self.error(value, field, format!("`{shown}` must be an http:// or https:// URL with a host"));
                None
            }
            Err(e) => {
                self.error(value, field, format!("`{shown}` is not a URL: {e}"));
                None
            }
        }
    }
}

/// Checks a parsed file. `env` resolves `${NAME}` references.
pub fn validate(raw: RawConfig, file: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
    let mut c = Checker { file, env, errors: Vec::new() };

    let listen = c.string(&raw.server.listen, "server.listen").and_then(|s| match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            c.error(&raw.server.listen, "server.listen", format!("`{s}` is not an address like 127.0.0.1:8080"));
            None
        }
    });
    let public_base_url = c.url(Some(&raw.server.public_base_url), "server.public_base_url", "");
    let max_body_bytes = match &raw.server.max_body_bytes {
        Some(v) if v.value < 1024 => {
            c.error(v, "server.max_body_bytes", "must be at least 1024");
            None
        }
        Some(v) => usize::try_from(v.value).ok(),
        None => usize::try_from(DEFAULT_MAX_BODY_BYTES).ok(),
    };

    let store_path = c.string(&raw.store.path, "store.path").and_then(|s| {
        if s.trim().is_empty() {
            c.error(&raw.store.path, "store.path", "must not be empty");
            return None;
        }
        let p = PathBuf::from(s);
        Some(if p.is_relative() { file.parent().unwrap_or(Path::new(".")).join(p) } else { p })
    });

    let plan = PlanTier::from_name(&raw.plan.value);
    if plan.is_none() {
        let names: Vec<_> = PlanTier::ALL.iter().map(|t| t.name()).collect();
        c.error(&raw.plan, "plan", format!("unknown plan `{}`; use one of {}", raw.plan.value, names.join(", ")));
    }

    let hubspot_base = c.url(raw.hubspot.base_url.as_ref(), "hubspot.base_url", "https://api.hubapi.com");
    let hubspot_token = c.secret(&raw.hubspot.token, "hubspot.token");
    // Absent means no surface that HubSpot signs (the workflow action) is served.
    let client_secret = raw.hubspot.client_secret.as_ref().map(|s| c.secret(s, "hubspot.client_secret"));
    let requests_per_10s = match (&raw.hubspot.requests_per_10s, &raw.hubspot.tier) {
        (Some(n), _) if n.value < 3 => {
            c.error(n, "hubspot.requests_per_10s", "must be at least 3");
            None
        }
        (Some(n), _) => Some(n.value),
        (None, Some(tier)) => {
            let n = super::hubspot_requests_per_10s(&tier.value);
            if n.is_none() {
                c.error(
                    tier,
                    "hubspot.tier",
                    format!(
                        "unknown HubSpot tier `{}`; use free, starter, professional, enterprise or api_limit_increase",
                        tier.value
                    ),
                );
            }
            n
        }
        (None, None) => Some(100),
    };
    let timeout = match &raw.hubspot.timeout_secs {
        Some(t) if t.value == 0 || t.value > 300 => {
            c.error(t, "hubspot.timeout_secs", "must be between 1 and 300");
            None
        }
        Some(t) => Some(std::time::Duration::from_secs(t.value)),
        None => Some(std::time::Duration::from_secs(30)),
    };
    let dummy_email_domain = match &raw.hubspot.dummy_email_domain {
        None => Some(DEFAULT_DUMMY_EMAIL_DOMAIN.to_string()),
        Some(d) => c.string(d, "hubspot.dummy_email_domain").and_then(|s| {
            let ok = s.contains('.')
                && s.split('.').all(|l| !l.is_empty() && l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'));
            if ok {
                Some(s.to_ascii_lowercase())
            } else {
                c.error(d, "hubspot.dummy_email_domain", format!("`{s}` is not a domain name like line.example.com"));
                None
            }
        }),
    };

    let line = LineConfig {
        api_base_url: c
            .url(raw.line.api_base_url.as_ref(), "line.api_base_url", "https://api.line.me")
            .unwrap_or_default(),
        data_api_base_url: c
            .url(raw.line.data_api_base_url.as_ref(), "line.data_api_base_url", "https://api-data.line.me")
            .unwrap_or_default(),
        login_base_url: c
            .url(raw.line.login_base_url.as_ref(), "line.login_base_url", "https://access.line.me")
            .unwrap_or_default(),
        liff_sdk_url: c
            .url(raw.line.liff_sdk_url.as_ref(), "line.liff_sdk_url", DEFAULT_LIFF_SDK_URL)
            .unwrap_or_default(),
    };

    let accounts = check_accounts(&mut c, &raw.accounts, plan);
    let base = file.parent().unwrap_or(Path::new("."));
    let pipelines_dir = match &raw.pipelines_dir {
        None => Some(base.join("pipelines")),
        Some(d) => c.string(d, "pipelines_dir").and_then(|s| {
            let p = base.join(&s);
            if p.is_dir() {
                Some(p)
            } else {
                c.error(
                    d,
                    "pipelines_dir",
                    format!("`{s}` is not a directory (remove the key if there are no pipelines)"),
                );
                None
            }
        }),
    };

    let hubspot = match (hubspot_base, hubspot_token, requests_per_10s, timeout, dummy_email_domain, client_secret) {
        (
            Some(base_url),
            Some(token),
            Some(requests_per_10s),
            Some(timeout),
            Some(dummy_email_domain),
            client_secret @ (None | Some(Some(_))),
        ) => Some(HubSpotConfig {
            base_url,
            token,
            client_secret: client_secret.flatten(),
            accept_v2_signatures: raw.hubspot.accept_v2_signatures.as_ref().is_some_and(|v| v.value),
            requests_per_10s,
            timeout,
            dummy_email_domain,
        }),
        _ => None,
    };
    match (listen, public_base_url, max_body_bytes, store_path, plan, hubspot, pipelines_dir) {
        (
            Some(listen),
            Some(public_base_url),
            Some(max_body_bytes),
            Some(path),
            Some(plan),
            Some(hubspot),
            Some(pipelines_dir),
        ) if c.errors.is_empty() => Ok(Config {
            source: file.to_path_buf(),
            server: ServerConfig { listen, public_base_url, max_body_bytes },
            store: StoreConfig { path },
            plan,
            hubspot,
            line,
            accounts,
            pipelines_dir,
        }),
        _ => Err(ConfigErrors(c.errors)),
    }
}

/// Account ids appear in webhook URLs and in logs: keep them short and URL-safe.
fn valid_account_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && id.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn check_accounts(c: &mut Checker<'_>, raw: &[RawAccount], plan: Option<PlanTier>) -> Vec<Account> {
    let mut accounts = Vec::with_capacity(raw.len());
    let mut active = 0usize;
    for (i, a) in raw.iter().enumerate() {
        let field = |name: &str| format!("accounts[{i}].{name}");
        let id = a.id.value.clone();
        if !valid_account_id(&id) {
            c.error(
                &a.id,
                &field("id"),
                format!("`{id}` must be 1-64 of a-z, 0-9, `-`, `_`, starting with a letter or digit"),
            );
        } else if raw[..i].iter().any(|b| b.id.value == id) {
            c.error(&a.id, &field("id"), format!("`{id}` is used by an earlier account; ids must be unique"));
        }
        let secret = c.secret(&a.channel_secret, &field("channel_secret"));
        let token = c.secret(&a.channel_access_token, &field("channel_access_token"));
        let is_active = a.active.as_ref().is_none_or(|s| s.value);
        if is_active {
            active += 1;
            if let Some(plan) = plan
                && active == plan.max_active_accounts() + 1
            {
                c.error(
                    &a.id,
                    &field("id"),
                    format!(
                        "plan `{}` allows {} active accounts and this is one more; set `active: false` on an account or raise `plan`",
                        plan.name(),
                        plan.max_active_accounts()
                    ),
                );
            }
        }
        let login = a.login.as_ref().map(|l| check_login(c, l, &field("login")));
        if let (Some(channel_secret), Some(channel_access_token), login @ (None | Some(Some(_)))) =
            (secret, token, login)
        {
            accounts.push(Account {
                name: a.name.clone().unwrap_or_else(|| id.clone()),
                id,
                channel_secret,
                channel_access_token,
                active: is_active,
                login: login.flatten(),
            });
        }
    }
    accounts
}

/// Checks an account's `login:` block; `field` is its path (`accounts[0].login`).
fn check_login(c: &mut Checker<'_>, raw: &RawLogin, field: &str) -> Option<LoginConfig> {
    let at = |name: &str| format!("{field}.{name}");
    let channel_id = c.string(&raw.channel_id, &at("channel_id"));
    if let Some(id) = &channel_id
        && !(id.len() >= 5 && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()))
    {
        c.error(
            &raw.channel_id,
            &at("channel_id"),
            format!("`{id}` is not a LINE Login channel id (its digits, from the channel's Basic settings)"),
        );
    }
    let channel_secret = c.secret(&raw.channel_secret, &at("channel_secret"));
    let liff_id = raw.liff_id.as_ref().and_then(|v| {
        let id = c.string(v, &at("liff_id"))?;
        let ok = id.split_once('-').is_some_and(|(channel, app)| {
            !channel.is_empty()
                && channel.bytes().all(|b| b.is_ascii_digit())
                && !app.is_empty()
                && app.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if !ok {
            c.error(v, &at("liff_id"), format!("`{id}` is not a LIFF id like 1234567890-AbcdEfgh"));
            return None;
        }
        Some(id)
    });
    let liff_ok = raw.liff_id.is_none() || liff_id.is_some();
    let after_login_url = match &raw.after_login_url {
        None => Some(None),
        Some(v) => c.url(Some(v), &at("after_login_url"), "").map(Some),
    };
    let bot_prompt = match raw.bot_prompt.as_ref().map(|v| (v, v.value.as_str())) {
        None | Some((_, "normal")) => Some(BotPrompt::Normal),
        Some((_, "aggressive")) => Some(BotPrompt::Aggressive),
        Some((_, "off")) => Some(BotPrompt::Off),
        Some((v, other)) => {
            c.error(v, &at("bot_prompt"), format!("unknown bot_prompt `{other}`; use normal, aggressive or off"));
            None
        }
    };
    match (channel_id, channel_secret, after_login_url, bot_prompt) {
        (Some(channel_id), Some(channel_secret), Some(after_login_url), Some(bot_prompt)) if liff_ok => {
            Some(LoginConfig {
                channel_id,
                channel_secret,
                liff_id,
                after_login_url,
                email: raw.email.as_ref().is_some_and(|v| v.value),
                bot_prompt,
            })
        }
        _ => None,
    }
}
