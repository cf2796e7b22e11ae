//! The one retry policy: how long to wait before trying again, for every queue and every call.
//!
//! Two shapes of retry use it. Queued work (outbox rows, sends, the writer's portal pause, the
//! properties setup) keeps its attempt count in the store and asks [`Backoff::QUEUE`] when it
//! falls due again: exponential from 1 s, capped at 150 s plus jitter, so every wait stays under
//! 5 minutes and rows that failed together spread out. A call retried in place (a multicast
//! under its retry key, inside one pipeline run) uses [`retry`] with [`Backoff::IN_CALL`]: short,
//! doubling waits, a few attempts. Due times and in-call waits are measured on the injected
//! [`Clock`], so tests drive them without sleeping. (The daemon's background loops wake when a
//! queue is notified or its next row falls due; only their idle naps use real time.)

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::clock::{Clock, millis};

/// An exponential backoff schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first wait.
    pub min: Duration,
    /// The longest wait before jitter.
    pub max: Duration,
    /// Whether each wait gets a random part of itself added (spreads retries of rows that
    /// failed together).
    pub jitter: bool,
}

impl Backoff {
    /// Queued work: 1 s, 2 s, 4 s … up to 150 s, each plus a random part of itself.
    pub const QUEUE: Backoff = Backoff { min: Duration::from_secs(1), max: Duration::from_secs(150), jitter: true };

    /// A call retried in place: 500 ms, 1 s, 2 s …, no jitter.
    pub const IN_CALL: Backoff =
        Backoff { min: Duration::from_millis(500), max: Duration::from_secs(8), jitter: false };

    /// The wait before retry number `attempt` (0 is the first retry).
    pub fn wait(&self, attempt: i64) -> Duration {
        let n = usize::try_from(attempt.clamp(0, 64)).unwrap_or(0);
        let builder = ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .without_max_times();
        let builder = if self.jitter { builder.with_jitter() } else { builder };
        builder.build().nth(n).unwrap_or(self.max * 2)
    }

    /// When retry number `attempt` falls due, counted from `now` (ms).
    pub fn due_at(&self, now: i64, attempt: i64) -> i64 {
        now + millis(self.wait(attempt))
    }
}

/// The queue policy's wait before retry number `attempt`; see [`Backoff::QUEUE`].
pub fn backoff(attempt: i64) -> Duration {
    Backoff::QUEUE.wait(attempt)
}

/// Runs `op` up to `attempts` times, waiting on `clock` between tries, for as long as it fails
/// with an error `transient` accepts. `on_retry` hears each failure that is retried (to log
/// it). The last error is returned as it came.
pub async fn retry<T, E, Fut>(
    clock: &dyn Clock,
    policy: Backoff,
    attempts: u32,
    transient: impl Fn(&E) -> bool,
    mut on_retry: impl FnMut(&E, u32),
    mut op: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Err(e) if transient(&e) && attempt < attempts => {
                on_retry(&e, attempt);
                clock.sleep(policy.wait(i64::from(attempt) - 1)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn queue_backoff_grows_and_is_capped_under_five_minutes() {
        assert!(backoff(0) >= Duration::from_secs(1) && backoff(0) < Duration::from_secs(3));
        assert!(backoff(3) >= Duration::from_secs(8));
        for _ in 0..100 {
            assert!(backoff(40) < Duration::from_secs(300));
        }
    }

    #[test]
    fn in_call_waits_double_without_jitter() {
        let waits: Vec<_> = (0..3).map(|n| Backoff::IN_CALL.wait(n)).collect();
        assert_eq!(waits, [Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2)]);
    }

    #[tokio::test]
    async fn transient_failures_are_retried_on_the_clock_up_to_the_limit() {
        let clock = ManualClock::new();
        let start = clock.now_ms();
        let calls = AtomicU32::new(0);
        let mut heard = Vec::new();
        let result: Result<(), &str> = retry(
            &clock,
            Backoff::IN_CALL,
            3,
            |e: &&str| *e == "busy",
            |_, n| heard.push(n),
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err("busy") }
            },
        )
        .await;
        assert_eq!(result, Err("busy"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(heard, [1, 2]);
        assert_eq!(clock.now_ms() - start, 1500, "waited 500 ms then 1 s, on the clock");
        let permanent: Result<(), &str> =
            retry(&clock, Backoff::IN_CALL, 3, |e: &&str| *e == "busy", |_, _| {}, || async { Err("no") }).await;
        assert_eq!(permanent, Err("no"));
    }
}
