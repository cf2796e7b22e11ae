//! The "Push LINE message" workflow action, from HubSpot's signed request to the LINE message,
//! the timeline note and the action's completion, under faults, redeliveries and restarts.

mod common;

use std::time::Duration;

use common::{ACTION_URL, HUBSPOT_CLIENT_SECRET, World, action_body};
use linehub::clock::Clock;
use linehub_sandbox::hubspot_signing;
use linehub_sandbox::{Outage, Service};
use serde_json::{Value, json};

/// A friend of `tokyo` (serial 1) with a contact that has their LINE user id and a first name.
fn linked_friend(w: &World, name: &str) -> (String, String) {
    let (user, contact) = w.friends_with_contacts("tokyo", 1, 1).remove(0);
    w.sandbox.hubspot().update_contact(&contact, &[("firstname", name)]).unwrap();
    (user, contact)
}

/// Asks for a push of `text` to `contact` through `tokyo`, expecting HubSpot to be told BLOCK.
async fn push(w: &World, callback: &str, contact: &str, text: &str) {
    let (status, answer) =
        w.post_signed_action(action_body(callback, contact, json!({ "account": "tokyo", "message_1": text }))).await;
    assert_eq!(status, 200, "{answer}");
    assert!(blocked(&answer), "{answer}");
}

fn blocked(answer: &Value) -> bool {
    answer["outputFields"]["hs_execution_state"] == "BLOCK"
}

fn pushes_to(w: &World, user: &str) -> Vec<linehub_sandbox::SentMessage> {
    w.sandbox.line().sent_messages().into_iter().filter(|m| m.to == [user.to_string()]).collect()
}

fn notes_of(w: &World, contact: &str) -> Vec<linehub_sandbox::Activity> {
    w.sandbox.hubspot().notes().into_iter().filter(|n| n.associations.iter().any(|a| a.to_id == contact)).collect()
}

