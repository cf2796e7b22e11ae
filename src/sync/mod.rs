//! The domain: what a LINE event means for a HubSpot contact. Pure code: no HTTP, no SQL.
//!
//! [`activity`] turns a stored webhook event into something linehub acts on, or a reason to skip
//! it. [`rules`] takes that activity and what linehub already knows about the friend, and returns
//! the new knowledge and the contact properties to write. [`properties`] names the per-account
//! properties (`line_user_id_N`, …) and defines them for HubSpot. [`link`] holds the rules of
//! linking a LINE user to a contact (the id's shape, profile and follow properties), shared by
//! the applier and the pipeline steps; [`broadcast`] what a broadcast leaves on a contact.
//! [`owner_task`] decides when a contact owner gets a "Reply on LINE" task; [`send_note`] is how
//! a timeline note names its send. Everything here is decided from its inputs alone, so it is
//! tested with plain `#[test]`s.

pub mod activity;
pub mod broadcast;
pub mod link;
pub mod login;
pub mod owner_task;
pub mod properties;
pub mod rules;
pub mod send_note;

pub use activity::{Activity, ActivityKind, Skip, classify};
pub use link::LineProfile;
pub use rules::{Decision, FriendState, decide};
