//! Failures on demand, for reliability tests: outages, slowness and rate-limit storms.
//!
//! Each simulated service ([`Service::Line`], [`Service::HubSpot`]) has its own faults. They apply
//! to that service's API requests only (never to `/_sandbox/` admin calls), after the contract
//! check and before authentication, so an off-contract request is still caught during an outage.
//! Time is `tokio::time::Instant`, so a paused test clock drives outage windows too.
//!
//! - outage: LINE answers 500, HubSpot 503, for the next N requests or until an instant.
//! - latency: every response of the service is delayed by a duration.
//! - rate-limit storm: the next N requests get 429 with the service's real body and headers;
//!   [`FaultControl::rate_limit`] chooses what the 429 says (HubSpot's daily limit, a
//!   `Retry-After`, another window length), so a test can check the caller waits as told.
//! - refusals: the next N requests get a given status (HubSpot's 423 or 477, a 429) with a given
//!   `Retry-After`, e.g. one no honest service would send.
//! - lost responses: the next N requests are carried out, then answered as an outage, as when a
//!   connection breaks after the service acted (the caller cannot tell whether it did).
//! - held answers: requests are carried out, then their answers wait until the test releases
//!   them ([`Hold`]), so a test can act at a known moment: while a caller is mid-request.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::lock;

/// One of the simulated services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// The LINE Messaging API (`/v2/bot/...`).
    Line,
    /// The HubSpot API (`/crm/...`, `/automation/...`).
    #[serde(rename = "hubspot")]
    HubSpot,
}

/// How long an outage lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The next N requests fail.
    Requests(u32),
    /// Requests fail until this instant.
    Until(Instant),
    /// Requests fail for this long from now.
    For(Duration),
}

/// What a fault does to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Injected {
    /// Answer 500 (LINE) / 503 (HubSpot).
    Outage,
    /// Answer 429, saying what [`RateLimit`] says.
    RateLimited(RateLimit),
    /// Answer `status` with this `Retry-After` header (none when `None`).
    Refused {
        /// The HTTP status.
        status: u16,
        /// The raw `Retry-After` value.
        retry_after: Option<String>,
    },
}

/// What a 429 of [`FaultControl::rate_limit`] says. The default is the service's usual 429
/// (HubSpot: the rolling 10-second window, no `Retry-After`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// HubSpot: the account's daily limit is spent (`policyName: DAILY`,
    /// `X-HubSpot-RateLimit-Daily-Remaining: 0`) rather than the rolling window.
    pub daily: bool,
    /// The raw `Retry-After` header value, when the answer carries one.
    pub retry_after: Option<String>,
    /// HubSpot: `X-HubSpot-RateLimit-Interval-Milliseconds`, the window's length, instead of
    /// 10000.
    pub interval_ms: Option<u64>,
}

/// A gate set by [`FaultControl::hold_answers`]: answers of its service wait at it until
/// [`Hold::release`]. Cheap to clone; clones are the same gate.
#[derive(Debug, Clone)]
pub struct Hold {
    inner: std::sync::Arc<HoldState>,
}

#[derive(Debug)]
struct HoldState {
    /// How many answers have reached the gate so far (held, or passed after release).
    arrived: tokio::sync::watch::Sender<usize>,
    /// Whether the gate is open.
    open: tokio::sync::watch::Sender<bool>,
}

impl Hold {
    fn new() -> Hold {
        let inner =
            HoldState { arrived: tokio::sync::watch::Sender::new(0), open: tokio::sync::watch::Sender::new(false) };
        Hold { inner: std::sync::Arc::new(inner) }
    }

    /// Waits until `n` answers in all have reached the gate: their requests have taken effect.
    pub async fn arrived(&self, n: usize) {
        // The sender lives in `self`, so the channel never closes while this waits.
        let _ = self.inner.arrived.subscribe().wait_for(|seen| *seen >= n).await;
    }

    /// How many answers have reached the gate so far.
    pub fn count(&self) -> usize {
        *self.inner.arrived.borrow()
    }

    /// Opens the gate: held answers go out, later ones are not held.
    pub fn release(&self) {
        self.inner.open.send_replace(true);
    }

    /// Holds one answer until the gate opens (at once if it is open).
    pub(crate) async fn pass(&self) {
        let mut open = self.inner.open.subscribe();
        self.inner.arrived.send_modify(|seen| *seen += 1);
        let _ = open.wait_for(|open| *open).await;
    }
}

#[derive(Debug, Default, Clone)]
struct ServiceFaults {
    outage_requests: u32,
    outage_until: Option<Instant>,
    latency: Option<Duration>,
    storm_requests: u32,
    /// What the storm's 429s say.
    storm: RateLimit,
    /// Requests still to be refused with `refusal`.
    refused_requests: u32,
    /// The status and `Retry-After` of [`FaultControl::refuse`].
    refusal: Option<(u16, Option<String>)>,
    lost_responses: u32,
    /// Only requests of this operation (`multicast`, `batchCreateContacts`, …) lose answers.
    lost_operation: Option<String>,
    /// Answers wait here until released.
    hold: Option<Hold>,
}

/// The faults currently set, per service.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    line: Mutex<ServiceFaults>,
    hubspot: Mutex<ServiceFaults>,
}

impl FaultState {
    fn of(&self, service: Service) -> &Mutex<ServiceFaults> {
        match service {
            Service::Line => &self.line,
            Service::HubSpot => &self.hubspot,
        }
    }

