//! The answer a simulated endpoint gives, before it becomes an HTTP response: JSON for the APIs,
//! text for LINE Login's pages and the LIFF SDK, or a redirect.
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
    /// A body that is not JSON (LINE Login's HTML pages, the LIFF SDK): media type and text.
    /// Used only when `body` is `None`.
    pub(crate) text: Option<(&'static str, String)>,
    pub(crate) headers: Vec<(HeaderName, String)>,
}

impl Reply {
    /// A JSON response.
    pub(crate) fn json(status: StatusCode, body: Value) -> Reply {
        Reply { status, body: Some(body), text: None, headers: Vec::new() }
    }

    /// A response without a body (204, or LINE's empty `{}` is a JSON reply instead).
    pub(crate) fn empty(status: StatusCode) -> Reply {
        Reply { status, body: None, text: None, headers: Vec::new() }
    }

    /// A response with a text body of the given media type (`text/html; charset=utf-8`).
    pub(crate) fn text(status: StatusCode, media_type: &'static str, text: String) -> Reply {
        Reply { status, body: None, text: Some((media_type, text)), headers: Vec::new() }
    }

    /// A `302 Found` to `location`, as a browser follows it.
    pub(crate) fn redirect(location: String) -> Reply {
        Reply::empty(StatusCode::FOUND).with_header("location", location)
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((HeaderName::from_static(name), value.into()));
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = match (self.body, self.text) {
            (Some(body), _) => (self.status, axum::Json(body)).into_response(),
            (None, Some((media_type, text))) => {
                (self.status, [(axum::http::header::CONTENT_TYPE, media_type)], text).into_response()
            }
            (None, None) => self.status.into_response(),
        };
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, v);
            }
        }
        response
    }
}
