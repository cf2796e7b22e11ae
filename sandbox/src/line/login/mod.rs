//! The LINE Login v2.1 and LIFF simulator: the authorization code flow with PKCE, ID tokens,
//! token verification, the user profile and the friendship status with the linked bot.
//!
//! The sandbox plays both `access.line.me` (the authorization page) and `api.line.me` (everything
//! else) on its one listener. Every API request is checked against linehub's contract
//! `contracts/line-login.yaml` first; a violation is recorded and answered as LINE would (an error
//! page for the authorization request, `{"error":"invalid_request",…}` for the token endpoints).
//!
//! A test decides who the browser is: [`LineControl::script_login`] queues a [`LoginConsent`] per
//! Login channel, popped by the next authorization request (or LIFF session) of that channel.
//! What the simulated user then does (allow, cancel, share the email, add the bot as a friend)
//! is the consent's, whatever button the test presses on the page (cancel always cancels).
//!
//! - `oauth`: authorize, consent, token, verify, revoke, userinfo, certs, profile, friendship;
//! - `pages`: the HTML pages of the authorization endpoint;
//! - `liff`: the stand-in LIFF SDK served at `/liff/sdk.js` and its session endpoint;
//! - `jwt`: HS256 and ES256 signing; [`sign_hs256`] and [`LineControl::mint_liff_id_token`] let
//!   tests forge tokens.
//!
//! Not simulated: `prompt=none`, `response_mode` other than `query`, `max_age`'s `auth_time`,
//! the refresh token's 90-day limit, faults (a test cannot make the Login API fail).

mod jwt;
mod liff;
mod oauth;
mod pages;

use std::collections::{HashMap, VecDeque};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

pub use jwt::{ISSUER, s256_challenge, sign_hs256};
pub(crate) use liff::session as liff_session;

use super::{LineControl, LineState, Profile, is_user_id};
use crate::contract::{RequestParts, Violation, ViolationKind};
use crate::error::ControlError;
use crate::reply::Reply;
use crate::server::Shared;
use crate::{lock, specs};

/// A LINE Login channel, as registered in the LINE Developers Console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginChannelSpec {
    /// The channel ID (digits), the OAuth `client_id` and the ID tokens' `aud`.
    pub channel_id: String,
    /// The channel secret: the `client_secret`, and the HS256 key of web-login ID tokens.
    pub channel_secret: String,
    /// Registered callback URLs; a `redirect_uri` must start with one of them.
    pub callback_urls: Vec<String>,
    /// The access token of the Messaging API channel linked to this Login channel: the bot that
    /// `bot_prompt` offers and `/friendship/v1/status` reports on.
    #[serde(default)]
    pub linked_bot_access_token: Option<String>,
    /// LIFF apps of this channel (`{channel_id}-{8 alphanumerics}`).
    #[serde(default)]
    pub liff_ids: Vec<String>,
    /// Whether LINE approved the channel's email permission; without it no ID token carries an
    /// email, whatever the user ticks.
    #[serde(default)]
    pub email_permission: bool,
}

impl LoginChannelSpec {
    /// A channel with one callback URL, no linked bot, no LIFF app and no email permission.
    pub fn new(
        channel_id: impl Into<String>,
        channel_secret: impl Into<String>,
        callback_url: impl Into<String>,
    ) -> LoginChannelSpec {
        LoginChannelSpec {
            channel_id: channel_id.into(),
            channel_secret: channel_secret.into(),
            callback_urls: vec![callback_url.into()],
            linked_bot_access_token: None,
            liff_ids: Vec::new(),
            email_permission: false,
        }
    }
}

/// Who is signed in to LINE in the simulated browser, and what they decide on the next login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginConsent {
    /// The user's id (`U` + 32 hex digits), the ID token's `sub`.
    pub user_id: String,
    /// The display name (`name` claim, profile `displayName`).
    pub name: String,
    /// The profile picture URL, if the user has one.
    #[serde(default)]
    pub picture: Option<String>,
    /// The email address of the LINE account, if it has one.
    #[serde(default)]
    pub email: Option<String>,
    /// The user ticks "share my email address" when the email scope is asked.
    #[serde(default)]
    pub grant_email: bool,
    /// The user accepts the add-friend offer when `bot_prompt` is given.
    #[serde(default)]
    pub add_friend: bool,
    /// The user cancels: the callback gets `error=ACCESS_DENIED`.
    #[serde(default)]
    pub deny: bool,
}

