//! The listener that serves both simulators and the admin API, in-process or standalone.
//!
//! One HTTP listener answers LINE paths (`/v2/...`; LINE Login's `/oauth2/...`, `/v2/profile`,
//! `/friendship/...` and the LIFF SDK `/liff/sdk.js`), HubSpot paths (`/crm/v3/...` and the dated
//! `/crm/{objects,properties,owners,lists}/YYYY-MM/...` forms, mapped onto `/crm/v3`;
//! `/automation/v4/...` and the dated `/automation/actions/callbacks/YYYY-MM/...`, mapped onto
//! `/automation/v4/actions/callbacks`) and the admin API (`/_sandbox/...`). A path none of them
//! serves is a recorded violation. Latency faults and held answers are applied here, once a
//! simulator has acted on the request.
//!
//! [`Sandbox::start`] runs the server as a task of the caller's runtime (tests, `linehub demo`);
//! [`serve`] runs it until a shutdown future completes (`linehub sandbox --listen ADDR`).

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::contract::{RequestParts, Violation, ViolationKind};
use crate::faults::{FaultControl, FaultState, Service};
use crate::hubspot::{HubSpotControl, HubSpotState};
use crate::line::{LineControl, LineState};
use crate::violations::ViolationLog;
use crate::{admin, hubspot, line};

/// Largest request body read; LINE itself refuses bodies over 2 MB with 413.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How the simulators behave; the defaults model a HubSpot Professional portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The private-app token HubSpot requests must carry as `Authorization: Bearer`.
    pub hubspot_token: String,
    /// Requests per rolling 10 s before HubSpot answers 429 (Professional: 190).
    pub hubspot_burst_per_10s: u32,
    /// Requests per day before HubSpot answers 429 `DAILY` (Professional: 625,000).
    pub hubspot_daily_limit: u64,
    /// Search requests per second (HubSpot: 5).
    pub hubspot_search_per_second: u32,
    /// How long a HubSpot write takes to become visible to search (HubSpot: "a few moments").
    pub search_lag: Duration,
}

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig {
            hubspot_token: "sandbox-hubspot-token".to_string(),
            hubspot_burst_per_10s: 190,
            hubspot_daily_limit: 625_000,
            hubspot_search_per_second: 5,
            search_lag: Duration::ZERO,
        }
    }
}

/// Everything one sandbox knows; each part has its own lock, never held across an await.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) line: Mutex<LineState>,
    pub(crate) hubspot: Mutex<HubSpotState>,
    pub(crate) faults: FaultState,
    pub(crate) violations: ViolationLog,
}

impl Shared {
    fn new(cfg: &SandboxConfig) -> Shared {
        Shared {
            line: Mutex::new(LineState::default()),
            hubspot: Mutex::new(HubSpotState::new(cfg)),
            faults: FaultState::default(),
            violations: ViolationLog::default(),
        }
    }
}

/// A date version segment of HubSpot's dated paths (`2026-03`).
fn is_dated(version: &str) -> bool {
    version.len() == 7
        && version.as_bytes()[4] == b'-'
        && version.bytes().enumerate().all(|(i, b)| i == 4 || b.is_ascii_digit())
}

/// Which simulator serves a path, and the path it knows it by (dated HubSpot paths become v3/v4).
fn route(path: &str) -> Option<(Service, String)> {
    if path.starts_with("/v2/") || line::login::serves(path) {
        return Some((Service::Line, path.to_string()));
    }
    if let Some(rest) = path.strip_prefix("/automation/") {
        if rest.starts_with("v4/") {
            return Some((Service::HubSpot, path.to_string()));
        }
        let (version, tail) = rest.strip_prefix("actions/callbacks/")?.split_once('/')?;
        return is_dated(version).then(|| (Service::HubSpot, format!("/automation/v4/actions/callbacks/{tail}")));
    }
    let rest = path.strip_prefix("/crm/")?;
    if rest.starts_with("v3/") {
        return Some((Service::HubSpot, path.to_string()));
    }
    let mut parts = rest.splitn(3, '/');
    let (group, version) = (parts.next()?, parts.next()?);
    let tail = parts.next();
    if !is_dated(version) || !matches!(group, "objects" | "properties" | "owners" | "lists") {
        return None;
    }
    let mapped = match tail {
        Some(t) => format!("/crm/v3/{group}/{t}"),
        None => format!("/crm/v3/{group}"),
    };
    Some((Service::HubSpot, mapped))
}

