//! Every contract violation the sandbox saw, kept so the test that caused one fails loudly.
//!
//! A violated contract is answered the way the real service would (400), which a daemon might
//! retry or dead-letter quietly; the log makes sure a test still notices.

use std::sync::Mutex;

use crate::contract::Violation;
use crate::lock;

/// The list of violations seen since start (or since the last `take`).
#[derive(Debug, Default)]
pub(crate) struct ViolationLog {
    seen: Mutex<Vec<Violation>>,
}

impl ViolationLog {
    /// Records one violation and logs it at error level.
    pub(crate) fn record(&self, v: Violation) {
        tracing::error!("{v}");
        lock(&self.seen).push(v);
    }

    /// A copy of every violation recorded.
    pub(crate) fn all(&self) -> Vec<Violation> {
        lock(&self.seen).clone()
    }

    /// Returns and forgets every violation recorded.
    pub(crate) fn take(&self) -> Vec<Violation> {
        std::mem::take(&mut *lock(&self.seen))
    }
}
