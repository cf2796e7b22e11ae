//! The one harness the end-to-end tests drive linehub with: the real binary as a child process
//! ([`binary`]), config files ([`config`]), LINE webhooks ([`webhooks`]), HubSpot workflow-action
//! requests ([`actions`]), an in-process daemon beside a sandbox ([`world`]), and LINE Login
//! through a browser-like client ([`login`]) or headless Chromium ([`browser`]). Requests are
//! signed with the sandbox's signers, never with the code under test.
#![allow(dead_code, unused_imports)]

pub mod actions;
pub mod binary;
pub mod browser;
pub mod config;
pub mod login;
pub mod webhooks;
pub mod world;

pub use actions::*;
pub use binary::*;
pub use browser::*;
pub use config::*;
pub use login::*;
pub use webhooks::*;
pub use world::*;
