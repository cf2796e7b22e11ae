//! The daemon and `linehub pipeline run` share one HubSpot budget: two clients on one store, each
//! pacing itself to the portal's limit, together stay under it.

use std::time::Duration;

use linehub::config::Secret;
use linehub::hubspot::{HubSpotClient, api};
use linehub_sandbox::{Sandbox, SandboxConfig};
use reqwest::Method;
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_store_stay_under_the_portals_limit_together() {
    let per_10s = 20;
    let config = SandboxConfig { hubspot_burst_per_10s: per_10s, ..SandboxConfig::default() };
    let token = config.hubspot_token.clone();
    let sandbox = Sandbox::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("linehub.db");
    // Two clients as two processes have them: separate in-process limiters, one store.
    let clients: Vec<HubSpotClient> = (0..2)
        .map(|_| {
            HubSpotClient::new(&sandbox.base_url(), Secret::new(&token), per_10s, Duration::from_secs(5))
                .unwrap()
                .shared_with_store(&db)
        })
        .collect();
    let path = format!("{}/line", api::CONTACT_PROPERTY_GROUPS);
    let runs: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let path = path.clone();
            tokio::spawn(async move {
                for _ in 0..per_10s {
                    let _ = client.send(Method::GET, &path, &[], None).await;
                }
            })
        })
        .collect();
    for run in runs {
        run.await.unwrap();
    }
    let stats = sandbox.hubspot().stats();
    assert_eq!(stats.requests, 2 * u64::from(per_10s));
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
    assert!(stats.peak_in_window <= per_10s, "{stats:?}");
}