#[tokio::test]
async fn a_workflow_push_reaches_the_contact_with_tokens_and_is_logged_and_completed() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (user, contact) = linked_friend(&w, "花子");
    let sticker = r#"{"type":"sticker","packageId":"446","stickerId":"1988"}"#;
    let inputs = json!({ "account": "tokyo", "message_1": "こんにちは {{contact.firstname}}さん 👋", "message_2": sticker,
        "notification_disabled": "true" });
    let (status, answer) = w.post_signed_action(action_body("ap-1", &contact, inputs)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(blocked(&answer), "{answer}");
    assert_eq!(answer["outputFields"]["hs_expiration_duration"], "P2D");

    let report = w.daemon.settle().await.unwrap();
    assert_eq!((report.notes, report.completions), (1, 1), "{report:?}");
    let sent = pushes_to(&w, &user);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].delivered_to, std::slice::from_ref(&user));
    assert_eq!(sent[0].messages[0], json!({ "type": "text", "text": "こんにちは 花子さん 👋" }));
    assert_eq!(sent[0].messages[1]["stickerId"], "1988");
    assert!(sent[0].notification_disabled);
    assert!(sent[0].retry_key.is_some(), "every push carries a retry key");

    let done = w.sandbox.hubspot().callback("ap-1").expect("the action was completed");
    assert_eq!(done.output_fields["hs_execution_state"], "SUCCESS");
    assert_eq!(done.output_fields["line_request_id"], sent[0].request_id.as_str());
    assert_eq!(done.attempts, 1);
    let notes = notes_of(&w, &contact);
    assert_eq!(notes.len(), 1, "{notes:#?}");
    let body = &notes[0].properties["hs_note_body"];
    assert!(body.contains("こんにちは 花子さん 👋") && body.contains("[sticker]"), "{body}");
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0);
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_redelivered_request_and_a_restart_before_sending_still_send_once() {
    let mut w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (user, contact) = linked_friend(&w, "Ken");
    let body = action_body("ap-2", &contact, json!({ "account": "tokyo", "message_1": "Hello" }));
    assert!(blocked(&w.post_signed_action(body.clone()).await.1));
    w.restart().await;
    assert!(blocked(&w.post_signed_action(body).await.1));
    w.daemon.settle().await.unwrap();
    w.daemon.settle().await.unwrap();
    assert_eq!(pushes_to(&w, &user).len(), 1);
    assert_eq!(notes_of(&w, &contact).len(), 1);
    assert_eq!(w.sandbox.hubspot().callbacks().len(), 1);
    assert_eq!(w.daemon.store().sends(10).await.unwrap().len(), 1);
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn unsigned_stale_or_tampered_requests_are_refused_before_anything_is_stored() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (_, contact) = linked_friend(&w, "Aiko");
    let body = action_body("ap-3", &contact, json!({ "account": "tokyo", "message_1": "Hi" }));
    let now = w.clock.now_ms();
    let v3 = |secret: &str, uri: &str, ts: i64| hubspot_signing::headers_v3(secret, "POST", uri, &body, ts);

    let refused = [
        ("no signature", Vec::new()),
        ("wrong secret", v3("another-app-secret", ACTION_URL, now)),
        ("six minutes old", v3(HUBSPOT_CLIENT_SECRET, ACTION_URL, now - 6 * 60 * 1000)),
        ("signed for another URL", v3(HUBSPOT_CLIENT_SECRET, "https://linehub.test/elsewhere", now)),
        (
            "v1",
            vec![
                ("X-HubSpot-Signature", hubspot_signing::sign_v2(HUBSPOT_CLIENT_SECRET, "POST", ACTION_URL, &body)),
                ("X-HubSpot-Signature-Version", "v1".to_string()),
            ],
        ),
    ];
    for (what, headers) in refused {
        let (status, answer) = w.post_action(body.clone(), headers).await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| e.contains("signature") || e.contains("Timestamp")),
            "{what}: {answer}"
        );
    }
    let mut tampered = body.clone();
    let at = tampered.len() - 5;
    tampered[at] ^= 1;
    assert_eq!(w.post_action(tampered, v3(HUBSPOT_CLIENT_SECRET, ACTION_URL, now)).await.0, 401, "tampered body");
    assert!(w.daemon.store().sends(10).await.unwrap().is_empty(), "nothing refused is stored");

    // A signed body that is no action request is a 400.
    let (status, _) = w.post_signed_action(b"{\"hello\":1}".to_vec()).await;
    assert_eq!(status, 400);
    assert!(w.daemon.store().sends(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn v2_signatures_are_refused_unless_the_config_allows_them() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (_, contact) = linked_friend(&w, "Aiko");
    let body = action_body("ap-v2", &contact, json!({ "account": "tokyo", "message_1": "Hi" }));
    let v2 = hubspot_signing::headers_v2(HUBSPOT_CLIENT_SECRET, "POST", ACTION_URL, &body);

    // v2 has no timestamp, so a captured request could be replayed forever: off by default.
    let (status, answer) = w.post_action(body.clone(), v2.clone()).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("hubspot.accept_v2_signatures")), "{answer}");
    assert!(w.daemon.store().sends(10).await.unwrap().is_empty(), "nothing refused is stored");

    // An operator who opts in gets v2 accepted, after a reload.
    let text = std::fs::read_to_string(w.config_path()).unwrap();
    let allowed = text.replace("  client_secret:", "  accept_v2_signatures: true\n  client_secret:");
    assert_ne!(allowed, text);
    std::fs::write(w.config_path(), allowed).unwrap();
    w.daemon.reload().await.unwrap_or_else(|e| panic!("{e}"));
    let (status, answer) = w.post_action(body.clone(), v2).await;
    assert_eq!(status, 200, "{answer}");
    assert!(blocked(&answer), "{answer}");
    let wrong = hubspot_signing::headers_v2("another-app-secret", "POST", ACTION_URL, &body);
    assert_eq!(w.post_action(body.clone(), wrong).await.0, 401, "a v2 signature still has to match");
    assert_eq!(w.daemon.store().sends(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn requests_that_cannot_be_sent_fail_the_action_with_the_reason() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (_, contact) = linked_friend(&w, "Mai");
    // Refused at once: nothing stored, the reason in the answer.
    let (status, answer) =
        w.post_signed_action(action_body("ap-4", &contact, json!({ "account": "kyoto", "message_1": "x" }))).await;
    assert_eq!(status, 200);
    assert_eq!(answer["outputFields"]["hs_execution_state"], "FAIL_CONTINUE", "{answer}");
    assert!(answer["outputFields"]["error"].as_str().unwrap().contains("no account `kyoto`"), "{answer}");
    assert!(w.daemon.store().sends(10).await.unwrap().is_empty());

    // Known only when sending: a contact with no LINE user id for the account.
    let stranger = w.sandbox.hubspot().create_contact(&[("email", "stranger@example.com")]).unwrap();
    push(&w, "ap-5", &stranger, "x").await;
    w.daemon.settle().await.unwrap();
    let done = w.sandbox.hubspot().callback("ap-5").expect("completed");
    assert_eq!(done.output_fields["hs_execution_state"], "FAIL_CONTINUE");
    let error = done.output_fields["error"].as_str().unwrap().to_string();
    assert!(error.contains("LINE User ID _1"), "{error}");
    assert!(w.sandbox.line().sent_messages().is_empty());
    assert!(notes_of(&w, &stranger).is_empty(), "nothing was sent, so nothing is logged");
    // An operator sees the failure and why.
    let out = common::linehub().args(["sends", "--config"]).arg(w.config_path()).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && listed.contains("failed") && listed.contains("LINE User ID _1"), "{listed}");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn line_500s_are_retried_with_the_same_retry_key_and_a_409_counts_as_sent() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (user, contact) = linked_friend(&w, "Yui");
    push(&w, "ap-6", &contact, "Hi").await;
    // Two plain 500s, then a push that LINE takes but whose answer is lost.
    w.sandbox.faults().outage(Service::Line, Outage::Requests(2));
    let sent = w.daemon.send_pending().await.unwrap();
    assert_eq!(sent.postponed, 1);
    for _ in 0..4 {
        w.clock.advance(Duration::from_secs(10));
        if w.sandbox.line().sent_messages().is_empty() {
            w.sandbox.faults().lose_responses_of(Service::Line, "pushMessage", 1);
        }
        w.daemon.settle().await.unwrap();
    }
    let pushes = pushes_to(&w, &user);
    assert_eq!(pushes.len(), 1, "delivered once: {pushes:#?}");
    let sends = w.daemon.store().sends(10).await.unwrap();
    assert_eq!(sends[0].state, "sent", "{sends:?}");
    assert!(sends[0].attempts >= 4, "two 500s, a lost answer, then the 409: {sends:?}");
    let done = w.sandbox.hubspot().callback("ap-6").expect("completed");
    assert_eq!(done.output_fields["hs_execution_state"], "SUCCESS");
    assert_eq!(done.output_fields["line_request_id"], pushes[0].request_id.as_str());
    assert_eq!(notes_of(&w, &contact).len(), 1);
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn lost_hubspot_answers_never_make_a_second_note_or_completion() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (_, contact) = linked_friend(&w, "Sora");
    push(&w, "ap-7", &contact, "Hi").await;
    w.sandbox.faults().lose_responses_of(Service::HubSpot, "batchCreateNotes", 1);
    w.sandbox.faults().lose_responses_of(Service::HubSpot, "completeCallbacks", 1);
    for _ in 0..6 {
        w.daemon.settle().await.unwrap();
        w.clock.advance(Duration::from_secs(60));
    }
    assert_eq!(notes_of(&w, &contact).len(), 1, "the note whose answer was lost is adopted");
    let done = w.sandbox.hubspot().callback("ap-7").expect("completed");
    assert_eq!(done.output_fields["hs_execution_state"], "SUCCESS");
    assert_eq!(done.attempts, 2, "the retry was refused as a repeat, and counted as done");
    let outbox = w.daemon.store().outbox_len().await.unwrap();
    assert_eq!(outbox, 0, "nothing left or dead-lettered");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_hubspot_outage_holds_the_send_until_the_contact_can_be_read() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (user, contact) = linked_friend(&w, "Ren");
    push(&w, "ap-8", &contact, "Hi").await;
    w.sandbox.faults().outage(Service::HubSpot, Outage::Requests(u32::MAX));
    for _ in 0..10 {
        w.daemon.settle().await.unwrap();
        w.clock.advance(Duration::from_secs(60));
    }
    assert!(pushes_to(&w, &user).is_empty(), "the recipient is unknown while HubSpot is down");
    w.sandbox.faults().clear(Service::HubSpot);
    for _ in 0..6 {
        w.clock.advance(Duration::from_secs(60));
        w.daemon.settle().await.unwrap();
    }
    assert_eq!(pushes_to(&w, &user).len(), 1);
    assert_eq!(w.sandbox.hubspot().callback("ap-8").expect("completed").output_fields["hs_execution_state"], "SUCCESS");
    assert_eq!(notes_of(&w, &contact).len(), 1);
}

