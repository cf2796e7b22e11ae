//! Errors of the in-process control API (and the admin HTTP API built on it).
//!
//! These are mistakes in a test's setup (an unknown channel, a malformed user id), not answers of
//! a simulated service; those are HTTP responses with the service's own error bodies.

/// A control call that could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No registered LINE channel has this access token or bot user id (or, for LINE Login,
    /// this channel id).
    #[error("no LINE channel with access token, bot user id or channel id {0:?}")]
    UnknownChannel(String),
    /// A channel with this access token or bot user id (or Login channel id, or LIFF id) is
    /// already registered.
    #[error("a LINE channel with access token, bot user id, channel id or LIFF id {0:?} already exists")]
    DuplicateChannel(String),
    /// The user is not (and never was) a friend of the channel.
    #[error("{user_id} is not a friend of channel {channel}")]
    UnknownFriend {
        /// The channel's bot user id.
        channel: String,
        /// The user asked about.
        user_id: String,
    },
    /// A LINE user id must be `U` followed by 32 lower-case hex digits.
    #[error("{0:?} is not a LINE user id (U + 32 lower-case hex digits)")]
    InvalidUserId(String),
    /// No HubSpot record with this id.
    #[error("no HubSpot {object} with id {id}")]
    UnknownRecord {
        /// The object type (`contact`).
        object: &'static str,
        /// The id asked about.
        id: String,
    },
    /// A LINE Login channel spec that LINE would not accept (channel id, LIFF id, callback URL).
    #[error("invalid LINE Login channel: {0}")]
    InvalidSpec(String),
    /// HubSpot refused the values (unknown property, bad option, duplicate email).
    #[error("HubSpot refused the values: {0}")]
    Refused(String),
}
