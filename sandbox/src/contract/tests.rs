//! The checker against LINE's real Messaging API document.

use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::*;
use crate::specs::line_messaging;

fn json_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h
}

fn post(path: &str, headers: &HeaderMap, body: &Value) -> Result<Matched, Violation> {
    let bytes = serde_json::to_vec(body).expect("serialisable");
    line_messaging().check(&RequestParts { method: "POST", path, query: None, headers, body: &bytes })
}

fn push(messages: Value) -> Value {
    json!({"to": "U4af4980629aaaaaaaaaaaaaaaaaaaaaa", "messages": messages})
}

#[test]
fn a_valid_push_passes_and_reports_its_operation() {
    let m = post("/v2/bot/message/push", &json_headers(), &push(json!([{"type": "text", "text": "hi"}])))
        .expect("valid push");
    assert_eq!(m.operation_id.as_deref(), Some("pushMessage"));
    assert!(m.body.is_some());
}

#[test]
fn a_push_with_six_messages_breaks_max_items() {
    let six: Vec<Value> = (0..6).map(|i| json!({"type": "text", "text": format!("m{i}")})).collect();
    let v = post("/v2/bot/message/push", &json_headers(), &push(Value::Array(six))).unwrap_err();
    assert_eq!(v.operation.as_deref(), Some("pushMessage"));
    assert!(v.details.iter().any(|(at, m)| at == "/messages" && m.contains("maxItems is 5")), "{v}");
}

#[test]
fn an_unknown_message_type_is_caught_by_the_discriminator() {
    let v = post("/v2/bot/message/push", &json_headers(), &push(json!([{"type": "hologram"}]))).unwrap_err();
    assert!(v.details.iter().any(|(at, m)| at == "/messages/0/type" && m.contains("unknown type")), "{v}");
}

#[test]
fn a_text_message_without_text_is_a_violation() {
    let v = post("/v2/bot/message/push", &json_headers(), &push(json!([{"type": "text"}]))).unwrap_err();
    assert_eq!(v.details, vec![("/messages/0/text".to_string(), "is required but missing".to_string())]);
}

#[test]
fn nested_discriminators_are_followed_in_flex_and_template_messages() {
    let ok = json!([{"type": "template", "altText": "a",
        "template": {"type": "confirm", "text": "ok?", "actions": [
            {"type": "message", "label": "Yes", "text": "yes"},
            {"type": "uri", "label": "No", "uri": "https://example.com"}]}}]);
    post("/v2/bot/message/push", &json_headers(), &push(ok)).expect("valid template");
    let bad = json!([{"type": "template", "altText": "a",
        "template": {"type": "confirm", "text": "ok?", "actions": [
            {"type": "uri", "label": "No", "uri": "not a uri"}]}}]);
    let v = post("/v2/bot/message/push", &json_headers(), &push(bad)).unwrap_err();
    assert!(v.details.iter().any(|(at, _)| at == "/messages/0/template/actions/0/uri"), "{v}");
}

#[test]
fn a_retry_key_on_reply_is_a_violation() {
    let mut h = json_headers();
    h.insert("x-line-retry-key", HeaderValue::from_static("123e4567-e89b-12d3-a456-426614174000"));
    let body = json!({"replyToken": "abc", "messages": [{"type": "text", "text": "hi"}]});
    let v = post("/v2/bot/message/reply", &h, &body).unwrap_err();
    assert_eq!(v.operation.as_deref(), Some("replyMessage"));
    assert!(v.details.iter().any(|(at, _)| at == "header:x-line-retry-key"), "{v}");
    // The same header on push is declared, so it is accepted there.
    post("/v2/bot/message/push", &h, &push(json!([{"type": "text", "text": "hi"}]))).expect("push accepts it");
}

#[test]
fn a_retry_key_that_is_not_a_uuid_is_a_violation_on_push() {
    let mut h = json_headers();
    h.insert("x-line-retry-key", HeaderValue::from_static("retry-1"));
    let v = post("/v2/bot/message/push", &h, &push(json!([{"type": "text", "text": "hi"}]))).unwrap_err();
    assert!(v.details.iter().any(|(at, m)| at == "header:X-Line-Retry-Key" && m.contains("uuid")), "{v}");
}

