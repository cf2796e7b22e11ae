//! What each simulated Messaging API endpoint does to a channel's state.
//!
//! The request has already matched LINE's contract and been authenticated. Documented rules the
//! OpenAPI document does not carry are checked here and recorded as violations: text messages
//! hold 1..5000 UTF-16 units, `altText` 1..400, `to` is a user (`U…`), group (`C…`) or room
//! (`R…`) id, multicast goes to users only.
//!
//! Behaviour, as LINE documents it:
//! - push/multicast/broadcast to a blocked or unknown user is accepted (200) but not delivered
//!   and not counted against the quota; delivered recipients count one each. Replies are free.
//! - a quota that would be exceeded answers 429 "You have reached your monthly limit.".
//! - `X-Line-Retry-Key`: once a request with a key was accepted, the same key within 24 h gets
//!   409 "The retry key is already accepted" with `x-line-accepted-request-id` (and for push the
//!   original `sentMessages`). Refused requests do not use up their key.
//! - reply tokens are single-use; the sandbox's tokens (see `webhook::reply_token`) name the user
//!   they belong to. An unknown or used token answers 400 "Invalid reply token".
//! - profiles and follower ids exist only for friends who have not blocked the account; follower
//!   ids need a verified account (else 403).
//!
//! Not simulated (answered 501 and recorded): every other operation of the document (rich menus,
//! groups, audiences, narrowcast, insights, …).

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Call, Channel, LineState, SendKind, SentMessage, error, is_chat_id, is_user_id};
use crate::contract::{Violation, ViolationKind};
use crate::ids;
use crate::reply::Reply;

/// How long LINE remembers an accepted retry key.
const RETRY_KEY_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Runs the operation the request matched.
pub(super) fn dispatch(state: &mut LineState, channel: usize, call: &Call<'_>) -> Result<Reply, Violation> {
    let op = call.matched.operation_id.as_deref().unwrap_or_default();
    match op {
        "getBotInfo" => Ok(bot_info(&state.channels[channel])),
        "getProfile" => Ok(profile(&state.channels[channel], call)),
        "getFollowers" => Ok(followers(&state.channels[channel], call)),
        "getMessageQuota" => Ok(quota(&state.channels[channel])),
        "getMessageQuotaConsumption" => {
            Ok(Reply::json(StatusCode::OK, json!({ "totalUsage": state.channels[channel].quota_used })))
        }
        "pushMessage" => push(state, channel, call),
        "multicast" => multicast(state, channel, call),
        "broadcast" => broadcast(state, channel, call),
        "replyMessage" => reply(state, channel, call),
        "validatePush" | "validateReply" | "validateMulticast" | "validateBroadcast" | "validateNarrowcast" => {
            check_messages(call)?;
            Ok(Reply::json(StatusCode::OK, json!({})))
        }
        _ => Err(Violation::new(
            ViolationKind::NotSimulated,
            call.request.clone(),
            call.matched.operation_id.clone(),
            format!("linehub-sandbox does not simulate {op}"),
        )),
    }
}

fn body<'a>(call: &Call<'a>) -> &'a Value {
    static EMPTY: Value = Value::Null;
    call.matched.body.as_ref().unwrap_or(&EMPTY)
}

fn bot_info(ch: &Channel) -> Reply {
    Reply::json(
        StatusCode::OK,
        json!({
            "userId": ch.spec.bot_user_id,
            "basicId": ch.spec.basic_id,
            "displayName": ch.spec.display_name,
            "chatMode": "bot",
            "markAsReadMode": "auto",
        }),
    )
}

fn profile(ch: &Channel, call: &Call<'_>) -> Reply {
    let user_id = call.matched.path_param("userId").unwrap_or_default();
    match ch.friend(user_id).filter(|f| !f.blocked) {
        Some(f) => {
            let mut body = json!({ "displayName": f.profile.display_name, "userId": f.user_id });
            for (key, value) in [
                ("pictureUrl", &f.profile.picture_url),
                ("statusMessage", &f.profile.status_message),
                ("language", &f.profile.language),
            ] {
                if let Some(v) = value {
                    body[key] = json!(v);
                }
            }
            Reply::json(StatusCode::OK, body)
        }
        None => error(StatusCode::NOT_FOUND, "Not found"),
    }
}