    /// The delay to add to every response of `service`, if any.
    pub(crate) fn latency(&self, service: Service) -> Option<Duration> {
        lock(self.of(service)).latency
    }

    /// The gate answers of `service` wait at, if one is set.
    pub(crate) fn hold(&self, service: Service) -> Option<Hold> {
        lock(self.of(service)).hold.clone()
    }

    /// Decides whether this request of `service` fails, consuming one counted failure if so.
    pub(crate) fn take(&self, service: Service) -> Option<Injected> {
        let mut f = lock(self.of(service));
        if f.outage_requests > 0 {
            f.outage_requests -= 1;
            return Some(Injected::Outage);
        }
        if let Some(until) = f.outage_until {
            if Instant::now() < until {
                return Some(Injected::Outage);
            }
            f.outage_until = None;
        }
        if f.refused_requests > 0
            && let Some((status, retry_after)) = f.refusal.clone()
        {
            f.refused_requests -= 1;
            return Some(Injected::Refused { status, retry_after });
        }
        if f.storm_requests > 0 {
            f.storm_requests -= 1;
            return Some(Injected::RateLimited(f.storm.clone()));
        }
        None
    }

    /// Decides whether the answer to a request of `operation` that `service` has carried out is
    /// lost, consuming one counted loss if so.
    pub(crate) fn take_lost(&self, service: Service, operation: Option<&str>) -> bool {
        let mut f = lock(self.of(service));
        let applies = f.lost_operation.as_deref().is_none_or(|only| Some(only) == operation);
        let lost = applies && f.lost_responses > 0;
        if lost {
            f.lost_responses -= 1;
        }
        lost
    }
}

/// Sets and clears faults; cheap to clone, shares the sandbox's state.
#[derive(Debug, Clone)]
pub struct FaultControl {
    pub(crate) shared: std::sync::Arc<crate::server::Shared>,
}

impl FaultControl {
    fn with(&self, service: Service, f: impl FnOnce(&mut ServiceFaults)) {
        f(&mut lock(self.shared.faults.of(service)));
    }

    /// Makes `service` fail (LINE 500, HubSpot 503) as `outage` says.
    pub fn outage(&self, service: Service, outage: Outage) {
        self.with(service, |f| match outage {
            Outage::Requests(n) => f.outage_requests = n,
            Outage::Until(t) => f.outage_until = Some(t),
            Outage::For(d) => f.outage_until = Some(Instant::now() + d),
        });
    }

    /// Delays every response of `service` by `delay` (zero removes the delay).
    pub fn latency(&self, service: Service, delay: Duration) {
        self.with(service, |f| {
            f.latency = (!delay.is_zero()).then_some(delay);
        });
    }

    /// Answers the next `requests` requests of `service` with 429 and the real headers and body.
    pub fn rate_limit_storm(&self, service: Service, requests: u32) {
        self.rate_limit(service, RateLimit::default(), requests);
    }

    /// Answers the next `requests` requests of `service` with a 429 that says what `limit`
    /// says (HubSpot's daily limit, a `Retry-After`, another window length); nothing is carried
    /// out.
    pub fn rate_limit(&self, service: Service, limit: RateLimit, requests: u32) {
        self.with(service, |f| {
            f.storm_requests = requests;
            f.storm = limit;
        });
    }

    /// Answers the next `requests` requests of `service` with `status` (HubSpot: 423 locked, 477
    /// migration in progress, 429 …, with the service's error body) and, when given, the raw
    /// `Retry-After` header value `retry_after`; nothing is carried out.
    pub fn refuse(&self, service: Service, status: u16, retry_after: Option<&str>, requests: u32) {
        self.with(service, |f| {
            f.refused_requests = requests;
            f.refusal = Some((status, retry_after.map(str::to_string)));
        });
    }

    /// Carries out the next `requests` requests of `service` but answers them as an outage
    /// (LINE 500, HubSpot 503): the service acted, the caller is told it failed.
    pub fn lose_responses(&self, service: Service, requests: u32) {
        self.with(service, |f| {
            f.lost_responses = requests;
            f.lost_operation = None;
        });
    }

    /// Like [`FaultControl::lose_responses`], for requests of one operation only (its
    /// `operationId`, e.g. `multicast`).
    pub fn lose_responses_of(&self, service: Service, operation: &str, requests: u32) {
        self.with(service, |f| {
            f.lost_responses = requests;
            f.lost_operation = Some(operation.to_string());
        });
    }

    /// Carries out every request of `service` but holds its answer until the returned [`Hold`]
    /// is released (or the fault cleared): a test can act while a caller is known to be waiting
    /// on the service, instead of guessing with a sleep. Replaces an earlier hold, releasing it.
    pub fn hold_answers(&self, service: Service) -> Hold {
        let hold = Hold::new();
        let earlier = lock(self.shared.faults.of(service)).hold.replace(hold.clone());
        if let Some(earlier) = earlier {
            earlier.release();
        }
        hold
    }

    /// Removes every fault of `service`; answers it holds go out.
    pub fn clear(&self, service: Service) {
        let earlier = std::mem::take(&mut *lock(self.shared.faults.of(service)));
        if let Some(hold) = earlier.hold {
            hold.release();
        }
    }

    /// Removes every fault of every service.
    pub fn clear_all(&self) {
        self.clear(Service::Line);
        self.clear(Service::HubSpot);
    }
}
