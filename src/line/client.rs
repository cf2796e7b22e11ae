//! The Messaging API client: the LINE calls linehub makes with an account's access token.
//!
//! Reads only for now: the user profile (`GET /v2/bot/profile/{userId}`), where 404 means "not a
//! friend, blocked, or never consented", an answer rather than an error.

use std::time::Duration;

use serde::Deserialize;

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
    pub async fn profile(&self, token: &Secret, user_id: &str) -> Result<Option<Profile>, LineError> {
        let url = format!("{}/v2/bot/profile/{user_id}", self.base_url);
        let res = self.http.get(url).bearer_auth(token.expose()).send().await?;
        match res.status().as_u16() {
            200 => Ok(Some(res.json().await?)),
            404 => Ok(None),
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