fn followers(ch: &Channel, call: &Call<'_>) -> Reply {
    if !ch.spec.verified {
        return error(StatusCode::FORBIDDEN, "Access to this API is not available for your account");
    }
    let limit = call.matched.query_param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(300);
    let start = match call.matched.query_param("start") {
        None => 0,
        Some(token) => match decode_cursor(token) {
            Some(n) => n,
            None => return error(StatusCode::BAD_REQUEST, "Invalid start"),
        },
    };
    // One past the page tells whether there is a next one, without collecting every follower.
    let mut page: Vec<&str> =
        ch.friends.iter().filter(|f| !f.blocked).skip(start).take(limit + 1).map(|f| f.user_id.as_str()).collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let mut body = json!({ "userIds": page });
    if more {
        body["next"] = json!(encode_cursor(start + limit));
    }
    Reply::json(StatusCode::OK, body)
}

/// Follower cursors are opaque to the caller, as LINE's are.
fn encode_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("followers:{offset}"))
}

fn decode_cursor(token: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("followers:")?.parse().ok()
}

fn quota(ch: &Channel) -> Reply {
    let body = match ch.spec.monthly_quota {
        Some(q) => json!({ "type": "limited", "value": q }),
        None => json!({ "type": "none" }),
    };
    Reply::json(StatusCode::OK, body)
}

/// Length and emptiness rules for message objects that the OpenAPI document leaves out.
fn check_messages(call: &Call<'_>) -> Result<(), Violation> {
    let mut details = Vec::new();
    let messages = body(call)["messages"].as_array().cloned().unwrap_or_default();
    for (i, m) in messages.iter().enumerate() {
        let limited = match m["type"].as_str() {
            Some("text") | Some("textV2") => Some(("text", 5000)),
            Some("template") | Some("flex") | Some("imagemap") => Some(("altText", 400)),
            _ => None,
        };
        if let Some((field, max)) = limited
            && let Some(s) = m[field].as_str()
        {
            let len = s.encode_utf16().count();
            let at = format!("/messages/{i}/{field}");
            if s.trim().is_empty() {
                details.push((at, "May not be empty".to_string()));
            } else if len > max {
                details.push((at, format!("Length must be between 0 and {max}")));
            }
        }
    }
    if details.is_empty() { Ok(()) } else { Err(call.rule("message objects break LINE's documented limits", details)) }
}

/// Answers 409 when the request's retry key was accepted before (forgetting expired keys).
fn replayed(ch: &mut Channel, call: &Call<'_>) -> Option<Reply> {
    let key = call.retry_key.as_ref()?;
    ch.retry_keys.retain(|_, a| call.now.duration_since(a.at) < RETRY_KEY_LIFETIME);
    let accepted = ch.retry_keys.get(key)?;
    let mut body = json!({ "message": "The retry key is already accepted" });
    if let Some(sent) = &accepted.sent_messages {
        body["sentMessages"] = sent.clone();
    }
    Some(Reply::json(StatusCode::CONFLICT, body).with_header("x-line-accepted-request-id", accepted.request_id.clone()))
}

fn over_quota(ch: &Channel, recipients: usize) -> Option<Reply> {
    let quota = ch.spec.monthly_quota?;
    (ch.quota_used + recipients as u64 > quota)
        .then(|| error(StatusCode::TOO_MANY_REQUESTS, "You have reached your monthly limit."))
}