#[test]
fn get_profile_matches_its_template_with_the_user_id() {
    let h = HeaderMap::new();
    let m = line_messaging()
        .check(&RequestParts { method: "GET", path: "/v2/bot/profile/U123", query: None, headers: &h, body: b"" })
        .expect("profile matches");
    assert_eq!(m.operation_id.as_deref(), Some("getProfile"));
    assert_eq!(m.path_param("userId"), Some("U123"));
}

#[test]
fn literal_paths_beat_templates_of_the_same_shape() {
    let h = HeaderMap::new();
    let m = line_messaging()
        .check(&RequestParts { method: "GET", path: "/v2/bot/richmenu/list", query: None, headers: &h, body: b"" })
        .expect("matches");
    assert_eq!(m.operation_id.as_deref(), Some("getRichMenuList"));
}

#[test]
fn query_parameters_are_typed_and_bounded() {
    let h = HeaderMap::new();
    let check = |q: &str| {
        line_messaging().check(&RequestParts {
            method: "GET",
            path: "/v2/bot/followers/ids",
            query: Some(q),
            headers: &h,
            body: b"",
        })
    };
    check("limit=1000&start=abc").expect("in range");
    let v = check("limit=1001").unwrap_err();
    assert!(v.details.iter().any(|(at, _)| at == "query:limit"), "{v}");
    assert!(check("limit=ten").is_err());
}

#[test]
fn an_undocumented_path_or_method_is_a_violation() {
    let h = HeaderMap::new();
    let v = line_messaging()
        .check(&RequestParts { method: "GET", path: "/v2/bot/secret/door", query: None, headers: &h, body: b"" })
        .unwrap_err();
    assert!(v.operation.is_none());
    assert!(v.message.contains("no path"), "{v}");
    let v = line_messaging()
        .check(&RequestParts { method: "DELETE", path: "/v2/bot/info", query: None, headers: &h, body: b"" })
        .unwrap_err();
    assert!(v.message.contains("(it has GET)"), "{v}");
}

#[test]
fn bodies_are_refused_where_none_is_declared_and_required_where_one_is() {
    let v = post("/v2/bot/room/R1/leave", &json_headers(), &json!({})).unwrap_err();
    assert_eq!(v.operation.as_deref(), Some("leaveRoom"));
    assert!(v.details.iter().any(|(at, m)| at == "body" && m.contains("takes no request body")), "{v}");
    let h = json_headers();
    let v = line_messaging()
        .check(&RequestParts { method: "POST", path: "/v2/bot/message/push", query: None, headers: &h, body: b"" })
        .unwrap_err();
    assert_eq!(v.details[0], ("body".to_string(), "a request body is required".to_string()));
    let v = line_messaging()
        .check(&RequestParts {
            method: "POST",
            path: "/v2/bot/message/push",
            query: None,
            headers: &h,
            body: b"{not json",
        })
        .unwrap_err();
    assert!(v.details[0].1.starts_with("not valid JSON"), "{v}");
}

#[test]
fn a_json_body_sent_as_another_media_type_is_a_violation() {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("text/plain"));
    let v = post("/v2/bot/message/push", &h, &push(json!([{"type": "text", "text": "hi"}]))).unwrap_err();
    assert_eq!(v.details[0].0, "header:Content-Type");
}

#[test]
fn the_bundled_line_documents_compile_every_pattern() {
    assert!(line_messaging().skipped_patterns().is_empty(), "{:?}", line_messaging().skipped_patterns());
}

#[test]
fn validate_schema_checks_a_value_against_a_named_schema() {
    let wh = crate::specs::line_webhook();
    let ok = json!({"destination": format!("U{}", "a".repeat(32)), "events": []});
    wh.validate_schema("#/components/schemas/CallbackRequest", &ok).expect("empty events are valid");
    let bad = json!({"destination": "Uxyz", "events": [{"type": "follow"}]});
    let v = wh.validate_schema("#/components/schemas/CallbackRequest", &bad).unwrap_err();
    let at: Vec<&str> = v.details.iter().map(|(a, _)| a.as_str()).collect();
    assert!(at.contains(&"/destination"), "{v}");
    assert!(at.contains(&"/events/0/replyToken"), "{v}");
    assert!(at.contains(&"/events/0/webhookEventId"), "{v}");
    assert!(wh.validate_schema("#/components/schemas/Nope", &ok).is_err());
}

