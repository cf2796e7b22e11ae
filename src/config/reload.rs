//! What a new config changes, compared with the running one.
//!
//! A reload is accepted only when the new file validates and changes nothing that is read once
//! at start ([`needs_restart`] names each such setting). [`ReloadOutcome`] is what the log and
//! the caller are told: accounts added (with their new serials), removed and toggled, and
//! pipelines added, removed and changed (filled in by the pipelines' own comparison).

use std::fmt;
use std::time::Duration;

use super::Config;

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// New accounts, with their serials.
    pub accounts_added: Vec<(String, i64)>,
    /// Accounts no longer in the file (their data and serial stay).
    pub accounts_removed: Vec<String>,
    /// Accounts that became active or inactive.
    pub accounts_toggled: Vec<String>,
    /// Pipelines added.
    pub pipelines_added: Vec<String>,
    /// Pipelines removed.
    pub pipelines_removed: Vec<String>,
    /// Pipelines whose definition changed.
    pub pipelines_changed: Vec<String>,
    /// Reading, validating and swapping took this long.
    pub elapsed: Duration,
}

impl ReloadOutcome {
    /// The account changes from `old` to `new`; `serials` are the store's, new accounts included.
    pub fn accounts(old: &Config, new: &Config, serials: &[(String, i64)]) -> ReloadOutcome {
        let mut o = ReloadOutcome::default();
        for a in &new.accounts {
            match old.account(&a.id) {
                None => o
                    .accounts_added
                    .push((a.id.clone(), serials.iter().find(|(id, _)| id == &a.id).map_or(0, |(_, n)| *n))),
                Some(b) if b.active != a.active => o.accounts_toggled.push(a.id.clone()),
                Some(_) => {}
            }
        }
        o.accounts_removed =
            old.accounts.iter().filter(|a| new.account(&a.id).is_none()).map(|a| a.id.clone()).collect();
        o
    }

    /// Whether accounts appeared or changed state, so their HubSpot properties must be ensured.
    pub fn wants_properties(&self) -> bool {
        !self.accounts_added.is_empty() || !self.accounts_toggled.is_empty()
    }
}

impl fmt::Display for ReloadOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        let added: Vec<String> = self.accounts_added.iter().map(|(id, n)| format!("{id} (serial {n})")).collect();
        write!(
            f,
            "accounts added: {}; removed: {}; toggled: {}; pipelines added: {}; removed: {}; changed: {} ({:?})",
            list(&added),
            list(&self.accounts_removed),
            list(&self.accounts_toggled),
            list(&self.pipelines_added),
            list(&self.pipelines_removed),
            list(&self.pipelines_changed),
            self.elapsed
        )
    }
}

/// How a changed setting's values appear in a reload message.
enum Show {
    /// As they are.
    Value,
    /// As URLs without credentials.
    Url,
    /// Not at all (secrets).
    Nothing,
}

/// Settings read once at start that differ between `old` and `new`, each worded for the log;
/// a reload that changes one is refused. Secret values, and credentials in URLs, are never shown.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, a: &str, b: &str, show: Show| {
        if a != b {
            let values = match show {
                Show::Value => format!(" ({a} → {b})"),
                // Compared whole, shown without their credentials (`user:password@`).
                Show::Url => format!(" ({} → {})", super::redact_url(a), super::redact_url(b)),
                Show::Nothing => " (value not shown)".to_string(),
            };
            out.push(format!("{name} changed{values}; restart linehub to apply it"));
        }
    };
    let (o, n) = (&old.server, &new.server);
    check("server.listen", &o.listen.to_string(), &n.listen.to_string(), Show::Value);
    check("server.max_body_bytes", &o.max_body_bytes.to_string(), &n.max_body_bytes.to_string(), Show::Value);
    check("store.path", &old.store.path.display().to_string(), &new.store.path.display().to_string(), Show::Value);
    let (h, n) = (&old.hubspot, &new.hubspot);
    check("hubspot.base_url", &h.base_url, &n.base_url, Show::Url);
    check("hubspot.token", h.token.expose(), n.token.expose(), Show::Nothing);
    check("hubspot.requests_per_10s", &h.requests_per_10s.to_string(), &n.requests_per_10s.to_string(), Show::Value);
    check("hubspot.timeout_secs", &h.timeout.as_secs().to_string(), &n.timeout.as_secs().to_string(), Show::Value);
    check("hubspot.dummy_email_domain", &h.dummy_email_domain, &n.dummy_email_domain, Show::Value);
    let (l, n) = (&old.line, &new.line);
    check("line.api_base_url", &l.api_base_url, &n.api_base_url, Show::Url);
    check("line.data_api_base_url", &l.data_api_base_url, &n.data_api_base_url, Show::Url);
    check("line.login_base_url", &l.login_base_url, &n.login_base_url, Show::Url);
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(accounts: &str, listen: &str) -> Config {
        let yaml = format!(
            "server: {{ listen: \"{listen}\", public_base_url: \"https://x.test\" }}\nstore: {{ path: /tmp/x.db }}\nplan: professional\n\
             hubspot: {{ token: t }}\naccounts:\n{accounts}"
        );
        super::super::load_str(Path::new("/nonexistent/config.yaml"), &yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn accounts_added_removed_and_toggled_are_named() {
        let a = "  - { id: a, channel_secret: s, channel_access_token: t }\n";
        let b = "  - { id: b, channel_secret: s, channel_access_token: t }\n";
        let b_off = "  - { id: b, channel_secret: s, channel_access_token: t, active: false }\n";
        let c = "  - { id: c, channel_secret: s, channel_access_token: t }\n";
        let old = config(&format!("{a}{b}"), "127.0.0.1:1");
        let new = config(&format!("{b_off}{c}"), "127.0.0.1:1");
        let o = ReloadOutcome::accounts(&old, &new, &[("c".into(), 7)]);
        assert_eq!(o.accounts_added, [("c".to_string(), 7)]);
        assert_eq!(o.accounts_removed, ["a"]);
        assert_eq!(o.accounts_toggled, ["b"]);
        assert!(o.wants_properties());
        assert!(needs_restart(&old, &new).is_empty());
    }

    #[test]
    fn a_changed_listener_needs_a_restart() {
        let a = "  - { id: a, channel_secret: s, channel_access_token: t }\n";
        let changed = needs_restart(&config(a, "127.0.0.1:1"), &config(a, "127.0.0.1:2"));
        assert_eq!(changed, ["server.listen changed (127.0.0.1:1 → 127.0.0.1:2); restart linehub to apply it"]);
    }

    #[test]
    fn a_url_whose_password_alone_changed_needs_a_restart_and_hides_both_passwords() {
        let a = "  - { id: a, channel_secret: s, channel_access_token: t }
";
        let (mut old, mut new) = (config(a, "127.0.0.1:1"), config(a, "127.0.0.1:1"));
        old.line.api_base_url = "https://u:old-pw@line.test".into();
        new.line.api_base_url = "https://u:new-pw@line.test".into();
        let changed = needs_restart(&old, &new);
        assert_eq!(
            changed,
            ["line.api_base_url changed (https://***@line.test → https://***@line.test); restart linehub to apply it"]
        );
    }
}