impl LoginConsent {
    /// A user who allows the login and declines everything optional.
    pub fn allow(user_id: impl Into<String>, name: impl Into<String>) -> LoginConsent {
        LoginConsent {
            user_id: user_id.into(),
            name: name.into(),
            picture: None,
            email: None,
            grant_email: false,
            add_friend: false,
            deny: false,
        }
    }

    /// A user who cancels the login.
    pub fn deny(user_id: impl Into<String>, name: impl Into<String>) -> LoginConsent {
        LoginConsent { deny: true, ..LoginConsent::allow(user_id, name) }
    }
}

/// How a login happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginVia {
    /// The web authorization code flow.
    Web,
    /// A LIFF app's `liff.init`.
    Liff,
}

/// One decided login, for assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginRecord {
    /// The Login channel.
    pub channel_id: String,
    /// The user.
    pub user_id: String,
    /// Web or LIFF.
    pub via: LoginVia,
    /// False when the user cancelled.
    pub allowed: bool,
    /// Whether the user became a friend of the linked bot during this login.
    pub became_friend: bool,
}

#[derive(Debug)]
struct LoginChannel {
    spec: LoginChannelSpec,
    queue: VecDeque<LoginConsent>,
    tokens_issued: usize,
}

/// The user a code or token stands for, with what they agreed to share.
#[derive(Debug, Clone)]
struct User {
    id: String,
    name: String,
    picture: Option<String>,
    /// Only when the email was asked, permitted, granted and exists.
    email: Option<String>,
}

/// An authorization page shown and waiting for the user's decision.
#[derive(Debug, Clone)]
struct Session {
    channel_id: String,
    redirect_uri: String,
    state: String,
    scopes: Vec<String>,
    nonce: Option<String>,
    bot_prompt: bool,
    code_challenge: Option<String>,
    consent: LoginConsent,
}

/// An authorization code handed to the callback.
#[derive(Debug, Clone)]
struct Code {
    channel_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    user: User,
    expires: Instant,
}

/// What an access or refresh token grants.
#[derive(Debug, Clone)]
struct Grant {
    channel_id: String,
    user: User,
    scopes: Vec<String>,
    expires: Instant,
}

/// All LINE Login state of one sandbox, kept beside the Messaging API's (friendship needs both).
#[derive(Debug)]
pub(crate) struct LoginState {
    channels: Vec<LoginChannel>,
    sessions: HashMap<String, Session>,
    codes: HashMap<String, Code>,
    access_tokens: HashMap<String, Grant>,
    refresh_tokens: HashMap<String, Grant>,
    key: jwt::Es256Key,
    records: Vec<LoginRecord>,
}

impl Default for LoginState {
    fn default() -> LoginState {
        LoginState {
            channels: Vec::new(),
            sessions: HashMap::new(),
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            key: jwt::Es256Key::generate(),
            records: Vec::new(),
        }
    }
}

impl LoginState {
    fn channel(&self, channel_id: &str) -> Option<&LoginChannel> {
        self.channels.iter().find(|c| c.spec.channel_id == channel_id)
    }

    fn channel_mut(&mut self, channel_id: &str) -> Option<&mut LoginChannel> {
        self.channels.iter_mut().find(|c| c.spec.channel_id == channel_id)
    }

    /// A live (known, unexpired) access token's grant.
    fn grant(&self, token: &str, now: Instant) -> Option<&Grant> {
        self.access_tokens.get(token).filter(|g| g.expires > now)
    }
}

