//! What a step tells the operator: counts, a few samples per kind, and remarks.
//!
//! A [`StepReport`] is filled while a step runs for one account; the runner keeps the counts in
//! the run's checkpoint (so a resumed run reports what the interrupted one did) and prints the
//! whole report for `linehub pipeline run`. Samples are capped at [`SAMPLES`] per kind so a
//! million-contact run still prints a page.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many per-contact samples a report keeps of each kind (linked, malformed, …).
pub const SAMPLES: usize = 5;

/// What one step did (or, in a dry run, would do) for one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    /// Named counts, e.g. `contacts_queued: 120`.
    pub counts: BTreeMap<String, u64>,
    /// Up to [`SAMPLES`] per-contact lines of each kind: the diff written, or why a contact was
    /// left alone.
    pub samples: Vec<String>,
    /// Samples kept so far, by kind.
    #[serde(skip)]
    sampled: BTreeMap<String, usize>,
    /// Remarks for the operator (warnings, what would happen next).
    pub notes: Vec<String>,
}

impl StepReport {
    /// A report that starts from `counts` (a resumed run's).
    pub fn with_counts(counts: BTreeMap<String, u64>) -> StepReport {
        StepReport { counts, ..StepReport::default() }
    }

    /// Adds `n` to count `name`.
    pub fn count(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.to_string()).or_default() += n;
    }

    /// A count (0 when never counted).
    pub fn get(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// Keeps `line` if there is room for another sample of `kind`.
    pub fn sample(&mut self, kind: &str, line: impl FnOnce() -> String) {
        let n = self.sampled.entry(kind.to_string()).or_default();
        if *n < SAMPLES {
            *n += 1;
            self.samples.push(line());
        }
    }

    /// Adds a remark.
    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }
}

/// `name: old → new, …` for the properties that would change; empty when none would. Samples
/// use it to show what a write changes.
pub fn diff(current: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> String {
    new.iter()
        .filter(|(k, v)| current.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {} → {v}", current.get(k).map_or("(none)", String::as_str)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_keeps_a_few_samples_of_each_kind_and_counts_all() {
        let mut r = StepReport::default();
        for i in 0..SAMPLES + 3 {
            r.count("linked", 1);
            r.sample("linked", || format!("contact {i}"));
        }
        r.sample("malformed", || "bad".into());
        assert_eq!(r.get("linked"), (SAMPLES + 3) as u64);
        assert_eq!(r.samples.len(), SAMPLES + 1);
        assert_eq!(r.get("never"), 0);
    }

    #[test]
    fn a_diff_names_only_the_properties_that_change() {
        let current: BTreeMap<String, String> = [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        let new: BTreeMap<String, String> =
            [("a".into(), "1".into()), ("b".into(), "3".into()), ("c".into(), "4".into())].into();
        assert_eq!(diff(&current, &new), "b: 2 → 3, c: (none) → 4");
        assert_eq!(diff(&current, &current), "");
    }
}
