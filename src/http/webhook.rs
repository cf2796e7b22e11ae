//! `POST /line/{account_id}/webhook`: LINE's events, durably into the inbox.
//!
//! The order is the contract: find the account (404), require an `X-Line-Signature` (401) and a
//! body within `server.max_body_bytes` (413) before reading the body, verify the signature over
//! the raw bytes (401), read the envelope (400), commit every event to the inbox, and only then
//! answer 200.
//! Nothing is stored for a request that fails a check. An empty `events` array is LINE's
//! "Verify" button and gets 200. If the store cannot commit, the answer is 503 so LINE's
//! redelivery (when enabled) tries again.

use axum::body::{Body, HttpBody};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::refusals::refused;
use crate::line::signature::SignatureError;
use crate::line::{signature, webhook};
use crate::store::InboxEvent;

/// The `X-Line-Signature` header, taken without copying the rest of the headers.
pub struct LineSignature(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for LineSignature {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // HeaderMap lookups are case-insensitive, as LINE's header casing may change.
        Ok(LineSignature(parts.headers.get("x-line-signature").cloned()))
    }
}

/// The handler.
pub async fn receive(
    State(app): State<AppState>,
    Path(account_id): Path<String>,
    LineSignature(header): LineSignature,
    body: Body,
) -> Response {
    let (secret, max_body) = {
        let settings = app.settings.borrow();
        let max_body = settings.config.server.max_body_bytes;
        match settings.config.account(&account_id).filter(|a| a.active) {
            Some(account) => (account.channel_secret.clone(), max_body),
            None => {
                // One kind for every unknown id (they are chosen by whoever calls); the first of
                // the minute names it, for an operator who pasted a wrong URL.
                if app.refusals.record("webhook", "no active account with this id", app.clock.now_ms()) {
                    tracing::warn!(account = ?truncated(&account_id), "webhook for no active account refused (more like it this minute are summarised)");
                }
                return reply(StatusCode::NOT_FOUND, "no active account with this id");
            }
        }
    };
    // Refuse what can be refused before the body is read.
    if header.is_none() {
        let e = SignatureError::Missing;
        refused!(app, &format!("webhook {account_id}"), &e.to_string(), "webhook refused");
        return reply(StatusCode::UNAUTHORIZED, &e.to_string());
    }
    // The body's size hint is its declared Content-Length (a lower bound when none is given).
    if usize::try_from(HttpBody::size_hint(&body).lower()).unwrap_or(usize::MAX) > max_body {
        return reply(StatusCode::PAYLOAD_TOO_LARGE, "the body is larger than server.max_body_bytes");
    }
    let Ok(body) = axum::body::to_bytes(body, max_body).await else {
        return reply(StatusCode::PAYLOAD_TOO_LARGE, "the body is larger than server.max_body_bytes");
    };
    if let Err(e) = signature::verify(secret.expose().as_bytes(), &body, header.as_ref().map(HeaderValue::as_bytes)) {
        refused!(app, &format!("webhook {account_id}"), &e.to_string(), "webhook refused");
        return reply(StatusCode::UNAUTHORIZED, &e.to_string());
    }
    let events: Vec<InboxEvent> = match webhook::parse(&body) {
        Ok(events) => events.into_iter().map(|e| inbox_event(&account_id, e)).collect(),
        Err(e) => {
            refused!(app, &format!("webhook {account_id}"), "not a LINE webhook body", "webhook body refused");
            return reply(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    if events.is_empty() {
        return stored(0, 0);
    }
    match app.store.inbox_insert(events, app.clock.now_ms()).await {
        Ok(outcome) => {
            if outcome.stored > 0 {
                app.inbox.notify_one();
            }
            tracing::debug!(account = %account_id, stored = outcome.stored, duplicates = outcome.duplicates, "webhook stored");
            stored(outcome.stored, outcome.duplicates)
        }
        Err(e) => {
            tracing::error!(account = %account_id, error = %e, "webhook could not be stored");
            reply(StatusCode::SERVICE_UNAVAILABLE, "the event store is unavailable; retry later")
        }
    }
}

/// At most 64 characters of an account id from the URL, for the log.
pub(super) fn truncated(id: &str) -> String {
    id.chars().take(64).collect()
}

/// The inbox row of an event received for `account_id`.
fn inbox_event(account_id: &str, e: webhook::WebhookEvent) -> InboxEvent {
    InboxEvent {
        webhook_event_id: e.webhook_event_id,
        account_id: account_id.to_string(),
        event_type: e.event_type,
        user_id: e.user_id,
        event_ts: e.event_ts,
        redelivery: e.redelivery,
        body: e.body,
    }
}

/// 200 with what was stored; written by hand because it is on the hot path.
fn stored(stored: usize, duplicates: usize) -> Response {
    json_response(StatusCode::OK, format!(r#"{{"stored":{stored},"duplicates":{duplicates}}}"#))
}

fn reply(status: StatusCode, message: &str) -> Response {
    json_response(status, serde_json::json!({ "error": message }).to_string())
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