#[tokio::test]
async fn a_workflow_enrolling_many_contacts_shares_hubspot_calls() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let friends = w.friends_with_contacts("tokyo", 1, 150);
    for (i, (_, contact)) in friends.iter().enumerate() {
        let inputs = json!({ "account": "tokyo", "message_1": "Sale starts today, {{contact.email}}" });
        assert!(blocked(&w.post_signed_action(action_body(&format!("ap-many-{i}"), contact, inputs)).await.1));
    }
    w.sandbox.hubspot().reset_stats();
    let report = w.daemon.settle().await.unwrap();
    assert_eq!((report.notes, report.completions), (150, 150), "{report:?}");
    for (user, _) in &friends {
        assert_eq!(pushes_to(&w, user).len(), 1);
    }
    let stats = w.sandbox.hubspot().stats();
    // 150 contacts read in 2 batches, 150 notes in 2, 150 completions in 2.
    assert!(stats.requests <= 6, "{} HubSpot requests: {:?}", stats.requests, stats.by_endpoint);
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn without_a_client_secret_the_action_is_off_and_a_reload_turns_it_on() {
    let w = World::new().await;
    let with_secret = std::fs::read_to_string(w.config_path()).unwrap();
    let without: String =
        with_secret.lines().filter(|l| !l.contains("client_secret")).map(|l| format!("{l}\n")).collect();
    std::fs::write(w.config_path(), &without).unwrap();
    w.daemon.reload().await.unwrap_or_else(|e| panic!("{e}"));
    let body = action_body("ap-off", "501", json!({ "account": "tokyo", "message_1": "x" }));
    let (status, answer) = w.post_signed_action(body.clone()).await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("hubspot.client_secret"), "{answer}");
    std::fs::write(w.config_path(), &with_secret).unwrap();
    w.daemon.reload().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.post_signed_action(body).await.0, 200);
}

