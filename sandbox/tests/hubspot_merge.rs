//! HubSpot contact merges, and how a merged contact's id and email keep answering afterwards.

mod common;

use common::{Harness, start, status_json};
use reqwest::Method;
use serde_json::{Value, json};

async fn create(h: &Harness, properties: Value) -> String {
    let (status, body) =
        status_json(h.hs_post("/crm/v3/objects/contacts", &json!({ "properties": properties })).await).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_string()
}

async fn merge(h: &Harness, primary: &str, other: &str) -> (u16, Value) {
    let body = json!({"primaryObjectId": primary, "objectIdToMerge": other});
    status_json(h.hs_post("/crm/v3/objects/contacts/merge", &body).await).await
}

#[tokio::test]
async fn a_merge_keeps_the_primary_fills_its_gaps_and_keeps_the_other_email_taken() {
    let h = start().await;
    let primary = create(&h, json!({"email": "ann@example.com", "firstname": "Ann"})).await;
    let other = create(
        &h,
        json!({"email": "ann.sato@example.com", "firstname": "Anne", "lastname": "Sato", "phone": "+81 90"}),
    )
    .await;

    let (status, survivor) = merge(&h, &primary, &other).await;
    assert_eq!(status, 200, "{survivor}");
    assert_eq!(survivor["id"], json!(primary));
    assert_eq!(survivor["properties"]["firstname"], "Ann", "the primary's own values win");
    assert_eq!(survivor["properties"]["lastname"], "Sato", "gaps are filled from the merged contact");
    assert_eq!(survivor["properties"]["email"], "ann@example.com");

    let contacts = h.sandbox.hubspot().contacts();
    assert_eq!(contacts.len(), 1, "one contact is left");
    assert_eq!(contacts[0].properties["hs_additional_emails"], "ann.sato@example.com");
    assert_eq!(contacts[0].properties["hs_merged_object_ids"], other);
    assert_eq!(contacts[0].properties["phone"], "+81 90");
    let merges = h.sandbox.hubspot().merges();
    assert_eq!(merges.len(), 1);
    assert_eq!((merges[0].primary_id.as_str(), merges[0].merged_id.as_str()), (primary.as_str(), other.as_str()));

    // The merged email stays taken, by the survivor.
    let (status, body) = status_json(
        h.hs_post("/crm/v3/objects/contacts", &json!({"properties": {"email": "ann.sato@example.com"}})).await,
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(body["message"], format!("Contact already exists. Existing ID: {primary}"));
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn the_merged_id_and_email_keep_answering_with_the_survivor() {
    let h = start().await;
    let primary = create(&h, json!({"email": "bo@example.com", "firstname": "Bo"})).await;
    let other = create(&h, json!({"email": "bo.old@example.com"})).await;
    assert_eq!(merge(&h, &primary, &other).await.0, 200);

    let (status, body) = status_json(h.hs_get(&format!("/crm/v3/objects/contacts/{other}")).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], json!(primary), "GET by the merged id answers the survivor");

    let (status, body) =
        status_json(h.hs_get("/crm/v3/objects/contacts/bo.old%40example.com?idProperty=email").await).await;
    assert_eq!((status, &body["id"]), (200, &json!(primary)));

    let patch = json!({"properties": {"lastname": "Kato"}});
    let (status, body) =
        status_json(h.hs(Method::PATCH, &format!("/crm/v3/objects/contacts/{other}"), Some(&patch)).await).await;
    assert_eq!((status, &body["id"]), (200, &json!(primary)));
    assert_eq!(h.sandbox.hubspot().contact(&primary).expect("survivor").properties["lastname"], "Kato");

    let read = json!({"inputs": [{"id": other}], "properties": ["lastname"]});
    let (status, body) = status_json(h.hs_post("/crm/v3/objects/contacts/batch/read", &read).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["id"], json!(primary));
    assert_eq!(body["results"][0]["properties"]["lastname"], "Kato");

    let update = json!({"inputs": [{"id": other, "properties": {"phone": "+81 80"}}]});
    let (status, body) = status_json(h.hs_post("/crm/v3/objects/contacts/batch/update", &update).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["id"], json!(primary));
    assert_eq!(h.sandbox.hubspot().contact(&primary).expect("survivor").properties["phone"], "+81 80");
    assert_eq!(h.sandbox.hubspot().contacts().len(), 1);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn merging_a_contact_with_itself_is_400_and_an_unknown_id_404() {
    let h = start().await;
    let a = create(&h, json!({"email": "cy@example.com"})).await;
    let b = create(&h, json!({"email": "cy2@example.com"})).await;
    let (status, body) = merge(&h, &a, &a).await;
    assert_eq!((status, &body["category"]), (400, &json!("VALIDATION_ERROR")), "{body}");
    let (status, _) = merge(&h, &a, "999999").await;
    assert_eq!(status, 404);
    assert_eq!(merge(&h, &a, &b).await.0, 200);
    // b now stands for a: merging them again is merging a contact with itself.
    assert_eq!(merge(&h, &b, &a).await.0, 400);
    assert_eq!(h.sandbox.hubspot().merges().len(), 1);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn tasks_of_the_merged_contact_move_to_the_survivor_and_a_bad_request_is_recorded() {
    let h = start().await;
    let a = create(&h, json!({"email": "di@example.com"})).await;
    let b = create(&h, json!({"email": "di2@example.com"})).await;
    let task = json!({"properties": {"hs_task_subject": "Call", "hs_timestamp": "2026-03-30T12:00:00Z"},
        "associations": [{"to": {"id": b}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}]}]});
    let (status, _) = status_json(h.hs_post("/crm/v3/objects/tasks", &task).await).await;
    assert_eq!(status, 201);
    assert_eq!(merge(&h, &a, &b).await.0, 200);
    assert_eq!(h.sandbox.hubspot().tasks()[0].associations[0].to_id, a);

    let (status, _) =
        status_json(h.hs_post("/crm/v3/objects/contacts/merge", &json!({"primaryObjectId": a})).await).await;
    assert_eq!(status, 400);
    let seen = h.sandbox.take_violations();
    assert!(seen.iter().any(|v| v.details.iter().any(|(at, _)| at == "/objectIdToMerge")), "{seen:?}");
    h.sandbox.assert_no_violations();
}
