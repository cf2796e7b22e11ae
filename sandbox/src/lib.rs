//! linehub's sandbox: honest simulators of the LINE Messaging API and the HubSpot CRM API.
//!
//! The real services are not reachable from tests, so the sandbox plays them on one local HTTP
//! listener, and plays them strictly: every request is checked against the services' contracts
//! (LINE's own OpenAPI documents; for LINE Login and HubSpot, linehub's contracts written from
//! their public documentation) and a request off-contract is answered the way the service would (400) *and*
//! recorded, so [`Sandbox::assert_no_violations`] fails the test that sent it. State is kept the
//! way the services keep it: unique emails and 409s, 207 partial batches, rate limits with the
//! real headers, 404 profiles for non-friends, retry keys, quotas. [`FaultControl`] makes either
//! service fail on demand.
//!
//! Layout:
//! - [`contract`]: the OpenAPI 3.0 request checker; [`specs`]: the bundled contracts.
//! - [`line`](mod@line): the Messaging API simulator and [`webhook`], LINE's side of webhooks;
//!   [`line_login`]: LINE Login v2.1 and LIFF (authorization page, tokens, ID tokens, friendship).
//! - [`hubspot`]: the CRM simulator (contacts and their merges, search, properties, owners, lists,
//!   tasks, notes)
//!   and workflow-action callbacks; [`hubspot_signing`]: the signatures HubSpot puts on the
//!   requests it sends to an app (v3 and v2), for tests that play HubSpot calling linehub.
//! - [`faults`], `server` (the listener, [`Sandbox`], [`serve`]), `admin` (`/_sandbox/` routes).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use linehub_sandbox::{ChannelSpec, Profile, Sandbox, SandboxConfig, webhook};
//! let sandbox = Sandbox::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?,
//!                              SandboxConfig::default()).await?;
//! let bot = sandbox.line().add_channel(ChannelSpec::new("token", "secret")).expect("channel");
//! let user = webhook::random_user_id();
//! sandbox.line().add_friend("token", &user, Profile::named("Ann")).expect("friend");
//! let body = webhook::body(&bot, vec![webhook::follow(&user, 1_700_000_000_000, false)]);
//! let signature = webhook::sign("secret", &body);
//! // POST body to the daemon with x-line-signature: signature; point it at sandbox.base_url().
//! # let _ = signature;
//! sandbox.assert_no_violations();
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
mod admin;
pub mod contract;
mod error;
pub mod faults;
pub mod hubspot;
mod ids;
pub mod line;
mod reply;
mod server;
pub mod specs;
mod time;
mod violations;

pub use contract::{Contract, ContractError, Violation, ViolationKind};
pub use error::ControlError;
pub use faults::{FaultControl, Hold, Outage, RateLimit, Service};
pub use hubspot::actions as hubspot_actions;
pub use hubspot::signing as hubspot_signing;
pub use hubspot::{
    Activity, CallbackCompletion, CompletionRequest, Contact, ContactMerge, HubSpotControl, HubSpotStats, Owner,
    OwnerSpec, RecordedRequest,
};
pub use line::login as line_login;
pub use line::login::{LoginChannelSpec, LoginConsent, LoginRecord, LoginVia};
pub use line::webhook;
pub use line::{ChannelSpec, Friend, LineControl, Profile, SendKind, SentMessage};
pub use server::{Sandbox, SandboxConfig, serve};

/// Locks a mutex, recovering the data if a panicking test thread poisoned it: the sandbox's
/// state is still the best account of what happened.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The token of an `Authorization: Bearer …` header, which both simulated services require.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim)
}
