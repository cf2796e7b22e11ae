//! The LINE Messaging API simulator: channels, friends, and every message sent.
//!
//! Requests to `/v2/bot/...` are checked against LINE's `messaging-api.yml` first; a violation is
//! answered 400 (404/405 for unknown paths/methods) with LINE's error body and recorded. Then
//! faults apply, then `Authorization: Bearer` must be a registered channel's access token (else
//! 401), then the operation runs against the channel's state (see `messaging` for what each
//! endpoint does). Every response carries `X-Line-Request-Id`.
//!
//! State per channel: its [`ChannelSpec`], its friends in the order they were added (blocked ones
//! keep their place), the monthly quota used, accepted retry keys (24 h) and used reply tokens.
//! Across channels: the log of [`SentMessage`]s. The webhook side (events LINE would send to the
//! daemon) is in [`webhook`]; LINE Login and LIFF, whose friendship status reads these friends,
//! are in [`login`].

pub mod login;
mod messaging;
pub mod webhook;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::contract::{Matched, RequestParts, Violation, ViolationKind};
use crate::error::ControlError;
use crate::faults::{Injected, Service};
use crate::reply::Reply;
use crate::server::Shared;
use crate::{ids, lock, specs};

/// A LINE Official Account's Messaging API channel, as the sandbox knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSpec {
    /// The channel access token the daemon sends as `Authorization: Bearer`.
    pub access_token: String,
    /// The channel secret that signs webhooks.
    pub channel_secret: String,
    /// The bot's own user id (`U` + 32 hex): webhook `destination`, `GET /v2/bot/info` `userId`.
    #[serde(default = "random_user_id")]
    pub bot_user_id: String,
    /// The `@…` basic id shown in add-friend links.
    #[serde(default = "random_basic_id")]
    pub basic_id: String,
    /// The account's display name.
    #[serde(default = "default_display_name")]
    pub display_name: String,
    /// Verified or premium accounts may list followers; others get 403.
    #[serde(default = "yes")]
    pub verified: bool,
    /// Messages per month (`None`: unlimited). Push, multicast and broadcast count one per
    /// delivered recipient; replies are free.
    #[serde(default)]
    pub monthly_quota: Option<u64>,
}

fn random_user_id() -> String {
    ids::line_user_id(&mut rand::rng())
}

fn random_basic_id() -> String {
    format!("@{}", ids::hex(&mut rand::rng(), 8))
}

fn default_display_name() -> String {
    "Sandbox OA".to_string()
}

fn yes() -> bool {
    true
}

impl ChannelSpec {
    /// A verified channel with unlimited quota and a random bot user id and basic id.
    pub fn new(access_token: impl Into<String>, channel_secret: impl Into<String>) -> ChannelSpec {
        ChannelSpec {
            access_token: access_token.into(),
            channel_secret: channel_secret.into(),
            bot_user_id: random_user_id(),
            basic_id: random_basic_id(),
            display_name: default_display_name(),
            verified: true,
            monthly_quota: None,
        }
    }
}

/// What `GET /v2/bot/profile/{userId}` tells about a friend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// The user's display name.
    pub display_name: String,
    /// Profile image URL, if the user has one.
    #[serde(default)]
    pub picture_url: Option<String>,
    /// The user's status message, if any.
    #[serde(default)]
    pub status_message: Option<String>,
    /// The user's language (BCP 47), if shared.
    #[serde(default)]
    pub language: Option<String>,
}

impl Profile {
    /// A profile with only a display name.
    pub fn named(display_name: impl Into<String>) -> Profile {
        Profile { display_name: display_name.into(), picture_url: None, status_message: None, language: None }
    }
}

/// A user who added the account as a friend (and may have blocked it since).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Friend {
    /// The user's id for this provider.
    pub user_id: String,
    /// What the profile endpoint returns.
    pub profile: Profile,
    /// A blocked friend gets no messages, no profile (404) and is not a follower.
    pub blocked: bool,
}

/// Which endpoint sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendKind {
    /// `POST /v2/bot/message/push`.
    Push,
    /// `POST /v2/bot/message/multicast`.
    Multicast,
    /// `POST /v2/bot/message/reply`.
    Reply,
    /// `POST /v2/bot/message/broadcast`.
    Broadcast,
}

