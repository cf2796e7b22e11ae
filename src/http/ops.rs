//! Operational endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// `GET /healthz`: 200 when the store answers, 503 otherwise.
pub async fn healthz(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    match app.store.inbox_len().await {
        Ok(n) => (StatusCode::OK, Json(json!({ "status": "ok", "inbox_events": n }))),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "error", "error": e.to_string() }))),
    }
}
