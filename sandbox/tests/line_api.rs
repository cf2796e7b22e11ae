//! The LINE Messaging API simulator, driven over HTTP as the daemon drives it.

mod common;

use common::{LINE_TOKEN, start, status_json};
use linehub_sandbox::{ChannelSpec, Profile, SendKind, ViolationKind, webhook};
use reqwest::Method;
use serde_json::{Value, json};

const RETRY_KEY: &str = "123e4567-e89b-12d3-a456-426614174000";

fn text(to: &str, n: usize) -> Value {
    let messages: Vec<Value> = (0..n).map(|i| json!({"type": "text", "text": format!("hello {i}")})).collect();
    json!({"to": to, "messages": messages})
}

#[tokio::test]
async fn a_friend_has_a_profile_and_a_stranger_or_blocker_gets_404() {
    let h = start().await;
    let friend = webhook::random_user_id();
    let mut profile = Profile::named("Ann");
    profile.language = Some("ja".into());
    h.sandbox.line().add_friend(LINE_TOKEN, &friend, profile).expect("friend");

    let resp = h.line_get(&format!("/v2/bot/profile/{friend}")).await;
    assert!(resp.headers().contains_key("x-line-request-id"));
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"displayName": "Ann", "userId": friend, "language": "ja"}));
    linehub_sandbox::specs::line_messaging()
        .validate_schema("#/components/schemas/UserProfileResponse", &body)
        .expect("the sandbox answers on-contract");

    let stranger = webhook::random_user_id();
    let (status, body) = status_json(h.line_get(&format!("/v2/bot/profile/{stranger}")).await).await;
    assert_eq!((status, body), (404, json!({"message": "Not found"})));

    h.sandbox.line().block(LINE_TOKEN, &friend).expect("block");
    let (status, _) = status_json(h.line_get(&format!("/v2/bot/profile/{friend}")).await).await;
    assert_eq!(status, 404);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_lines_401() {
    let h = start().await;
    let resp = h.call(Method::GET, "/v2/bot/info", "not-a-token", None, &[]).await;
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["message"],
        "Authentication failed. Confirm that the access token in the authorization header is valid."
    );
    let (status, body) = status_json(h.line_get("/v2/bot/info").await).await;
    assert_eq!(status, 200);
    assert_eq!(body["userId"], json!(h.bot));
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_push_is_logged_delivered_to_friends_and_counted_against_the_quota() {
    let h = start().await;
    let friend = webhook::random_user_id();
    h.sandbox.line().add_friend(&h.bot, &friend, Profile::named("Ann")).expect("friend");
    let (status, body) = status_json(h.line_post("/v2/bot/message/push", &text(&friend, 2), &[]).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["sentMessages"].as_array().map(Vec::len), Some(2));

    // A stranger's push is accepted but reaches nobody and costs nothing.
    let stranger = webhook::random_user_id();
    let (status, _) = status_json(h.line_post("/v2/bot/message/push", &text(&stranger, 1), &[]).await).await;
    assert_eq!(status, 200);

    let sent = h.sandbox.line().sent_messages();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].kind, SendKind::Push);
    assert_eq!(sent[0].delivered_to, vec![friend.clone()]);
    assert_eq!(sent[0].messages[1]["text"], "hello 1");
    assert!(sent[1].delivered_to.is_empty());
    assert_eq!(h.sandbox.line().quota_used(LINE_TOKEN), Ok(1));
    let (_, usage) = status_json(h.line_get("/v2/bot/message/quota/consumption").await).await;
    assert_eq!(usage, json!({"totalUsage": 1}));
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_second_push_with_the_same_retry_key_gets_409_with_the_original_request() {
    let h = start().await;
    let friend = webhook::random_user_id();
    h.sandbox.line().add_friend(LINE_TOKEN, &friend, Profile::named("Ann")).expect("friend");
    let key = [("X-Line-Retry-Key", RETRY_KEY)];
    let first = h.line_post("/v2/bot/message/push", &text(&friend, 1), &key).await;
    let first_id = first.headers()["x-line-request-id"].to_str().expect("ascii").to_string();
    let (status, first_body) = status_json(first).await;
    assert_eq!(status, 200);

    let again = h.line_post("/v2/bot/message/push", &text(&friend, 1), &key).await;
    assert_eq!(again.headers()["x-line-accepted-request-id"], first_id.as_str());
    let (status, body) = status_json(again).await;
    assert_eq!(status, 409);
    assert_eq!(body["message"], "The retry key is already accepted");
    assert_eq!(body["sentMessages"], first_body["sentMessages"]);
    assert_eq!(h.sandbox.line().sent_messages().len(), 1, "the retry sent nothing");
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn an_off_contract_push_of_six_messages_is_refused_and_recorded() {
    let h = start().await;
    let (status, body) =
        status_json(h.line_post("/v2/bot/message/push", &text(&webhook::random_user_id(), 6), &[]).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "The request body has 1 error(s)");
    assert_eq!(body["details"][0]["property"], "messages");
    let v = h.sandbox.take_violations();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].operation.as_deref(), Some("pushMessage"));
    assert!(v[0].to_string().contains("maxItems is 5"), "{}", v[0]);
    assert!(h.sandbox.line().sent_messages().is_empty());
}

