//! Reading a "Push LINE message" workflow action request.
//!
//! HubSpot posts `{callbackId, origin, context, object: {objectId, objectType, properties},
//! inputFields: {...}}`. The action's input fields (see `hubspot-app/`) are `account` (a linehub
//! account id), `message_1` … `message_5` (plain text with contact tokens, or one LINE message
//! object as JSON) and `notification_disabled`. A request HubSpot could not have meant (not JSON,
//! no callback id or contact) is [`RequestError::Malformed`] and answered 400; a well-formed
//! request whose inputs cannot be sent (unknown account, no message, a broken message object) is
//! [`RequestError::Invalid`]: the action fails at once with the reason in its `error` output,
//! where the workflow's history shows it, and nothing is stored.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::tokens;
use crate::config::Config;
use crate::line::limits::{MAX_MESSAGES, MAX_TEXT_UNITS, text_units};
use crate::store::sends::NewSend;
use crate::sync::link::is_line_user_id;

/// One message as the workflow gave it, before contact tokens are filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Draft {
    /// Plain text.
    Text(String),
    /// A LINE message object.
    Message(Value),
}

impl Draft {
    /// Adds the contact properties its tokens use to `into`.
    pub fn token_names(&self, into: &mut BTreeSet<String>) {
        match self {
            Draft::Text(t) => tokens::names(t, into),
            Draft::Message(m) => tokens::names_in(m, into),
        }
    }

    /// The LINE message object, tokens filled in from `properties`.
    pub fn render(&self, properties: &std::collections::BTreeMap<String, String>) -> Value {
        match self {
            Draft::Text(t) => json!({ "type": "text", "text": tokens::render(t, properties) }),
            Draft::Message(m) => tokens::render_in(m, properties),
        }
    }

    /// A one-line summary for logs and the timeline note.
    pub fn summary(rendered: &Value) -> String {
        match rendered["type"].as_str() {
            Some("text") => rendered["text"].as_str().unwrap_or_default().to_string(),
            Some(kind) => format!("[{kind}]"),
            None => "[message]".to_string(),
        }
    }
}

/// A checked action request: what to send, to whom, through which account.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRequest {
    /// HubSpot's id for this action execution; it keys the send, so a redelivery is stored once.
    pub callback_id: String,
    /// The enrolled contact's record id.
    pub contact_id: String,
    /// The linehub account to send from.
    pub account_id: String,
    /// 1 to 5 messages.
    pub drafts: Vec<Draft>,
    /// Deliver without a notification sound.
    pub notification_disabled: bool,
    /// The LINE user id from the optional `line_user_id` input (a contact property the workflow
    /// picked); without it the contact's `LINE User ID _N` is used.
    pub recipient: Option<String>,
}

impl From<ActionRequest> for NewSend<Draft> {
    fn from(r: ActionRequest) -> Self {
        NewSend {
            callback_id: r.callback_id,
            account_id: r.account_id,
            contact_id: r.contact_id,
            drafts: r.drafts,
            notification_disabled: r.notification_disabled,
            recipient: r.recipient,
        }
    }
}

/// Why a request is not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not a workflow action request at all: answered 400.
    #[error("not a workflow action request: {0}")]
    Malformed(String),
    /// An action request that cannot be carried out: the action fails with this reason.
    #[error("{message}")]
    Invalid {
        /// The execution to fail.
        callback_id: String,
        /// Why, for the workflow's history.
        message: String,
    },
}

impl ActionRequest {
    /// Reads and checks `body` against the accounts of `config`.
    pub fn parse(body: &[u8], config: &Config) -> Result<ActionRequest, RequestError> {
        let raw: Value =
            serde_json::from_slice(body).map_err(|e| RequestError::Malformed(format!("body is not JSON: {e}")))?;
        let callback_id = match &raw["callbackId"] {
            Value::String(s) if !s.trim().is_empty() && s.len() <= 200 => s.clone(),
            _ => return Err(RequestError::Malformed("`callbackId` is missing".into())),
        };
        let contact_id = match &raw["object"]["objectId"] {
            Value::Number(n) if n.is_u64() => n.to_string(),
            Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.clone(),
            _ => return Err(RequestError::Malformed("`object.objectId` is missing or not a record id".into())),
        };
        let invalid = |message: String| RequestError::Invalid { callback_id: callback_id.clone(), message };
        if let Some(kind) = raw["object"]["objectType"].as_str()
            && !kind.eq_ignore_ascii_case("CONTACT")
        {
            return Err(invalid(format!("the action runs on contacts, not on {kind}")));
        }
        let inputs = &raw["inputFields"];
        let account_id = input_text(&inputs["account"]).unwrap_or_default().trim().to_string();
        if account_id.is_empty() {
            return Err(invalid("the `account` input is empty; give a linehub account id".into()));
        }
        match config.account(&account_id) {
            Some(a) if a.active => {}
            Some(_) => return Err(invalid(format!("account `{account_id}` is inactive in linehub's config"))),
            None => {
                let known: Vec<&str> = config.active_accounts().map(|a| a.id.as_str()).collect();
                return Err(invalid(format!(
                    "no account `{account_id}` in linehub's config; active accounts: {}",
                    known.join(", ")
                )));
            }
        }
        let mut drafts = Vec::new();
        for i in 1..=MAX_MESSAGES {
            let field = format!("message_{i}");
            let Some(text) = input_text(&inputs[field.as_str()]).filter(|t| !t.trim().is_empty()) else { continue };
            drafts.push(draft(&field, text).map_err(invalid)?);
        }
        if drafts.is_empty() {
            return Err(invalid("no message to send: `message_1` is empty".into()));
        }
        let notification_disabled = match &inputs["notification_disabled"] {
            Value::Bool(b) => *b,
            v => input_text(v).is_some_and(|t| t.trim().eq_ignore_ascii_case("true")),
        };
        // The optional property-picker input: a value that is there must be a LINE user id.
        let recipient = match input_text(&inputs["line_user_id"]).map(|t| t.trim().to_string()) {
            Some(id) if id.is_empty() => None,
            Some(id) if is_line_user_id(&id) => Some(id),
            Some(id) => {
                let shown: String = id.chars().take(40).collect();
                return Err(invalid(format!(
                    "the `line_user_id` input `{shown}` is not a LINE user id (U and 32 lower-case hex digits)"
                )));
            }
            None => None,
        };
        Ok(ActionRequest { callback_id, contact_id, account_id, drafts, notification_disabled, recipient })
    }
}

