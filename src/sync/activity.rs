//! From a raw webhook event to an [`Activity`] linehub acts on, or a [`Skip`] with its reason.
//!
//! linehub syncs what one LINE user does with one account: following (new or unblocking),
//! blocking (`unfollow`) and messaging. Everything else is kept in the inbox and skipped with a
//! reason: events without `source.userId` (users who never consented to profile access), group
//! and room events, types the product does not use, and user ids that are not LINE's shape (`U`
//! and 32 lower-case hex digits). Such an id must never reach a URL or a placeholder email: the
//! email lower-cases it, so an id differing only in case would land on someone else's contact.

use serde::Deserialize;
use serde_json::Value;

use super::link::is_line_user_id;

/// What a LINE user did, as linehub understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// The LINE user id (`U` + 32 hex).
    pub user_id: String,
    /// When it happened (LINE's `timestamp`, ms): the order activities are applied in.
    pub ts: i64,
    /// What happened.
    pub kind: ActivityKind,
}

/// The kinds of activity that change a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityKind {
    /// Added the account as a friend; `unblocked` when it had been blocked before.
    Followed {
        /// `follow.isUnblocked`.
        unblocked: bool,
    },
    /// Blocked the account (LINE's `unfollow`).
    Unfollowed,
    /// Sent a message; `summary` is the text, or a readable marker for other content.
    Messaged {
        /// What `LINE Last Response _N` shows.
        summary: String,
    },
}

/// Why an event changes no contact; kept in the inbox next to the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    timestamp: i64,
    source: Option<RawSource>,
    follow: Option<RawFollow>,
    message: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSource {
    #[serde(rename = "type", default)]
    kind: String,
    user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFollow {
    #[serde(default)]
    is_unblocked: bool,
}

/// Classifies one event's raw JSON.
pub fn classify(raw: &str) -> Result<Activity, Skip> {
    let event: RawEvent = serde_json::from_str(raw).map_err(|e| Skip(format!("unreadable event: {e}")))?;
    let kind = match event.kind.as_str() {
        "follow" => ActivityKind::Followed { unblocked: event.follow.is_some_and(|f| f.is_unblocked) },
        "unfollow" => ActivityKind::Unfollowed,
        "message" => ActivityKind::Messaged { summary: summarize(event.message.as_ref()) },
        other => return Err(Skip(format!("event type `{other}` is not synced"))),
    };
    let source = event.source.ok_or_else(|| Skip("the event has no source".into()))?;
    if source.kind != "user" {
        return Err(Skip(format!(
            "{} events are not synced",
            if source.kind.is_empty() { "sourceless" } else { &source.kind }
        )));
    }
    let user_id = source
        .user_id
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Skip("no source.userId: the user has not consented to profile access".into()))?;
    if !is_line_user_id(&user_id) {
        return Err(Skip(format!(
            "source.userId {:?} is not a LINE user id (U and 32 lower-case hex digits)",
            clip(&user_id)
        )));
    }
    Ok(Activity { user_id, ts: event.timestamp, kind })
}

/// At most the first 40 characters of `s`, so a hostile id cannot flood the inbox note.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The text of a text message; for other content a marker with the ids needed to find it again.
fn summarize(message: Option<&Value>) -> String {
    let Some(m) = message else { return "[message]".into() };
    let s = |key: &str| m.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let id = s("id");
    match m.get("type").and_then(Value::as_str).unwrap_or("") {
        "text" => s("text"),
        "sticker" => format!("[sticker packageId={} stickerId={}]", s("packageId"), s("stickerId")),
        "image" | "video" | "audio" => format!("[{} messageId={id}]", s("type")),
        "file" => format!("[file messageId={id} fileName={}]", s("fileName")),
        "location" => {
            let num = |key: &str| m.get(key).and_then(Value::as_f64).map(|v| v.to_string()).unwrap_or_default();
            let place = [s("title"), s("address")].into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join(", ");
            format!("[location {place} ({},{}) messageId={id}]", num("latitude"), num("longitude"))
        }
        other => format!("[{} messageId={id}]", if other.is_empty() { "message" } else { other }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_event(kind: &str, extra: &str) -> String {
        format!(
            r#"{{"type":"{kind}","timestamp":42,"mode":"active","source":{{"type":"user","userId":"{USER}"}}{extra}}}"#
        )
    }

    const USER: &str = "U0123456789abcdef0123456789abcdef";

    #[test]
    fn follows_unblocks_unfollows_and_messages_are_activities() {
        let a = classify(&user_event("follow", r#","follow":{"isUnblocked":false}"#)).unwrap();
        assert_eq!(a, Activity { user_id: USER.into(), ts: 42, kind: ActivityKind::Followed { unblocked: false } });
        let a = classify(&user_event("follow", r#","follow":{"isUnblocked":true}"#)).unwrap();
        assert_eq!(a.kind, ActivityKind::Followed { unblocked: true });
        assert_eq!(classify(&user_event("unfollow", "")).unwrap().kind, ActivityKind::Unfollowed);
        let a = classify(&user_event("message", r#","message":{"id":"1","type":"text","text":"こんにちは"}"#)).unwrap();
        assert_eq!(a.kind, ActivityKind::Messaged { summary: "こんにちは".into() });
    }

    #[test]
    fn non_text_messages_get_a_marker_with_their_ids() {
        let cases = [
            (
                r#"{"id":"7","type":"sticker","packageId":"446","stickerId":"1988"}"#,
                "[sticker packageId=446 stickerId=1988]",
            ),
            (r#"{"id":"8","type":"image","contentProvider":{"type":"line"}}"#, "[image messageId=8]"),
            (r#"{"id":"9","type":"file","fileName":"a.pdf","fileSize":3}"#, "[file messageId=9 fileName=a.pdf]"),
            (
                r#"{"id":"10","type":"location","title":"Tokyo Tower","address":"Minato","latitude":35.65,"longitude":139.74}"#,
                "[location Tokyo Tower, Minato (35.65,139.74) messageId=10]",
            ),
        ];
        for (message, expected) in cases {
            let a = classify(&user_event("message", &format!(r#","message":{message}"#))).unwrap();
            assert_eq!(a.kind, ActivityKind::Messaged { summary: expected.into() });
        }
    }

    #[test]
    fn events_linehub_does_not_sync_are_skipped_with_a_reason() {
        let group = r#"{"type":"message","timestamp":1,"source":{"type":"group","groupId":"C1","userId":"U1"},"message":{"type":"text","id":"1","text":"x"}}"#;
        assert_eq!(classify(group).unwrap_err(), Skip("group events are not synced".into()));
        let no_user = r#"{"type":"follow","timestamp":1,"source":{"type":"user"}}"#;
        assert!(classify(no_user).unwrap_err().0.contains("no source.userId"));
        assert!(classify(&user_event("postback", "")).unwrap_err().0.contains("`postback` is not synced"));
        assert!(classify(r#"{"type":"follow"}"#).unwrap_err().0.contains("no source"));
        assert!(classify("[]").unwrap_err().0.contains("unreadable"));
    }

    #[test]
    fn user_ids_that_are_not_lines_shape_are_skipped_with_a_reason() {
        let upper = USER.to_uppercase();
        for bad in
            [upper.as_str(), "U123", "U0123456789abcdef0123456789abcdef/../x", "u0123456789abcdef0123456789abcdef"]
        {
            let raw = format!(r#"{{"type":"follow","timestamp":1,"source":{{"type":"user","userId":"{bad}"}}}}"#);
            let skip = classify(&raw).unwrap_err();
            assert!(skip.0.contains("is not a LINE user id"), "{bad}: {}", skip.0);
        }
    }
}
