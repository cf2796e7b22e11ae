//! The HTML pages of the simulated authorization endpoint: consent, "nobody signed in", errors.
//!
//! Plain, script-free HTML that a test can read with string matching or drive with a browser:
//! the consent form posts to `/oauth2/v2.1/authorize/consent` with a hidden `session` field and
//! a `decision` button, `allow` (id `allow`) or `deny` (id `deny`).

use axum::http::StatusCode;

use super::LoginConsent;
use super::oauth::CONSENT_PATH;
use crate::reply::Reply;

const HTML: &str = "text/html; charset=utf-8";

/// Escapes text for HTML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> Reply {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n{body}\n</body>\n</html>\n",
        escape(title)
    );
    Reply::text(status, HTML, html)
}

/// What the consent page shows.
pub(super) struct ConsentPage<'a> {
    pub(super) session: &'a str,
    pub(super) channel_id: &'a str,
    pub(super) scopes: &'a [String],
    pub(super) consent: &'a LoginConsent,
    /// The linked bot's name, when `bot_prompt` asks to offer it as a friend.
    pub(super) bot_name: Option<&'a str>,
    /// Whether the page asks to share the email address (scope asked and permitted).
    pub(super) email_offered: bool,
}

fn checked(on: bool) -> &'static str {
    if on { " checked" } else { "" }
}

/// The consent screen of the scripted user. The check boxes show what the user will decide.
pub(super) fn consent(p: &ConsentPage<'_>) -> Reply {
    let scopes: String = p.scopes.iter().map(|s| format!("<li>{}</li>", escape(s))).collect();
    let mut options = String::new();
    if p.email_offered {
        options.push_str(&format!(
            "<p><label><input type=\"checkbox\" id=\"email\" name=\"email\" value=\"on\"{}> Share my email address</label></p>\n",
            checked(p.consent.grant_email)
        ));
    }
    if let Some(bot) = p.bot_name {
        options.push_str(&format!(
            "<p><label><input type=\"checkbox\" id=\"add_friend\" name=\"add_friend\" value=\"on\"{}> Add {} as a friend</label></p>\n",
            checked(p.consent.add_friend),
            escape(bot)
        ));
    }
    let body = format!(
        "<h1>LINE Login</h1>\n\
         <p>Channel <strong id=\"channel\">{channel}</strong> asks for:</p>\n<ul id=\"scopes\">{scopes}</ul>\n\
         <p>Signed in as <strong id=\"user\">{name}</strong></p>\n\
         <form method=\"post\" action=\"{action}\">\n\
         <input type=\"hidden\" name=\"session\" value=\"{session}\">\n\
         {options}\
         <button type=\"submit\" id=\"allow\" name=\"decision\" value=\"allow\">Allow</button>\n\
         <button type=\"submit\" id=\"deny\" name=\"decision\" value=\"deny\">Cancel</button>\n\
         </form>",
        channel = escape(p.channel_id),
        name = escape(&p.consent.name),
        action = CONSENT_PATH,
        session = escape(p.session),
    );
    page(StatusCode::OK, "LINE Login", &body)
}

/// The page shown when the test scripted no user for this login.
pub(super) fn no_user(channel_id: &str) -> Reply {
    let body = format!(
        "<h1>LINE Login</h1>\n<p id=\"no-user\">No LINE user is signed in (channel {}): the test scripted no login.</p>",
        escape(channel_id)
    );
    page(StatusCode::OK, "LINE Login", &body)
}

/// An error page, shown instead of redirecting (unknown client, unregistered callback).
pub(super) fn error(status: StatusCode, title: &str, message: &str) -> Reply {
    let body = format!("<h1>{}</h1>\n<p id=\"error\">{}</p>", escape(title), escape(message));
    page(status, &format!("LINE Login - {title}"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_names_is_escaped() {
        assert_eq!(escape("<b>\"Ann\" & 'Bo'</b>"), "&lt;b&gt;&quot;Ann&quot; &amp; &#39;Bo&#39;&lt;/b&gt;");
    }
}
