//! Shared set-up for the sandbox's HTTP tests: a started sandbox and a plain HTTP client.

#![allow(dead_code)]

use linehub_sandbox::{ChannelSpec, Sandbox, SandboxConfig};
use reqwest::{Client, Method, Response};
use serde_json::Value;

pub const LINE_TOKEN: &str = "line-channel-token";
pub const LINE_SECRET: &str = "line-channel-secret";
pub const HUBSPOT_TOKEN: &str = "sandbox-hubspot-token";

/// A running sandbox with one verified LINE channel and an HTTP client.
pub struct Harness {
    pub sandbox: Sandbox,
    pub http: Client,
    pub bot: String,
}

pub async fn start() -> Harness {
    start_with(SandboxConfig::default()).await
}

pub async fn start_with(cfg: SandboxConfig) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
    let sandbox = Sandbox::start(listener, cfg).await.expect("sandbox starts");
    let bot = sandbox.line().add_channel(ChannelSpec::new(LINE_TOKEN, LINE_SECRET)).expect("channel");
    Harness { sandbox, http: Client::new(), bot }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sandbox.base_url(), path)
    }

    /// A request with a bearer token and, when given, a JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.expect("the sandbox answers")
    }

    pub async fn line_get(&self, path: &str) -> Response {
        self.call(Method::GET, path, LINE_TOKEN, None, &[]).await
    }

    pub async fn line_post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Response {
        self.call(Method::POST, path, LINE_TOKEN, Some(body), headers).await
    }

    pub async fn hs(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        self.call(method, path, HUBSPOT_TOKEN, body, &[]).await
    }

    pub async fn hs_post(&self, path: &str, body: &Value) -> Response {
        self.hs(Method::POST, path, Some(body)).await
    }

    pub async fn hs_get(&self, path: &str) -> Response {
        self.hs(Method::GET, path, None).await
    }
}

/// Status and JSON body of a response (null for an empty body).
pub async fn status_json(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("a body");
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, body)
}
