//! Faults: outages, slowness, rate-limit storms and held answers, and recovery from each.

mod common;

use std::time::Duration;

use common::{LINE_TOKEN, start, status_json};
use linehub_sandbox::{Outage, Profile, RateLimit, Service, webhook};
use serde_json::json;

#[tokio::test]
async fn a_hubspot_outage_answers_503_for_n_requests_then_recovers() {
    let h = start().await;
    h.sandbox.faults().outage(Service::HubSpot, Outage::Requests(2));
    for _ in 0..2 {
        let (status, body) = status_json(h.hs_get("/crm/v3/owners").await).await;
        assert_eq!(status, 503);
        assert_eq!(body["status"], "error");
    }
    assert_eq!(status_json(h.hs_get("/crm/v3/owners").await).await.0, 200);
    // LINE was never affected.
    assert_eq!(status_json(h.line_get("/v2/bot/info").await).await.0, 200);
}

#[tokio::test]
async fn a_line_outage_for_a_duration_answers_500_until_it_ends() {
    let h = start().await;
    h.sandbox.faults().outage(Service::Line, Outage::For(Duration::from_millis(200)));
    let (status, _) = status_json(h.line_get("/v2/bot/info").await).await;
    assert_eq!(status, 500);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(status_json(h.line_get("/v2/bot/info").await).await.0, 200);
}

#[tokio::test]
async fn an_outage_still_catches_off_contract_requests() {
    let h = start().await;
    h.sandbox.faults().outage(Service::Line, Outage::Requests(5));
    let six: Vec<_> = (0..6).map(|_| json!({"type": "text", "text": "x"})).collect();
    let body = json!({"to": webhook::random_user_id(), "messages": six});
    assert_eq!(status_json(h.line_post("/v2/bot/message/push", &body, &[]).await).await.0, 400);
    assert_eq!(h.sandbox.take_violations().len(), 1);
}

#[tokio::test]
async fn a_storm_answers_429_with_the_real_headers_then_clears() {
    let h = start().await;
    h.sandbox.faults().rate_limit_storm(Service::HubSpot, 1);
    let resp = h.hs_get("/crm/v3/owners").await;
    assert_eq!(resp.headers()["x-hubspot-ratelimit-remaining"], "0");
    assert_eq!(resp.headers()["x-hubspot-ratelimit-max"], "190");
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(status_json(h.hs_get("/crm/v3/owners").await).await.0, 200);

    h.sandbox.faults().rate_limit_storm(Service::Line, 3);
    h.sandbox.faults().clear(Service::Line);
    assert_eq!(status_json(h.line_get("/v2/bot/info").await).await.0, 200);
}

#[tokio::test]
async fn a_chosen_429_says_what_the_test_asked_for() {
    let h = start().await;
    let daily = RateLimit { daily: true, retry_after: Some("45".into()), interval_ms: None };
    h.sandbox.faults().rate_limit(Service::HubSpot, daily, 1);
    let resp = h.hs_get("/crm/v3/owners").await;
    assert_eq!(resp.headers()["x-hubspot-ratelimit-daily-remaining"], "0");
    assert_eq!(resp.headers()["retry-after"], "45");
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "DAILY");

    let window = RateLimit { interval_ms: Some(60_000), ..RateLimit::default() };
    h.sandbox.faults().rate_limit(Service::HubSpot, window, 1);
    let resp = h.hs_get("/crm/v3/owners").await;
    assert_eq!(resp.headers()["x-hubspot-ratelimit-interval-milliseconds"], "60000");
    assert!(resp.headers().get("retry-after").is_none());
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 429);
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(status_json(h.hs_get("/crm/v3/owners").await).await.0, 200);
}

