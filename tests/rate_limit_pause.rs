//! A HubSpot 429 pauses the writer for as long as HubSpot's answer says (`Retry-After`, the
//! rolling window's `X-HubSpot-RateLimit-Interval-Milliseconds`, the daily limit): on the
//! manual clock, nothing reaches HubSpot before the pause has passed (counted in the sandbox),
//! not even a write that became due meanwhile, and the writes resume once it has.

mod common;

use std::time::Duration;

use common::World;
use linehub::clock::Clock;
use linehub_sandbox::webhook as line;
use linehub_sandbox::{RateLimit, Service};

const T0: i64 = 1_764_000_000_000; // 2025-11-24T16:00:00Z

/// Answers a contact write with one 429 saying `limit`; then checks that HubSpot hears nothing
/// more until `pause` has passed, and that both the refused write and one queued during the
/// pause land once it has.
async fn a_429_pauses_for(limit: RateLimit, pause: Duration) {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let first = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&first, T0, false)]).await;
    w.sandbox.faults().rate_limit(Service::HubSpot, limit, 1);
    w.sandbox.hubspot().reset_stats();
    let start = w.clock.now_ms();
    let report = w.daemon.settle().await.unwrap();
    assert_eq!(report.rows_done, 0, "{report:?}");
    assert_eq!(w.sandbox.hubspot().stats().requests, 1, "one write, answered 429");

    // A new event during the pause: its write is due at once, but the portal is paused.
    let second = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&second, T0 + 1, false)]).await;
    let pause_ms = pause.as_millis() as i64;
    for at in [0, pause_ms / 10, pause_ms / 2, pause_ms - 1000, pause_ms - 1] {
        w.clock.advance(Duration::from_millis((start + at - w.clock.now_ms()) as u64));
        w.daemon.settle().await.unwrap();
        let stats = w.sandbox.hubspot().stats();
        assert_eq!(stats.requests, 1, "sent {at} ms into a pause of {pause_ms} ms: {:?}", stats.by_endpoint);
    }
    assert!(w.sandbox.hubspot().contacts().is_empty());

    w.clock.advance(Duration::from_millis(1));
    w.daemon.settle().await.unwrap();
    assert_eq!(w.contact("line_user_id_1", &first).properties["line_follow_1"], "Yes");
    assert_eq!(w.contact("line_user_id_1", &second).properties["line_follow_1"], "Yes");
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0);
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn after_a_429_with_retry_after_nothing_is_sent_until_it_has_passed() {
    let limit = RateLimit { retry_after: Some("30".into()), ..RateLimit::default() };
    a_429_pauses_for(limit, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn after_a_429_of_a_longer_rolling_window_nothing_is_sent_until_a_tenth_of_it_has_passed() {
    // No Retry-After: a rolling window frees a tenth of itself per tenth of its length.
    let limit = RateLimit { interval_ms: Some(60_000), ..RateLimit::default() };
    a_429_pauses_for(limit, Duration::from_secs(6)).await;
}

#[tokio::test]
async fn after_a_429_of_the_daily_limit_nothing_is_sent_for_an_hour() {
    let limit = RateLimit { daily: true, ..RateLimit::default() };
    a_429_pauses_for(limit, Duration::from_secs(3600)).await;
}
