//! `POST /hubspot/actions/push-line-message`: the "Push LINE message" workflow action.
//!
//! The order is the contract, as for LINE's webhooks: the route exists only when
//! `hubspot.client_secret` is set (404); the HubSpot signature (v3, or v2 where
//! `hubspot.accept_v2_signatures` allows it) is checked over the raw bytes and the public URL
//! before anything is read (401); a body that is not an action request is 400.
//! A request that cannot be carried out (unknown account, no message) fails the action at once
//! with its reason in the `error` output and stores nothing. Otherwise the send is committed to
//! the store, keyed by its callback id, and only then does HubSpot get
//! `hs_execution_state: BLOCK`: the workflow waits until linehub completes the execution with
//! SUCCESS or FAIL_CONTINUE once LINE has answered. A redelivered request is stored once.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::refusals::refused;
use crate::hubspot::signature::{self, SignatureHeaders, SignedRequest};
use crate::sends::{ActionRequest, BLOCK_FOR, RequestError};
use crate::store::sends::Stored;

/// The handler.
pub async fn push_line_message(State(app): State<AppState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let config = app.settings.borrow().config.clone();
    let Some(secret) = config.hubspot.client_secret.clone() else {
        return error(StatusCode::NOT_FOUND, "workflow actions are off: hubspot.client_secret is not set");
    };
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let full_uri = format!("{}{path}", config.server.public_base_url);
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    let signed = SignatureHeaders {
        v3: header("x-hubspot-signature-v3"),
        timestamp: header("x-hubspot-request-timestamp"),
        legacy: header("x-hubspot-signature"),
        version: header("x-hubspot-signature-version"),
    };
    let request = SignedRequest { method: "POST", uri: &full_uri, body: &body };
    let accept_v2 = config.hubspot.accept_v2_signatures;
    if let Err(e) = signature::verify(secret.expose().as_bytes(), &request, &signed, app.clock.now_ms(), accept_v2) {
        refused!(app, "workflow action", &e.to_string(), "workflow action request refused");
        return error(StatusCode::UNAUTHORIZED, &e.to_string());
    }
    let action = match ActionRequest::parse(&body, &config) {
        Ok(action) => action,
        Err(RequestError::Malformed(why)) => {
            refused!(app, "workflow action", "not an action request", "workflow action body refused");
            return error(StatusCode::BAD_REQUEST, &why);
        }
        Err(RequestError::Invalid { callback_id, message }) => {
            tracing::warn!(callback = %callback_id, reason = %message, "workflow action failed at once");
            return outputs(json!({ "hs_execution_state": "FAIL_CONTINUE", "error": message }));
        }
    };
    let callback_id = action.callback_id.clone();
    match app.store.send_insert(action.into(), app.clock.now_ms()).await {
        Ok(Stored::New(id)) => {
            tracing::info!(send = id, callback = %callback_id, "LINE push accepted from a workflow");
            app.sends.notify_one();
        }
        Ok(Stored::Duplicate(id)) => tracing::info!(send = id, callback = %callback_id, "workflow action redelivered"),
        Err(e) => {
            tracing::error!(error = %e, "workflow action could not be stored");
            return error(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable; retry later");
        }
    }
    outputs(json!({ "hs_execution_state": "BLOCK", "hs_expiration_duration": BLOCK_FOR }))
}

fn outputs(fields: serde_json::Value) -> Response {
    (StatusCode::OK, axum::Json(json!({ "outputFields": fields }))).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}
