//! Messages out: LINE messages that HubSpot asks linehub to send to one contact.
//!
//! The "Push LINE message" workflow action arrives signed at `POST
//! /hubspot/actions/push-line-message` ([`crate::http`]); [`request`] reads it into a [`Send`]
//! of message drafts, which the store keeps (keyed by the action's callback id, with a retry key
//! chosen before any attempt) before HubSpot gets its answer. The [`sender`] then finds the
//! contact's LINE user id, fills in contact tokens ([`tokens`]), pushes with `X-Line-Retry-Key`
//! (so a retry after a lost answer never sends twice) and leaves two HubSpot writes in the
//! outbox: a note on the contact's timeline and the action's completion.

pub mod request;
pub mod sender;
pub mod tokens;

pub use request::{ActionRequest, Draft, RequestError};
pub use sender::{SendReport, Sender};

/// How long HubSpot is asked to keep a workflow execution waiting for linehub's completion (ISO
/// 8601). Longer than a send can take: see [`SEND_DEADLINE_MS`].
pub const BLOCK_FOR: &str = "P2D";
/// A workflow push not sent this long after HubSpot asked for it fails instead of being tried
/// again: an hour before HubSpot stops waiting ([`BLOCK_FOR`]), so the completion still lands.
/// (Attempts also stop 23 hours after the first, when LINE forgets the retry key.)
pub const SEND_DEADLINE_MS: i64 = 47 * 3600 * 1000;

/// A stored send that is due, with its drafts read back.
pub type DueSend = crate::store::sends::DueSend<Draft>;
