//! The HubSpot HTTP client: bearer auth, one rate limiter per portal, typed errors.
//!
//! Every request waits for the shared [`governor`] limiter first. HubSpot counts requests in a
//! rolling 10-second window; GCRA is not a window, so the quota is set so that no 10-second
//! window can hold more than the limit: with a burst of B, one request every 10 s / (N − 1 − B).
//! When the store is known, every request also passes the budget shared with other processes
//! on it ([`super::shared_pace`]), so `linehub pipeline run` and the daemon together stay
//! under the limit. This client does not retry: the writer reschedules failed work in the outbox, where retries
//! survive restarts.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::Method;
use serde_json::Value;

use super::error::{HubSpotError, existing_id};
use super::shared_pace::SharedPace;
use crate::config::Secret;

/// The longest wait a `Retry-After` header is taken for: a broken or hostile answer must not
/// postpone writes for years.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The least wait after a 423 (the portal is locked), as HubSpot asks.
pub const LOCKED_WAIT: Duration = Duration::from_secs(2);

/// A successful answer (2xx, including 207 partial success).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The JSON body (`Null` when empty).
    pub body: Value,
}

/// A client for one HubSpot portal.
#[derive(Clone)]
pub struct HubSpotClient {
    http: reqwest::Client,
    base_url: String,
    token: Secret,
    limiter: Arc<DefaultDirectRateLimiter>,
    /// The budget shared with other processes on the same store, when set.
    shared: Option<SharedPace>,
    /// The requests per 10 s this client paces to.
    per_10s: u32,
}

/// The GCRA period and burst that keep any 10-second window at or under `per_10s` requests.
pub fn pace(per_10s: u32) -> (Duration, u32) {
    let n = per_10s.max(3);
    let burst = (n / 25).max(1);
    let sustained = n - 1 - burst;
    (Duration::from_secs(10) / sustained, burst)
}

/// The GCRA quota that keeps any 10-second window at or under `per_10s` requests.
pub fn quota(per_10s: u32) -> Quota {
    let (period, burst) = pace(per_10s);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

impl HubSpotClient {
    /// A client for `base_url` with `token`, allowed `per_10s` requests per rolling 10 seconds.
    pub fn new(
        base_url: &str,
        token: Secret,
        per_10s: u32,
        timeout: Duration,
    ) -> Result<HubSpotClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("linehub/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HubSpotClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            token,
            limiter: Arc::new(RateLimiter::direct(quota(per_10s))),
            shared: None,
            per_10s,
        })
    }

    /// This client, also counting every request against the budget every process on the store
    /// at `db` shares (see [`SharedPace`]).
    pub fn shared_with_store(mut self, db: &std::path::Path) -> HubSpotClient {
        let (period, burst) = pace(self.per_10s);
        self.shared = Some(SharedPace::new(&SharedPace::beside(db), period, burst));
        self
    }

    /// A client for the portal in `config` (base URL, token, pace, timeout).
    pub fn from_config(config: &crate::config::HubSpotConfig) -> Result<HubSpotClient, reqwest::Error> {
        HubSpotClient::new(&config.base_url, config.token.clone(), config.requests_per_10s, config.timeout)
    }

    /// Sends one request after the rate limiter allows it.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Reply, HubSpotError> {
        self.limiter.until_ready().await;
        if let Some(shared) = &self.shared {
            shared.until_ready().await;
        }
        let mut req = self.http.request(method, format!("{}{path}", self.base_url)).bearer_auth(self.token.expose());
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req.send().await.map_err(|e| HubSpotError::Unavailable(transport(&e)))?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.map_err(|e| HubSpotError::Unavailable(transport(&e)))?;
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if (200..300).contains(&status) {
            return Ok(Reply { status, body });
        }
        Err(classify(status, &headers, &body))
    }
}

fn transport(e: &reqwest::Error) -> String {
    if e.is_timeout() { format!("timed out: {e}") } else { e.to_string() }
}

fn field(body: &Value, key: &str) -> String {
    body.get(key).and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| match body {
        Value::String(s) if key == "message" => s.clone(),
        _ => String::new(),
    })
}

