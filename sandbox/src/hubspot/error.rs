//! HubSpot's error envelope, in the shapes its documentation and clients show.
//!
//! `{"status":"error","message","correlationId","category"}` plus, where HubSpot adds them,
//! `errors[]`, `context` and the rate-limit fields `errorType`/`policyName`/`requestId`.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::properties::PropertyProblem;
use crate::ids;
use crate::reply::Reply;

/// The basic envelope.
pub(crate) fn error(status: StatusCode, category: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({
            "status": "error",
            "message": message,
            "correlationId": ids::uuid_v4(),
            "category": category,
        }),
    )
}

/// 400 VALIDATION_ERROR.
pub(crate) fn validation(message: &str) -> Reply {
    error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
}

/// 404 OBJECT_NOT_FOUND.
pub(crate) fn not_found(message: &str) -> Reply {
    error(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", message)
}

/// 409 CONFLICT.
pub(crate) fn conflict(message: &str) -> Reply {
    error(StatusCode::CONFLICT, "CONFLICT", message)
}

/// 401 for a missing or wrong token.
pub(crate) fn unauthorized() -> Reply {
    error(
        StatusCode::UNAUTHORIZED,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    )
}

/// 503 during an outage fault.
pub(crate) fn unavailable() -> Reply {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
        "The service is temporarily unavailable. Please try again later.",
    )
}

/// HubSpot's answer with `status` when a test refuses requests ([`crate::FaultControl::refuse`]):
/// 423 when the portal is locked (wait at least 2 s), 477 while a migration is in progress, a
/// rolling-window 429, and a plain error envelope for anything else.
pub(crate) fn refused(status: u16) -> Reply {
    match status {
        429 => rate_limited(Policy::TenSecondlyRolling),
        423 => error(StatusCode::LOCKED, "LOCKED", "The portal is locked; try again in at least 2 seconds."),
        477 => error(
            StatusCode::from_u16(477).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "MIGRATION_IN_PROGRESS",
            "The portal is being migrated between data centers; try again after Retry-After seconds.",
        ),
        s => error(StatusCode::from_u16(s).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), "ERROR", "Refused."),
    }
}

/// Which rate limit a 429 reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The rolling 10-second burst limit of the app.
    TenSecondlyRolling,
    /// The account's daily limit.
    Daily,
    /// The search endpoints' own per-second limit.
    Secondly,
}

/// 429 with HubSpot's rate-limit body.
pub(crate) fn rate_limited(policy: Policy) -> Reply {
    let (message, name) = match policy {
        Policy::TenSecondlyRolling => ("You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING"),
        Policy::Daily => ("You have reached your daily limit.", "DAILY"),
        Policy::Secondly => ("You have reached your secondly limit.", "SECONDLY"),
    };
    Reply::json(
        StatusCode::TOO_MANY_REQUESTS,
        json!({
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": ids::uuid_v4(),
            "policyName": name,
            "requestId": ids::uuid_v4(),
        }),
    )
}

/// The JSON array HubSpot embeds (as a string) in a property validation message.
fn problems_json(problems: &[PropertyProblem]) -> Value {
    Value::Array(
        problems
            .iter()
            .map(|p| {
                json!({
                    "isValid": false,
                    "message": p.message,
                    "error": p.code,
                    "name": p.name,
                    "localizedErrorMessage": p.message,
                })
            })
            .collect(),
    )
}

/// The message of a property validation error: `Property values were not valid: [...]`.
pub(crate) fn problems_message(problems: &[PropertyProblem]) -> String {
    format!("Property values were not valid: {}", problems_json(problems))
}

/// 400 VALIDATION_ERROR for property values (unknown property, bad option, bad date, …).
pub(crate) fn invalid_properties(problems: &[PropertyProblem]) -> Reply {
    let errors: Vec<Value> = problems
        .iter()
        .map(|p| {
            json!({
                "message": p.message,
                "code": p.code,
                "context": { "propertyName": [p.name] },
            })
        })
        .collect();
    let mut reply = validation(&problems_message(problems));
    if let Some(body) = reply.body.as_mut() {
        body["errors"] = Value::Array(errors);
    }
    reply
}

/// One entry of a 207 `errors` array.
pub(crate) fn batch_error(category: &str, message: &str, context: Value) -> Value {
    json!({
        "status": "error",
        "category": category,
        "message": message,
        "context": context,
    })
}
