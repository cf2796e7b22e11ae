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

/// A stored send that is due, with its drafts read back.
pub type DueSend = crate::store::sends::DueSend<Draft>;
