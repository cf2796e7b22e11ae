//! LINE's side of webhooks: the event JSON, the body and the signature LINE would send.
//!
//! Tests play LINE by building events here and POSTing [`body`] with an `x-line-signature` of
//! [`sign`] to the daemon. Every body is checked against LINE's `webhook.yml` (`CallbackRequest`
//! and the event schemas under it), so the sandbox never feeds the daemon something LINE would
//! not send; a builder producing an off-contract body is a defect and [`body`] panics.
//!
//! Events carry what LINE documents: `mode: "active"`, a 26-character ULID `webhookEventId`,
//! `deliveryContext.isRedelivery`, a millisecond `timestamp`, `source {type: "user", userId}`,
//! and a `replyToken` on the event types that have one. Reply tokens made here name their user,
//! so the Messaging API simulator knows whom a reply reaches; they are 48 hex digits.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::contract::Violation;
use crate::ids;

/// `x-line-signature` for a body: base64(HMAC-SHA256(channel secret, raw body bytes)).
pub fn sign(channel_secret: &str, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(channel_secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// A LINE user id (`U` + 32 lower-case hex digits) drawn from `rng`; seed the rng for
/// repeatable ids.
pub fn user_id(rng: &mut impl Rng) -> String {
    ids::line_user_id(rng)
}

/// A fresh random LINE user id.
pub fn random_user_id() -> String {
    ids::line_user_id(&mut rand::rng())
}

/// A reply token for an event of `user_id`, usable once with `POST /v2/bot/message/reply`.
pub fn reply_token(user_id: &str) -> String {
    let user_hex = user_id.strip_prefix('U').unwrap_or(user_id);
    format!("{user_hex}{}", ids::hex(&mut rand::rng(), 16))
}

/// The user a sandbox reply token belongs to, if `token` is one.
pub(crate) fn reply_token_user(token: &str) -> Option<String> {
    let user = format!("U{}", token.get(..32)?);
    (token.len() == 48
        && token.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && super::is_user_id(&user))
    .then_some(user)
}

/// The fields every event shares.
fn event(kind: &str, user_id: &str, ts_ms: i64) -> Value {
    json!({
        "type": kind,
        "mode": "active",
        "timestamp": ts_ms,
        "source": { "type": "user", "userId": user_id },
        "webhookEventId": ids::ulid(ts_ms, &mut rand::rng()),
        "deliveryContext": { "isRedelivery": false },
    })
}

fn message_id() -> String {
    let n: u64 = rand::rng().random_range(100_000_000_000_000..999_999_999_999_999);
    n.to_string()
}

/// The user added the account as a friend (`unblocked: false`) or unblocked it (`true`).
pub fn follow(user_id: &str, ts_ms: i64, unblocked: bool) -> Value {
    let mut e = event("follow", user_id, ts_ms);
    e["replyToken"] = json!(reply_token(user_id));
    e["follow"] = json!({ "isUnblocked": unblocked });
    e
}

/// The user blocked the account. No reply token.
pub fn unfollow(user_id: &str, ts_ms: i64) -> Value {
    event("unfollow", user_id, ts_ms)
}

/// The user sent a text message.
pub fn text_message(user_id: &str, ts_ms: i64, text: &str) -> Value {
    let mut e = event("message", user_id, ts_ms);
    e["replyToken"] = json!(reply_token(user_id));
    e["message"] = json!({
        "id": message_id(),
        "type": "text",
        "text": text,
        "quoteToken": ids::hex(&mut rand::rng(), 32),
    });
    e
}

/// The user sent a sticker.
pub fn sticker_message(user_id: &str, ts_ms: i64, package_id: &str, sticker_id: &str) -> Value {
    let mut e = event("message", user_id, ts_ms);
    e["replyToken"] = json!(reply_token(user_id));
    e["message"] = json!({
        "id": message_id(),
        "type": "sticker",
        "packageId": package_id,
        "stickerId": sticker_id,
        "stickerResourceType": "STATIC",
        "quoteToken": ids::hex(&mut rand::rng(), 32),
    });
    e
}

/// The same event as LINE redelivers it: identical but `deliveryContext.isRedelivery: true`.
pub fn redelivered(mut event: Value) -> Value {
    event["deliveryContext"] = json!({ "isRedelivery": true });
    event
}

/// The event as a channel in standby mode receives it: `mode: "standby"` and no reply token.
pub fn in_standby(mut event: Value) -> Value {
    event["mode"] = json!("standby");
    if let Some(map) = event.as_object_mut() {
        map.remove("replyToken");
    }
    event
}

/// The webhook body `{"destination", "events"}`, checked against `webhook.yml`.
pub fn try_body(destination: &str, events: Vec<Value>) -> Result<Vec<u8>, Violation> {
    let value = json!({ "destination": destination, "events": events });
    crate::specs::line_webhook().validate_schema("#/components/schemas/CallbackRequest", &value)?;
    Ok(serde_json::to_vec(&value).expect("JSON values always serialise"))
}

/// The webhook body `{"destination", "events"}`; panics if it breaks `webhook.yml`, which means
/// the events handed in (or this builder) are not what LINE sends.
pub fn body(destination: &str, events: Vec<Value>) -> Vec<u8> {
    try_body(destination, events).unwrap_or_else(|v| panic!("webhook body is off-contract: {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_an_independent_hmac_sha256() {
        // Computed with Python's hmac module; the trailing newline and the UTF-8 bytes matter.
        assert_eq!(
            sign("testsecret", b"{\"destination\":\"U0\",\"events\":[]}\n"),
            "C+kB4f/+5WWTT49UXGxX2I1uP/+b9jAzRmpNHyr6r9c="
        );
        assert_eq!(
            sign("testsecret", "{\"text\":\"こんにちは😀\"}".as_bytes()),
            "nN4Zza8tRjyTdJ4ZFp097ojt2o3PBWyv4v8nXnhxgNE="
        );
    }

    #[test]
    fn every_builder_produces_an_on_contract_body() {
        let user = random_user_id();
        let bot = random_user_id();
        let events = vec![
            follow(&user, 1_700_000_000_000, false),
            follow(&user, 1_700_000_000_001, true),
            unfollow(&user, 1_700_000_000_002),
            text_message(&user, 1_700_000_000_003, "こんにちは 😀"),
            sticker_message(&user, 1_700_000_000_004, "446", "1988"),
            redelivered(text_message(&user, 1_700_000_000_005, "again")),
            in_standby(text_message(&user, 1_700_000_000_006, "quiet")),
        ];
        let raw = body(&bot, events);
        let parsed: Value = serde_json::from_slice(&raw).expect("json");
        assert_eq!(parsed["destination"], json!(bot));
        assert_eq!(parsed["events"][0]["webhookEventId"].as_str().map(str::len), Some(26));
        assert_eq!(parsed["events"][5]["deliveryContext"]["isRedelivery"], json!(true));
        assert!(parsed["events"][6].get("replyToken").is_none());
    }

    #[test]
    fn an_event_missing_a_required_field_is_refused() {
        let user = random_user_id();
        let mut e = follow(&user, 1, false);
        e.as_object_mut().map(|m| m.remove("replyToken"));
        let v = try_body(&random_user_id(), vec![e]).unwrap_err();
        assert!(v.details.iter().any(|(at, _)| at == "/events/0/replyToken"), "{v}");
        assert!(try_body("not-a-bot", vec![]).is_err());
    }

    #[test]
    fn reply_tokens_name_their_user() {
        let user = random_user_id();
        let token = reply_token(&user);
        assert_eq!(reply_token_user(&token), Some(user));
        assert_eq!(reply_token_user("nHuyWiB7yP5Zw52FIkcQobQuGDXCTA"), None);
    }
}