/// True for a LIFF id: `{channel_id}-{8 alphanumerics}`.
fn is_liff_id(liff_id: &str, channel_id: &str) -> bool {
    liff_id
        .strip_prefix(channel_id)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|tail| tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A random opaque token of `bytes` random bytes, base64url.
fn random_token(bytes: usize) -> String {
    use base64::Engine;
    use rand::Rng;
    let mut rng = rand::rng();
    let raw: Vec<u8> = (0..bytes).map(|_| rng.random()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Makes the consenting user a friend of the channel's linked bot if they accept the offer and
/// are not one yet (a blocked friend counts as not one); true if they became one.
fn befriend_linked_bot(line: &mut LineState, channel_id: &str, consent: &LoginConsent) -> bool {
    if !consent.add_friend {
        return false;
    }
    let Some(token) = line.login.channel(channel_id).and_then(|c| c.spec.linked_bot_access_token.clone()) else {
        return false;
    };
    let Ok(bot) = line.channel_mut(&token) else {
        return false;
    };
    if bot.reachable(&consent.user_id) {
        return false;
    }
    let profile =
        Profile { display_name: consent.name.clone(), picture_url: consent.picture.clone(), ..Profile::named("") };
    bot.befriend(&consent.user_id, profile);
    true
}

/// Whether the user is a friend (and has not blocked) the channel's linked bot.
fn is_friend_of_linked_bot(line: &LineState, channel_id: &str, user_id: &str) -> bool {
    let token = line.login.channel(channel_id).and_then(|c| c.spec.linked_bot_access_token.as_deref());
    token.and_then(|t| line.index(t).ok()).is_some_and(|i| line.channels[i].reachable(user_id))
}

impl LineControl {
    /// Registers a LINE Login channel. Its linked bot, if any, must be registered already.
    pub fn add_login_channel(&self, spec: LoginChannelSpec) -> Result<(), ControlError> {
        if spec.channel_id.is_empty() || !spec.channel_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ControlError::InvalidSpec(format!("channel id {:?} is not digits", spec.channel_id)));
        }
        if let Some(bad) = spec.liff_ids.iter().find(|id| !is_liff_id(id, &spec.channel_id)) {
            return Err(ControlError::InvalidSpec(format!(
                "LIFF id {bad:?} is not {}-followed by 8 letters or digits",
                spec.channel_id
            )));
        }
        if let Some(bad) = spec.callback_urls.iter().find(|u| !u.starts_with("http://") && !u.starts_with("https://")) {
            return Err(ControlError::InvalidSpec(format!("callback URL {bad:?} is not http(s)")));
        }
        let mut state = self.state();
        if let Some(token) = &spec.linked_bot_access_token {
            state.index(token)?;
        }
        if state.login.channel(&spec.channel_id).is_some() {
            return Err(ControlError::DuplicateChannel(spec.channel_id));
        }
        let taken = state.login.channels.iter().flat_map(|c| &c.spec.liff_ids).find(|id| spec.liff_ids.contains(id));
        if let Some(id) = taken {
            return Err(ControlError::DuplicateChannel(id.clone()));
        }
        state.login.channels.push(LoginChannel { spec, queue: VecDeque::new(), tokens_issued: 0 });
        Ok(())
    }

    /// Every registered Login channel.
    pub fn login_channels(&self) -> Vec<LoginChannelSpec> {
        self.state().login.channels.iter().map(|c| c.spec.clone()).collect()
    }

    /// Queues who signs in, and what they decide, at the next authorization request or LIFF
    /// session of the channel (first in, first out).
    pub fn script_login(&self, channel_id: &str, consent: LoginConsent) -> Result<(), ControlError> {
        if !is_user_id(&consent.user_id) {
            return Err(ControlError::InvalidUserId(consent.user_id));
        }
        let mut state = self.state();
        let channel =
            state.login.channel_mut(channel_id).ok_or_else(|| ControlError::UnknownChannel(channel_id.to_string()))?;
        channel.queue.push_back(consent);
        Ok(())
    }

    /// Every decided login (web consent or LIFF session), oldest first.
    pub fn logins(&self) -> Vec<LoginRecord> {
        self.state().login.records.clone()
    }

    /// How many access tokens the channel has issued (code exchanges, refreshes, LIFF sessions).
    pub fn tokens_issued(&self, channel_id: &str) -> Result<usize, ControlError> {
        let state = self.state();
        let channel =
            state.login.channel(channel_id).ok_or_else(|| ControlError::UnknownChannel(channel_id.to_string()))?;
        Ok(channel.tokens_issued)
    }

    /// An ES256 token over arbitrary `claims`, signed with the sandbox's LIFF key (its `kid` in
    /// the header), so tests can present expired or wrong-audience LIFF ID tokens.
    pub fn mint_liff_id_token(&self, claims: &Value) -> String {
        self.state().login.key.sign(claims)
    }

    /// The JWK Set `GET /oauth2/v2.1/certs` serves.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.state().login.key.jwk()] })
    }
}

