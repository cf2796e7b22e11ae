//! The HubSpot CRM simulator, driven over HTTP as the daemon drives it.

mod common;

use std::time::Duration;

use common::{start, start_with, status_json};
use linehub_sandbox::{OwnerSpec, SandboxConfig, ViolationKind};
use reqwest::Method;
use serde_json::{Value, json};

fn contact(email: &str) -> Value {
    json!({"properties": {"email": email, "firstname": "Ann"}})
}

#[tokio::test]
async fn a_duplicate_email_in_another_case_is_a_409_naming_the_existing_id() {
    let h = start().await;
    let (status, created) = status_json(h.hs_post("/crm/v3/objects/contacts", &contact("Ann@Example.com")).await).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["properties"]["email"], "ann@example.com");

    let (status, body) =
        status_json(h.hs_post("/crm/objects/2026-03/contacts", &contact("ANN@example.COM")).await).await;
    assert_eq!(status, 409);
    assert_eq!(body["category"], "CONFLICT");
    assert_eq!(body["message"], format!("Contact already exists. Existing ID: {id}"));
    assert!(body["correlationId"].is_string());
    assert_eq!(h.sandbox.hubspot().contacts().len(), 1);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn contacts_are_read_by_id_or_email_and_archived_ones_are_gone() {
    let h = start().await;
    let (_, created) = status_json(h.hs_post("/crm/v3/objects/contacts", &contact("bob@example.com")).await).await;
    let id = created["id"].as_str().expect("id").to_string();
    let (status, by_email) = status_json(
        h.hs_get("/crm/v3/objects/contacts/BOB%40example.com?idProperty=email&properties=email,phone").await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_email["id"], json!(id));
    assert_eq!(by_email["properties"]["phone"], Value::Null);

    let (status, patched) = status_json(
        h.hs(
            Method::PATCH,
            &format!("/crm/v3/objects/contacts/{id}"),
            Some(&json!({"properties": {"lastname": "Lee"}})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(patched["properties"]["lastname"], "Lee");

    h.sandbox.hubspot().delete_contact(&id).expect("a user deletes it");
    let (status, body) = status_json(h.hs_get(&format!("/crm/v3/objects/contacts/{id}")).await).await;
    assert_eq!(status, 404);
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");
    let (status, _) = status_json(h.hs_get(&format!("/crm/v3/objects/contacts/{id}?archived=true")).await).await;
    assert_eq!(status, 200);
    // The email is free again once the old contact is archived.
    let (status, _) = status_json(h.hs_post("/crm/v3/objects/contacts", &contact("bob@example.com")).await).await;
    assert_eq!(status, 201);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn writing_an_undefined_property_is_property_doesnt_exist_until_it_is_created() {
    let h = start().await;
    let body = json!({"properties": {"email": "c@example.com", "line_user_id_1": "U1"}});
    let (status, err) = status_json(h.hs_post("/crm/v3/objects/contacts", &body).await).await;
    assert_eq!(status, 400);
    assert_eq!(err["category"], "VALIDATION_ERROR");
    let message = err["message"].as_str().expect("message");
    assert!(message.starts_with("Property values were not valid: "), "{message}");
    assert!(message.contains("PROPERTY_DOESNT_EXIST"), "{message}");
    assert_eq!(err["errors"][0]["context"]["propertyName"], json!(["line_user_id_1"]));

    let prop = json!({"name": "line_user_id_1", "label": "LINE user id (1)", "type": "string",
                      "fieldType": "text", "groupName": "contactinformation", "hasUniqueValue": true});
    let (status, _) = status_json(h.hs_post("/crm/v3/properties/contacts", &prop).await).await;
    assert_eq!(status, 201);
    let (status, again) = status_json(h.hs_post("/crm/properties/2026-03/contacts", &prop).await).await;
    assert_eq!(status, 409);
    assert!(again["message"].as_str().is_some_and(|m| m.contains("already exists")));

    let (status, _) = status_json(h.hs_post("/crm/v3/objects/contacts", &body).await).await;
    assert_eq!(status, 201);
    let (status, found) = status_json(h.hs_get("/crm/v3/objects/contacts/U1?idProperty=line_user_id_1").await).await;
    assert_eq!(status, 200);
    assert_eq!(found["properties"]["email"], "c@example.com");
    assert_eq!(h.sandbox.hubspot().find_by_property("line_user_id_1", "U1").len(), 1);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_mismatched_type_and_field_type_is_a_recorded_violation() {
    let h = start().await;
    let prop =
        json!({"name": "x", "label": "X", "type": "string", "fieldType": "select", "groupName": "contactinformation"});
    let (status, _) = status_json(h.hs_post("/crm/v3/properties/contacts", &prop).await).await;
    assert_eq!(status, 400);
    assert_eq!(h.sandbox.take_violations()[0].kind, ViolationKind::Rule);
}

#[tokio::test]
async fn enumeration_and_date_values_are_checked_like_hubspot() {
    let h = start().await;
    let owner = h.sandbox.hubspot().add_owner(OwnerSpec {
        email: "sales@example.com".into(),
        first_name: "Sam".into(),
        last_name: "Sales".into(),
    });
    let bad = json!({"properties": {"email": "d@example.com", "lifecyclestage": "Lead"}});
    let (status, err) = status_json(h.hs_post("/crm/v3/objects/contacts", &bad).await).await;
    assert_eq!(status, 400);
    assert!(err["message"].as_str().is_some_and(|m| m.contains("INVALID_OPTION")));
    let good = json!({"properties": {"email": "d@example.com", "lifecyclestage": "lead", "hubspot_owner_id": owner}});
    let (status, _) = status_json(h.hs_post("/crm/v3/objects/contacts", &good).await).await;
    assert_eq!(status, 201);

    let prop = json!({"name": "line_friend_since", "label": "Friend since", "type": "date",
                      "fieldType": "date", "groupName": "contactinformation"});
    assert_eq!(status_json(h.hs_post("/crm/v3/properties/contacts", &prop).await).await.0, 201);
    let c = h.sandbox.hubspot().contact_by_email("d@example.com").expect("contact");
    let path = format!("/crm/v3/objects/contacts/{}", c.id);
    let noon = json!({"properties": {"line_friend_since": "1430481600000"}});
    let (status, err) = status_json(h.hs(Method::PATCH, &path, Some(&noon)).await).await;
    assert_eq!(status, 400, "{err}");
    let midnight = json!({"properties": {"line_friend_since": "1430438400000"}});
    let (status, ok) = status_json(h.hs(Method::PATCH, &path, Some(&midnight)).await).await;
    assert_eq!(status, 200);
    assert_eq!(h.sandbox.hubspot().contact(&c.id).expect("c").properties["line_friend_since"], "2015-05-01");
    let _ = ok;
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn unknown_top_level_fields_and_non_string_values_are_off_contract() {
    let h = start().await;
    let extra = json!({"properties": {"email": "e@example.com"}, "idProperty": "email"});
    let (status, body) = status_json(h.hs_post("/crm/v3/objects/contacts", &extra).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
    let number = json!({"properties": {"email": "e@example.com", "phone": 12345}});
    let (status, _) = status_json(h.hs_post("/crm/v3/objects/contacts", &number).await).await;
    assert_eq!(status, 400);
    let v = h.sandbox.take_violations();
    assert_eq!(v.len(), 2);
    assert!(v[0].details.iter().any(|(at, _)| at == "/idProperty"), "{}", v[0]);
    assert!(v[1].details.iter().any(|(at, _)| at == "/properties/phone"), "{}", v[1]);
}

#[tokio::test]
async fn batch_create_with_a_duplicate_fails_whole_unless_every_input_is_traced() {
    let h = start().await;
    h.sandbox.hubspot().create_contact(&[("email", "taken@example.com")]).expect("seed");
    let plain = json!({"inputs": [
        {"properties": {"email": "new1@example.com"}},
        {"properties": {"email": "TAKEN@example.com"}},
    ]});
    let (status, body) = status_json(h.hs_post("/crm/v3/objects/contacts/batch/create", &plain).await).await;
    assert_eq!(status, 409);
    assert!(body["message"].as_str().is_some_and(|m| m.starts_with("Contact already exists. Existing ID: ")));
    assert!(h.sandbox.hubspot().contact_by_email("new1@example.com").is_none(), "nothing applied");

    let traced = json!({"inputs": [
        {"properties": {"email": "new1@example.com"}, "objectWriteTraceId": "t1"},
        {"properties": {"email": "taken@example.com"}, "objectWriteTraceId": "t2"},
        {"properties": {"email": "NEW1@example.com"}, "objectWriteTraceId": "t3"},
    ]});
    let (status, body) = status_json(h.hs_post("/crm/v3/objects/contacts/batch/create", &traced).await).await;
    assert_eq!(status, 207);
    assert_eq!(body["status"], "COMPLETE");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["numErrors"], 2);
    assert_eq!(body["errors"][0]["category"], "CONFLICT");
    assert_eq!(body["errors"][0]["context"]["objectWriteTraceId"], json!(["t2"]));
    assert_eq!(body["errors"][1]["context"]["objectWriteTraceId"], json!(["t3"]));
    assert!(h.sandbox.hubspot().contact_by_email("new1@example.com").is_some());
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn batch_update_with_one_unknown_id_is_207_and_the_others_are_applied() {
    let h = start().await;
    let a = h.sandbox.hubspot().create_contact(&[("email", "a@example.com")]).expect("a");
    let b = h.sandbox.hubspot().create_contact(&[("email", "b@example.com")]).expect("b");
    let body = json!({"inputs": [
        {"id": a, "properties": {"firstname": "A"}},
        {"id": "999999", "properties": {"firstname": "Ghost"}},
        {"id": b, "properties": {"firstname": "B"}},
    ]});
    let (status, resp) = status_json(h.hs_post("/crm/v3/objects/contacts/batch/update", &body).await).await;
    assert_eq!(status, 207);
    assert_eq!(resp["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(resp["errors"][0]["context"]["ids"], json!(["999999"]));
    assert_eq!(resp["results"].as_array().map(Vec::len), Some(2));
    assert_eq!(h.sandbox.hubspot().contact(&a).expect("a").properties["firstname"], "A");
    assert_eq!(h.sandbox.hubspot().contact(&b).expect("b").properties["firstname"], "B");

    let all_good = json!({"inputs": [{"id": a, "properties": {"lastname": "Z"}}]});
    let (status, resp) = status_json(h.hs_post("/crm/v3/objects/contacts/batch/update", &all_good).await).await;
    assert_eq!(status, 200);
    assert!(resp["startedAt"].is_string() && resp["completedAt"].is_string());
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn upsert_by_email_creates_or_updates_and_says_which() {
    let h = start().await;
    let existing = h.sandbox.hubspot().create_contact(&[("email", "old@example.com")]).expect("seed");
    let body = json!({"inputs": [
        {"id": "OLD@example.com", "idProperty": "email", "properties": {"firstname": "Old"}},
        {"id": "new@example.com", "idProperty": "email", "properties": {"firstname": "New"}},
    ]});
    let (status, resp) = status_json(h.hs_post("/crm/objects/2026-03/contacts/batch/upsert", &body).await).await;
    assert_eq!(status, 200);
    assert_eq!(resp["results"][0]["id"], json!(existing));
    assert_eq!(resp["results"][0]["new"], false);
    assert_eq!(resp["results"][1]["new"], true);
    let created = h.sandbox.hubspot().contact_by_email("new@example.com").expect("created");
    assert_eq!(created.properties["firstname"], "New");

    let dup = json!({"inputs": [
        {"id": "x@example.com", "idProperty": "email", "properties": {}},
        {"id": "X@example.com", "idProperty": "email", "properties": {}},
    ]});
    let (status, _) = status_json(h.hs_post("/crm/v3/objects/contacts/batch/upsert", &dup).await).await;
    assert_eq!(status, 400);
    assert!(h.sandbox.take_violations()[0].message.contains("Duplicate IDs"));
}

#[tokio::test]
async fn batches_hold_at_most_100_inputs() {
    let h = start().await;
    let inputs: Vec<Value> = (0..101).map(|i| json!({"properties": {"email": format!("u{i}@example.com")}})).collect();
    let (status, _) =
        status_json(h.hs_post("/crm/v3/objects/contacts/batch/create", &json!({"inputs": inputs})).await).await;
    assert_eq!(status, 400);
    let v = h.sandbox.take_violations();
    assert!(v[0].details.iter().any(|(at, m)| at == "/inputs" && m.contains("maxItems is 100")), "{}", v[0]);
}

#[tokio::test]
async fn search_filters_pages_and_keeps_hubspots_quirks() {
    // More than 5 searches a second; this test is about filters, not the search bucket.
    let h = start_with(SandboxConfig { hubspot_search_per_second: 100, ..SandboxConfig::default() }).await;
    for i in 0..5 {
        let email = format!("p{i}@example.com");
        let stage = if i % 2 == 0 { "lead" } else { "customer" };
        h.sandbox
            .hubspot()
            .create_contact(&[("email", &email), ("lifecyclestage", stage), ("firstname", "Ann")])
            .expect("seed");
    }
    let search = |body: Value| {
        let h = &h;
        async move { status_json(h.hs_post("/crm/v3/objects/contacts/search", &body).await).await }
    };
    let (status, resp) = search(json!({"filterGroups": [{"filters": [
        {"propertyName": "email", "operator": "EQ", "value": "P1@EXAMPLE.COM"}]}]}))
    .await;
    assert_eq!(status, 200);
    assert_eq!(resp["total"], 1);

    let (_, resp) = search(json!({"filterGroups": [{"filters": [
        {"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}]}],
        "limit": 2, "properties": ["email"]}))
    .await;
    assert_eq!(resp["total"], 3);
    assert_eq!(resp["results"].as_array().map(Vec::len), Some(2));
    assert_eq!(resp["paging"]["next"]["after"], "2");

    // IN on text properties needs lower-case values.
    let (_, upper) = search(json!({"filterGroups": [{"filters": [
        {"propertyName": "email", "operator": "IN", "values": ["P1@EXAMPLE.COM"]}]}]}))
    .await;
    assert_eq!(upper["total"], 0);
    let (_, lower) = search(json!({"filterGroups": [{"filters": [
        {"propertyName": "email", "operator": "IN", "values": ["p1@example.com", "p2@example.com"]}]}]}))
    .await;
    assert_eq!(lower["total"], 2);

    let (_, none) = search(json!({"filterGroups": [{"filters": [
        {"propertyName": "phone", "operator": "HAS_PROPERTY"}]}]}))
    .await;
    assert_eq!(none["total"], 0);
    h.sandbox.assert_no_violations();

    let six_groups: Vec<Value> =
        (0..6).map(|_| json!({"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]})).collect();
    let (status, _) = search(json!({"filterGroups": six_groups})).await;
    assert_eq!(status, 400);
    let (status, _) =
        search(json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "IN"}]}]})).await;
    assert_eq!(status, 400);
    assert_eq!(h.sandbox.take_violations().len(), 2);
}

#[tokio::test]
async fn search_has_its_own_bucket_of_five_per_second() {
    let h = start().await;
    let body = json!({"filterGroups": []});
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = h.hs_post("/crm/v3/objects/contacts/search", &body).await;
        assert!(!resp.headers().contains_key("x-hubspot-ratelimit-max"), "search has no rate-limit headers");
        statuses.push(status_json(resp).await);
    }
    assert!(statuses[..5].iter().all(|(s, _)| *s == 200));
    assert_eq!(statuses[5].0, 429);
    assert_eq!(statuses[5].1["message"], "You have reached your secondly limit.");
    assert_eq!(h.sandbox.hubspot().stats().rate_limited, 1);
}

#[tokio::test]
async fn new_contacts_reach_search_only_after_the_configured_lag() {
    let cfg = SandboxConfig { search_lag: Duration::from_millis(300), ..SandboxConfig::default() };
    let h = start_with(cfg).await;
    h.sandbox.hubspot().create_contact(&[("email", "late@example.com")]).expect("seed");
    let body = json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "late@example.com"}]}]});
    let (_, before) = status_json(h.hs_post("/crm/v3/objects/contacts/search", &body).await).await;
    assert_eq!(before["total"], 0);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (_, after) = status_json(h.hs_post("/crm/v3/objects/contacts/search", &body).await).await;
    assert_eq!(after["total"], 1);
}

#[tokio::test]
async fn the_191st_call_in_ten_seconds_is_429_with_hubspots_headers_and_body() {
    let h = start().await;
    for i in 0..190u32 {
        let resp = h.hs_get("/crm/v3/owners").await;
        assert_eq!(resp.status().as_u16(), 200, "call {i}");
        assert_eq!(resp.headers()["x-hubspot-ratelimit-max"], "190");
        assert_eq!(resp.headers()["x-hubspot-ratelimit-remaining"], (189 - i).to_string().as_str());
        assert_eq!(resp.headers()["x-hubspot-ratelimit-interval-milliseconds"], "10000");
    }
    let resp = h.hs_get("/crm/v3/owners").await;
    assert_eq!(resp.headers()["x-hubspot-ratelimit-remaining"], "0");
    assert!(resp.headers().contains_key("x-hubspot-ratelimit-daily-remaining"));
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 429);
    assert_eq!(body["message"], "You have reached your ten_secondly_rolling limit.");
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    let stats = h.sandbox.hubspot().stats();
    assert_eq!((stats.requests, stats.rate_limited, stats.peak_in_window), (191, 1, 190));
    assert_eq!(stats.by_endpoint["GET /crm/v3/owners"], 191);
    assert!((stats.ceiling_share() - 1.0).abs() < f64::EPSILON);
}

#[tokio::test]
async fn a_wrong_token_gets_hubspots_401_envelope() {
    let h = start().await;
    let resp = h.call(Method::GET, "/crm/v3/owners", "pat-na1-wrong", None, &[]).await;
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 401);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert!(body["message"].as_str().is_some_and(|m| m.starts_with("Authentication credentials not found")));
}

#[tokio::test]
async fn tasks_need_hs_timestamp_and_link_to_contacts_with_type_204() {
    let h = start().await;
    let c = h.sandbox.hubspot().create_contact(&[("email", "t@example.com")]).expect("seed");
    let link = |type_id: u32| json!([{"to": {"id": c}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}]);
    let no_time = json!({"properties": {"hs_task_subject": "Call back"}, "associations": link(204)});
    let (status, _) = status_json(h.hs_post("/crm/v3/objects/tasks", &no_time).await).await;
    assert_eq!(status, 400);
    let wrong_type = json!({"properties": {"hs_timestamp": "2026-03-30T09:00:00Z"}, "associations": link(202)});
    let (status, _) = status_json(h.hs_post("/crm/v3/objects/tasks", &wrong_type).await).await;
    assert_eq!(status, 400);
    assert_eq!(h.sandbox.take_violations().len(), 2);

    let task = json!({"properties": {"hs_timestamp": "1774861200000", "hs_task_subject": "Call back",
                                     "hs_task_status": "NOT_STARTED"}, "associations": link(204)});
    let (status, created) = status_json(h.hs_post("/crm/objects/2026-03/tasks", &task).await).await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().expect("id");
    let (status, _) = status_json(
        h.hs(
            Method::PATCH,
            &format!("/crm/v3/objects/tasks/{id}"),
            Some(&json!({"properties": {"hs_task_status": "COMPLETED"}})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let tasks = h.sandbox.hubspot().tasks();
    assert_eq!(tasks[0].properties["hs_task_status"], "COMPLETED");
    assert_eq!(tasks[0].properties["hs_timestamp"], "2026-03-30T09:00:00.000Z");
    assert_eq!(tasks[0].associations[0].type_id, 204);

    let notes = json!({"inputs": [{"properties": {"hs_timestamp": "2026-03-30T09:00:00Z", "hs_note_body": "LINE: hi"},
                                   "associations": link(202)}]});
    let (status, _) = status_json(h.hs_post("/crm/v3/objects/notes/batch/create", &notes).await).await;
    assert_eq!(status, 201);
    assert_eq!(h.sandbox.hubspot().notes()[0].associations[0].to_id, c);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn list_memberships_page_in_record_id_order() {
    let h = start().await;
    let ids: Vec<String> = (0..3)
        .map(|i| h.sandbox.hubspot().create_contact(&[("email", &format!("l{i}@example.com"))]).expect("seed"))
        .collect();
    let refs: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    let list = h.sandbox.hubspot().add_list("LINE friends", &refs).expect("list");
    let (status, page) = status_json(h.hs_get(&format!("/crm/v3/lists/{list}/memberships?limit=2")).await).await;
    assert_eq!(status, 200);
    assert_eq!(page["results"][0]["recordId"], json!(ids[0]));
    assert_eq!(page["total"], 3);
    let after = page["paging"]["next"]["after"].as_str().expect("next");
    let (_, rest) = status_json(h.hs_get(&format!("/crm/lists/2026-03/{list}/memberships?after={after}")).await).await;
    assert_eq!(rest["results"].as_array().map(Vec::len), Some(1));
    let (status, _) = status_json(h.hs_get("/crm/v3/lists/999/memberships").await).await;
    assert_eq!(status, 404);
    let (status, _) = status_json(h.hs_get(&format!("/crm/v3/lists/{list}/memberships?limit=251")).await).await;
    assert_eq!(status, 400);
    assert_eq!(h.sandbox.take_violations().len(), 1);
}

#[tokio::test]
async fn owners_are_listed_by_email() {
    let h = start().await;
    let id = h.sandbox.hubspot().add_owner(OwnerSpec {
        email: "o@example.com".into(),
        first_name: "O".into(),
        last_name: "W".into(),
    });
    let (status, body) = status_json(h.hs_get("/crm/owners/2026-03?email=O%40example.com").await).await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["id"], json!(id));
    assert_eq!(body["results"][0]["type"], "PERSON");
    h.sandbox.assert_no_violations();
}

#[tokio::test(start_paused = true)]
async fn with_a_paused_clock_the_burst_window_rolls_when_the_test_advances_time() {
    let h = start_with(SandboxConfig { hubspot_burst_per_10s: 3, ..SandboxConfig::default() }).await;
    for _ in 0..3 {
        assert_eq!(status_json(h.hs_get("/crm/v3/owners").await).await.0, 200);
    }
    assert_eq!(status_json(h.hs_get("/crm/v3/owners").await).await.0, 429);
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert_eq!(status_json(h.hs_get("/crm/v3/owners").await).await.0, 429);
    tokio::time::advance(Duration::from_millis(1)).await;
    let resp = h.hs_get("/crm/v3/owners").await;
    assert_eq!(resp.headers()["x-hubspot-ratelimit-remaining"], "2");
    assert_eq!(status_json(resp).await.0, 200);
}

#[tokio::test]
async fn numbers_and_datetimes_compare_as_values_in_search() {
    let h = start().await;
    let prop = json!({"name": "line_points", "label": "Points", "type": "number", "fieldType": "number",
                      "groupName": "contactinformation"});
    assert_eq!(status_json(h.hs_post("/crm/v3/properties/contacts", &prop).await).await.0, 201);
    let seen = json!({"name": "line_last_seen", "label": "Last seen", "type": "datetime", "fieldType": "date",
                      "groupName": "contactinformation"});
    assert_eq!(status_json(h.hs_post("/crm/v3/properties/contacts", &seen).await).await.0, 201);
    for (email, points, when) in [
        ("n9@example.com", "9", "2026-03-01T00:00:00Z"),
        ("n10@example.com", "10", "1774915200000"),
        ("n100@example.com", "100", "2026-04-01T00:00:00Z"),
    ] {
        h.sandbox
            .hubspot()
            .create_contact(&[("email", email), ("line_points", points), ("line_last_seen", when)])
            .expect("seed");
    }
    let search = |filters: Value| {
        let h = &h;
        async move {
            let body = json!({"filterGroups": [{"filters": filters}], "sorts": [{"propertyName": "line_points", "direction": "DESCENDING"}],
                              "properties": ["email", "line_points"]});
            status_json(h.hs_post("/crm/v3/objects/contacts/search", &body).await).await.1
        }
    };
    // As text "9" > "10"; as numbers it is not.
    let gt = search(json!([{"propertyName": "line_points", "operator": "GT", "value": "9"}])).await;
    assert_eq!(gt["total"], 2);
    assert_eq!(gt["results"][0]["properties"]["line_points"], "100");
    let between = search(json!([{"propertyName": "line_last_seen", "operator": "BETWEEN",
                                "value": "2026-03-15T00:00:00Z", "highValue": "1775001600000"}]))
    .await;
    assert_eq!(between["total"], 2);
    let lt = search(json!([{"propertyName": "line_last_seen", "operator": "LT", "value": "2026-03-02T00:00:00.000Z"}]))
        .await;
    assert_eq!(lt["results"][0]["properties"]["email"], "n9@example.com");
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn property_groups_are_created_once_and_read_back() {
    let h = start().await;
    let group = json!({"name": "linehub", "label": "linehub", "displayOrder": 5});
    assert_eq!(status_json(h.hs_post("/crm/v3/properties/contacts/groups", &group).await).await.0, 201);
    let (status, again) = status_json(h.hs_post("/crm/v3/properties/contacts/groups", &group).await).await;
    assert_eq!(status, 409);
    assert_eq!(again["status"], "error");
    let (status, read) = status_json(h.hs_get("/crm/v3/properties/contacts/groups/linehub").await).await;
    assert_eq!((status, &read["label"]), (200, &json!("linehub")));
    let (_, all) = status_json(h.hs_get("/crm/properties/2026-03/contacts/groups").await).await;
    assert_eq!(all["results"].as_array().map(Vec::len), Some(2));
    let (status, _) = status_json(h.hs_get("/crm/v3/properties/contacts/groups/nope").await).await;
    assert_eq!(status, 404);
    let (status, prop) = status_json(h.hs_get("/crm/v3/properties/contacts/email").await).await;
    assert_eq!((status, &prop["type"]), (200, &json!("string")));
    h.sandbox.assert_no_violations();
}
