//! LINE: the webhook surface (signature, event envelope) and, later, the Messaging API client
//! and LINE Login.

pub mod client;
pub mod limits;
pub mod signature;
pub mod webhook;
