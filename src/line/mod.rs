//! LINE: the webhook surface (signature, event envelope), the Messaging API client, and LINE
//! Login.

pub mod client;
pub mod limits;
pub mod login;
pub mod signature;
pub mod webhook;