/// Records an accepted send: message ids, the log entry, quota and retry key.
fn accept(
    state: &mut LineState,
    channel: usize,
    call: &Call<'_>,
    kind: SendKind,
    to: Vec<String>,
    reply_token: Option<String>,
) -> Value {
    let b = body(call);
    let messages = b["messages"].as_array().cloned().unwrap_or_default();
    let mut rng = rand::rng();
    let sent: Vec<Value> = messages
        .iter()
        .map(|_| {
            state.next_message_id += 1;
            json!({
                "id": format!("{}", 500_000_000_000_000u64 + state.next_message_id),
                "quoteToken": ids::hex(&mut rng, 32),
            })
        })
        .collect();
    let ch = &mut state.channels[channel];
    let delivered: Vec<String> = to.iter().filter(|u| ch.reachable(u)).cloned().collect();
    if kind != SendKind::Reply {
        ch.quota_used += delivered.len() as u64;
    }
    let sent = Value::Array(sent);
    if let Some(key) = &call.retry_key {
        ch.retry_keys.insert(
            key.clone(),
            super::Accepted {
                request_id: call.request_id.clone(),
                sent_messages: (kind == SendKind::Push).then(|| sent.clone()),
                at: call.now,
            },
        );
    }
    let entry = SentMessage {
        channel: ch.spec.bot_user_id.clone(),
        kind,
        to,
        delivered_to: delivered,
        messages,
        retry_key: call.retry_key.clone(),
        reply_token,
        request_id: call.request_id.clone(),
        notification_disabled: b["notificationDisabled"].as_bool() == Some(true),
    };
    state.sent.push(entry);
    sent
}

fn push(state: &mut LineState, channel: usize, call: &Call<'_>) -> Result<Reply, Violation> {
    let to = body(call)["to"].as_str().unwrap_or_default().to_string();
    if !['U', 'C', 'R'].iter().any(|p| is_chat_id(&to, *p)) {
        return Err(call.rule(
            "The property, 'to', in the request body is invalid",
            vec![("/to".to_string(), format!("{to:?} is not a user, group or room id"))],
        ));
    }
    check_messages(call)?;
    let ch = &mut state.channels[channel];
    if let Some(reply) = replayed(ch, call) {
        return Ok(reply);
    }
    if let Some(reply) = over_quota(ch, usize::from(ch.reachable(&to))) {
        return Ok(reply);
    }
    let sent = accept(state, channel, call, SendKind::Push, vec![to], None);
    Ok(Reply::json(StatusCode::OK, json!({ "sentMessages": sent })))
}

fn multicast(state: &mut LineState, channel: usize, call: &Call<'_>) -> Result<Reply, Violation> {
    let to: Vec<String> = body(call)["to"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let bad: Vec<(String, String)> = to
        .iter()
        .enumerate()
        .filter(|(_, u)| !is_user_id(u))
        .map(|(i, u)| (format!("/to/{i}"), format!("{u:?} is not a user id")))
        .collect();
    if !bad.is_empty() {
        return Err(call.rule("multicast sends to user ids only", bad));
    }
    check_messages(call)?;
    let ch = &mut state.channels[channel];
    if let Some(reply) = replayed(ch, call) {
        return Ok(reply);
    }
    let reachable = to.iter().filter(|u| ch.reachable(u)).count();
    if let Some(reply) = over_quota(ch, reachable) {
        return Ok(reply);
    }
    accept(state, channel, call, SendKind::Multicast, to, None);
    Ok(Reply::json(StatusCode::OK, json!({})))
}

fn broadcast(state: &mut LineState, channel: usize, call: &Call<'_>) -> Result<Reply, Violation> {
    check_messages(call)?;
    let ch = &mut state.channels[channel];
    if let Some(reply) = replayed(ch, call) {
        return Ok(reply);
    }
    let to: Vec<String> = ch.friends.iter().filter(|f| !f.blocked).map(|f| f.user_id.clone()).collect();
    if let Some(reply) = over_quota(ch, to.len()) {
        return Ok(reply);
    }
    accept(state, channel, call, SendKind::Broadcast, to, None);
    Ok(Reply::json(StatusCode::OK, json!({})))
}

fn reply(state: &mut LineState, channel: usize, call: &Call<'_>) -> Result<Reply, Violation> {
    check_messages(call)?;
    let token = body(call)["replyToken"].as_str().unwrap_or_default().to_string();
    let ch = &mut state.channels[channel];
    let Some(user) = super::webhook::reply_token_user(&token) else {
        return Ok(error(StatusCode::BAD_REQUEST, "Invalid reply token"));
    };
    if !ch.used_reply_tokens.insert(token.clone()) {
        return Ok(error(StatusCode::BAD_REQUEST, "Invalid reply token"));
    }
    let sent = accept(state, channel, call, SendKind::Reply, vec![user], Some(token));
    Ok(Reply::json(StatusCode::OK, json!({ "sentMessages": sent })))
}
