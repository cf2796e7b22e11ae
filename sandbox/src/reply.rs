//! The answer a simulated endpoint gives, before it becomes an HTTP response.
//!
//! Handlers run under a lock and never await, so they return this plain value; the server turns it
//! into an axum response after the lock is released.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Status, optional JSON body and extra headers of one simulated response.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Option<Value>,
    pub(crate) headers: Vec<(HeaderName, String)>,
}

impl Reply {
    /// A JSON response.
    pub(crate) fn json(status: StatusCode, body: Value) -> Reply {
        Reply { status, body: Some(body), headers: Vec::new() }
    }

    /// A response without a body (204, or LINE's empty `{}` is a JSON reply instead).
    pub(crate) fn empty(status: StatusCode) -> Reply {
        Reply { status, body: None, headers: Vec::new() }
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((HeaderName::from_static(name), value.into()));
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => (self.status, axum::Json(body)).into_response(),
            None => self.status.into_response(),
        };
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, v);
            }
        }
        response
    }
}
