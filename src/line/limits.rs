//! LINE's own limits, written once.
//!
//! These are LINE's rules, not linehub's choices: the Messaging API refuses requests beyond them
//! (see LINE's Messaging API reference for push, multicast, followers and the retry key). Every
//! check and every batch size that depends on one of them reads it from here, so a change by
//! LINE is a change to this file alone, as HubSpot's paths are to [`crate::hubspot::api`].

/// Most message objects one push or multicast request may carry.
pub const MAX_MESSAGES: usize = 5;

/// Longest text message, in UTF-16 code units (as LINE counts characters).
pub const MAX_TEXT_UNITS: usize = 5000;

/// Most recipients of one multicast request.
pub const MULTICAST_RECIPIENTS: usize = 500;

/// Most user ids one `GET /v2/bot/followers/ids` page returns.
pub const FOLLOWERS_PAGE: u32 = 1000;

/// LINE remembers an `X-Line-Retry-Key` for 24 hours. Attempts stop an hour before that, to stay
/// clear of it: past this age an unknown outcome is never retried, so nothing is sent twice.
pub const RETRY_KEY_SAFE_MS: i64 = 23 * 3_600_000;

/// Profile reads (`GET /v2/bot/profile/{userId}`) in flight at once for one caller, well under
/// LINE's per-endpoint rate limit.
pub const PROFILE_CONCURRENCY: usize = 16;

/// The length of `text` as LINE counts it (UTF-16 code units).
pub fn text_units(text: &str) -> usize {
    text.encode_utf16().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_measured_in_utf16_units_as_line_counts_it() {
        assert_eq!(text_units("abc"), 3);
        assert_eq!(text_units("セール"), 3);
        // An emoji outside the BMP takes two units.
        assert_eq!(text_units("😀"), 2);
    }
}
