//! Where an interrupted run resumes: the step, the account, the step's own cursor, the counts.
//!
//! The runner stores a [`Checkpoint`] as JSON text in the run's row with every page a step
//! commits, and reads it back when it resumes the run. A checkpoint that cannot be read is never
//! taken to mean "start over": starting over could send a broadcast a second time. The run fails
//! instead, and its error says what happened and what to do ([`CheckpointError`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The run-wide resume point: which step and account, and what the finished ones counted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The step being run (index in the pipeline).
    pub step: usize,
    /// The account being run (index in the pipeline's accounts).
    pub account: usize,
    /// The step's own resume point for that account.
    pub cursor: Option<Value>,
    /// Counts of the steps and accounts already done, and of the current one so far.
    pub outcomes: Vec<SavedOutcome>,
}

/// A finished (or current) step's counts, as kept in a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedOutcome {
    /// Step index.
    pub step: usize,
    /// Account id.
    pub account: String,
    /// The report's counts.
    pub counts: BTreeMap<String, u64>,
}

/// Why a checkpoint could not be read or written. For the operator: the run stops with it.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The stored checkpoint of an interrupted run is not one this linehub can read (edited by
    /// hand, or written by an incompatible version).
    #[error(
        "the checkpoint of the interrupted run cannot be read ({cause}); the run was not resumed, so that no work \
         is done twice. To start the pipeline over instead, change its file: an edited pipeline abandons the \
         interrupted run"
    )]
    Unreadable {
        /// What the JSON reader found.
        cause: serde_json::Error,
    },
    /// A step's resume point does not have the shape the step expects.
    #[error(
        "the resume point of step {} for account `{account}` cannot be read ({cause}); the step was not restarted \
         from the beginning, so that no work is done twice. To start the pipeline over instead, change its file: an \
         edited pipeline abandons the interrupted run",
        .step + 1
    )]
    CorruptCursor {
        /// The step's index in the pipeline.
        step: usize,
        /// The account the step was running for.
        account: String,
        /// What the JSON reader found.
        cause: serde_json::Error,
    },
    /// A checkpoint could not be turned into text; nothing of the page was committed.
    #[error("cannot record the run's checkpoint ({cause}); nothing of the current page was committed")]
    Unwritable {
        /// What the JSON writer found.
        cause: serde_json::Error,
    },
}

impl Checkpoint {
    /// Reads the checkpoint text a run stored.
    pub fn decode(text: &str) -> Result<Checkpoint, CheckpointError> {
        serde_json::from_str(text).map_err(|cause| CheckpointError::Unreadable { cause })
    }

    /// The text to store.
    pub fn encode(&self) -> Result<String, CheckpointError> {
        serde_json::to_string(self).map_err(|cause| CheckpointError::Unwritable { cause })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_what_was_written() {
        let cp = Checkpoint {
            step: 1,
            account: 2,
            cursor: Some(serde_json::json!({"after": "U1"})),
            outcomes: vec![SavedOutcome { step: 0, account: "tokyo".into(), counts: [("queued".into(), 3)].into() }],
        };
        let back = Checkpoint::decode(&cp.encode().unwrap_or_else(|e| panic!("{e}"))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((back.step, back.account, back.cursor), (1, 2, cp.cursor));
        assert_eq!(back.outcomes, cp.outcomes);
    }

    #[test]
    fn an_unreadable_checkpoint_is_an_error_that_says_it_was_not_resumed() {
        let e = Checkpoint::decode("{\"step\": \"two\"").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("cannot be read") && e.contains("not resumed"), "{e}");
    }
}
