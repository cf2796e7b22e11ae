//! The login surface of an account with a `login:` block (404 for any other).
//!
//! - `GET /line/{account}/login[?link=…]`: starts LINE Login (303 to LINE's authorize page).
//! - `GET /line/{account}/login/callback`: LINE Login's Callback URL; links, then sends the
//!   person to the after-login URL or shows a page saying the account is linked.
//! - `GET /line/{account}/liff[?link=…]`: the LIFF endpoint URL page; it obtains LINE's tokens
//!   with the LIFF SDK and posts them to `POST /line/{account}/liff/link`, which has LINE
//!   verify them.
//! - `GET /line/{account}/login/qr.png|qr.svg[?size=…][&for=login|liff]`: the QR code of the
//!   login URL or the LIFF URL (by default the LIFF URL when LIFF is configured).
//! - `GET /line/{account}/login/sample`: the page LINE's console asks for when applying for
//!   the email permission.
//!
//! Every failure is a plain page that says what happened and what to do, and a log line; none
//! changes anything in HubSpot. Pages are never cached and send no referrer, so a link token in
//! the address does not travel further.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use crate::hubspot::html::escape;
use crate::login::{self, Callback, Completed, LoginFailure, LoginUrls};

/// `?link=…` (and LIFF's `liff.state`, which carries the original query on its first redirect).
#[derive(Debug, Default, Deserialize)]
pub struct LinkQuery {
    link: Option<String>,
    #[serde(rename = "liff.state")]
    liff_state: Option<String>,
}

impl LinkQuery {
    fn token(&self) -> Option<String> {
        if let Some(link) = &self.link {
            return Some(link.clone());
        }
        let state = self.liff_state.as_deref()?;
        let query = state.split_once('?').map_or(state, |(_, q)| q);
        query.split('&').find_map(|pair| pair.strip_prefix("link=")).map(str::to_string)
    }
}

/// `?size=` of a QR code, and `?for=login|liff`: which URL it opens (default: the LIFF URL when
/// LIFF is configured, else the login URL).
#[derive(Debug, Default, Deserialize)]
pub struct QrQuery {
    size: Option<u32>,
    #[serde(rename = "for")]
    target: Option<String>,
}

/// The LIFF page's post.
#[derive(Debug, Deserialize)]
pub struct LiffLink {
    state: String,
    id_token: String,
    access_token: String,
}

/// `GET /line/{account}/login`.
pub async fn start(State(app): State<AppState>, Path(account): Path<String>, Query(q): Query<LinkQuery>) -> Response {
    let config = app.settings.borrow().config.clone();
    let (_, login) = match login::login_of(&config, &account) {
        Ok(found) => found,
        Err(e) => return failure(&account, "login", &e),
    };
    let now = app.clock.now_ms();
    let started = match login::begin(&app.store, &account, "web", q.token().as_deref(), now).await {
        Ok(s) => s,
        Err(e) => return failure(&account, "login", &e),
    };
    let urls = LoginUrls::new(&config.server.public_base_url, &account, login);
    see_other(&app.login.authorize_url(login, &urls.callback, &started.state, &started.nonce, &started.challenge))
}

/// `GET /line/{account}/login/callback`.
pub async fn callback(
    State(app): State<AppState>,
    Path(account): Path<String>,
    Query(cb): Query<Callback>,
) -> Response {
    let config = app.settings.borrow().config.clone();
    let done = login::complete_web(&app.store, &app.login, &config, &account, &cb, app.clock.now_ms()).await;
    match done {
        Ok(completed) => {
            app.outbox.notify_one();
            linked(&config, &account, &completed)
        }
        Err(e) => failure(&account, "login callback", &e),
    }
}

