//! Operational endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// `GET /healthz`: 200 when everything linehub needs to keep its promises runs, 503 naming what
/// does not: a store that does not answer or whose latest commit failed (a full disk), and a
/// thread or loop that has died or is stuck (the store's writer and checkpointer, the daemon's
/// applier, writer, sender and scheduler). The answer also gives the WAL file's size. It reads
/// only counters and makes one trivial query: constant time, whatever the store holds.
pub async fn healthz(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let now = app.clock.now_ms();
    let mut problems: Vec<String> =
        app.beats.iter().filter_map(|b| b.check(now).err()).map(|p| p.to_string()).collect();
    if let Some(why) = app.store.commit_failure() {
        problems.push(format!("store: the latest commit failed: {why}"));
    }
    if let Err(e) = app.store.ping().await {
        problems.push(e.to_string());
    }
    let wal_bytes = app.store.wal_bytes();
    if problems.is_empty() {
        return (StatusCode::OK, Json(json!({ "status": "ok", "wal_bytes": wal_bytes })));
    }
    let answer =
        json!({ "status": "error", "error": problems.join("; "), "problems": problems, "wal_bytes": wal_bytes });
    (StatusCode::SERVICE_UNAVAILABLE, Json(answer))
}