/// Serves every non-admin request: reads the body, hands over to a simulator, then applies latency.
async fn api(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    if path.starts_with("/_sandbox/") {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": "no such admin route"}))).into_response();
    }
    // A browser on the login pages asks for an icon by itself: not an API call to check.
    if path == "/favicon.ico" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some((service, path)) = route(&path) else {
        shared.violations.record(Violation::new(
            ViolationKind::NoSuchPath,
            format!("{} {}", parts.method, path),
            None,
            "neither the LINE nor the HubSpot simulator serves this path",
        ));
        return (StatusCode::NOT_FOUND, axum::Json(json!({"message": "Not found"}))).into_response();
    };
    let bytes = match axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let req = RequestParts {
        method: parts.method.as_str(),
        path: &path,
        query: parts.uri.query(),
        headers: &parts.headers,
        body: &bytes,
    };
    let response = match service {
        Service::Line if line::login::serves(&path) => line::login::handle(&shared, &req),
        Service::Line => line::handle(&shared, &req),
        Service::HubSpot => hubspot::handle(&shared, &req),
    }
    .into_response();
    // The request has taken effect; only its answer is late. A client that gives up waiting
    // must cope with work done that it did not hear about, as with the real services.
    if let Some(hold) = shared.faults.hold(service) {
        hold.pass().await;
    }
    if let Some(delay) = shared.faults.latency(service) {
        tokio::time::sleep(delay).await;
    }
    response
}

fn router(shared: Arc<Shared>) -> Router {
    admin::routes().fallback(api).with_state(shared)
}

/// Runs the sandbox on `listener` until `shutdown` completes (standalone mode).
pub async fn serve(
    listener: TcpListener,
    cfg: SandboxConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let shared = Arc::new(Shared::new(&cfg));
    axum::serve(listener, router(shared)).with_graceful_shutdown(shutdown).await
}

/// A running sandbox: its address, its state, and the way to stop it.
#[derive(Debug)]
pub struct Sandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl Sandbox {
    /// Starts serving on `listener` in a task of the current runtime.
    pub async fn start(listener: TcpListener, cfg: SandboxConfig) -> io::Result<Sandbox> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&cfg));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Sandbox { shared, addr, stop: Some(stop), task: Some(task) })
    }

    /// `http://127.0.0.1:PORT`: the base URL of both LINE and HubSpot (and `/_sandbox/`).
    pub fn base_url(&self) -> String {
        let ip = if self.addr.ip().is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { self.addr.ip() };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The address the sandbox listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The LINE simulator's control handle.
    pub fn line(&self) -> LineControl {
        LineControl { shared: self.shared.clone() }
    }

    /// The HubSpot simulator's control handle.
    pub fn hubspot(&self) -> HubSpotControl {
        HubSpotControl { shared: self.shared.clone() }
    }

    /// The fault switches of both simulators.
    pub fn faults(&self) -> FaultControl {
        FaultControl { shared: self.shared.clone() }
    }

    /// Every contract violation seen so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.shared.violations.all()
    }

    /// Returns and forgets the violations seen so far (for tests that provoke one on purpose).
    pub fn take_violations(&self) -> Vec<Violation> {
        self.shared.violations.take()
    }

    /// Panics, listing every violation, if any request broke a contract.
    #[track_caller]
    pub fn assert_no_violations(&self) {
        let all = self.violations();
        if !all.is_empty() {
            let listed: Vec<String> = all.iter().map(ToString::to_string).collect();
            panic!("the sandbox saw {} contract violation(s):\n{}", all.len(), listed.join("\n"));
        }
    }

    /// Stops accepting requests and waits (at most 5 s) for open ones to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_hubspot_paths_map_onto_v3() {
        let hs = route;
        assert_eq!(
            hs("/crm/objects/2026-03/contacts/batch/upsert"),
            Some((Service::HubSpot, "/crm/v3/objects/contacts/batch/upsert".into()))
        );
        assert_eq!(hs("/crm/owners/2026-03"), Some((Service::HubSpot, "/crm/v3/owners".into())));
        assert_eq!(
            hs("/crm/properties/2026-09/contacts/groups"),
            Some((Service::HubSpot, "/crm/v3/properties/contacts/groups".into()))
        );
        assert_eq!(hs("/crm/v3/owners"), Some((Service::HubSpot, "/crm/v3/owners".into())));
        assert_eq!(hs("/v2/bot/info"), Some((Service::Line, "/v2/bot/info".into())));
        assert_eq!(hs("/crm/objects/latest/contacts"), None);
        assert_eq!(
            hs("/automation/actions/callbacks/2026-03/ap-1-2-3/complete"),
            Some((Service::HubSpot, "/automation/v4/actions/callbacks/ap-1-2-3/complete".into()))
        );
        assert_eq!(
            hs("/automation/actions/callbacks/2026-03/complete"),
            Some((Service::HubSpot, "/automation/v4/actions/callbacks/complete".into()))
        );
        assert_eq!(
            hs("/automation/v4/actions/callbacks/complete"),
            Some((Service::HubSpot, "/automation/v4/actions/callbacks/complete".into()))
        );
        assert_eq!(hs("/automation/actions/callbacks/v4/complete"), None);
        assert_eq!(hs("/automation/actions/2026-03/callbacks/complete"), None);
        assert_eq!(hs("/oauth/v1/token"), None);
        assert_eq!(hs("/oauth2/v2.1/token"), Some((Service::Line, "/oauth2/v2.1/token".into())));
        assert_eq!(hs("/friendship/v1/status"), Some((Service::Line, "/friendship/v1/status".into())));
    }
}