#[test]
fn documents_with_dangling_refs_or_other_versions_are_refused() {
    let dangling = "openapi: 3.0.0\npaths: {}\ncomponents:\n  schemas:\n    A:\n      $ref: '#/components/schemas/B'\n";
    assert!(matches!(Contract::from_yaml("d", dangling), Err(ContractError::DanglingRef { .. })));
    assert!(matches!(Contract::from_yaml("s", "swagger: '2.0'\npaths: {}\n"), Err(ContractError::NotOpenApi3 { .. })));
    assert!(matches!(Contract::from_yaml("y", "openapi: [\n"), Err(ContractError::Yaml { .. })));
}

#[test]
fn merged_documents_answer_for_each_others_paths() {
    let mut c =
        Contract::from_yaml("a", "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      operationId: getA\n").expect("a");
    c.merge_yaml("b", "openapi: 3.0.0\npaths:\n  /b:\n    get:\n      operationId: getB\n").expect("b");
    let h = HeaderMap::new();
    let get = |p: &str| c.check(&RequestParts { method: "get", path: p, query: None, headers: &h, body: b"" });
    assert_eq!(get("/a").expect("a").operation_id.as_deref(), Some("getA"));
    assert_eq!(get("/b").expect("b").operation_id.as_deref(), Some("getB"));
}

/// A token endpoint in the style of OAuth 2.0: a form body whose fields are typed by its schema.
const FORM_DOC: &str = r#"
openapi: 3.0.0
paths:
  /token:
    post:
      operationId: issueToken
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              $ref: '#/components/schemas/TokenRequest'
components:
  schemas:
    TokenRequest:
      type: object
      required: [grant_type, client_id]
      additionalProperties: false
      properties:
        grant_type: {type: string, enum: [authorization_code]}
        client_id: {type: string, pattern: '^[0-9]+$'}
        code_verifier: {type: string, minLength: 43, maxLength: 128}
        max_age: {type: integer, minimum: 0}
"#;

fn form(c: &Contract, content_type: &str, body: &str) -> Result<Matched, Violation> {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_str(content_type).expect("header"));
    c.check(&RequestParts { method: "POST", path: "/token", query: None, headers: &h, body: body.as_bytes() })
}

#[test]
fn form_bodies_are_decoded_typed_and_checked_against_their_schema() {
    let c = Contract::from_yaml("form", FORM_DOC).expect("loads");
    let verifier = "a".repeat(43);
    let ok = form(
        &c,
        "application/x-www-form-urlencoded; charset=UTF-8",
        &format!("grant_type=authorization_code&client_id=1650000001&code_verifier={verifier}&max_age=60"),
    )
    .expect("valid form");
    assert_eq!(
        ok.body,
        Some(json!({"grant_type": "authorization_code", "client_id": "1650000001",
                    "code_verifier": verifier, "max_age": 60}))
    );

    let v = form(&c, "application/x-www-form-urlencoded", "grant_type=password&code_verifier=short&max_age=x&extra=1")
        .unwrap_err();
    let at: Vec<&str> = v.details.iter().map(|(a, _)| a.as_str()).collect();
    for expected in ["/grant_type", "/code_verifier", "/max_age", "/extra", "/client_id"] {
        assert!(at.contains(&expected), "{expected} missing from {v}");
    }

    let v = form(&c, "application/x-www-form-urlencoded", "grant_type=authorization_code&client_id=1&client_id=2")
        .unwrap_err();
    assert!(v.details.iter().any(|(a, m)| a == "/client_id" && m.contains("more than once")), "{v}");

    let v = form(&c, "application/json", r#"{"grant_type":"authorization_code","client_id":"1"}"#).unwrap_err();
    assert_eq!(v.details[0].0, "header:Content-Type");
    let v = form(&c, "application/x-www-form-urlencoded", "").unwrap_err();
    assert_eq!(v.details[0], ("body".to_string(), "a request body is required".to_string()));
}
