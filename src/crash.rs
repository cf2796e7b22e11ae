//! Crash points: places where the crash suite (`tests/crash_suite.rs`) may make the process die
//! at a chosen moment that a SIGKILL from outside would rarely hit, such as between a durable
//! commit and the reply to its caller, or between HubSpot's answer and the outbox update.
//!
//! `LINEHUB_CRASH_POINTS=name=N[,name=N…]` aborts the process (`std::process::abort`, no
//! unwinding, no shutdown path) the Nth time the named point is reached; the suite picks N from
//! its seed. The variable is read once; unset (always, outside the suite) a point costs one load
//! of an initialised static and an empty check. Not configuration: nothing else reads it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The armed points: each name with the hits left before it aborts.
static ARMED: OnceLock<Vec<(String, AtomicU64)>> = OnceLock::new();

/// Parses `name=N,name=N`; malformed entries are ignored (a test-only variable).
fn parse(spec: &str) -> Vec<(String, AtomicU64)> {
    spec.split(',')
        .filter_map(|entry| {
            let (name, n) = entry.trim().split_once('=')?;
            let n: u64 = n.trim().parse().ok()?;
            Some((name.trim().to_string(), AtomicU64::new(n.max(1))))
        })
        .collect()
}

/// Counts a hit of `name`; returns whether this is the hit that must crash.
fn hit(armed: &[(String, AtomicU64)], name: &str) -> bool {
    armed.iter().filter(|(n, _)| n == name).any(|(_, left)| left.fetch_sub(1, Ordering::SeqCst) == 1)
}

/// Aborts the process if `LINEHUB_CRASH_POINTS` arms `name` and this is its chosen hit.
#[doc(hidden)]
pub fn point(name: &str) {
    let armed = ARMED.get_or_init(|| std::env::var("LINEHUB_CRASH_POINTS").map(|s| parse(&s)).unwrap_or_default());
    if !armed.is_empty() && hit(armed, name) {
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_point_fires_on_its_nth_hit_only_and_unarmed_points_never_fire() {
        let armed = parse("store.after_commit=3, hubspot.after_answer=1,garbage,x=notanumber");
        assert_eq!(armed.len(), 2);
        let fired: Vec<bool> = (0..5).map(|_| hit(&armed, "store.after_commit")).collect();
        assert_eq!(fired, [false, false, true, false, false]);
        assert!(hit(&armed, "hubspot.after_answer"));
        assert!(!hit(&armed, "elsewhere"));
        assert!(!hit(&parse(""), "store.after_commit"));
    }
}