/// `GET /line/{account}/liff`.
pub async fn liff_page(
    State(app): State<AppState>,
    Path(account): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Response {
    let config = app.settings.borrow().config.clone();
    let (acct, login) = match login::login_of(&config, &account) {
        Ok(found) => found,
        Err(e) => return failure(&account, "LIFF page", &e),
    };
    let Some(liff_id) = &login.liff_id else {
        return failure(&account, "LIFF page", &LoginFailure::NoLogin);
    };
    let started = match login::begin(&app.store, &account, "liff", q.token().as_deref(), app.clock.now_ms()).await {
        Ok(s) => s,
        Err(e) => return failure(&account, "LIFF page", &e),
    };
    let js = |s: &str| serde_json::Value::String(s.to_string()).to_string().replace('<', "\\u003c");
    let script = format!(
        r#"<script src="{sdk}" charset="utf-8"></script>
<script>
(async () => {{
  const status = document.getElementById("status");
  try {{
    await liff.init({{ liffId: {liff} }});
    if (!liff.isLoggedIn()) {{ liff.login({{ redirectUri: location.href }}); return; }}
    const body = new URLSearchParams({{ state: {state}, id_token: liff.getIDToken(), access_token: liff.getAccessToken() }});
    const res = await fetch({post}, {{ method: "POST", body }});
    const answer = await res.json();
    status.textContent = answer.message;
    document.body.dataset.result = answer.linked ? "linked" : "failed";
    if (answer.redirect) {{ location.href = answer.redirect; }}
  }} catch (e) {{
    status.textContent = "LINE could not be reached. Please close this page and try again.";
    document.body.dataset.result = "failed";
  }}
}})();
</script>"#,
        sdk = escape(&config.line.liff_sdk_url),
        liff = js(liff_id),
        state = js(&started.state),
        post = js(&format!("/line/{account}/liff/link")),
    );
    let body = format!("<p id=\"status\">Connecting your LINE account…</p>{script}");
    page(StatusCode::OK, &format!("{} – LINE", acct.name), &body)
}

/// `POST /line/{account}/liff/link`: answers JSON `{linked, message, redirect?}`.
pub async fn liff_link(
    State(app): State<AppState>,
    Path(account): Path<String>,
    Form(post): Form<LiffLink>,
) -> Response {
    let config = app.settings.borrow().config.clone();
    let now = app.clock.now_ms();
    let done = login::complete_liff(
        &app.store,
        &app.login,
        &config,
        &account,
        &post.state,
        &post.id_token,
        &post.access_token,
        now,
    )
    .await;
    let (status, answer) = match done {
        Ok(completed) => {
            app.outbox.notify_one();
            let redirect = login::login_of(&config, &account).ok().and_then(|(_, l)| l.after_login_url.clone());
            let message = match completed {
                Completed::Linked { .. } => "Your LINE account is linked.",
                Completed::AlreadyLinked { .. } => "Your LINE account was already linked.",
            };
            (StatusCode::OK, serde_json::json!({ "linked": true, "message": message, "redirect": redirect }))
        }
        Err(e) => {
            log_failure(&account, "LIFF link", &e);
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            (status, serde_json::json!({ "linked": false, "message": e.message() }))
        }
    };
    private((status, axum::Json(answer)).into_response())
}

/// `GET /line/{account}/login/qr.png`.
pub async fn qr_png(State(app): State<AppState>, Path(account): Path<String>, Query(q): Query<QrQuery>) -> Response {
    qr(&app, &account, &q, true)
}

/// `GET /line/{account}/login/qr.svg`.
pub async fn qr_svg(State(app): State<AppState>, Path(account): Path<String>, Query(q): Query<QrQuery>) -> Response {
    qr(&app, &account, &q, false)
}

fn qr(app: &AppState, account: &str, q: &QrQuery, png: bool) -> Response {
    let config = app.settings.borrow().config.clone();
    let (_, login) = match login::login_of(&config, account) {
        Ok(found) => found,
        Err(e) => return failure(account, "QR code", &e),
    };
    let urls = LoginUrls::new(&config.server.public_base_url, account, login);
    let target = match q.target.as_deref() {
        None => urls.qr_target(),
        Some("login") => urls.login.as_str(),
        Some("liff") if urls.liff.is_some() => urls.liff.as_deref().unwrap_or_default(),
        Some(_) => {
            let body =
                "<p>Ask for <code>?for=login</code>, or <code>?for=liff</code> when a LIFF app is configured.</p>";
            return page(StatusCode::NOT_FOUND, "QR code", body);
        }
    };
    let size = crate::qr::clamp_size(q.size);
    let made = if png {
        crate::qr::png(target, size).map(|b| ("image/png", b))
    } else {
        crate::qr::svg(target, size).map(|s| ("image/svg+xml", s.into_bytes()))
    };
    match made {
        Ok((kind, bytes)) => {
            let name = format!("attachment; filename=\"linehub-{account}-login.{}\"", if png { "png" } else { "svg" });
            let mut res = (StatusCode::OK, bytes).into_response();
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            if let Ok(v) = HeaderValue::from_str(&name) {
                res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            res
        }
        Err(e) => {
            tracing::error!(account = %account, error = %e, "QR code could not be made");
            page(StatusCode::INTERNAL_SERVER_ERROR, "QR code", "<p>The QR code could not be made.</p>")
        }
    }
}

/// `GET /line/{account}/login/sample`: what a person sees when they log in, and why the email
/// is asked for.
pub async fn sample(State(app): State<AppState>, Path(account): Path<String>) -> Response {
    let config = app.settings.borrow().config.clone();
    let (acct, login) = match login::login_of(&config, &account) {
        Ok(found) => found,
        Err(e) => return failure(&account, "sample page", &e),
    };
    let urls = LoginUrls::new(&config.server.public_base_url, &account, login);
    let body = format!(
        "<p><strong>{name}</strong> lets you log in with your LINE account, so that the messages you \
         exchange with us on LINE and what you do with us elsewhere (orders, inquiries, newsletters) \
         belong to one customer record.</p>\
         <h2>What you see</h2><ol>\
         <li>You open the login link or scan its QR code: <a href=\"{login}\">{login}</a>.</li>\
         <li>LINE asks you to allow <strong>{name}</strong> to use your LINE profile (name and \
         picture) and your email address, and offers to add our LINE Official Account as a friend.</li>\
         <li>You return to us and see that your LINE account is linked.</li></ol>\
         <h2>Why we ask for your email address</h2>\
         <p>We use your email address only to find the customer record you already have with us, so \
         that we do not create a second one, and to keep that record's email up to date. We do not \
         send you email because you logged in, and we never share your address.</p>\
         <p>You may decline the email permission: your LINE account is then linked without it.</p>",
        name = escape(&acct.name),
        login = escape(&urls.login),
    );
    page(StatusCode::OK, &format!("Log in with LINE – {}", acct.name), &body)
}

/// The answer to a completed login: the after-login URL, or a page.
fn linked(config: &crate::config::Config, account: &str, completed: &Completed) -> Response {
    let after = login::login_of(config, account).ok().and_then(|(_, l)| l.after_login_url.clone());
    if let Some(to) = after {
        return see_other(&to);
    }
    let text = match completed {
        Completed::Linked { .. } => "Your LINE account is linked. You can close this page.",
        Completed::AlreadyLinked { .. } => "Your LINE account was already linked. You can close this page.",
    };
    page(StatusCode::OK, "LINE account linked", &format!("<p id=\"status\" data-result=\"linked\">{text}</p>"))
}

fn log_failure(account: &str, what: &str, e: &LoginFailure) {
    let account = super::webhook::truncated(account);
    if e.status() >= 500 {
        tracing::error!(account = ?account, error = %e, "{what} failed");
    } else {
        tracing::warn!(account = ?account, error = %e, "{what} refused");
    }
}

/// A failure as a page, logged.
fn failure(account: &str, what: &str, e: &LoginFailure) -> Response {
    log_failure(account, what, e);
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    page(status, "LINE login", &format!("<p id=\"status\" data-result=\"failed\">{}</p>", escape(e.message())))
}

/// A small, self-contained HTML page.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;\
         padding:0 1rem;line-height:1.5;color:#222}}h1{{font-size:1.4rem}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    );
    let mut res = (status, html).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    private(res)
}

/// 303 to `to`, private like every login answer.
fn see_other(to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    private(res)
}

/// Never cached, no referrer: login addresses may carry a link token.
fn private(mut res: Response) -> Response {
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

#[cfg(test)]
mod tests {
    use super::LinkQuery;

    #[test]
    fn a_link_token_arrives_as_link_or_inside_liffs_first_redirect() {
        let direct = LinkQuery { link: Some("abc".into()), liff_state: None };
        assert_eq!(direct.token().as_deref(), Some("abc"));
        let liff = LinkQuery { link: None, liff_state: Some("?link=xyz&x=1".into()) };
        assert_eq!(liff.token().as_deref(), Some("xyz"));
        assert_eq!(LinkQuery::default().token(), None);
    }
}
