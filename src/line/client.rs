//! The Messaging API client: the LINE calls linehub makes with an account's access token.
//!
//! - the user profile (`GET /v2/bot/profile/{userId}`), where 404 means "not a friend, blocked,
//!   or never consented", an answer rather than an error;
//! - the account's friends (`GET /v2/bot/followers/ids`), a page at a time with LINE's cursor;
//!   only verified and premium accounts may call it (others get 403);
//! - push (`POST /v2/bot/message/push`, one user) and multicast (`POST
//!   /v2/bot/message/multicast`, ≤500 users), 1–5 messages, always with an
//!   `X-Line-Retry-Key` chosen and stored by the caller before the first attempt; a 409 "already
//!   accepted" for that key means an earlier attempt went through, and counts as sent;
//! - the monthly message quota and its consumption.
//!
//! The client does not retry: callers decide, because only they know whether a retry is safe.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Secret;

/// A LINE user's public profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// The user's display name.
    pub display_name: String,
    /// The user id.
    pub user_id: String,
    /// Profile picture URL, when the user has one.
    pub picture_url: Option<String>,
    /// Status message, when set.
    pub status_message: Option<String>,
    /// Language, when the user consented to share it.
    pub language: Option<String>,
}

impl Profile {
    /// The parts of the profile that become contact properties, as the domain rules take them.
    pub fn contact_fields(&self) -> crate::sync::LineProfile<'_> {
        crate::sync::LineProfile { name: &self.display_name, picture: self.picture_url.as_deref() }
    }
}

/// One page of an account's friends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowersPage {
    /// User ids on this page (possibly fewer than asked for, even when more follow).
    pub user_ids: Vec<String>,
    /// The cursor of the next page; absent on the last.
    #[serde(default)]
    pub next: Option<String>,
}

/// The account's monthly message quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageQuota {
    /// No limit.
    Unlimited,
    /// At most this many messages this month.
    Limited(u64),
}

/// What became of a push or multicast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// LINE accepted it now.
    Accepted {
        /// `X-Line-Request-Id`.
        request_id: String,
    },
    /// LINE had already accepted a request with this retry key (409): an earlier attempt went
    /// through.
    AlreadyAccepted {
        /// `X-Line-Accepted-Request-Id`: the request that was accepted.
        accepted_request_id: String,
    },
}

/// Why a LINE call failed.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// LINE could not be reached or timed out.
    #[error("LINE is unreachable: {0}")]
    Transport(#[from] reqwest::Error),
    /// LINE answered with an error status.
    #[error("LINE answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// LINE's `message`, or the body.
        message: String,
    },
    /// The user id is not LINE's shape, so it is never put into a URL.
    #[error("{0:?} is not a LINE user id")]
    InvalidUserId(String),
}

impl LineError {
    /// Whether the same request may succeed later: a transport failure, a 5xx, or a 429 that
    /// is a rate limit rather than the monthly quota.
    pub fn is_transient(&self) -> bool {
        match self {
            LineError::Transport(_) => true,
            LineError::Status { status, .. } if *status >= 500 => true,
            LineError::Status { status: 429, .. } => !self.is_monthly_limit(),
            LineError::Status { .. } | LineError::InvalidUserId(_) => false,
        }
    }

    /// LINE's 429 "You have reached your monthly limit.".
    pub fn is_monthly_limit(&self) -> bool {
        matches!(self, LineError::Status { status: 429, message } if message.to_ascii_lowercase().contains("monthly limit"))
    }

    /// The HTTP status LINE answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            LineError::Status { status, .. } => Some(*status),
            LineError::Transport(_) | LineError::InvalidUserId(_) => None,
        }
    }
}

/// A client for LINE's Messaging API at one base URL.
#[derive(Clone)]
pub struct LineClient {
    http: reqwest::Client,
    base_url: String,
}

impl LineClient {
    /// A client for `base_url` (`https://api.line.me`, or the sandbox).
    pub fn new(base_url: &str) -> Result<LineClient, LineError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("linehub/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(LineClient { http, base_url: base_url.trim_end_matches('/').to_string() })
    }