/// The outbox rows an operator sees as dead (`linehub outbox list`).
fn dead_letters(w: &World) -> Vec<linehub::store::OutboxRow> {
    w.daemon.store().outbox_list_blocking(true).unwrap()
}

#[tokio::test]
async fn a_completion_refused_for_an_expired_callback_is_dead_lettered_not_counted_as_done() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (user, contact) = linked_friend(&w, "Rin");
    push(&w, "ap-expired", &contact, "Hi").await;
    w.sandbox.hubspot().expire_callback("ap-expired");
    for _ in 0..8 {
        w.daemon.settle().await.unwrap();
        w.clock.advance(Duration::from_secs(600));
    }
    assert_eq!(pushes_to(&w, &user).len(), 1);
    assert!(w.sandbox.hubspot().callback("ap-expired").is_none());
    let dead = dead_letters(&w);
    assert_eq!(dead.len(), 1, "the refused completion is where an operator sees it: {dead:#?}");
    assert!(
        matches!(&dead[0].op, linehub::store::Op::CompleteAction { callback_id, .. } if callback_id == "ap-expired")
    );
    assert!(dead[0].last_error.as_deref().is_some_and(|e| e.contains("expired")), "{dead:#?}");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_message_that_names_another_send_or_fills_the_note_is_still_logged_once() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (_, contact) = linked_friend(&w, "linehub send #98");
    // The user's text and a filled-in token both look like another send's marker.
    push(&w, "ap-marker", &contact, "About linehub send #99, {{contact.firstname}}").await;
    // Five long messages of quotes: far longer than a note once escaped.
    let quotes = "\"".repeat(4000);
    let inputs: serde_json::Map<String, Value> =
        (1..=5).map(|i| (format!("message_{i}"), json!(quotes))).chain([("account".into(), json!("tokyo"))]).collect();
    let (_, other) = w.friends_with_contacts("tokyo", 1, 1).remove(0);
    let (status, answer) = w.post_signed_action(action_body("ap-long", &other, Value::Object(inputs))).await;
    assert_eq!(status, 200, "{answer}");
    for _ in 0..6 {
        w.daemon.settle().await.unwrap();
        w.clock.advance(Duration::from_secs(600));
    }
    for c in [&contact, &other] {
        let notes = notes_of(&w, c);
        assert_eq!(notes.len(), 1, "one note per send: {notes:#?}");
        let body = &notes[0].properties["hs_note_body"];
        assert!(body.chars().count() <= 65_536, "HubSpot's limit: {} characters", body.chars().count());
    }
    assert!(dead_letters(&w).is_empty(), "{:#?}", dead_letters(&w));
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0);
    let sends = w.daemon.store().sends(10).await.unwrap();
    assert!(sends.iter().all(|s| s.state == "sent"), "{sends:?}");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_push_still_unsent_23_hours_after_its_first_attempt_fails_and_is_never_sent() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (user, contact) = linked_friend(&w, "Mio");
    push(&w, "ap-23h", &contact, "Hi").await;
    // LINE is down for a day: every attempt fails, and LINE forgets a retry key after 24 hours.
    w.sandbox.faults().outage(Service::Line, Outage::Requests(u32::MAX));
    assert_eq!(w.daemon.send_pending().await.unwrap().postponed, 1);
    for _ in 0..22 {
        w.clock.advance(Duration::from_secs(3600));
        w.daemon.settle().await.unwrap();
    }
    let sends = w.daemon.store().sends(10).await.unwrap();
    assert_ne!(sends[0].state, "failed", "still retried before 23 hours: {sends:?}");
    // LINE is back, but the first attempt is now more than 23 hours old.
    w.clock.advance(Duration::from_secs(3600 + 60));
    w.sandbox.faults().clear(Service::Line);
    w.daemon.settle().await.unwrap();
    w.daemon.settle().await.unwrap();

    assert!(pushes_to(&w, &user).is_empty(), "sent after its retry key expired");
    let sends = w.daemon.store().sends(10).await.unwrap();
    assert_eq!(sends[0].state, "failed", "{sends:?}");
    let done = w.sandbox.hubspot().callback("ap-23h").expect("completed");
    assert_eq!(done.output_fields["hs_execution_state"], "FAIL_CONTINUE");
    let error = done.output_fields["error"].as_str().unwrap_or_default();
    assert!(error.contains("retry key has expired"), "{error}");
    assert!(notes_of(&w, &contact).is_empty(), "nothing was sent, so nothing is logged");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn an_unknown_or_expired_callback_does_not_sink_the_completions_batched_with_it() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let friends = w.friends_with_contacts("tokyo", 1, 4);
    let callbacks = ["ap-batch-ok-1", "ap-batch-unknown", "ap-batch-ok-2", "ap-batch-expired"];
    for ((_, contact), callback) in friends.iter().zip(callbacks) {
        push(&w, callback, contact, "Hi").await;
    }
    // HubSpot refuses a whole completion batch for one bad callback: 404 for one it no longer
    // knows, 400 for one that expired.
    w.sandbox.hubspot().forget_callback("ap-batch-unknown");
    w.sandbox.hubspot().expire_callback("ap-batch-expired");
    for _ in 0..8 {
        w.daemon.settle().await.unwrap();
        w.clock.advance(Duration::from_secs(600));
    }
    for ok in ["ap-batch-ok-1", "ap-batch-ok-2"] {
        let done = w.sandbox.hubspot().callback(ok).unwrap_or_else(|| panic!("{ok} was not completed"));
        assert_eq!(done.output_fields["hs_execution_state"], "SUCCESS");
    }
    let dead = dead_letters(&w);
    let refused: Vec<(String, String)> = dead
        .iter()
        .filter_map(|r| match &r.op {
            linehub::store::Op::CompleteAction { callback_id, .. } => {
                Some((callback_id.clone(), r.last_error.clone().unwrap_or_default()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 2, "only the two bad callbacks are dead-lettered: {dead:#?}");
    assert!(refused.iter().any(|(id, e)| id == "ap-batch-unknown" && e.contains("not found")), "{refused:?}");
    assert!(refused.iter().any(|(id, e)| id == "ap-batch-expired" && e.contains("expired")), "{refused:?}");
    assert_eq!(dead.len(), 2, "{dead:#?}");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_push_not_sent_before_hubspot_stops_waiting_fails_in_time_for_its_completion() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (user, contact) = linked_friend(&w, "Sora");
    push(&w, "ap-late", &contact, "Hi").await;
    // HubSpot cannot be read for 30 hours, so the push is not even tried...
    w.sandbox.faults().outage(Service::HubSpot, Outage::Requests(u32::MAX));
    for _ in 0..30 {
        w.clock.advance(Duration::from_secs(3600));
        w.daemon.settle().await.unwrap();
    }
    // ...then LINE is down: the push is tried, and fails, for hours.
    w.sandbox.faults().clear(Service::HubSpot);
    w.sandbox.faults().outage(Service::Line, Outage::Requests(u32::MAX));
    for _ in 0..16 {
        w.clock.advance(Duration::from_secs(3600));
        w.daemon.settle().await.unwrap();
    }
    let sends = w.daemon.store().sends(10).await.unwrap();
    assert_eq!(sends[0].state, "pending", "46 hours in, still tried: {sends:?}");
    // 47 hours after the workflow asked, it gives up, while HubSpot still waits (two days).
    w.clock.advance(Duration::from_secs(3600 + 60));
    w.daemon.settle().await.unwrap();
    w.sandbox.faults().clear(Service::Line);
    w.daemon.settle().await.unwrap();
    assert!(pushes_to(&w, &user).is_empty());
    let sends = w.daemon.store().sends(10).await.unwrap();
    assert_eq!(sends[0].state, "failed", "{sends:?}");
    let done = w.sandbox.hubspot().callback("ap-late").expect("completed before HubSpot stopped waiting");
    assert_eq!(done.output_fields["hs_execution_state"], "FAIL_CONTINUE");
    assert!(done.output_fields["error"].as_str().unwrap_or_default().contains("47 hours"), "{done:?}");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_note_for_a_contact_deleted_meanwhile_fails_alone_and_the_others_are_made_in_the_same_call() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let friends = w.friends_with_contacts("tokyo", 1, 3);
    for (i, (_, contact)) in friends.iter().enumerate() {
        push(&w, &format!("ap-note-{i}"), contact, "Hi").await;
    }
    assert_eq!(w.daemon.send_pending().await.unwrap().sent, 3);
    // The pushes went out; then someone deletes one of the contacts before the notes are made.
    let gone = &friends[1].1;
    w.sandbox.hubspot().delete_contact(gone).unwrap();
    w.sandbox.hubspot().reset_stats();
    let report = w.daemon.drain_outbox().await.unwrap();
    assert_eq!(report.notes, 2, "{report:?}");
    let stats = w.sandbox.hubspot().stats();
    let note_creates: u64 =
        stats.by_endpoint.iter().filter(|(k, _)| k.contains("/notes/batch/create")).map(|(_, v)| v).sum();
    assert_eq!(note_creates, 1, "HubSpot reported the bad member by its trace id: {:?}", stats.by_endpoint);
    for (i, (_, contact)) in friends.iter().enumerate() {
        let expected = usize::from(i != 1);
        assert_eq!(notes_of(&w, contact).len(), expected, "notes of friend {i}");
    }
    for _ in 0..6 {
        w.clock.advance(Duration::from_secs(600));
        w.daemon.settle().await.unwrap();
    }
    for i in 0..3 {
        assert!(w.sandbox.hubspot().callback(&format!("ap-note-{i}")).is_some(), "ap-note-{i} was completed");
    }
    let dead = dead_letters(&w);
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert!(matches!(&dead[0].op, linehub::store::Op::SendNote { contact_id, .. } if contact_id == gone), "{dead:#?}");
    assert!(dead[0].last_error.as_deref().is_some_and(|e| e.contains(gone.as_str())), "its own error: {dead:#?}");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn the_recipient_may_come_from_a_contact_property_the_workflow_picks() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    // A LINE id collected by a form into a property of its own; LINE User ID _1 is empty.
    let user = linehub_sandbox::webhook::random_user_id();
    w.friend("tokyo", &user, "Aoi");
    w.create_text_property("line_id_from_form").await;
    let contact =
        w.sandbox.hubspot().create_contact(&[("email", "aoi@example.com"), ("line_id_from_form", &user)]).unwrap();
    // HubSpot sends the picked property's value as the input.
    let inputs = json!({ "account": "tokyo", "line_user_id": user, "message_1": "Hello" });
    let (status, answer) = w.post_signed_action(action_body("ap-pick", &contact, inputs)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(blocked(&answer), "{answer}");
    w.daemon.settle().await.unwrap();
    assert_eq!(pushes_to(&w, &user).len(), 1);
    assert_eq!(w.sandbox.hubspot().callback("ap-pick").unwrap().output_fields["hs_execution_state"], "SUCCESS");

    // A value that is not a LINE user id fails the action at once, with the reason.
    let inputs = json!({ "account": "tokyo", "line_user_id": "aoi@example.com", "message_1": "Hello" });
    let (status, answer) = w.post_signed_action(action_body("ap-bad-pick", &contact, inputs)).await;
    assert_eq!(status, 200);
    assert_eq!(answer["outputFields"]["hs_execution_state"], "FAIL_CONTINUE", "{answer}");
    assert!(answer["outputFields"]["error"].as_str().unwrap().contains("is not a LINE user id"), "{answer}");
    assert_eq!(w.daemon.store().sends(10).await.unwrap().len(), 1, "the bad request stored nothing");
    w.sandbox.assert_no_violations();
}