/// One accepted send request, as LINE would have logged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentMessage {
    /// The sending channel's bot user id.
    pub channel: String,
    /// The endpoint used.
    pub kind: SendKind,
    /// The addressed recipients (for a reply: the user the reply token belongs to).
    pub to: Vec<String>,
    /// The recipients that actually received it (friends who have not blocked the account).
    pub delivered_to: Vec<String>,
    /// The message objects as sent.
    pub messages: Vec<Value>,
    /// The `X-Line-Retry-Key` sent with it, if any.
    pub retry_key: Option<String>,
    /// The reply token used, for replies.
    pub reply_token: Option<String>,
    /// The `X-Line-Request-Id` the sandbox answered with.
    pub request_id: String,
    /// Whether `notificationDisabled` was true.
    pub notification_disabled: bool,
}

/// A retry key LINE has accepted: a retry with it gets 409 and these details.
#[derive(Debug, Clone)]
struct Accepted {
    request_id: String,
    sent_messages: Option<Value>,
    at: Instant,
}

#[derive(Debug)]
struct Channel {
    spec: ChannelSpec,
    friends: Vec<Friend>,
    /// Position of each friend in `friends`, so lookups stay cheap with a million friends.
    by_user: HashMap<String, usize>,
    quota_used: u64,
    retry_keys: HashMap<String, Accepted>,
    used_reply_tokens: HashSet<String>,
}

impl Channel {
    fn friend(&self, user_id: &str) -> Option<&Friend> {
        self.by_user.get(user_id).map(|&i| &self.friends[i])
    }

    fn friend_mut(&mut self, user_id: &str) -> Option<&mut Friend> {
        self.by_user.get(user_id).map(|&i| &mut self.friends[i])
    }

    /// A friend who has not blocked the account: can be messaged and profiled.
    fn reachable(&self, user_id: &str) -> bool {
        self.friend(user_id).is_some_and(|f| !f.blocked)
    }

    /// Makes `user_id` a friend; an existing friend gets the new profile and is unblocked, as
    /// when a user unblocks and re-adds the account.
    fn befriend(&mut self, user_id: &str, profile: Profile) {
        match self.friend_mut(user_id) {
            Some(f) => {
                f.profile = profile;
                f.blocked = false;
            }
            None => {
                self.by_user.insert(user_id.to_string(), self.friends.len());
                self.friends.push(Friend { user_id: user_id.to_string(), profile, blocked: false });
            }
        }
    }
}

/// All LINE state of one sandbox.
#[derive(Debug, Default)]
pub(crate) struct LineState {
    channels: Vec<Channel>,
    sent: Vec<SentMessage>,
    next_message_id: u64,
    /// LINE Login channels, codes and user tokens.
    login: login::LoginState,
}

impl LineState {
    fn index(&self, key: &str) -> Result<usize, ControlError> {
        self.channels
            .iter()
            .position(|c| c.spec.access_token == key || c.spec.bot_user_id == key)
            .ok_or_else(|| ControlError::UnknownChannel(key.to_string()))
    }

    fn channel_mut(&mut self, key: &str) -> Result<&mut Channel, ControlError> {
        let i = self.index(key)?;
        Ok(&mut self.channels[i])
    }
}

/// True for `U` + 32 lower-case hex digits.
pub(crate) fn is_user_id(s: &str) -> bool {
    is_chat_id(s, 'U')
}