#[tokio::test]
async fn latency_delays_every_response_of_one_service() {
    let h = start().await;
    h.sandbox.faults().latency(Service::Line, Duration::from_millis(150));
    let started = std::time::Instant::now();
    assert_eq!(status_json(h.line_get("/v2/bot/info").await).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = std::time::Instant::now();
    assert_eq!(status_json(h.hs_get("/crm/v3/owners").await).await.0, 200);
    assert!(started.elapsed() < Duration::from_millis(150), "HubSpot is not slowed");
}

#[tokio::test]
async fn held_answers_wait_until_released_after_their_requests_took_effect() {
    let h = start().await;
    let user = webhook::random_user_id();
    h.sandbox.line().add_friend(LINE_TOKEN, &user, Profile::named("Ann")).expect("friend");
    let hold = h.sandbox.faults().hold_answers(Service::Line);
    let body = json!({"to": [user.clone()], "messages": [{"type": "text", "text": "hi"}]});
    let first = h.line_post("/v2/bot/message/multicast", &body, &[]);
    tokio::pin!(first);
    tokio::select! {
        _ = &mut first => panic!("the answer went out before the release"),
        () = hold.arrived(1) => {}
    }
    // The request has taken effect; its answer is held; HubSpot is not affected.
    assert_eq!(h.sandbox.line().sent_messages().len(), 1);
    assert_eq!(status_json(h.hs_get("/crm/v3/owners").await).await.0, 200);
    assert!(tokio::time::timeout(Duration::from_millis(50), &mut first).await.is_err(), "the answer is held");
    let second = h.line_get("/v2/bot/info");
    tokio::pin!(second);
    tokio::select! {
        _ = &mut second => panic!("a second answer of the service went out before the release"),
        () = hold.arrived(2) => {}
    }
    assert!(tokio::time::timeout(Duration::from_millis(50), &mut second).await.is_err(), "held too");
    hold.release();
    assert_eq!(status_json(first.await).await.0, 200);
    assert_eq!(status_json(second.await).await.0, 200);
    // Released: later answers go out at once.
    assert_eq!(status_json(h.line_get("/v2/bot/info").await).await.0, 200);
    assert_eq!(hold.count(), 3);

    // Clearing the service's faults lets held answers go too.
    let hold = h.sandbox.faults().hold_answers(Service::Line);
    let clear = async {
        hold.arrived(1).await;
        h.sandbox.faults().clear(Service::Line);
    };
    let (info, ()) = tokio::join!(h.line_get("/v2/bot/info"), clear);
    assert_eq!(status_json(info).await.0, 200);
}

#[tokio::test]
async fn faults_are_set_over_the_admin_api_too() {
    let h = start().await;
    let friend = webhook::random_user_id();
    h.sandbox.line().add_friend(LINE_TOKEN, &friend, Profile::named("A")).expect("friend");
    let set = |body: serde_json::Value| {
        let h = &h;
        async move { h.http.post(h.url("/_sandbox/faults")).json(&body).send().await.expect("admin").status().as_u16() }
    };
    assert_eq!(set(json!({"fault": "outage", "service": "line", "requests": 1})).await, 204);
    assert_eq!(status_json(h.line_get(&format!("/v2/bot/profile/{friend}")).await).await.0, 500);
    assert_eq!(status_json(h.line_get(&format!("/v2/bot/profile/{friend}")).await).await.0, 200);
    assert_eq!(set(json!({"fault": "rate_limit_storm", "service": "line", "requests": 1})).await, 204);
    let (status, body) = status_json(h.line_get("/v2/bot/info").await).await;
    assert_eq!(status, 429);
    assert_eq!(body["message"], "The API rate limit has been exceeded. Try again later.");
    assert_eq!(set(json!({"fault": "outage", "service": "hubspot"})).await, 400);
    assert_eq!(set(json!({"fault": "outage", "service": "hubspot", "forMs": 60000})).await, 204);
    assert_eq!(status_json(h.hs_get("/crm/v3/owners").await).await.0, 503);
    assert_eq!(set(json!({"fault": "clear"})).await, 204);
    assert_eq!(status_json(h.hs_get("/crm/v3/owners").await).await.0, 200);
}

#[tokio::test]
async fn a_lost_response_still_carries_out_the_request_and_its_retry_key_then_answers_409() {
    let h = start().await;
    let user = webhook::random_user_id();
    h.sandbox.line().add_friend(LINE_TOKEN, &user, Profile::named("Ann")).expect("friend");
    h.sandbox.faults().lose_responses(Service::Line, 1);
    let body = json!({"to": [user.clone()], "messages": [{"type": "text", "text": "hi"}]});
    let key = [("x-line-retry-key", "123e4567-e89b-42d3-a456-426614174000")];
    let (status, _) = status_json(h.line_post("/v2/bot/message/multicast", &body, &key).await).await;
    assert_eq!(status, 500, "the caller is told it failed");
    assert_eq!(h.sandbox.line().sent_messages().len(), 1, "but LINE sent it");
    assert_eq!(h.sandbox.line().quota_used(LINE_TOKEN).unwrap(), 1);
    let (status, body) = status_json(h.line_post("/v2/bot/message/multicast", &body, &key).await).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(h.sandbox.line().sent_messages().len(), 1, "a retry with the key sends nothing");
}

#[tokio::test]
async fn an_account_can_lose_its_verification_and_change_its_quota() {
    let h = start().await;
    h.sandbox.line().set_verified(LINE_TOKEN, false).unwrap();
    assert_eq!(status_json(h.line_get("/v2/bot/followers/ids").await).await.0, 403);
    h.sandbox.line().set_monthly_quota(LINE_TOKEN, Some(10)).unwrap();
    h.sandbox.line().use_quota(LINE_TOKEN, 4).unwrap();
    let (_, quota) = status_json(h.line_get("/v2/bot/message/quota").await).await;
    assert_eq!(quota, json!({"type": "limited", "value": 10}));
    let (_, used) = status_json(h.line_get("/v2/bot/message/quota/consumption").await).await;
    assert_eq!(used["totalUsage"], 4);
}

#[tokio::test]
async fn hubspot_refusals_answer_423_and_477_with_the_retry_after_the_test_set() {
    let h = start().await;
    h.sandbox.faults().refuse(Service::HubSpot, 423, Some("7"), 1);
    let resp = h.hs_get("/crm/v3/owners").await;
    assert_eq!(resp.headers()["retry-after"], "7");
    let (status, body) = status_json(resp).await;
    assert_eq!((status, body["category"].as_str()), (423, Some("LOCKED")));
    h.sandbox.faults().refuse(Service::HubSpot, 477, None, 2);
    for _ in 0..2 {
        let resp = h.hs_get("/crm/v3/owners").await;
        assert!(resp.headers().get("retry-after").is_none());
        assert_eq!(status_json(resp).await.0, 477);
    }
    assert_eq!(status_json(h.hs_get("/crm/v3/owners").await).await.0, 200);
}