/// An input field's text: HubSpot sends strings, but numbers and booleans are taken as written.
fn input_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A message field: a JSON object with a `type` is a LINE message object; anything else is text
/// (including text that starts with a contact token, `{{`, which no JSON object does).
fn draft(field: &str, text: String) -> Result<Draft, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') && !trimmed.starts_with("{{") {
        let value: Value = serde_json::from_str(trimmed)
            .map_err(|e| format!("`{field}` starts with {{ but is not a JSON message object: {e}"))?;
        return match value["type"].as_str() {
            Some(kind) if !kind.is_empty() => Ok(Draft::Message(value)),
            _ => Err(format!("`{field}` is a JSON object without a message `type`")),
        };
    }
    let units = text_units(&text);
    if units > MAX_TEXT_UNITS {
        return Err(format!("`{field}` has {units} characters; LINE takes at most {MAX_TEXT_UNITS}"));
    }
    Ok(Draft::Text(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let yaml = r#"
server: { listen: "127.0.0.1:0", public_base_url: "https://linehub.test" }
store: { path: "/tmp/linehub-request-test.db" }
plan: starter
hubspot: { token: "t" }
accounts:
  - { id: tokyo, channel_secret: "s", channel_access_token: "t" }
  - { id: osaka, channel_secret: "s", channel_access_token: "t", active: false }
"#;
        crate::config::load_str(std::path::Path::new("/nonexistent/config.yaml"), yaml).expect("test config")
    }

    fn body(inputs: Value) -> Vec<u8> {
        json!({
            "callbackId": "ap-102-1",
            "origin": { "portalId": 102, "actionDefinitionId": 7, "actionDefinitionVersion": 1 },
            "context": { "source": "WORKFLOWS", "workflowId": 9 },
            "object": { "objectId": 501, "objectType": "CONTACT", "properties": {} },
            "inputFields": inputs,
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_full_request_is_read() {
        let sticker = r#" {"type":"sticker","packageId":"446","stickerId":"1988"} "#;
        let inputs = json!({"account": "tokyo", "message_1": "Hi {{contact.firstname}}", "message_3": sticker,
            "message_2": "", "notification_disabled": "true"});
        let r = ActionRequest::parse(&body(inputs), &config()).expect("valid");
        assert_eq!(r.callback_id, "ap-102-1");
        assert_eq!(r.contact_id, "501");
        assert_eq!(r.account_id, "tokyo");
        assert!(r.notification_disabled);
        assert_eq!(r.drafts.len(), 2);
        assert_eq!(r.drafts[0], Draft::Text("Hi {{contact.firstname}}".into()));
        assert!(matches!(&r.drafts[1], Draft::Message(m) if m["stickerId"] == "1988"));
        let token_first = json!({"account": "tokyo", "message_1": "{{contact.firstname}}様、ありがとうございます"});
        let r = ActionRequest::parse(&body(token_first), &config()).expect("text starting with a token");
        assert!(matches!(&r.drafts[0], Draft::Text(t) if t.starts_with("{{contact.firstname}}")));
    }

    #[test]
    fn malformed_requests() {
        let c = config();
        assert!(matches!(ActionRequest::parse(b"nope", &c), Err(RequestError::Malformed(_))));
        assert!(matches!(ActionRequest::parse(b"[]", &c), Err(RequestError::Malformed(_))));
        let no_object = json!({"callbackId": "x", "inputFields": {}}).to_string();
        assert!(matches!(ActionRequest::parse(no_object.as_bytes(), &c), Err(RequestError::Malformed(_))));
        let negative = json!({"callbackId": "x", "object": {"objectId": -1}}).to_string();
        assert!(matches!(ActionRequest::parse(negative.as_bytes(), &c), Err(RequestError::Malformed(_))));
    }

    #[test]
    fn requests_that_cannot_be_sent_say_why() {
        let c = config();
        let why = |inputs: Value| match ActionRequest::parse(&body(inputs), &c) {
            Err(RequestError::Invalid { callback_id, message }) => {
                assert_eq!(callback_id, "ap-102-1");
                message
            }
            other => panic!("{other:?}"),
        };
        assert!(why(json!({"account": "kyoto", "message_1": "x"})).contains("active accounts: tokyo"));
        assert!(why(json!({"account": "osaka", "message_1": "x"})).contains("inactive"));
        assert!(why(json!({"message_1": "x"})).contains("`account` input is empty"));
        assert!(why(json!({"account": "tokyo"})).contains("no message"));
        assert!(why(json!({"account": "tokyo", "message_1": "{\"type\": "})).contains("not a JSON message object"));
        assert!(
            why(json!({"account": "tokyo", "message_1": "{\"text\": \"x\"}"})).contains("without a message `type`")
        );
        assert!(why(json!({"account": "tokyo", "message_1": "あ".repeat(5001)})).contains("at most 5000"));
    }
}