/// True for `prefix` + 32 lower-case hex digits (`U` users, `C` groups, `R` rooms).
pub(crate) fn is_chat_id(s: &str, prefix: char) -> bool {
    s.len() == 33 && s.starts_with(prefix) && s[1..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Sets up and inspects the LINE simulator from tests; cheap to clone.
#[derive(Debug, Clone)]
pub struct LineControl {
    pub(crate) shared: Arc<Shared>,
}

impl LineControl {
    fn state(&self) -> std::sync::MutexGuard<'_, LineState> {
        lock(&self.shared.line)
    }

    /// Registers a channel; returns its bot user id.
    pub fn add_channel(&self, spec: ChannelSpec) -> Result<String, ControlError> {
        if !is_user_id(&spec.bot_user_id) {
            return Err(ControlError::InvalidUserId(spec.bot_user_id));
        }
        let mut state = self.state();
        for key in [&spec.access_token, &spec.bot_user_id] {
            if state.index(key).is_ok() {
                return Err(ControlError::DuplicateChannel(key.clone()));
            }
        }
        let bot = spec.bot_user_id.clone();
        state.channels.push(Channel {
            spec,
            friends: Vec::new(),
            by_user: HashMap::new(),
            quota_used: 0,
            retry_keys: HashMap::new(),
            used_reply_tokens: HashSet::new(),
        });
        Ok(bot)
    }

    /// Every registered channel.
    pub fn channels(&self) -> Vec<ChannelSpec> {
        self.state().channels.iter().map(|c| c.spec.clone()).collect()
    }

    /// Makes `user_id` a friend of the channel (by access token or bot user id). An existing
    /// friend gets the new profile and is unblocked, as when a user unblocks and re-adds.
    pub fn add_friend(&self, channel: &str, user_id: &str, profile: Profile) -> Result<(), ControlError> {
        if !is_user_id(user_id) {
            return Err(ControlError::InvalidUserId(user_id.to_string()));
        }
        self.state().channel_mut(channel)?.befriend(user_id, profile);
        Ok(())
    }

    fn set_blocked(&self, channel: &str, user_id: &str, blocked: bool) -> Result<(), ControlError> {
        let mut state = self.state();
        let ch = state.channel_mut(channel)?;
        let name = ch.spec.bot_user_id.clone();
        match ch.friend_mut(user_id) {
            Some(f) => {
                f.blocked = blocked;
                Ok(())
            }
            None => Err(ControlError::UnknownFriend { channel: name, user_id: user_id.to_string() }),
        }
    }

    /// The user blocks the account: no more messages, profile 404, not a follower.
    pub fn block(&self, channel: &str, user_id: &str) -> Result<(), ControlError> {
        self.set_blocked(channel, user_id, true)
    }

    /// The user unblocks the account.
    pub fn unblock(&self, channel: &str, user_id: &str) -> Result<(), ControlError> {
        self.set_blocked(channel, user_id, false)
    }

    /// The channel's friends, blocked ones included, in the order they were added.
    pub fn friends(&self, channel: &str) -> Result<Vec<Friend>, ControlError> {
        let state = self.state();
        let i = state.index(channel)?;
        Ok(state.channels[i].friends.clone())
    }

    /// Every message accepted by any channel, oldest first.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.state().sent.clone()
    }

    /// Sets whether the account is verified (or premium): only those may list their followers.
    pub fn set_verified(&self, channel: &str, verified: bool) -> Result<(), ControlError> {
        self.state().channel_mut(channel)?.spec.verified = verified;
        Ok(())
    }

    /// Changes the account's monthly message quota (`None`: unlimited), as a plan change would.
    pub fn set_monthly_quota(&self, channel: &str, quota: Option<u64>) -> Result<(), ControlError> {
        self.state().channel_mut(channel)?.spec.monthly_quota = quota;
        Ok(())
    }

    /// Counts `messages` against the channel's monthly quota, as sends made outside linehub
    /// (the LINE Official Account Manager, another tool) would.
    pub fn use_quota(&self, channel: &str, messages: u64) -> Result<(), ControlError> {
        self.state().channel_mut(channel)?.quota_used += messages;
        Ok(())
    }

    /// Messages counted against the channel's monthly quota so far.
    pub fn quota_used(&self, channel: &str) -> Result<u64, ControlError> {
        let state = self.state();
        let i = state.index(channel)?;
        Ok(state.channels[i].quota_used)
    }
}

/// LINE's error body: `{"message", "details"?}` (details omitted when empty).
pub(crate) fn error(status: StatusCode, message: &str) -> Reply {
    Reply::json(status, json!({ "message": message }))
}

/// A LINE error with `details[{message, property}]`.
pub(crate) fn error_with_details(status: StatusCode, message: &str, details: &[(String, String)]) -> Reply {
    let details: Vec<Value> =
        details.iter().map(|(property, message)| json!({ "message": message, "property": property })).collect();
    Reply::json(status, json!({ "message": message, "details": details }))
}

/// `/messages/0/text` → `messages[0].text`, `header:X-Line-Retry-Key` → `X-Line-Retry-Key`:
/// the way LINE names a property in error details.
fn line_property(at: &str) -> String {
    if let Some((_, name)) = at.split_once(':') {
        return name.to_string();
    }
    if at == "body" {
        return String::new();
    }
    let mut out = String::new();
    for token in at.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
    }
    out
}

