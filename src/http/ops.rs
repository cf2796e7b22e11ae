//! Operational endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// `GET /healthz`: 200 when the store answers and its latest commit succeeded, 503 otherwise
/// (a store that cannot commit refuses every webhook); in constant time, whatever the size of
/// the inbox.
pub async fn healthz(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    if let Some(why) = app.store.commit_failure() {
        let error = format!("store: the latest commit failed: {why}");
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "error", "error": error })));
    }
    match app.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok" }))),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "error", "error": e.to_string() }))),
    }
}
