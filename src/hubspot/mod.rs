//! HubSpot: the client (auth, rate limit, error shapes), the contact property definitions, and
//! the writer, which is the only code that writes to HubSpot.
//!
//! [`api`] holds every path and the API version in one place. [`client`] sends requests through
//! one shared rate limiter and turns HubSpot's answers into typed errors ([`error`]). [`html`]
//! escapes outside text for note and task bodies, which HubSpot shows as rich text.
//! [`properties`] makes sure the `LINE` property group and each account's properties exist.
//! [`writer`] drains the store's outbox: coalesce per contact, batch, limit, retry, dead letter.
//! [`reads`] pages list memberships and reads contacts for pipeline steps; reads only, since
//! every write goes through the outbox and the writer.

pub mod api;
pub mod client;
pub mod error;
pub mod html;
pub mod properties;
pub mod reads;
pub mod shared_pace;
pub mod signature;
pub mod writer;

pub use client::HubSpotClient;
pub use error::HubSpotError;
