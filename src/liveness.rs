//! Whether linehub's long-running threads and loops still run, for `/healthz`.
//!
//! A thread or loop that dies (a panic, an early return) or hangs does so silently: the HTTP
//! listener keeps answering while the inbox is never applied or the WAL is never checkpointed.
//! Each of them owns a [`Beat`]: it beats when it starts a round of work or goes idle waiting for
//! more, and holds the [`Beat::alive`] guard, which marks it ended however it stops. Whoever
//! checks ([`Beat::check`], with its own clock's now) sees a dead one at once, and a stuck one
//! once it has been busy without beating for longer than its limit. A loop that waits for work
//! is idle, never stuck.
//!
//! This module reads no clock and knows nothing of linehub: the store's threads and the
//! daemon's loops use it alike, and time comes from the caller of [`Beat::check`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The heartbeat of one thread or loop.
#[derive(Debug)]
pub struct Beat {
    /// What health calls it ("store writer thread", "applier loop").
    name: &'static str,
    /// How long it may work without beating before it counts as stuck.
    stuck_after: Duration,
    /// Rounds started and waits begun; it moves while the owner makes progress.
    beats: AtomicU64,
    /// Working (true) or waiting for work (false).
    busy: AtomicBool,
    /// Set when the owner's [`Alive`] guard is dropped: it returned, panicked or was aborted.
    ended: AtomicBool,
    /// The beat count the checker last saw and when it first saw it (its clock, ms).
    seen: Mutex<Option<(u64, i64)>>,
}

/// What [`Beat::check`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The thread or loop is gone.
    #[error("{0} has stopped")]
    Dead(&'static str),
    /// It has been working without a beat for this long.
    #[error("{name} is stuck: busy without progress for {} s", .for_ms / 1000)]
    Stuck {
        /// The thread or loop.
        name: &'static str,
        /// How long, in ms.
        for_ms: i64,
    },
}

impl Beat {
    /// A beat for `name`, stuck once busy without a beat for longer than `stuck_after`.
    pub fn new(name: &'static str, stuck_after: Duration) -> Arc<Beat> {
        Arc::new(Beat {
            name,
            stuck_after,
            beats: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            seen: Mutex::new(None),
        })
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The guard its owner holds for as long as it runs; dropping it (return, panic, abort)
    /// marks the beat ended.
    pub fn alive(self: &Arc<Self>) -> Alive {
        Alive(self.clone())
    }

    /// Starts a round of work.
    pub fn busy(&self) {
        self.beats.fetch_add(1, Ordering::SeqCst);
        self.busy.store(true, Ordering::SeqCst);
    }

    /// Waits for work: an idle owner is never stuck.
    pub fn idle(&self) {
        self.beats.fetch_add(1, Ordering::SeqCst);
        self.busy.store(false, Ordering::SeqCst);
    }

    /// Whether the owner has ended.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Checks the owner at `now` (ms on the checker's clock): dead, stuck, or fine. Constant
    /// time. Progress is measured between checks, so a stuck owner is reported from the first
    /// check at least `stuck_after` after the one that last saw it beat.
    pub fn check(&self, now: i64) -> Result<(), Problem> {
        if self.ended() {
            return Err(Problem::Dead(self.name));
        }
        let beats = self.beats.load(Ordering::SeqCst);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        match *seen {
            Some((last, since)) if last == beats => {
                let for_ms = now.saturating_sub(since);
                let limit = i64::try_from(self.stuck_after.as_millis()).unwrap_or(i64::MAX);
                if self.busy.load(Ordering::SeqCst) && for_ms > limit {
                    return Err(Problem::Stuck { name: self.name, for_ms });
                }
            }
            _ => *seen = Some((beats, now)),
        }
        Ok(())
    }
}

/// Held by a running thread or loop; see [`Beat::alive`].
#[derive(Debug)]
pub struct Alive(Arc<Beat>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(60);

    #[test]
    fn an_owner_that_is_gone_is_dead_however_it_ended() {
        let beat = Beat::new("loop", LIMIT);
        let alive = beat.alive();
        assert_eq!(beat.check(0), Ok(()));
        let _ = std::thread::spawn(move || {
            let _alive = alive;
            panic!("the loop panics");
        })
        .join();
        assert_eq!(beat.check(1), Err(Problem::Dead("loop")));
    }

    #[test]
    fn a_busy_owner_without_a_beat_past_its_limit_is_stuck_until_it_beats_again() {
        let beat = Beat::new("loop", LIMIT);
        let _alive = beat.alive();
        beat.busy();
        assert_eq!(beat.check(1_000), Ok(()));
        assert_eq!(beat.check(61_000), Ok(()), "exactly at the limit");
        assert_eq!(beat.check(61_001), Err(Problem::Stuck { name: "loop", for_ms: 60_001 }));
        beat.busy();
        assert_eq!(beat.check(62_000), Ok(()), "a beat is progress");
        assert_eq!(beat.check(100_000), Ok(()));
        assert!(beat.check(122_001).is_err());
    }

    #[test]
    fn an_idle_owner_is_never_stuck() {
        let beat = Beat::new("loop", LIMIT);
        let _alive = beat.alive();
        beat.idle();
        assert_eq!(beat.check(0), Ok(()));
        assert_eq!(beat.check(10 * 3_600_000), Ok(()));
    }
}