/// Whether a path belongs to LINE Login or LIFF rather than the Messaging API.
pub(crate) fn serves(path: &str) -> bool {
    path.starts_with("/oauth2/") || path == "/v2/profile" || path.starts_with("/friendship/") || path == "/liff/sdk.js"
}

/// The body of an OAuth-style error: `{"error","error_description"}`.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    Reply::json(status, json!({ "error": error, "error_description": description }))
}

/// LINE's answer to a request that broke the contract.
fn violation_reply(v: &Violation) -> Reply {
    match (v.kind, v.operation.as_deref()) {
        (ViolationKind::NoSuchPath, _) => Reply::json(StatusCode::NOT_FOUND, json!({ "message": "Not found" })),
        (ViolationKind::NoSuchMethod, _) => {
            Reply::json(StatusCode::METHOD_NOT_ALLOWED, json!({ "message": "Method Not Allowed" }))
        }
        (ViolationKind::NotSimulated, _) => Reply::json(StatusCode::NOT_IMPLEMENTED, json!({ "message": v.message })),
        (_, Some("authorize")) => pages::error(StatusCode::BAD_REQUEST, "Invalid request", &v.to_string()),
        _ => {
            let details: Vec<String> = v.details.iter().map(|(at, m)| format!("{at}: {m}")).collect();
            let description = if details.is_empty() { v.message.clone() } else { details.join("; ") };
            oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &description)
        }
    }
}

/// Runs one LINE Login or LIFF request: the SDK and the consent form (the sandbox's own pages),
/// CORS preflights (LIFF calls the API from the browser), then the contract and the operation.
pub(crate) fn handle(shared: &Shared, req: &RequestParts<'_>) -> Reply {
    let reply = answer(shared, req);
    reply.with_header("access-control-allow-origin", "*")
}

fn answer(shared: &Shared, req: &RequestParts<'_>) -> Reply {
    let method = req.method.to_ascii_uppercase();
    if method == "OPTIONS" && req.headers.contains_key("access-control-request-method") {
        return Reply::empty(StatusCode::NO_CONTENT)
            .with_header("access-control-allow-methods", "GET, POST")
            .with_header("access-control-allow-headers", "authorization, content-type")
            .with_header("access-control-max-age", "600");
    }
    match (method.as_str(), req.path) {
        ("GET", "/liff/sdk.js") => return liff::sdk(),
        ("POST", oauth::CONSENT_PATH) => return oauth::consent(&mut lock(&shared.line), req),
        _ => {}
    }
    let matched = match specs::line_login().check(req) {
        Ok(m) => m,
        Err(v) => {
            let reply = violation_reply(&v);
            shared.violations.record(v);
            return reply;
        }
    };
    let call = oauth::Call { matched: &matched, request: format!("{method} {}", req.path), headers: req.headers };
    let result = oauth::dispatch(&mut lock(&shared.line), &call);
    match result {
        Ok(reply) => reply,
        Err(refused) => {
            let (v, reply) = *refused;
            shared.violations.record(v);
            reply
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liff_ids_are_the_channel_id_a_dash_and_eight_alphanumerics() {
        assert!(is_liff_id("1650000001-AbCd1234", "1650000001"));
        assert!(!is_liff_id("1650000001-AbCd123", "1650000001"));
        assert!(!is_liff_id("1650000002-AbCd1234", "1650000001"));
        assert!(!is_liff_id("1650000001-AbCd-234", "1650000001"));
    }
}