#[tokio::test]
async fn a_retry_key_on_reply_or_a_malformed_key_on_push_is_a_recorded_400() {
    let h = start().await;
    let user = webhook::random_user_id();
    let reply = json!({"replyToken": webhook::reply_token(&user), "messages": [{"type": "text", "text": "hi"}]});
    let (status, _) =
        status_json(h.line_post("/v2/bot/message/reply", &reply, &[("X-Line-Retry-Key", RETRY_KEY)]).await).await;
    assert_eq!(status, 400);
    let (status, _) =
        status_json(h.line_post("/v2/bot/message/push", &text(&user, 1), &[("X-Line-Retry-Key", "attempt-1")]).await)
            .await;
    assert_eq!(status, 400);
    let v = h.sandbox.take_violations();
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].details.iter().any(|(at, _)| at.eq_ignore_ascii_case("header:x-line-retry-key")));
}

#[tokio::test]
async fn documented_limits_beyond_the_spec_are_enforced_text_length_and_recipients() {
    let h = start().await;
    let long = "あ".repeat(5001);
    let body = json!({"to": webhook::random_user_id(), "messages": [{"type": "text", "text": long}]});
    let (status, resp) = status_json(h.line_post("/v2/bot/message/push", &body, &[]).await).await;
    assert_eq!(status, 400);
    assert_eq!(resp["details"][0]["property"], "messages[0].text");
    let body = json!({"to": "someone@example.com", "messages": [{"type": "text", "text": "x"}]});
    let (status, _) = status_json(h.line_post("/v2/bot/message/push", &body, &[]).await).await;
    assert_eq!(status, 400);
    assert_eq!(h.sandbox.take_violations().len(), 2);
}

#[tokio::test]
async fn reply_tokens_work_once_and_reach_their_user() {
    let h = start().await;
    let user = webhook::random_user_id();
    h.sandbox.line().add_friend(LINE_TOKEN, &user, Profile::named("Ann")).expect("friend");
    let event = webhook::text_message(&user, 1_700_000_000_000, "hi");
    let token = event["replyToken"].as_str().expect("token").to_string();
    let reply = json!({"replyToken": token, "messages": [{"type": "text", "text": "hello"}]});
    let (status, _) = status_json(h.line_post("/v2/bot/message/reply", &reply, &[]).await).await;
    assert_eq!(status, 200);
    let (status, body) = status_json(h.line_post("/v2/bot/message/reply", &reply, &[]).await).await;
    assert_eq!((status, body), (400, json!({"message": "Invalid reply token"})));
    let sent = h.sandbox.line().sent_messages();
    assert_eq!(sent[0].kind, SendKind::Reply);
    assert_eq!(sent[0].delivered_to, vec![user]);
    assert_eq!(h.sandbox.line().quota_used(LINE_TOKEN), Ok(0), "replies are free");
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn follower_ids_page_with_next_and_skip_blockers() {
    let h = start().await;
    let users: Vec<String> = (0..5).map(|_| webhook::random_user_id()).collect();
    for u in &users {
        h.sandbox.line().add_friend(LINE_TOKEN, u, Profile::named("x")).expect("friend");
    }
    h.sandbox.line().block(LINE_TOKEN, &users[1]).expect("block");
    let (status, page1) = status_json(h.line_get("/v2/bot/followers/ids?limit=2").await).await;
    assert_eq!(status, 200);
    assert_eq!(page1["userIds"], json!([users[0], users[2]]));
    let next = page1["next"].as_str().expect("more pages");
    let (_, page2) = status_json(h.line_get(&format!("/v2/bot/followers/ids?limit=2&start={next}")).await).await;
    assert_eq!(page2["userIds"], json!([users[3], users[4]]));
    assert!(page2.get("next").is_none());
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn an_unverified_account_cannot_list_followers() {
    let h = start().await;
    let mut spec = ChannelSpec::new("unverified-token", "s");
    spec.verified = false;
    h.sandbox.line().add_channel(spec).expect("channel");
    let resp = h.call(Method::GET, "/v2/bot/followers/ids", "unverified-token", None, &[]).await;
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 403);
    assert_eq!(body["message"], "Access to this API is not available for your account");
}

#[tokio::test]
async fn a_spent_monthly_quota_answers_429() {
    let h = start().await;
    let mut spec = ChannelSpec::new("small-token", "s");
    spec.monthly_quota = Some(2);
    h.sandbox.line().add_channel(spec).expect("channel");
    let users: Vec<String> = (0..3).map(|_| webhook::random_user_id()).collect();
    for u in &users {
        h.sandbox.line().add_friend("small-token", u, Profile::named("x")).expect("friend");
    }
    let multicast = |to: &[String]| json!({"to": to, "messages": [{"type": "text", "text": "sale"}]});
    let resp =
        h.call(Method::POST, "/v2/bot/message/multicast", "small-token", Some(&multicast(&users[..2])), &[]).await;
    assert_eq!(status_json(resp).await, (200, json!({})));
    let resp = h.call(Method::POST, "/v2/bot/message/push", "small-token", Some(&text(&users[2], 1)), &[]).await;
    assert_eq!(status_json(resp).await, (429, json!({"message": "You have reached your monthly limit."})));
    let resp = h.call(Method::GET, "/v2/bot/message/quota", "small-token", None, &[]).await;
    assert_eq!(status_json(resp).await.1, json!({"type": "limited", "value": 2}));
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn an_operation_the_sandbox_does_not_simulate_is_loud() {
    let h = start().await;
    let (status, _) = status_json(h.line_get("/v2/bot/richmenu/list").await).await;
    assert_eq!(status, 501);
    let v = h.sandbox.take_violations();
    assert_eq!(v[0].kind, ViolationKind::NotSimulated);
    let (status, _) = status_json(h.line_get("/v2/bot/nothing/here").await).await;
    assert_eq!(status, 404);
    assert_eq!(h.sandbox.take_violations()[0].kind, ViolationKind::NoSuchPath);
}