/// Turns an error answer into the error the caller acts on.
fn classify(status: u16, headers: &reqwest::header::HeaderMap, body: &Value) -> HubSpotError {
    let message = field(body, "message");
    let header_num =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    match status {
        429 => {
            let policy = field(body, "policyName");
            let retry_after = if let Some(s) = header_num("retry-after") {
                Duration::from_secs(s).min(MAX_RETRY_AFTER)
            } else if policy == "DAILY" {
                Duration::from_secs(3600)
            } else {
                // A rolling window frees a tenth of itself per tenth of its length.
                let interval = header_num("x-hubspot-ratelimit-interval-milliseconds").unwrap_or(10_000);
                Duration::from_millis((interval / 10).max(1000))
            };
            HubSpotError::RateLimited { retry_after, policy: if policy.is_empty() { "unknown".into() } else { policy } }
        }
        401 | 403 => HubSpotError::Unauthorized { status, message },
        404 => HubSpotError::NotFound(message),
        409 => HubSpotError::Conflict { existing_id: existing_id(&message), message },
        423 | 477 => {
            let said = header_num("retry-after").map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
            let retry_after = if status == 423 { Some(said.unwrap_or_default().max(LOCKED_WAIT)) } else { said };
            HubSpotError::Busy { status, retry_after, message }
        }
        500..=599 => HubSpotError::Unavailable(format!("{status}: {message}")),
        _ => HubSpotError::Rejected { status, category: field(body, "category"), message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    /// Sends as fast as the quota allows for 60 s and returns the most requests in any 10 s.
    fn busiest_window(per_10s: u32) -> (usize, usize) {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota(per_10s), clock.clone());
        let mut sent = Vec::new();
        let step = Duration::from_millis(1);
        for ms in 0..60_000u64 {
            while limiter.check().is_ok() {
                sent.push(ms);
            }
            clock.advance(step);
        }
        let mut busiest = 0;
        for (i, &t) in sent.iter().enumerate() {
            busiest = busiest.max(sent[i..].iter().take_while(|&&u| u < t + 10_000).count());
        }
        (busiest, sent.len())
    }

    #[test]
    fn no_ten_second_window_exceeds_the_limit_and_little_is_left_unused() {
        for limit in [100, 190, 250] {
            let (busiest, total) = busiest_window(limit);
            assert!(busiest <= limit as usize, "limit {limit}: {busiest} in one window");
            let share = total as f64 / (limit as f64 * 6.0);
            assert!(share >= 0.95, "limit {limit}: only {share:.3} of the ceiling used");
        }
    }

    #[test]
    fn errors_are_typed_by_what_to_do_next() {
        let h = reqwest::header::HeaderMap::new();
        let conflict = serde_json::json!({"status":"error","message":"Contact already exists. Existing ID: 42","category":"CONFLICT"});
        assert!(
            matches!(classify(409, &h, &conflict), HubSpotError::Conflict { existing_id: Some(id), .. } if id == "42")
        );
        let daily = serde_json::json!({"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","policyName":"DAILY"});
        assert!(
            matches!(classify(429, &h, &daily), HubSpotError::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(3600))
        );
        assert!(classify(503, &h, &Value::Null).is_transient());
        let mut decades = reqwest::header::HeaderMap::new();
        decades.insert("retry-after", reqwest::header::HeaderValue::from_static("3153600000"));
        assert!(
            matches!(classify(429, &decades, &daily), HubSpotError::RateLimited { retry_after, .. } if retry_after == MAX_RETRY_AFTER)
        );
        let busy = |status, header: Option<&'static str>| {
            let mut h = reqwest::header::HeaderMap::new();
            if let Some(v) = header {
                h.insert("retry-after", reqwest::header::HeaderValue::from_static(v));
            }
            classify(status, &h, &Value::Null).retry_after()
        };
        assert_eq!(busy(423, None), Some(LOCKED_WAIT));
        assert_eq!(busy(423, Some("1")), Some(LOCKED_WAIT));
        assert_eq!(busy(423, Some("30")), Some(Duration::from_secs(30)));
        assert_eq!(busy(477, Some("120")), Some(Duration::from_secs(120)));
        assert_eq!(busy(477, Some("999999999")), Some(MAX_RETRY_AFTER));
        assert_eq!(busy(477, None), None);
        let invalid = serde_json::json!({"message":"Property values were not valid","category":"VALIDATION_ERROR"});
        let e = classify(400, &h, &invalid);
        assert!(!e.is_transient());
        assert!(e.to_string().contains("VALIDATION_ERROR"));
    }
}
