//! Workflow-action callbacks and note adoption, driven over HTTP as the daemon drives them.

mod common;

use common::{start, status_json};
use linehub_sandbox::{CallbackCompletion, CompletionRequest, Service, ViolationKind};
use serde_json::{Value, json};

const CALLBACK: &str = "ap-102670506-56777914962-11-0";

fn done(state: &str) -> Value {
    json!({"outputFields": {"hs_execution_state": state, "line_message_id": "5012345678", "retries": 0},
           "typedOutputs": {}})
}

fn complete_path(id: &str) -> String {
    format!("/automation/v4/actions/callbacks/{id}/complete")
}

#[tokio::test]
async fn a_completion_of_a_made_up_callback_is_recorded_and_answered_204() {
    let h = start().await;
    let (status, body) = status_json(h.hs_post(&complete_path(CALLBACK), &done("SUCCESS")).await).await;
    assert_eq!((status, body), (204, Value::Null));
    let all = h.sandbox.hubspot().callbacks();
    assert_eq!(all.len(), 1);
    let c = &all[0];
    assert_eq!(c.callback_id, CALLBACK);
    assert_eq!(c.output_fields["hs_execution_state"], "SUCCESS");
    assert_eq!(c.output_fields["retries"], 0);
    assert_eq!(c.attempts, 1);
    assert!(c.completed_at.ends_with('Z') && c.completed_at.len() == 24, "{}", c.completed_at);
    assert_eq!(
        h.sandbox.hubspot().stats().by_endpoint["POST /automation/v4/actions/callbacks/{callbackId}/complete"],
        1
    );
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_repeated_completion_is_refused_with_400_and_counted_but_changes_nothing() {
    let h = start().await;
    assert_eq!(status_json(h.hs_post(&complete_path(CALLBACK), &done("SUCCESS")).await).await.0, 204);
    let (status, body) = status_json(h.hs_post(&complete_path(CALLBACK), &done("FAIL_CONTINUE")).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert_eq!(body["message"], format!("Callback {CALLBACK} is already completed"));
    assert!(body["correlationId"].is_string());
    let c = h.sandbox.hubspot().callback(CALLBACK).expect("completed");
    assert_eq!(c.output_fields["hs_execution_state"], "SUCCESS", "the first completion stands");
    assert_eq!(c.attempts, 2);
    // A refused repeat is HubSpot's answer, not a contract violation.
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn only_success_or_fail_continue_complete_a_callback() {
    let h = start().await;
    let (status, body) = status_json(h.hs_post(&complete_path("cb-block"), &done("BLOCK")).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    let missing = json!({"outputFields": {"line_message_id": "1"}, "typedOutputs": {}});
    assert_eq!(status_json(h.hs_post(&complete_path("cb-missing"), &missing).await).await.0, 400);
    let violations = h.sandbox.take_violations();
    assert_eq!(violations.len(), 2);
    assert!(violations.iter().all(|v| v.kind == ViolationKind::Rule), "{violations:?}");
    assert_eq!(violations[0].details[0].0, "/outputFields/hs_execution_state");

    // Not a state at all, a nested value, or an unknown top-level field: off-contract.
    for bad in [
        done("DONE"),
        json!({"outputFields": {"hs_execution_state": "SUCCESS", "x": {"nested": 1}}, "typedOutputs": {}}),
        json!({"outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}, "state": "SUCCESS"}),
        json!({"outputFields": {"hs_execution_state": "SUCCESS"}}),
        json!({}),
    ] {
        assert_eq!(status_json(h.hs_post(&complete_path("cb-bad"), &bad).await).await.0, 400, "{bad}");
    }
    let violations = h.sandbox.take_violations();
    assert_eq!(violations.len(), 5, "{violations:?}");
    assert!(violations.iter().all(|v| v.kind == ViolationKind::OffContract), "{violations:?}");
    assert!(h.sandbox.hubspot().callbacks().is_empty());

    // The documented optional fields are accepted.
    let full = json!({"outputFields": {"hs_execution_state": "FAIL_CONTINUE"}, "typedOutputs": {},
                      "failureReasonType": "LINE_BLOCKED", "requestContext": {"source": "WORKFLOWS"}});
    assert_eq!(status_json(h.hs_post(&complete_path("cb-full"), &full).await).await.0, 204);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_batch_completes_all_its_inputs_or_none() {
    let h = start().await;
    let batch = |ids: &[&str]| {
        let inputs: Vec<Value> = ids
            .iter()
            .map(|id| json!({"callbackId": id, "outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}}))
            .collect();
        json!({ "inputs": inputs })
    };
    let path = "/automation/v4/actions/callbacks/complete";
    assert_eq!(status_json(h.hs_post(path, &batch(&["a", "b"])).await).await.0, 204);
    let ids: Vec<String> = h.sandbox.hubspot().callbacks().into_iter().map(|c| c.callback_id).collect();
    assert_eq!(ids, ["a", "b"]);

    let (status, body) = status_json(h.hs_post(path, &batch(&["c", "b"])).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Callback b is already completed");
    assert!(h.sandbox.hubspot().callback("c").is_none(), "nothing of a refused batch is completed");
    assert_eq!(h.sandbox.hubspot().callback("b").map(|c| c.attempts), Some(2));
    h.sandbox.assert_no_violations();

    assert_eq!(status_json(h.hs_post(path, &batch(&["d", "d"])).await).await.0, 400);
    assert_eq!(h.sandbox.take_violations()[0].kind, ViolationKind::Rule);
    assert_eq!(status_json(h.hs_post(path, &json!({"inputs": []})).await).await.0, 400);
    let many: Vec<String> = (0..101).map(|i| format!("m{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(status_json(h.hs_post(path, &batch(&many)).await).await.0, 400);
    assert_eq!(h.sandbox.take_violations().len(), 2);
    assert_eq!(h.sandbox.hubspot().callbacks().len(), 2);
}

#[tokio::test]
async fn the_dated_paths_are_the_same_operations() {
    let h = start().await;
    let dated = format!("/automation/actions/callbacks/2026-03/{CALLBACK}/complete");
    assert_eq!(status_json(h.hs_post(&dated, &done("SUCCESS")).await).await.0, 204);
    assert_eq!(status_json(h.hs_post(&complete_path(CALLBACK), &done("SUCCESS")).await).await.0, 400);
    let batch = json!({"inputs": [{"callbackId": "other", "outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}}]});
    assert_eq!(status_json(h.hs_post("/automation/actions/callbacks/2026-03/complete", &batch).await).await.0, 204);
    assert_eq!(h.sandbox.hubspot().callbacks().len(), 2);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn faults_apply_to_completions_and_a_lost_answer_leaves_the_callback_completed() {
    let h = start().await;
    h.sandbox.faults().outage(Service::HubSpot, linehub_sandbox::Outage::Requests(1));
    assert_eq!(status_json(h.hs_post(&complete_path(CALLBACK), &done("SUCCESS")).await).await.0, 503);
    assert!(h.sandbox.hubspot().callbacks().is_empty(), "an outage completes nothing");
    h.sandbox.faults().rate_limit_storm(Service::HubSpot, 1);
    assert_eq!(status_json(h.hs_post(&complete_path(CALLBACK), &done("SUCCESS")).await).await.0, 429);

    h.sandbox.faults().lose_responses_of(Service::HubSpot, "completeCallback", 1);
    assert_eq!(status_json(h.hs_post(&complete_path(CALLBACK), &done("SUCCESS")).await).await.0, 503);
    assert_eq!(h.sandbox.hubspot().callback(CALLBACK).map(|c| c.attempts), Some(1), "HubSpot did complete it");
    let (status, body) = status_json(h.hs_post(&complete_path(CALLBACK), &done("SUCCESS")).await).await;
    assert_eq!(status, 400, "the retry finds it completed");
    assert_eq!(body["message"], format!("Callback {CALLBACK} is already completed"));
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn the_admin_api_lists_completions() {
    let h = start().await;
    assert_eq!(status_json(h.hs_post(&complete_path(CALLBACK), &done("SUCCESS")).await).await.0, 204);
    let _ = h.hs_post(&complete_path(CALLBACK), &done("SUCCESS")).await;
    let resp = h.http.get(h.url("/_sandbox/hubspot/callbacks")).send().await.expect("admin answers");
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200);
    let listed: Vec<CallbackCompletion> = serde_json::from_value(body.clone()).expect("the documented shape");
    assert_eq!(listed, h.sandbox.hubspot().callbacks());
    let entry = &body[0];
    assert_eq!(entry["callbackId"], CALLBACK);
    assert_eq!(entry["outputFields"]["line_message_id"], "5012345678");
    assert_eq!(entry["attempts"], 2);
    assert!(entry["completedAt"].is_string());
}

#[tokio::test]
async fn a_contacts_notes_are_listed_and_batch_read_for_adoption() {
    let h = start().await;
    let contact = h.sandbox.hubspot().create_contact(&[("email", "n@example.com")]).expect("seed");
    let other = h.sandbox.hubspot().create_contact(&[("email", "o@example.com")]).expect("seed");
    let note = |to: &str, body: &str| {
        json!({"properties": {"hs_timestamp": "2026-03-30T09:00:00Z", "hs_note_body": body},
               "associations": [{"to": {"id": to},
                                 "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}]})
    };
    let (status, first) = status_json(h.hs_post("/crm/v3/objects/notes", &note(&contact, "LINE: hello")).await).await;
    assert_eq!(status, 201);
    let (status, _) = status_json(h.hs_post("/crm/v3/objects/notes", &note(&other, "LINE: other")).await).await;
    assert_eq!(status, 201);
    let (status, second) =
        status_json(h.hs_post("/crm/objects/2026-03/notes", &note(&contact, "LINE: again")).await).await;
    assert_eq!(status, 201);

    let (status, read) =
        status_json(h.hs_get(&format!("/crm/v3/objects/contacts/{contact}?associations=notes")).await).await;
    assert_eq!(status, 200);
    let listed: Vec<&str> = read["associations"]["notes"]["results"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(listed, [first["id"].as_str().expect("id"), second["id"].as_str().expect("id")]);
    assert_eq!(read["associations"]["notes"]["results"][0]["type"], "contact_to_note");

    let inputs: Vec<Value> = listed.iter().map(|id| json!({"id": id})).chain([json!({"id": "999999"})]).collect();
    let body = json!({"inputs": inputs, "properties": ["hs_note_body"]});
    let (status, batch) = status_json(h.hs_post("/crm/v3/objects/notes/batch/read", &body).await).await;
    assert_eq!(status, 207, "{batch}");
    let bodies: Vec<&str> = batch["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["properties"]["hs_note_body"].as_str())
        .collect();
    assert_eq!(bodies, ["LINE: hello", "LINE: again"]);
    assert_eq!(batch["errors"][0]["context"]["ids"], json!(["999999"]));
    let (status, _) =
        status_json(h.hs_post("/crm/objects/2026-03/notes/batch/read", &json!({"inputs": [{"id": listed[0]}]})).await)
            .await;
    assert_eq!(status, 200);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn an_expired_callback_is_refused_differently_from_a_repeat_and_completes_nothing() {
    let h = start().await;
    h.sandbox.hubspot().expire_callback("gone");
    let (status, body) = status_json(h.hs_post(&complete_path("gone"), &done("SUCCESS")).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert_eq!(body["message"], "Callback gone has expired or does not exist");
    assert!(!body["message"].as_str().unwrap_or_default().contains("already completed"));
    let batch = json!({"inputs": [
        {"callbackId": "fresh", "outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}},
        {"callbackId": "gone", "outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}},
    ]});
    let (status, body) = status_json(h.hs_post("/automation/v4/actions/callbacks/complete", &batch).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "Callback gone has expired or does not exist");
    assert!(h.sandbox.hubspot().callbacks().is_empty(), "nothing of a refused batch is completed");
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_batch_input_without_typed_outputs_is_off_contract() {
    let h = start().await;
    let batch = json!({"inputs": [{"callbackId": "t", "outputFields": {"hs_execution_state": "SUCCESS"}}]});
    assert_eq!(status_json(h.hs_post("/automation/v4/actions/callbacks/complete", &batch).await).await.0, 400);
    let violations = h.sandbox.take_violations();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].kind, ViolationKind::OffContract);
    assert!(h.sandbox.hubspot().callbacks().is_empty());
}

#[tokio::test]
async fn every_completion_request_is_logged_with_its_answer_so_a_second_completion_is_observable() {
    let h = start().await;
    assert_eq!(status_json(h.hs_post(&complete_path(CALLBACK), &done("SUCCESS")).await).await.0, 204);
    assert_eq!(status_json(h.hs_post(&complete_path(CALLBACK), &done("FAIL_CONTINUE")).await).await.0, 400);
    let batch = json!({"inputs": [{"callbackId": "cb-2", "outputFields": {"hs_execution_state": "SUCCESS"}, "typedOutputs": {}}]});
    assert_eq!(status_json(h.hs_post("/automation/v4/actions/callbacks/complete", &batch).await).await.0, 204);

    let resp = h.http.get(h.url("/_sandbox/hubspot/callbacks/requests")).send().await.expect("admin answers");
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200);
    let log: Vec<CompletionRequest> = serde_json::from_value(body.clone()).expect("the documented shape");
    assert_eq!(log, h.sandbox.hubspot().completion_requests());
    let seen: Vec<(&str, &str, u16)> = log
        .iter()
        .map(|r| (r.callback_id.as_str(), r.output_fields["hs_execution_state"].as_str().unwrap_or_default(), r.status))
        .collect();
    assert_eq!(seen, [(CALLBACK, "SUCCESS", 204), (CALLBACK, "FAIL_CONTINUE", 400), ("cb-2", "SUCCESS", 204)]);
    assert!(body[0]["at"].is_string());
    h.sandbox.assert_no_violations();
}
