//! HubSpot's rate limits and the request statistics benchmarks read.
//!
//! - Burst: a rolling 10-second window per token, `hubspot_burst_per_10s` requests (190 for
//!   Professional). Every counted response carries `X-HubSpot-RateLimit-Max`, `-Remaining`,
//!   `-Interval-Milliseconds: 10000`, `-Daily` and `-Daily-Remaining`; over the limit is 429
//!   `TEN_SECONDLY_ROLLING`. Refused requests do not use up the window.
//! - Daily: `hubspot_daily_limit` requests per 24 h from the sandbox's start (HubSpot resets at
//!   midnight in the account's zone), 429 `DAILY` beyond.
//! - Search: its own bucket, `hubspot_search_per_second` (5) per rolling second, no rate-limit
//!   headers, 429 "You have reached your secondly limit."; search does not use the burst window.
//!
//! Time is `tokio::time::Instant`, so a paused test clock drives the windows.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::error::Policy;

const BURST_WINDOW: Duration = Duration::from_secs(10);
const SEARCH_WINDOW: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The sliding windows of one sandbox's HubSpot token.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    burst_max: u32,
    daily_max: u64,
    search_max: u32,
    burst: VecDeque<Instant>,
    search: VecDeque<Instant>,
    day_start: Option<Instant>,
    day_count: u64,
    /// The most requests ever inside one burst window.
    pub(crate) peak: u32,
}

/// The window state after an admitted request, for the response headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admitted {
    remaining: u32,
    daily_remaining: u64,
}

impl RateLimiter {
    pub(crate) fn new(burst_max: u32, daily_max: u64, search_max: u32) -> RateLimiter {
        RateLimiter {
            burst_max,
            daily_max,
            search_max,
            burst: VecDeque::new(),
            search: VecDeque::new(),
            day_start: None,
            day_count: 0,
            peak: 0,
        }
    }

    fn prune(window: &mut VecDeque<Instant>, now: Instant, span: Duration) {
        while window.front().is_some_and(|t| now.duration_since(*t) >= span) {
            window.pop_front();
        }
    }

    /// Admits a non-search request or names the limit it hits.
    pub(crate) fn admit(&mut self, now: Instant) -> Result<Admitted, Policy> {
        let day_start = *self.day_start.get_or_insert(now);
        if now.duration_since(day_start) >= DAY {
            self.day_start = Some(now);
            self.day_count = 0;
        }
        Self::prune(&mut self.burst, now, BURST_WINDOW);
        if self.day_count >= self.daily_max {
            return Err(Policy::Daily);
        }
        if self.burst.len() as u32 >= self.burst_max {
            return Err(Policy::TenSecondlyRolling);
        }
        self.burst.push_back(now);
        self.day_count += 1;
        self.peak = self.peak.max(self.burst.len() as u32);
        Ok(Admitted {
            remaining: self.burst_max - self.burst.len() as u32,
            daily_remaining: self.daily_max - self.day_count,
        })
    }

    /// Admits a search request against the search bucket.
    pub(crate) fn admit_search(&mut self, now: Instant) -> Result<(), Policy> {
        Self::prune(&mut self.search, now, SEARCH_WINDOW);
        if self.search.len() as u32 >= self.search_max {
            return Err(Policy::Secondly);
        }
        self.search.push_back(now);
        Ok(())
    }

    /// Headers for a response to an admitted request.
    pub(crate) fn headers(&self, a: Admitted) -> Vec<(&'static str, String)> {
        self.header_values(a.remaining, a.daily_remaining)
    }

    /// Headers for a refused (429) request: nothing remains in the window.
    pub(crate) fn exhausted_headers(&self) -> Vec<(&'static str, String)> {
        let daily_remaining = self.daily_max.saturating_sub(self.day_count);
        self.header_values(0, daily_remaining)
    }

    fn header_values(&self, remaining: u32, daily_remaining: u64) -> Vec<(&'static str, String)> {
        vec![
            ("x-hubspot-ratelimit-max", self.burst_max.to_string()),
            ("x-hubspot-ratelimit-remaining", remaining.to_string()),
            ("x-hubspot-ratelimit-interval-milliseconds", BURST_WINDOW.as_millis().to_string()),
            ("x-hubspot-ratelimit-daily", self.daily_max.to_string()),
            ("x-hubspot-ratelimit-daily-remaining", daily_remaining.to_string()),
        ]
    }
}

/// What the HubSpot simulator has been asked, for tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubSpotStats {
    /// Every request to a HubSpot path, whatever the answer.
    pub requests: u64,
    /// Requests answered 429 (burst, daily, search or a storm fault).
    pub rate_limited: u64,
    /// Requests recorded as contract violations.
    pub violations: u64,
    /// Requests per endpoint, keyed `METHOD /crm/v3/template` (dated paths count as v3).
    pub by_endpoint: BTreeMap<String, u64>,
    /// The configured burst limit per 10 s.
    pub burst_limit: u32,
    /// The most requests seen inside one rolling 10 s window.
    pub peak_in_window: u32,
}

impl HubSpotStats {
    /// Share of the burst ceiling used at the busiest moment (0.0..=1.0).
    pub fn ceiling_share(&self) -> f64 {
        if self.burst_limit == 0 {
            return 0.0;
        }
        f64::from(self.peak_in_window) / f64::from(self.burst_limit)
    }

    /// Share of requests answered 429.
    pub fn rate_limited_share(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        self.rate_limited as f64 / self.requests as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_burst_window_rolls_after_ten_seconds() {
        let mut rl = RateLimiter::new(3, 1000, 5);
        let t0 = Instant::now();
        for _ in 0..3 {
            rl.admit(t0).expect("within burst");
        }
        assert_eq!(rl.admit(t0).unwrap_err(), Policy::TenSecondlyRolling);
        assert!(rl.admit(t0 + Duration::from_millis(9_999)).is_err());
        rl.admit(t0 + BURST_WINDOW).expect("window rolled");
        assert_eq!(rl.peak, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_daily_limit_refuses_once_spent() {
        let mut rl = RateLimiter::new(100, 2, 5);
        let t0 = Instant::now();
        rl.admit(t0).expect("1");
        rl.admit(t0).expect("2");
        assert_eq!(rl.admit(t0).unwrap_err(), Policy::Daily);
        rl.admit(t0 + DAY).expect("a new day");
    }

    #[tokio::test(start_paused = true)]
    async fn search_has_its_own_per_second_bucket() {
        let mut rl = RateLimiter::new(1, 1000, 2);
        let t0 = Instant::now();
        rl.admit(t0).expect("burst");
        rl.admit_search(t0).expect("search 1");
        rl.admit_search(t0).expect("search 2");
        assert_eq!(rl.admit_search(t0).unwrap_err(), Policy::Secondly);
        rl.admit_search(t0 + SEARCH_WINDOW).expect("next second");
    }
}
