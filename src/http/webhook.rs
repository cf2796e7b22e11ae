//! `POST /line/{account_id}/webhook`: LINE's events, durably into the inbox.
//!
//! The order is the contract: find the account (404), verify `X-Line-Signature` over the raw
//! bytes (401), read the envelope (400), commit every event to the inbox, and only then answer 200.
//! Nothing is stored for a request that fails a check. An empty `events` array is LINE's
//! "Verify" button and gets 200. If the store cannot commit, the answer is 503 so LINE's
//! redelivery (when enabled) tries again.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::AppState;
use crate::line::{signature, webhook};

/// The handler.
pub async fn receive(
    State(app): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let secret = {
        let config = app.config.borrow();
        match config.account(&account_id).filter(|a| a.active) {
            Some(account) => account.channel_secret.clone(),
            None => return reply(StatusCode::NOT_FOUND, "no active account with this id"),
        }
    };
    // HeaderMap lookups are case-insensitive, as LINE's header casing may change.
    let header = headers.get("x-line-signature").map(|v| v.as_bytes());
    if let Err(e) = signature::verify(secret.expose().as_bytes(), &body, header) {
        tracing::warn!(account = %account_id, reason = %e, "webhook refused");
        return reply(StatusCode::UNAUTHORIZED, &e.to_string());
    }
    let events = match webhook::parse(&account_id, &body) {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(account = %account_id, error = %e, "webhook body refused");
            return reply(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    if events.is_empty() {
        return (StatusCode::OK, Json(json!({ "stored": 0, "duplicates": 0 })));
    }
    match app.store.inbox_insert(events).await {
        Ok(outcome) => {
            tracing::debug!(account = %account_id, stored = outcome.stored, duplicates = outcome.duplicates, "webhook stored");
            (StatusCode::OK, Json(json!({ "stored": outcome.stored, "duplicates": outcome.duplicates })))
        }
        Err(e) => {
            tracing::error!(account = %account_id, error = %e, "webhook could not be stored");
            reply(StatusCode::SERVICE_UNAVAILABLE, "the event store is unavailable; retry later")
        }
    }
}

fn reply(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (status, Json(json!({ "error": message })))
}
