//! Secrets and `${ENV_VAR}` expansion.
//!
//! Channel secrets and API tokens are best kept out of the config file, in the environment (the
//! systemd unit reads them from an `EnvironmentFile`). Any string value in the config may name
//! variables as `${NAME}`; `$$` stands for a literal `$`. A secret is wrapped in [`Secret`], whose
//! `Debug` and `Display` print `***`, so it cannot reach a log line by accident. A URL may carry
//! credentials too (`https://user:password@host`): [`redact_url`] hides them wherever a URL
//! value is shown (`linehub check`, config errors, reload messages).

use std::fmt;

/// A value that must never be printed: channel secrets, access tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value read from the config or the environment.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it (signing, an `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a `${…}` expansion failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `${NAME}` names a variable that is not set.
    #[error("environment variable `{0}` is not set (set it, e.g. in the systemd EnvironmentFile)")]
    Unset(String),
    /// `${` without a closing `}`, or an empty or invalid name.
    #[error("malformed `${{…}}` reference: {0} (write `${{NAME}}`, or `$$` for a literal `$`)")]
    Malformed(String),
}

/// Expands `${NAME}` references with `lookup`; `$$` is a literal `$`, any other `$` is kept as is.
pub fn expand_with(input: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail.find('}').ok_or_else(|| ExpandError::Malformed(format!("`${{{tail}` is not closed")))?;
            let name = &tail[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(ExpandError::Malformed(format!("`${{{name}}}` is not a variable name")));
            }
            let value = lookup(name).ok_or_else(|| ExpandError::Unset(name.to_string()))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands `${NAME}` references from the process environment.
pub fn expand_env(input: &str) -> Result<String, ExpandError> {
    expand_with(input, |name| std::env::var(name).ok())
}

/// `url` with the userinfo (`user:password@`) of its authority replaced by `***`, for showing a
/// URL value in a message. It works on the text, so a URL too broken to parse is redacted too.
pub fn redact_url(url: &str) -> std::borrow::Cow<'_, str> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]).into(),
        None => url.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("abc".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn references_are_replaced_and_the_rest_kept() {
        assert_eq!(expand_with("pat-${TOKEN}-x", env).unwrap(), "pat-abc-x");
        assert_eq!(expand_with("${EMPTY}", env).unwrap(), "");
        assert_eq!(expand_with("plain", env).unwrap(), "plain");
        assert_eq!(expand_with("a$b", env).unwrap(), "a$b");
        assert_eq!(expand_with("cost $$5", env).unwrap(), "cost $5");
    }

    #[test]
    fn unset_and_malformed_references_are_errors() {
        assert_eq!(expand_with("${NOPE}", env), Err(ExpandError::Unset("NOPE".into())));
        assert!(matches!(expand_with("${TOKEN", env), Err(ExpandError::Malformed(_))));
        assert!(matches!(expand_with("${1X}", env), Err(ExpandError::Malformed(_))));
        assert!(matches!(expand_with("${A-B}", env), Err(ExpandError::Malformed(_))));
    }

    #[test]
    fn credentials_in_a_url_are_redacted_and_the_rest_kept() {
        assert_eq!(redact_url("https://user:pw@host:8/p?q=a@b#c@d"), "https://***@host:8/p?q=a@b#c@d");
        assert_eq!(redact_url("http://a@b@host"), "http://***@host");
        assert_eq!(redact_url("https://host/p@x"), "https://host/p@x");
        assert_eq!(redact_url("user:pw@host"), "***@host");
        assert_eq!(redact_url("https://user:pw@"), "https://***@");
        assert_eq!(redact_url(""), "");
    }

    #[test]
    fn secrets_never_print_their_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
