//! The webhook envelope: just enough of each event to key, route and order it.
//!
//! The body is parsed only after its signature is verified. Events are kept as the raw JSON LINE
//! sent (a borrowed slice of the body), with a few header fields pulled out: `webhookEventId` for
//! deduplication, `type`, `timestamp` for ordering and `source.userId` for grouping. Unknown event
//! types and new fields are accepted as they are: LINE adds them without notice.

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// One event of a verified webhook: its raw JSON and the header fields linehub routes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// LINE's `webhookEventId` (a ULID), or a digest of the raw event when LINE sent none.
    pub webhook_event_id: String,
    /// The event `type`, `unknown` when absent.
    pub event_type: String,
    /// `source.userId`, when present.
    pub user_id: Option<String>,
    /// The event `timestamp` in ms.
    pub event_ts: i64,
    /// `deliveryContext.isRedelivery`.
    pub redelivery: bool,
    /// The event's raw JSON, exactly as LINE sent it.
    pub body: String,
}

/// Why a verified body could not be read as a webhook.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not `{"events": [...]}`.
    #[error("the body is not a LINE webhook: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// The fields of an event linehub routes on; everything is optional because LINE omits what
/// has no value.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventHeader {
    #[serde(rename = "type")]
    kind: Option<String>,
    timestamp: Option<i64>,
    webhook_event_id: Option<String>,
    source: Option<Source>,
    delivery_context: Option<DeliveryContext>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryContext {
    is_redelivery: Option<bool>,
}

/// Splits a verified webhook body into its events. An empty `events` array (LINE's "Verify"
/// button) yields no events.
pub fn parse(body: &[u8]) -> Result<Vec<WebhookEvent>, EnvelopeError> {
    let envelope: Envelope<'_> = serde_json::from_slice(body)?;
    envelope
        .events
        .into_iter()
        .map(|raw| {
            let header: EventHeader = serde_json::from_str(raw.get())?;
            let webhook_event_id = header.webhook_event_id.unwrap_or_else(|| digest_id(raw.get()));
            Ok(WebhookEvent {
                webhook_event_id,
                event_type: header.kind.unwrap_or_else(|| "unknown".to_string()),
                user_id: header.source.and_then(|s| s.user_id),
                event_ts: header.timestamp.unwrap_or(0),
                redelivery: header.delivery_context.and_then(|d| d.is_redelivery).unwrap_or(false),
                body: raw.get().to_string(),
            })
        })
        .collect()
}

/// A stable key for an event that came without `webhookEventId`, so a redelivery still dedupes.
fn digest_id(raw: &str) -> String {
    let digest = Sha256::digest(raw.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_their_raw_json_and_header_fields() {
        let body = br#"{"destination":"Uabc","events":[
            {"type":"follow","timestamp":1700000000000,"webhookEventId":"01HZZZZZZZZZZZZZZZZZZZZZZZ",
             "source":{"type":"user","userId":"U1"},"deliveryContext":{"isRedelivery":true},"new":"field"},
            {"type":"somethingNew","timestamp":5}]}"#;
        let events = parse(body).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].webhook_event_id, "01HZZZZZZZZZZZZZZZZZZZZZZZ");
        assert_eq!(events[0].event_type, "follow");
        assert_eq!(events[0].user_id.as_deref(), Some("U1"));
        assert!(events[0].redelivery);
        assert!(events[0].body.contains(r#""new":"field""#));
        assert_eq!(events[1].event_type, "somethingNew");
        assert!(events[1].webhook_event_id.starts_with("sha256:"));
        assert_eq!(events[1].user_id, None);
    }

    #[test]
    fn bodies_that_are_not_webhooks_are_errors() {
        for body in
            [&b"not json"[..], b"[]", br#"{"events":{}}"#, br#"{"events":[1]}"#, br#"{"events":[{"timestamp":"x"}]}"#]
        {
            assert!(parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert!(parse(br#"{"destination":"U","events":[]}"#).unwrap().is_empty());
    }
}
