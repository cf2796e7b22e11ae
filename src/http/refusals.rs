//! Refused requests, logged without flooding the log.
//!
//! The public listener refuses bad signatures, unknown accounts and broken bodies. Logging each
//! one would let anyone fill the journal (and hide the one line an operator needs), so the first
//! refusal of a kind (surface, account, reason) in a minute is logged at once, as before, and the
//! rest of that minute are counted and logged as one summary line when the minute ends. Account
//! names from the URL are attacker-chosen: kinds are capped, and past the cap refusals are
//! counted under one overflow kind, so memory stays bounded.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// How long one summary window lasts (ms).
pub const WINDOW_MS: i64 = 60_000;
/// Most distinct kinds counted per window; the rest share one.
const MAX_KINDS: usize = 256;
/// The kind refusals are counted under once [`MAX_KINDS`] are taken.
const OVERFLOW: &str = "(other refusals)";

/// One kind of refusal and how often it happened after its first in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Which route and account, e.g. `webhook tokyo`.
    pub scope: String,
    /// Why they were refused.
    pub reason: String,
    /// Refusals counted after the first (which was logged when it happened).
    pub more: u64,
}

/// Counts refusals per kind over a window.
#[derive(Debug, Default)]
pub struct Refusals {
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// When the current window started (ms).
    started: i64,
    /// Refusals seen per (scope, reason) in this window, the first included.
    counts: BTreeMap<(String, String), u64>,
}

impl Refusals {
    /// Counts one refusal at `now`; true when it is the first of its kind in the window and
    /// should be logged at once.
    pub fn record(&self, scope: &str, reason: &str, now: i64) -> bool {
        let mut w = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.counts.is_empty() {
            w.started = now;
        }
        let mut key = (scope.to_string(), reason.to_string());
        if !w.counts.contains_key(&key) && w.counts.len() >= MAX_KINDS {
            key = (OVERFLOW.to_string(), String::new());
        }
        let n = w.counts.entry(key).or_default();
        *n += 1;
        *n == 1
    }

    /// When the window is over at `now`: the kinds refused more than once in it, and a new
    /// window begins. Before that: nothing.
    pub fn flush(&self, now: i64) -> Vec<Summary> {
        let mut w = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.counts.is_empty() || now - w.started < WINDOW_MS {
            return Vec::new();
        }
        let counts = std::mem::take(&mut w.counts);
        counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|((scope, reason), n)| Summary { scope, reason, more: n - 1 })
            .collect()
    }

    /// Logs what [`Refusals::flush`] returns.
    pub fn log_summaries(&self, now: i64) {
        for s in self.flush(now) {
            tracing::warn!(scope = %s.scope, reason = %s.reason, more = s.more, "requests refused in the last minute besides the one logged");
        }
    }
}

/// Logs `what` with `reason` for `scope` if it is the first of its kind in the window.
macro_rules! refused {
    ($app:expr, $scope:expr, $reason:expr, $what:literal) => {{
        let reason: &str = $reason;
        if $app.refusals.record($scope, reason, $app.clock.now_ms()) {
            tracing::warn!(scope = %$scope, reason = %reason, concat!($what, " (more like it this minute are summarised)"));
        }
    }};
}
pub(crate) use refused;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_a_kind_is_logged_and_the_rest_summarised_once_a_minute() {
        let r = Refusals::default();
        assert!(r.record("webhook tokyo", "bad signature", 0));
        for t in 1..100 {
            assert!(!r.record("webhook tokyo", "bad signature", t));
        }
        assert!(r.record("webhook osaka", "bad signature", 200), "another account is another kind");
        assert!(r.flush(WINDOW_MS - 1).is_empty(), "not before the minute is over");
        let summary = r.flush(WINDOW_MS);
        assert_eq!(
            summary,
            [Summary { scope: "webhook tokyo".into(), reason: "bad signature".into(), more: 99 }],
            "a kind seen once was already logged whole"
        );
        assert!(r.record("webhook tokyo", "bad signature", WINDOW_MS + 1), "a new minute logs again");
    }

    #[test]
    fn attacker_chosen_accounts_cannot_grow_the_counts_without_bound() {
        let r = Refusals::default();
        for i in 0..10_000 {
            r.record(&format!("webhook a{i}"), "unknown account", 0);
        }
        let summary = r.flush(WINDOW_MS);
        assert_eq!(summary.len(), 1);
        assert_eq!(summary[0].scope, OVERFLOW);
        assert_eq!(summary[0].more, 10_000 - MAX_KINDS as u64 - 1);
    }
}