    /// The profile of `user_id` as seen by the account holding `token`; `None` when LINE says 404.
    /// An id that is not LINE's shape is refused before any request is made.
    pub async fn profile(&self, token: &Secret, user_id: &str) -> Result<Option<Profile>, LineError> {
        if !crate::sync::link::is_line_user_id(user_id) {
            return Err(LineError::InvalidUserId(user_id.chars().take(40).collect()));
        }
        let url = format!("{}/v2/bot/profile/{user_id}", self.base_url);
        let res = self.http.get(url).bearer_auth(token.expose()).send().await?;
        match res.status().as_u16() {
            200 => Ok(Some(res.json().await?)),
            404 => Ok(None),
            status => Err(LineError::Status { status, message: error_message(res).await }),
        }
    }
}

impl LineClient {
    /// One page of the account's friends: at most `limit` (≤1000) ids after cursor `start`.
    /// LINE answers 403 for accounts that are neither verified nor premium.
    pub async fn followers(&self, token: &Secret, start: Option<&str>, limit: u32) -> Result<FollowersPage, LineError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(start) = start {
            query.push(("start", start.to_string()));
        }
        let url = format!("{}/v2/bot/followers/ids", self.base_url);
        let res = self.http.get(url).query(&query).bearer_auth(token.expose()).send().await?;
        match res.status().as_u16() {
            200 => Ok(res.json().await?),
            status => Err(LineError::Status { status, message: error_message(res).await }),
        }
    }

    /// Sends `messages` (1–5 message objects) to `to` (1–500 user ids) with `retry_key`.
    pub async fn multicast(
        &self,
        token: &Secret,
        to: &[String],
        messages: &[Value],
        notification_disabled: bool,
        retry_key: &str,
    ) -> Result<SendOutcome, LineError> {
        let body = json!({ "to": to, "messages": messages, "notificationDisabled": notification_disabled });
        self.send_keyed(token, "/v2/bot/message/multicast", &body, retry_key).await
    }

    /// Sends `messages` (1–5 message objects) to one user `to` with `retry_key`. LINE answers
    /// 200 even when the user has blocked the account (the message is then never delivered).
    pub async fn push(
        &self,
        token: &Secret,
        to: &str,
        messages: &[Value],
        notification_disabled: bool,
        retry_key: &str,
    ) -> Result<SendOutcome, LineError> {
        let body = json!({ "to": to, "messages": messages, "notificationDisabled": notification_disabled });
        self.send_keyed(token, "/v2/bot/message/push", &body, retry_key).await
    }

    async fn send_keyed(
        &self,
        token: &Secret,
        path: &str,
        body: &Value,
        retry_key: &str,
    ) -> Result<SendOutcome, LineError> {
        let res = self
            .http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(token.expose())
            .header("x-line-retry-key", retry_key)
            .json(body)
            .send()
            .await?;
        let header =
            |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string).unwrap_or_default();
        match res.status().as_u16() {
            200 => Ok(SendOutcome::Accepted { request_id: header("x-line-request-id") }),
            409 => Ok(SendOutcome::AlreadyAccepted { accepted_request_id: header("x-line-accepted-request-id") }),
            status => Err(LineError::Status { status, message: error_message(res).await }),
        }
    }

    /// The account's monthly message quota (`GET /v2/bot/message/quota`).
    pub async fn quota(&self, token: &Secret) -> Result<MessageQuota, LineError> {
        let body = self.get_json(token, "/v2/bot/message/quota").await?;
        match (body["type"].as_str(), body["value"].as_u64()) {
            (Some("limited"), Some(n)) => Ok(MessageQuota::Limited(n)),
            _ => Ok(MessageQuota::Unlimited),
        }
    }

    /// Messages counted against the quota this month (`GET /v2/bot/message/quota/consumption`).
    pub async fn quota_consumption(&self, token: &Secret) -> Result<u64, LineError> {
        let body = self.get_json(token, "/v2/bot/message/quota/consumption").await?;
        Ok(body["totalUsage"].as_u64().unwrap_or(0))
    }

    async fn get_json(&self, token: &Secret, path: &str) -> Result<Value, LineError> {
        let res = self.http.get(format!("{}{path}", self.base_url)).bearer_auth(token.expose()).send().await?;
        match res.status().as_u16() {
            200 => Ok(res.json().await?),
            status => Err(LineError::Status { status, message: error_message(res).await }),
        }
    }
}

/// LINE's error `message`, or the raw body.
async fn error_message(res: reqwest::Response) -> String {
    let text = res.text().await.unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or(text)
}