/// The response LINE gives to a request of this kind of violation.
fn violation_reply(v: &Violation) -> Reply {
    match v.kind {
        ViolationKind::NoSuchPath => error(StatusCode::NOT_FOUND, "Not found"),
        ViolationKind::NoSuchMethod => error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        ViolationKind::NotSimulated => error(StatusCode::NOT_IMPLEMENTED, &v.message),
        ViolationKind::OffContract | ViolationKind::Rule => {
            let details: Vec<(String, String)> =
                v.details.iter().map(|(at, m)| (line_property(at), m.clone())).collect();
            let in_body = v.details.iter().all(|(at, _)| at.starts_with('/'));
            let message = if in_body && !details.is_empty() {
                format!("The request body has {} error(s)", details.len())
            } else {
                v.message.clone()
            };
            error_with_details(StatusCode::BAD_REQUEST, &message, &details)
        }
    }
}

/// One authenticated Messaging API call, as the handlers see it.
pub(crate) struct Call<'a> {
    pub(crate) matched: &'a Matched,
    /// `METHOD /path`, for violations.
    pub(crate) request: String,
    pub(crate) request_id: String,
    pub(crate) retry_key: Option<String>,
    pub(crate) now: Instant,
}

impl Call<'_> {
    /// A documented rule the schemas cannot express was broken by this request.
    pub(crate) fn rule(&self, message: &str, details: Vec<(String, String)>) -> Violation {
        Violation {
            kind: ViolationKind::Rule,
            request: self.request.clone(),
            operation: self.matched.operation_id.clone(),
            message: message.to_string(),
            details,
        }
    }
}

/// Runs one LINE API request through contract, faults, auth and the operation.
pub(crate) fn handle(shared: &Shared, req: &RequestParts<'_>) -> Reply {
    let request_id = ids::uuid_v4();
    let reply = answer(shared, req, &request_id);
    reply.with_header("x-line-request-id", request_id)
}

fn answer(shared: &Shared, req: &RequestParts<'_>, request_id: &str) -> Reply {
    if req.body.len() > 2 * 1024 * 1024 {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    let matched = match specs::line_messaging().check(req) {
        Ok(m) => m,
        Err(v) => {
            let reply = violation_reply(&v);
            shared.violations.record(v);
            return reply;
        }
    };
    match shared.faults.take(Service::Line) {
        Some(Injected::Outage) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
        }
        Some(Injected::RateLimited(limit)) => {
            let reply = error(StatusCode::TOO_MANY_REQUESTS, "The API rate limit has been exceeded. Try again later.");
            return match limit.retry_after {
                Some(value) => reply.with_header("retry-after", value),
                None => reply,
            };
        }
        Some(Injected::Refused { status, retry_after }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let reply = error(status, "Refused by a fault the test set.");
            return match retry_after {
                Some(value) => reply.with_header("retry-after", value),
                None => reply,
            };
        }
        None => {}
    }
    let token = crate::bearer(req.headers);
    let mut state = lock(&shared.line);
    let Some(channel) = token.and_then(|t| state.index(t).ok()) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "Authentication failed. Confirm that the access token in the authorization header is valid.",
        );
    };
    // The bot user id also finds a channel; only the token authenticates.
    if Some(state.channels[channel].spec.access_token.as_str()) != token {
        return error(
            StatusCode::UNAUTHORIZED,
            "Authentication failed. Confirm that the access token in the authorization header is valid.",
        );
    }
    let call = Call {
        matched: &matched,
        request: format!("{} {}", req.method.to_ascii_uppercase(), req.path),
        request_id: request_id.to_string(),
        retry_key: req.headers.get("x-line-retry-key").and_then(|v| v.to_str().ok()).map(str::to_string),
        now: Instant::now(),
    };
    match messaging::dispatch(&mut state, channel, &call) {
        Ok(_) if shared.faults.take_lost(Service::Line, matched.operation_id.as_deref()) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
        Ok(reply) => reply,
        Err(v) => {
            drop(state);
            let reply = violation_reply(&v);
            shared.violations.record(v);
            reply
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_pointers_become_line_property_names() {
        assert_eq!(line_property("/messages/0/text"), "messages[0].text");
        assert_eq!(line_property("/to"), "to");
        assert_eq!(line_property("header:X-Line-Retry-Key"), "X-Line-Retry-Key");
    }

    #[test]
    fn chat_ids_need_the_prefix_and_lower_case_hex() {
        let id = format!("U{}", "ab".repeat(16));
        assert!(is_user_id(&id));
        assert!(!is_user_id(&id.to_uppercase()));
        assert!(is_chat_id(&format!("C{}", "0".repeat(32)), 'C'));
        assert!(!is_user_id("U123"));
    }
}
