//! LINE events become HubSpot contact state: signed webhooks in, sandbox HubSpot state out.

mod common;

use std::time::Duration;

use common::World;
use linehub::clock::Clock;
use linehub::store::Requested;
use linehub_sandbox::webhook as line;
use linehub_sandbox::{OwnerSpec, Service, faults::Outage};

const T0: i64 = 1_764_000_000_000; // 2025-11-24T16:00:00Z

#[tokio::test]
async fn a_follow_creates_a_contact_with_profile_and_the_properties_exist() {
    let w = World::new().await;
    let user = line::random_user_id();
    w.friend("tokyo", &user, "Sato Hanako");
    assert_eq!(w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await, 200);
    w.daemon.settle().await.unwrap();

    let c = w.contact("line_user_id_1", &user);
    let p = &c.properties;
    assert_eq!(p["email"], format!("{}@line.linehub.invalid", user.to_lowercase()));
    assert_eq!(p["line_user_name_1"], "Sato Hanako");
    assert_eq!(p["line_user_picture_1"], format!("https://profile.line-scdn.net/{user}"));
    assert_eq!(p["line_follow_1"], "Yes");
    assert_eq!(p["line_id_sync_date_1"], "2025-11-24");
    for (name, label) in [
        ("line_user_id_2", "LINE User ID _2"),
        ("line_follow_1", "LINE Follow _1"),
        ("line_last_response_2", "LINE Last Response _2"),
    ] {
        let info = w.sandbox.hubspot().contact_property(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(info.label, label);
        assert_eq!(info.group_name, "line");
    }
    let follow = w.sandbox.hubspot().contact_property("line_follow_1").unwrap();
    assert_eq!(follow.kind, "enumeration");
    assert_eq!(w.sandbox.hubspot().contact_property("line_id_sync_date_1").unwrap().kind, "date");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_follow_from_someone_without_a_profile_still_yields_a_contact() {
    let w = World::new().await;
    let user = line::random_user_id(); // never added as a friend: profile 404
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    w.daemon.settle().await.unwrap();
    let c = w.contact("line_user_id_1", &user);
    assert!(!c.properties.contains_key("line_user_name_1") || c.properties["line_user_name_1"].is_empty());
    assert_eq!(c.properties["line_follow_1"], "Yes");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn unfollow_sets_follow_no_and_deletes_nothing() {
    let w = World::new().await;
    let user = line::random_user_id();
    w.friend("tokyo", &user, "Ito");
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    w.daemon.settle().await.unwrap();
    w.deliver("tokyo", vec![line::unfollow(&user, T0 + 1000)]).await;
    w.daemon.settle().await.unwrap();
    let c = w.contact("line_user_id_1", &user);
    assert_eq!(c.properties["line_follow_1"], "No");
    assert_eq!(c.properties["line_user_name_1"], "Ito");
    // An unblock is a follow again.
    w.deliver("tokyo", vec![line::follow(&user, T0 + 2000, true)]).await;
    w.daemon.settle().await.unwrap();
    assert_eq!(w.contact("line_user_id_1", &user).properties["line_follow_1"], "Yes");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_message_marks_unanswered_and_gives_the_owner_one_open_task() {
    let w = World::new().await;
    let user = line::random_user_id();
    w.friend("tokyo", &user, "Tanaka");
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    w.daemon.settle().await.unwrap();
    let (contact, owner) = give_an_owner(&w, &user);

    w.deliver("tokyo", vec![line::text_message(&user, T0 + 10, "予約できますか？")]).await;
    w.deliver("tokyo", vec![line::sticker_message(&user, T0 + 20, "446", "1988")]).await;
    w.daemon.settle().await.unwrap();
    let c = w.contact("line_user_id_1", &user);
    assert_eq!(c.properties["line_unanswered_1"], "Yes");
    assert_eq!(c.properties["line_last_response_1"], "[sticker packageId=446 stickerId=1988]");
    let tasks = w.sandbox.hubspot().tasks();
    assert_eq!(tasks.len(), 1, "one open task, not one per message: {tasks:#?}");
    assert_eq!(tasks[0].properties["hubspot_owner_id"], owner);
    assert_eq!(tasks[0].associations[0].to_id, contact.id);

    // Another message while the task is open: still one task.
    w.deliver("tokyo", vec![line::text_message(&user, T0 + 30, "もしもし")]).await;
    w.daemon.settle().await.unwrap();
    assert_eq!(w.sandbox.hubspot().tasks().len(), 1);

    // Once the owner completes it, the next message opens a new one.
    let task_id = w.sandbox.hubspot().tasks()[0].id.clone();
    complete_task(&w, &task_id).await;
    w.deliver("tokyo", vec![line::text_message(&user, T0 + 40, "まだですか")]).await;
    w.daemon.settle().await.unwrap();
    assert_eq!(w.sandbox.hubspot().tasks().len(), 2);
    w.sandbox.assert_no_violations();
}

/// Gives the contact of `user` (account `tokyo`) an owner, as a rep taking it would; returns the
/// contact and the owner's id.
fn give_an_owner(w: &World, user: &str) -> (linehub_sandbox::Contact, String) {
    let owner = w.sandbox.hubspot().add_owner(OwnerSpec {
        email: "rep@example.com".into(),
        first_name: "Rep".into(),
        last_name: "One".into(),
    });
    let contact = w.contact("line_user_id_1", user);
    w.sandbox.hubspot().update_contact(&contact.id, &[("hubspot_owner_id", &owner)]).unwrap();
    (contact, owner)
}

/// Completes a task the way an owner's click does: through HubSpot's API.
async fn complete_task(w: &World, task_id: &str) {
    let res = w
        .http
        .patch(format!("{}/crm/v3/objects/tasks/{task_id}", w.sandbox.base_url()))
        .bearer_auth("sandbox-hubspot-token")
        .json(&serde_json::json!({ "properties": { "hs_task_status": "COMPLETED" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

#[tokio::test]
async fn a_contact_without_an_owner_gets_no_task_and_no_error() {
    let w = World::new().await;
    let user = line::random_user_id();
    w.deliver("tokyo", vec![line::text_message(&user, T0, "hello")]).await;
    let report = w.daemon.settle().await.unwrap();
    assert_eq!(report.dead, 0);
    assert!(w.sandbox.hubspot().tasks().is_empty());
    assert_eq!(w.contact("line_user_id_1", &user).properties["line_last_response_1"], "hello");
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0);
}

#[tokio::test]
async fn a_redelivered_event_changes_nothing() {
    let w = World::new().await;
    let user = line::random_user_id();
    let event = line::text_message(&user, T0, "once");
    assert_eq!(w.deliver("tokyo", vec![event.clone()]).await, 200);
    w.daemon.settle().await.unwrap();
    let requests = w.sandbox.hubspot().stats().requests;
    // The redelivery is taken (200) and recognised as the same event, not refused.
    assert_eq!(w.deliver("tokyo", vec![line::redelivered(event)]).await, 200);
    assert_eq!(w.daemon.store().inbox_len().await.unwrap(), 1);
    let report = w.daemon.settle().await.unwrap();
    assert_eq!(report.rows_done, 0);
    // Only the property check of `settle` ran again; no contact write.
    let after = w.sandbox.hubspot().stats();
    assert!(after.requests - requests <= 2, "{:?}", after.by_endpoint);
    assert_eq!(w.sandbox.hubspot().contacts().len(), 1);
}

#[tokio::test]
async fn late_older_events_never_overwrite_newer_state() {
    let w = World::new().await;
    let user = line::random_user_id();
    // Arrival order differs from event order: the unblock-follow (t+300) arrives first, the
    // block (t+200) and an old message (t+100) later.
    w.deliver("tokyo", vec![line::follow(&user, T0 + 300, true), line::text_message(&user, T0 + 400, "newest")]).await;
    w.daemon.settle().await.unwrap();
    w.deliver("tokyo", vec![line::unfollow(&user, T0 + 200), line::text_message(&user, T0 + 100, "oldest")]).await;
    w.daemon.settle().await.unwrap();
    let c = w.contact("line_user_id_1", &user);
    assert_eq!(c.properties["line_follow_1"], "Yes");
    assert_eq!(c.properties["line_last_response_1"], "newest");
    // Within one delivery, events are applied in timestamp order whatever their position.
    let other = line::random_user_id();
    w.deliver("tokyo", vec![line::unfollow(&other, T0 + 20), line::follow(&other, T0 + 10, false)]).await;
    w.daemon.settle().await.unwrap();
    assert_eq!(w.contact("line_user_id_1", &other).properties["line_follow_1"], "No");
}

#[tokio::test]
async fn two_accounts_of_one_person_fill_one_contact() {
    let w = World::new().await;
    let user = line::random_user_id(); // one provider: the same user id on both accounts
    w.friend("tokyo", &user, "Kobayashi");
    w.friend("osaka", &user, "Kobayashi");
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    w.deliver("osaka", vec![line::follow(&user, T0 + 5, false), line::text_message(&user, T0 + 6, "大阪から")]).await;
    w.daemon.settle().await.unwrap();
    let c = w.contact("line_user_id_1", &user);
    assert_eq!(c.properties["line_user_id_2"], user);
    assert_eq!(c.properties["line_follow_1"], "Yes");
    assert_eq!(c.properties["line_follow_2"], "Yes");
    assert_eq!(c.properties["line_last_response_2"], "大阪から");
    assert!(!c.properties.contains_key("line_last_response_1") || c.properties["line_last_response_1"].is_empty());
    assert_eq!(w.sandbox.hubspot().contacts().len(), 1);
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn many_events_of_one_contact_coalesce_into_few_writes() {
    let w = World::new().await;
    let users: Vec<String> = (0..150).map(|_| line::random_user_id()).collect();
    for (i, u) in users.iter().enumerate() {
        let ts = T0 + i as i64 * 10;
        w.deliver(
            "tokyo",
            vec![line::follow(u, ts, false), line::text_message(u, ts + 1, "a"), line::text_message(u, ts + 2, "b")],
        )
        .await;
    }
    w.daemon.ensure_properties().await.unwrap();
    w.sandbox.hubspot().reset_stats();
    w.daemon.settle().await.unwrap();
    let stats = w.sandbox.hubspot().stats();
    let creates = stats.by_endpoint.iter().filter(|(k, _)| k.contains("batch/create")).map(|(_, v)| v).sum::<u64>();
    // 450 events over 150 users: two batch creates (100 + 50), no per-event calls.
    assert_eq!(creates, 2, "{:?}", stats.by_endpoint);
    assert_eq!(w.sandbox.hubspot().contacts().len(), 150);
    for u in &users {
        assert_eq!(w.contact("line_user_id_1", u).properties["line_last_response_1"], "b");
    }
}

#[tokio::test]
async fn a_long_hubspot_outage_ends_with_everything_applied_once() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let users: Vec<String> = (0..30).map(|_| line::random_user_id()).collect();
    for (i, u) in users.iter().enumerate() {
        w.deliver(
            "tokyo",
            vec![line::follow(u, T0 + i as i64, false), line::text_message(u, T0 + i as i64 + 1, "hello")],
        )
        .await;
    }
    // HubSpot answers 503 for fifteen simulated minutes.
    w.sandbox.faults().outage(Service::HubSpot, Outage::Requests(u32::MAX));
    w.sandbox.hubspot().reset_stats();
    let start = w.clock.now_ms();
    let outage = Duration::from_secs(15 * 60);
    let mut drained_at = None;
    for _ in 0..(40 * 60 / 5) {
        w.daemon.settle().await.unwrap();
        let elapsed = Duration::from_millis((w.clock.now_ms() - start) as u64);
        if elapsed >= outage {
            w.sandbox.faults().clear(Service::HubSpot);
        }
        if w.daemon.store().outbox_len().await.unwrap() == 0 {
            drained_at = Some(elapsed);
            break;
        }
        w.clock.advance(Duration::from_secs(5));
    }
    let drained_at = drained_at.expect("not drained 40 simulated minutes after the outage began");
    assert!(drained_at >= outage, "drained during the outage?");
    // Backoff is capped at 5 minutes, so the writer notices the end of the outage within that.
    assert!(drained_at <= outage + Duration::from_secs(5 * 60 + 10), "took {drained_at:?}");
    // And it did not hammer HubSpot while it was down.
    let failed_calls = w.sandbox.hubspot().stats().requests;
    assert!(failed_calls < 40, "{failed_calls} requests during and after the outage");
    assert_eq!(w.sandbox.hubspot().contacts().len(), 30);
    for u in &users {
        let c = w.contact("line_user_id_1", u);
        assert_eq!(c.properties["line_last_response_1"], "hello");
    }
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_429_storm_pauses_the_writer_and_nothing_is_lost() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    w.sandbox.faults().rate_limit_storm(Service::HubSpot, 5);
    let user = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    let first = w.daemon.settle().await.unwrap();
    assert!(first.retried > 0 && first.rows_done == 0, "{first:?}");
    for _ in 0..20 {
        w.clock.advance(Duration::from_secs(2));
        w.daemon.settle().await.unwrap();
    }
    assert_eq!(w.contact("line_user_id_1", &user).properties["line_follow_1"], "Yes");
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0);
    assert!(w.sandbox.hubspot().stats().rate_limited >= 1);
}

#[tokio::test]
async fn a_restart_with_a_full_outbox_applies_everything_once() {
    let mut w = World::new().await;
    let users: Vec<String> = (0..20).map(|_| line::random_user_id()).collect();
    for (i, u) in users.iter().enumerate() {
        w.deliver("tokyo", vec![line::text_message(u, T0 + i as i64, "before the restart")]).await;
    }
    w.daemon.apply_inbox().await.unwrap();
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 40); // a contact write and a task each
    assert!(w.sandbox.hubspot().contacts().is_empty());
    w.restart().await;
    w.daemon.settle().await.unwrap();
    assert_eq!(w.sandbox.hubspot().contacts().len(), 20);
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0);
}

#[tokio::test]
async fn an_existing_contact_with_the_same_email_is_updated_not_duplicated() {
    let w = World::new().await;
    let user = line::random_user_id();
    let known = line::random_user_id();
    // Someone created a contact for `user` by hand; the batch with it gets a 207 for that member.
    let email = format!("{}@line.linehub.invalid", user.to_lowercase());
    let id = w.sandbox.hubspot().create_contact(&[("email", &email), ("firstname", "Manual")]).unwrap();
    w.deliver("tokyo", vec![line::follow(&user, T0, false), line::follow(&known, T0 + 1, false)]).await;
    w.daemon.settle().await.unwrap();
    let c = w.contact("line_user_id_1", &user);
    assert_eq!(c.id, id);
    assert_eq!(c.properties["firstname"], "Manual");
    assert_eq!(w.sandbox.hubspot().contacts().len(), 2);
    w.contact("line_user_id_1", &known);
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_contact_deleted_in_hubspot_is_recreated_by_the_next_event() {
    let w = World::new().await;
    let user = line::random_user_id();
    let other = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&user, T0, false), line::follow(&other, T0, false)]).await;
    w.daemon.settle().await.unwrap();
    let first = w.contact("line_user_id_1", &user);
    w.sandbox.hubspot().delete_contact(&first.id).unwrap();
    // One batch update holds the deleted contact and a live one: 207, the live one is applied.
    w.deliver(
        "tokyo",
        vec![line::text_message(&user, T0 + 10, "I am back"), line::text_message(&other, T0 + 10, "hi")],
    )
    .await;
    w.daemon.settle().await.unwrap();
    let again = w.contact("line_user_id_1", &user);
    assert_ne!(again.id, first.id);
    assert_eq!(again.properties["line_last_response_1"], "I am back");
    assert_eq!(w.contact("line_user_id_1", &other).properties["line_last_response_1"], "hi");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_contact_deleted_in_hubspot_comes_back_whole() {
    let w = World::new().await;
    let user = line::random_user_id();
    w.friend("tokyo", &user, "Sato Hanako");
    w.friend("osaka", &user, "Sato Hanako");
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    w.deliver("osaka", vec![line::follow(&user, T0 + 1, false)]).await;
    w.daemon.settle().await.unwrap();
    let first = w.contact("line_user_id_1", &user);
    w.sandbox.hubspot().delete_contact(&first.id).unwrap();
    // Only a message to one account: the recreated contact still gets everything linehub knows.
    w.deliver("tokyo", vec![line::text_message(&user, T0 + 10, "I am back")]).await;
    w.daemon.settle().await.unwrap();
    let again = w.contact("line_user_id_1", &user);
    assert_ne!(again.id, first.id);
    let p = &again.properties;
    for n in [1, 2] {
        assert_eq!(p[&format!("line_user_id_{n}")], user, "{p:#?}");
        assert_eq!(p[&format!("line_user_name_{n}")], "Sato Hanako", "{p:#?}");
        assert_eq!(p[&format!("line_user_picture_{n}")], format!("https://profile.line-scdn.net/{user}"));
        assert_eq!(p[&format!("line_follow_{n}")], "Yes");
        assert_eq!(p[&format!("line_id_sync_date_{n}")], "2025-11-24");
    }
    assert_eq!(p["line_last_response_1"], "I am back");
    assert_eq!(p["line_unanswered_1"], "Yes");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn events_without_a_user_and_group_events_are_kept_and_skipped() {
    let w = World::new().await;
    let mut anonymous = line::follow(&line::random_user_id(), T0, false);
    anonymous["source"].as_object_mut().unwrap().remove("userId");
    let id = anonymous["webhookEventId"].as_str().unwrap().to_string();
    assert_eq!(w.deliver("tokyo", vec![anonymous]).await, 200);
    w.daemon.settle().await.unwrap();
    let row = w.daemon.store().inbox_get(&id).await.unwrap().unwrap();
    assert_eq!(row.state, "skipped");
    assert!(row.note.unwrap().contains("userId"));
    assert!(w.sandbox.hubspot().contacts().is_empty());
}

/// Runs `linehub outbox ARGS --config` on the world's store.
fn outbox_cli(w: &World, args: &[&str]) -> String {
    let config = common::ConfigFile::standard(w.dir.path(), &w.sandbox.base_url()).write();
    let out = common::linehub().arg("outbox").args(args).arg("--config").arg(config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_write_hubspot_keeps_refusing_is_dead_lettered_until_an_operator_retries_it() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    // An admin renames the options of `LINE Follow _1`: linehub's "Yes" is now refused.
    w.sandbox.hubspot().set_property_options("line_follow_1", &["はい", "いいえ"]).unwrap();
    let blocked = line::random_user_id();
    let fine = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&blocked, T0, false)]).await;
    w.deliver("osaka", vec![line::follow(&fine, T0 + 1, false)]).await;
    let mut dead = 0;
    for _ in 0..6 {
        dead += w.daemon.settle().await.unwrap().dead;
        w.clock.advance(Duration::from_secs(600));
    }
    assert_eq!(dead, 1, "the refused write is dead-lettered once");
    // The batch was split: the other contact went through.
    assert_eq!(w.contact("line_user_id_2", &fine).properties["line_follow_2"], "Yes");
    assert!(w.sandbox.hubspot().find_by_property("line_user_id_1", &blocked).is_empty());

    let listed = outbox_cli(&w, &["list"]);
    assert!(listed.contains("dead") && listed.contains(&format!("contact:{blocked}")), "{listed}");
    assert!(listed.contains("INVALID_OPTION") || listed.contains("allowed options"), "{listed}");

    // The admin puts the options back; the operator retries; the write lands.
    w.sandbox.hubspot().set_property_options("line_follow_1", &["Yes", "No"]).unwrap();
    assert!(outbox_cli(&w, &["retry"]).contains("1 write(s) queued again"));
    w.clock.advance(Duration::from_secs(1));
    w.daemon.settle().await.unwrap();
    assert_eq!(w.contact("line_user_id_1", &blocked).properties["line_follow_1"], "Yes");
    assert!(outbox_cli(&w, &["list"]).contains("no dead-lettered writes"));
}

#[tokio::test]
async fn a_property_deleted_in_hubspot_is_created_again_and_nothing_is_dead_lettered() {
    let w = World::new().await;
    let user = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    w.daemon.settle().await.unwrap();
    assert!(w.sandbox.hubspot().contact_property("line_unanswered_1").is_some());
    w.sandbox.hubspot().delete_property("line_unanswered_1").unwrap();
    w.deliver("tokyo", vec![line::text_message(&user, T0 + 5, "still there?")]).await;
    let mut dead = 0;
    for _ in 0..5 {
        dead += w.daemon.settle().await.unwrap().dead;
        w.clock.advance(Duration::from_secs(30));
    }
    assert_eq!(dead, 0);
    assert_eq!(w.contact("line_user_id_1", &user).properties["line_unanswered_1"], "Yes");
}

#[tokio::test]
async fn a_task_whose_creation_was_never_confirmed_is_adopted_not_created_twice() {
    let w = World::new().await;
    let user = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    w.daemon.settle().await.unwrap();
    let (contact, owner) = give_an_owner(&w, &user);
    // The state a crash leaves between HubSpot creating the task and linehub hearing its id:
    // HubSpot has the task; linehub has only its note that it asked for one.
    let res = w
        .http
        .post(format!("{}/crm/v3/objects/tasks", w.sandbox.base_url()))
        .bearer_auth("sandbox-hubspot-token")
        .json(&serde_json::json!({
            "properties": { "hs_timestamp": "2026-11-25T00:00:00.000Z", "hs_task_subject": "Reply on LINE (tokyo)",
                            "hubspot_owner_id": owner, "hs_task_status": "NOT_STARTED" },
            "associations": [{ "to": { "id": contact.id }, "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204 }] }]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    w.daemon.store().ask_owner_task(contact.id.clone(), 0).await.unwrap();

    w.deliver("tokyo", vec![line::text_message(&user, T0 + 10, "hello?")]).await;
    w.daemon.settle().await.unwrap();
    assert_eq!(w.sandbox.hubspot().tasks().len(), 1, "the task HubSpot already had was adopted");
    let adopted = w.daemon.store().owner_tasks(vec![contact.id.clone()]).await.unwrap();
    assert_eq!(adopted[&contact.id], Requested::Made(w.sandbox.hubspot().tasks()[0].id.clone()));
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_block_applied_before_its_older_follow_arrives_is_not_lost() {
    let w = World::new().await;
    let user = line::random_user_id();
    // The block (t+20) is delivered and applied first: there is no contact to update yet.
    w.deliver("tokyo", vec![line::unfollow(&user, T0 + 20)]).await;
    w.daemon.settle().await.unwrap();
    assert!(w.sandbox.hubspot().contacts().is_empty(), "a block alone creates no contact");
    // The follow it came after (t+10) arrives late and creates the contact: blocked, not following.
    w.deliver("tokyo", vec![line::follow(&user, T0 + 10, false)]).await;
    w.daemon.settle().await.unwrap();
    assert_eq!(w.contact("line_user_id_1", &user).properties["line_follow_1"], "No");
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0);
}

#[tokio::test]
async fn answers_slower_than_the_timeout_are_retried_without_duplicates() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let user = line::random_user_id();
    // HubSpot carries out each request but answers after the client (2 s timeout) gave up.
    w.sandbox.faults().latency(Service::HubSpot, Duration::from_secs(3));
    w.deliver("tokyo", vec![line::follow(&user, T0, false), line::text_message(&user, T0 + 1, "slow?")]).await;
    let first = w.daemon.settle().await.unwrap();
    assert!(first.retried > 0 && first.rows_done == 0, "{first:?}");
    assert_eq!(w.sandbox.hubspot().find_by_property("line_user_id_1", &user).len(), 1, "the create did happen");
    w.sandbox.faults().clear(Service::HubSpot);
    for _ in 0..10 {
        w.clock.advance(Duration::from_secs(10));
        w.daemon.settle().await.unwrap();
    }
    let c = w.contact("line_user_id_1", &user);
    assert_eq!(c.properties["line_last_response_1"], "slow?");
    assert_eq!(w.sandbox.hubspot().contacts().len(), 1);
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0);
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn html_in_a_message_reaches_the_owner_task_as_text_not_markup() {
    let w = World::new().await;
    let user = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    w.daemon.settle().await.unwrap();
    give_an_owner(&w, &user);
    let text = "<img src=x onerror=alert(1)> <a href=\"https://evil.example\">pay here</a> & thanks\nline 2";
    w.deliver("tokyo", vec![line::text_message(&user, T0 + 10, text)]).await;
    w.daemon.settle().await.unwrap();
    let tasks = w.sandbox.hubspot().tasks();
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    let body = &tasks[0].properties["hs_task_body"];
    assert!(!body.contains("<img") && !body.contains("<a "), "markup from a LINE user reached the rep: {body}");
    assert!(body.contains("&lt;img src=x onerror=alert(1)&gt;"), "{body}");
    assert!(body.contains("&lt;a href=&quot;https://evil.example&quot;&gt;pay here&lt;/a&gt; &amp; thanks"), "{body}");
    assert!(body.contains("<br>line 2"), "line breaks survive as breaks: {body}");
    w.sandbox.assert_no_violations();
}

/// Every outbox row, dead or alive.
fn outbox_rows(w: &World) -> Vec<linehub::store::OutboxRow> {
    w.daemon.store().outbox_list_blocking(false).unwrap()
}

#[tokio::test]
async fn a_retry_after_of_decades_postpones_writes_by_a_day_at_most() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let user = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    // A broken or hostile answer: come back in a hundred years.
    w.sandbox.faults().refuse(Service::HubSpot, 429, Some("3153600000"), 1);
    w.daemon.settle().await.unwrap();
    let day = 24 * 3600 * 1000;
    let rows = outbox_rows(&w);
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(
            r.next_attempt_at <= w.clock.now_ms() + day,
            "due in {} ms: {r:?}",
            r.next_attempt_at - w.clock.now_ms()
        );
    }
    w.clock.advance(Duration::from_millis(day as u64 + 1000));
    w.daemon.settle().await.unwrap();
    assert_eq!(w.contact("line_user_id_1", &user).properties["line_follow_1"], "Yes");
}

#[tokio::test]
async fn an_owner_task_whose_contact_is_dead_lettered_is_dead_lettered_too() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    // An admin renames the options of `LINE Follow _1`: the contact's create is refused.
    w.sandbox.hubspot().set_property_options("line_follow_1", &["はい", "いいえ"]).unwrap();
    let user = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    w.deliver("tokyo", vec![line::text_message(&user, T0 + 10, "hello?")]).await;
    for _ in 0..12 {
        w.daemon.settle().await.unwrap();
        w.clock.advance(Duration::from_secs(600));
    }
    let rows = outbox_rows(&w);
    let keys: Vec<(&str, bool)> = rows.iter().map(|r| (r.key.as_str(), r.dead)).collect();
    assert!(rows.iter().all(|r| r.dead), "every row is where an operator sees it: {keys:?}");
    assert!(keys.contains(&(format!("task:{user}").as_str(), true)), "{keys:?}");
    let listed = outbox_cli(&w, &["list"]);
    assert!(listed.contains(&format!("task:{user}")), "{listed}");
}

#[tokio::test]
async fn a_locked_portal_or_a_migration_is_waited_out_as_hubspot_asks() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let user = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    let earliest_due = |w: &World| outbox_rows(w).iter().map(|r| r.next_attempt_at).min().unwrap() - w.clock.now_ms();

    // 423 without Retry-After: at least 2 seconds.
    w.sandbox.faults().refuse(Service::HubSpot, 423, None, 1);
    w.daemon.settle().await.unwrap();
    assert!(earliest_due(&w) >= 2000, "retried after {} ms", earliest_due(&w));
    w.clock.advance(Duration::from_secs(3));

    // 477 with Retry-After: 120 seconds, not the outage backoff.
    w.sandbox.faults().refuse(Service::HubSpot, 477, Some("120"), 1);
    w.daemon.settle().await.unwrap();
    assert!(earliest_due(&w) >= 120_000, "retried after {} ms", earliest_due(&w));
    w.clock.advance(Duration::from_secs(119));
    w.daemon.settle().await.unwrap();
    assert!(w.sandbox.hubspot().find_by_property("line_user_id_1", &user).is_empty(), "nothing before the wait ends");

    // 423 with a longer Retry-After: that wait.
    w.clock.advance(Duration::from_secs(2));
    w.sandbox.faults().refuse(Service::HubSpot, 423, Some("30"), 1);
    w.daemon.settle().await.unwrap();
    assert!(earliest_due(&w) >= 30_000, "retried after {} ms", earliest_due(&w));
    w.clock.advance(Duration::from_secs(31));
    w.daemon.settle().await.unwrap();
    assert_eq!(w.contact("line_user_id_1", &user).properties["line_follow_1"], "Yes");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_property_deleted_in_hubspot_is_created_again_when_a_batch_create_reports_it_per_input() {
    let w = World::new().await;
    let first = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&first, T0, false)]).await;
    w.daemon.settle().await.unwrap();
    w.sandbox.hubspot().delete_property("line_unanswered_1").unwrap();
    // A new user's first message: a create, whose missing property HubSpot reports in a 207.
    let user = line::random_user_id();
    w.deliver("tokyo", vec![line::text_message(&user, T0 + 5, "hello")]).await;
    let mut dead = 0;
    for _ in 0..6 {
        dead += w.daemon.settle().await.unwrap().dead;
        w.clock.advance(Duration::from_secs(30));
    }
    assert_eq!(dead, 0, "{:#?}", outbox_rows(&w));
    assert_eq!(w.contact("line_user_id_1", &user).properties["line_unanswered_1"], "Yes");
}
