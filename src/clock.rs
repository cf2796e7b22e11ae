//! Time as an input. The daemon reads the system clock; tests use a [`ManualClock`] so that an
//! outage "of many minutes" takes no minutes, and backoff schedules can be checked exactly.
//!
//! Everything that decides *when* (queue rows falling due, retry waits, schedules, expiries)
//! asks a [`Clock`]; nothing below this module reads the system time itself. The store keeps
//! times as milliseconds since the Unix epoch and is handed them by its callers.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A source of "now" in ms since the Unix epoch, and of waits measured against it.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now_ms(&self) -> i64;

    /// Waits `d` of this clock's time. The system clock sleeps; a manual clock moves itself
    /// forward, so a retry loop under test takes no real time and its waits are still counted.
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

/// Milliseconds since the Unix epoch, read from the system clock. For the edges that have no
/// injected clock (the command line, the demo); everything else asks its [`Clock`].
pub fn system_now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        system_now_ms()
    }

    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A clock that moves only when told to (or when something waits on it).
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// Starts at the current system time.
    pub fn new() -> ManualClock {
        ManualClock(AtomicI64::new(system_now_ms()))
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(millis(by), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Never really waits: moves the clock forward by `d` and yields once, so a retry loop under
    /// test takes no real time and its waits still show on the clock.
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.advance(d);
        Box::pin(tokio::task::yield_now())
    }
}

/// A duration in the clock's unit (ms), saturating instead of overflowing.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_by_what_is_waited_on_it() {
        let clock = ManualClock::new();
        let start = clock.now_ms();
        clock.sleep(Duration::from_millis(1500)).await;
        assert_eq!(clock.now_ms() - start, 1500);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now_ms() - start, 3500);
    }
}
