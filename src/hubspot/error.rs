//! HubSpot errors, typed by what the caller does next.
//!
//! Transient errors (rate limit, outage, timeout, authentication that may be fixed by an
//! operator) are retried later and never dead-lettered; a conflict carries the existing record's
//! id so the caller updates it instead; a rejection is permanent for that request.

use std::time::Duration;

/// Why a HubSpot call did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HubSpotError {
    /// 429: wait `retry_after`, then try again.
    #[error("HubSpot rate limit reached ({policy}); retrying after {retry_after:?}")]
    RateLimited {
        /// How long to wait.
        retry_after: Duration,
        /// HubSpot's `policyName` (TEN_SECONDLY_ROLLING, DAILY, …).
        policy: String,
    },
    /// 5xx, a timeout or a connection failure.
    #[error("HubSpot is unavailable: {0}")]
    Unavailable(String),
    /// 423 (the portal is locked: wait at least 2 s) or 477 (a migration is in progress): wait
    /// as long as HubSpot says, then try again.
    #[error("HubSpot is busy ({status}): {message}; retrying after {retry_after:?}")]
    Busy {
        /// HTTP status.
        status: u16,
        /// How long to wait: `Retry-After` (a day at most), at least 2 s after a 423; `None`
        /// when HubSpot did not say, so the outage backoff applies.
        retry_after: Option<Duration>,
        /// HubSpot's message.
        message: String,
    },
    /// 401/403: the token is wrong or lacks a scope; retried, so nothing is lost while it is fixed.
    #[error("HubSpot refused the token ({status}): {message}")]
    Unauthorized {
        /// HTTP status.
        status: u16,
        /// HubSpot's message.
        message: String,
    },
    /// 409: the record exists; `existing_id` when HubSpot names it.
    #[error("HubSpot conflict: {message}")]
    Conflict {
        /// The id in "Existing ID: N".
        existing_id: Option<String>,
        /// HubSpot's message.
        message: String,
    },
    /// 404.
    #[error("HubSpot has no such record: {0}")]
    NotFound(String),
    /// Any other 4xx: this request will not succeed as it is.
    #[error("HubSpot rejected the request ({status} {category}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// HubSpot's `category` (VALIDATION_ERROR, …).
        category: String,
        /// HubSpot's message.
        message: String,
    },
}

impl HubSpotError {
    /// Whether trying the same request later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HubSpotError::RateLimited { .. }
                | HubSpotError::Unavailable(_)
                | HubSpotError::Busy { .. }
                | HubSpotError::Unauthorized { .. }
        )
    }

    /// How long HubSpot asked to wait before trying again, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HubSpotError::RateLimited { retry_after, .. } => Some(*retry_after),
            HubSpotError::Busy { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl HubSpotError {
    /// Whether this is HubSpot refusing to complete a workflow-action callback because it is
    /// already completed (`Callback <id> is already completed`): the completion it asked for
    /// has happened. Any other refusal (an expired or unknown callback) is a real failure.
    pub fn is_already_completed(&self) -> bool {
        match self {
            HubSpotError::Rejected { message, .. } | HubSpotError::Conflict { message, .. } => {
                message.to_ascii_lowercase().contains("is already completed")
            }
            _ => false,
        }
    }
}

/// The id in HubSpot's "Contact already exists. Existing ID: 12345".
pub fn existing_id(message: &str) -> Option<String> {
    let (_, tail) = message.split_once("Existing ID:")?;
    let id: String = tail.trim_start().chars().take_while(char::is_ascii_digit).collect();
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_existing_id_is_read_from_conflict_messages() {
        assert_eq!(existing_id("Contact already exists. Existing ID: 37765128953").as_deref(), Some("37765128953"));
        assert_eq!(existing_id("Contact already exists. Existing ID:12"), Some("12".into()));
        assert_eq!(existing_id("Contact already exists."), None);
    }

    #[test]
    fn only_an_already_completed_answer_means_a_callback_is_done() {
        let refused = |message: &str| HubSpotError::Rejected {
            status: 400,
            category: "VALIDATION_ERROR".into(),
            message: message.into(),
        };
        assert!(refused("Callback ap-1 is already completed").is_already_completed());
        assert!(!refused("Callback ap-1 has expired or does not exist").is_already_completed());
        assert!(!HubSpotError::NotFound("Callback ap-1 is already completed".into()).is_already_completed());
    }
}
