//! Import and reconcile steps from the outside: pipeline files in, sandbox LINE and HubSpot
//! state out.

mod common;

use common::World;
use linehub::clock::Clock;
use linehub::store::pipelines::RunState;
use linehub_sandbox::webhook as line;

const T0: i64 = 1_764_000_000_000;

const IMPORT_FRIENDS: &str = "accounts: [tokyo]\nsteps:\n  - import_friends: { page_size: 1000 }\n";

#[tokio::test]
async fn importing_friends_pages_through_every_friend_and_creates_their_contacts() {
    let w = World::new().await;
    let users: Vec<String> = (0..2_500).map(|_| line::random_user_id()).collect();
    for (i, u) in users.iter().enumerate() {
        w.friend("tokyo", u, &format!("Friend {i}"));
    }
    w.add_pipeline("import.yaml", IMPORT_FRIENDS).await;

    let report = w.daemon.run_pipeline("import", false).await.unwrap();
    assert_eq!(report.state, RunState::Done, "{report}");
    assert_eq!(report.total("pages"), 3, "{report}");
    assert_eq!(report.total("queued"), 2_500, "{report}");
    w.daemon.settle().await.unwrap();

    assert_eq!(w.sandbox.hubspot().contacts().len(), 2_500);
    let c = w.contact("line_user_id_1", &users[1_234]);
    assert_eq!(c.properties["line_user_name_1"], "Friend 1234");
    assert_eq!(c.properties["line_follow_1"], "Yes");
    assert!(c.properties.contains_key("line_id_sync_date_1"));

    // A second run finds nothing new and writes nothing.
    let before = w.sandbox.hubspot().stats().requests;
    let again = w.daemon.run_pipeline("import", false).await.unwrap();
    assert_eq!((again.total("queued"), again.total("unchanged")), (0, 2_500), "{again}");
    assert_eq!(w.daemon.settle().await.unwrap().rows_done, 0);
    assert!(w.sandbox.hubspot().stats().requests - before <= 2, "only the property check may run");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_friend_known_from_webhooks_is_updated_not_duplicated_by_the_import() {
    let w = World::new().await;
    let user = line::random_user_id();
    w.friend("tokyo", &user, "Sato");
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    w.daemon.settle().await.unwrap();
    w.add_pipeline("import.yaml", &IMPORT_FRIENDS.replace("{ page_size: 1000 }", "{ refresh: true }")).await;
    let report = w.daemon.run_pipeline("import", false).await.unwrap();
    assert_eq!(report.total("queued"), 1, "{report}");
    w.daemon.settle().await.unwrap();
    assert_eq!(w.sandbox.hubspot().contacts().len(), 1);
    assert_eq!(w.contact("line_user_id_1", &user).properties["line_user_name_1"], "Sato");
}

#[tokio::test]
async fn a_non_verified_account_is_told_why_it_cannot_list_its_friends() {
    let w = World::new().await;
    w.sandbox.line().set_verified("tokyo-access-token", false).unwrap();
    w.add_pipeline("import.yaml", IMPORT_FRIENDS).await;
    let report = w.daemon.run_pipeline("import", false).await.unwrap();
    assert_eq!(report.state, RunState::Failed);
    let error = report.error.clone().unwrap_or_default();
    assert!(error.contains("403") && error.contains("only verified or premium"), "{error}");
    assert!(error.contains("import_line_ids_from_list"), "it says what to do instead: {error}");
    let runs = w.daemon.store().pipeline_runs(Some("import".into()), 5).await.unwrap();
    assert_eq!(runs[0].state, "failed");
    assert_eq!(runs[0].error.as_deref(), Some(error.as_str()));
    assert!(runs[0].ended_at.is_some());
    assert!(w.sandbox.hubspot().contacts().is_empty());
}

/// A list of 1,450 contacts: 1,000 friends with good ids, 150 malformed ids, 200 well-formed ids
/// of people who are not friends, 100 without any id. Returns (list id, friends' (user, contact)).
async fn sign_up_list(w: &World) -> (String, Vec<(String, String)>) {
    w.create_text_property("line_id_from_form").await;
    let hs = w.sandbox.hubspot();
    let mut members = Vec::new();
    let mut friends = Vec::new();
    for i in 0..1_000 {
        let user = line::random_user_id();
        w.friend("tokyo", &user, &format!("Member {i}"));
        let id = hs.create_contact(&[("email", &format!("m{i}@example.com")), ("line_id_from_form", &user)]).unwrap();
        friends.push((user, id.clone()));
        members.push(id);
    }
    for i in 0..150 {
        let bad = if i % 2 == 0 { format!("line-{i}") } else { line::random_user_id().to_uppercase() };
        members.push(
            hs.create_contact(&[("email", &format!("bad{i}@example.com")), ("line_id_from_form", &bad)]).unwrap(),
        );
    }
    for i in 0..200 {
        let stranger = line::random_user_id();
        members.push(
            hs.create_contact(&[("email", &format!("s{i}@example.com")), ("line_id_from_form", &stranger)]).unwrap(),
        );
    }
    for i in 0..100 {
        members.push(hs.create_contact(&[("email", &format!("n{i}@example.com"))]).unwrap());
    }
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    (hs.add_list("Sign-ups", &refs).unwrap(), friends)
}

fn import_ids(list: &str) -> String {
    format!(
        "accounts: [tokyo]\nsteps:\n  - import_line_ids_from_list:\n      list_id: \"{list}\"\n      property: line_id_from_form\n"
    )
}

#[tokio::test]
async fn importing_ids_from_a_list_links_its_friends_and_reports_the_rest() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (list, friends) = sign_up_list(&w).await;
    w.add_pipeline("link.yaml", &import_ids(&list)).await;
    let contacts_before = w.sandbox.hubspot().contacts().len();

    let report = w.daemon.run_pipeline("link", false).await.unwrap();
    assert_eq!(report.state, RunState::Done, "{report}");
    assert_eq!(report.total("pages"), 6, "1,450 members in pages of 250: {report}");
    assert_eq!(report.total("linked"), 1_000, "{report}");
    assert_eq!(report.total("malformed"), 150, "{report}");
    assert_eq!(report.total("not_a_friend"), 200, "{report}");
    assert_eq!(report.total("without_line_id"), 100, "{report}");
    assert!(report.steps[0].report.samples.iter().any(|s| s.contains("is not a LINE user id")), "{report}");
    w.daemon.settle().await.unwrap();

    // The list's own contacts are linked: no placeholder contacts appear.
    assert_eq!(w.sandbox.hubspot().contacts().len(), contacts_before);
    let (user, id) = &friends[777];
    let c = w.sandbox.hubspot().contact(id).unwrap();
    assert_eq!(c.properties["line_user_id_1"], *user);
    assert_eq!(c.properties["line_user_name_1"], "Member 777");
    assert_eq!(c.properties["line_follow_1"], "Yes");
    assert!(c.properties.contains_key("line_id_sync_date_1"));
    let unlinked =
        w.sandbox.hubspot().contacts().iter().filter(|c| c.properties.contains_key("line_user_id_1")).count();
    assert_eq!(unlinked, 1_000, "malformed ids and strangers are never written");

    // A follow-up webhook from a linked user updates that same contact.
    w.deliver("tokyo", vec![line::text_message(user, T0, "hello")]).await;
    w.daemon.settle().await.unwrap();
    assert_eq!(w.sandbox.hubspot().contact(id).unwrap().properties["line_last_response_1"], "hello");
    assert_eq!(w.sandbox.hubspot().contacts().len(), contacts_before);
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_dry_run_reports_the_diffs_and_changes_nothing() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (list, friends) = sign_up_list(&w).await;
    w.add_pipeline("link.yaml", &import_ids(&list)).await;
    let contacts_before = w.sandbox.hubspot().contacts();

    let report = w.daemon.run_pipeline("link", true).await.unwrap();
    assert!(report.dry_run);
    assert_eq!(report.total("linked"), 1_000, "{report}");
    let sample = report.steps[0].report.samples.iter().find(|s| s.contains(&friends[0].0)).cloned();
    let sample = sample.unwrap_or_else(|| panic!("no diff for the first friend in\n{report}"));
    assert!(
        sample.contains("line_user_id_1: (none) → U") && sample.contains("line_follow_1: (none) → Yes"),
        "{sample}"
    );
    assert!(report.to_string().contains("dry run: nothing was changed"));

    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0);
    assert!(w.daemon.store().contact_links(vec![friends[0].0.clone()]).await.unwrap().is_empty());
    assert_eq!(w.daemon.settle().await.unwrap().rows_done, 0);
    assert_eq!(w.sandbox.hubspot().contacts(), contacts_before);
    // The dry run is recorded as one.
    let runs = w.daemon.store().pipeline_runs(Some("link".into()), 1).await.unwrap();
    assert!(runs[0].dry_run && runs[0].state == "done", "{runs:?}");
}

#[tokio::test]
async fn reconciling_follow_status_fixes_drift_both_ways_and_counts_it() {
    let w = World::new().await;
    let users: Vec<String> = (0..30).map(|_| line::random_user_id()).collect();
    let events: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            w.friend("tokyo", u, &format!("F{i}"));
            line::follow(u, T0 + i as i64, false)
        })
        .collect();
    w.deliver("tokyo", events).await;
    w.daemon.settle().await.unwrap();
    // Five block the account and their unfollow webhooks never arrive; an operator wrongly sets
    // two others to No by hand.
    for u in &users[..5] {
        w.sandbox.line().block("tokyo-access-token", u).unwrap();
    }
    for u in &users[10..12] {
        let c = w.contact("line_user_id_1", u);
        w.sandbox.hubspot().update_contact(&c.id, &[("line_follow_1", "No")]).unwrap();
    }
    w.add_pipeline("reconcile.yaml", "accounts: [tokyo]\nsteps:\n  - reconcile_follow_status: { page_size: 7 }\n")
        .await;

    let dry = w.daemon.run_pipeline("reconcile", true).await.unwrap();
    assert_eq!((dry.total("changed"), dry.total("to_no"), dry.total("to_yes")), (7, 5, 2), "{dry}");
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0, "the dry run queued nothing");

    let report = w.daemon.run_pipeline("reconcile", false).await.unwrap();
    assert_eq!(report.total("checked"), 30, "{report}");
    assert_eq!((report.total("changed"), report.total("to_no"), report.total("to_yes")), (7, 5, 2), "{report}");
    w.daemon.settle().await.unwrap();
    for u in &users[..5] {
        assert_eq!(w.contact("line_user_id_1", u).properties["line_follow_1"], "No");
    }
    for u in &users[5..] {
        assert_eq!(w.contact("line_user_id_1", u).properties["line_follow_1"], "Yes");
    }
    let again = w.daemon.run_pipeline("reconcile", false).await.unwrap();
    assert_eq!(again.total("changed"), 0, "{again}");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn an_import_page_read_before_an_unfollow_was_applied_does_not_undo_it() {
    let w = World::new().await;
    let user = line::random_user_id();
    w.friend("tokyo", &user, "Sato");
    let followed_at = w.clock.now_ms() - 60_000;
    w.deliver("tokyo", vec![line::follow(&user, followed_at, false)]).await;
    w.daemon.settle().await.unwrap();
    assert_eq!(w.contact("line_user_id_1", &user).properties["line_follow_1"], "Yes");
    w.add_pipeline("import.yaml", &IMPORT_FRIENDS.replace("{ page_size: 1000 }", "{ refresh: true }")).await;

    // The import lists the friends, reads what linehub knows of them, then reads their
    // profiles: the profile answers are held while the user blocks the account.
    let listing = w.sandbox.faults().hold_answers(linehub_sandbox::Service::Line);
    let run = w.daemon.run_pipeline("import", false);
    let block = async {
        listing.arrived(1).await;
        let profiles = w.sandbox.faults().hold_answers(linehub_sandbox::Service::Line);
        profiles.arrived(1).await;
        w.deliver("tokyo", vec![line::unfollow(&user, w.clock.now_ms() + 1_000)]).await;
        w.daemon.apply_inbox().await.unwrap();
        profiles.release();
    };
    let (report, ()) = tokio::join!(run, block);
    let report = report.unwrap();
    assert_eq!((report.state, report.total("queued")), (RunState::Done, 1), "{report}");
    w.daemon.settle().await.unwrap();

    let states = w.daemon.store().friend_states(vec![(1, user.clone())]).await.unwrap();
    assert_eq!(states[&(1, user.clone())].following, Some(false), "the import undid the unfollow in the store");
    let c = w.contact("line_user_id_1", &user);
    assert_eq!(c.properties["line_follow_1"], "No", "HubSpot shows a blocked user as following");
    assert_eq!(c.properties["line_user_name_1"], "Sato", "the rest of the page is written");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_run_paused_past_its_lease_and_taken_over_stops_when_it_resumes() {
    let w = World::new().await;
    let users: Vec<String> = (0..3).map(|_| line::random_user_id()).collect();
    for (i, u) in users.iter().enumerate() {
        w.friend("tokyo", u, &format!("Friend {i}"));
    }
    w.add_pipeline("import.yaml", IMPORT_FRIENDS).await;
    let config = w.daemon.config();
    let other = linehub::pipelines::Runner::new(
        w.daemon.store().clone(),
        linehub::line::client::LineClient::new(&config.line.api_base_url).unwrap(),
        linehub::hubspot::HubSpotClient::from_config(&config.hubspot).unwrap(),
        w.clock.clone(),
        std::sync::Arc::new(tokio::sync::Notify::new()),
        None,
    );

    // The daemon's run pauses on LINE past its lease; another runner takes the run over.
    let hold = w.sandbox.faults().hold_answers(linehub_sandbox::Service::Line);
    let paused = w.daemon.run_pipeline("import", false);
    let taker = async {
        hold.arrived(1).await;
        w.clock.advance(std::time::Duration::from_millis(linehub::pipelines::runner::LEASE_MS as u64 + 1_000));
        let settings = w.daemon.settings();
        let run = other.run(settings.config.clone(), &settings.pipelines, "import", false);
        let release = async {
            hold.arrived(2).await;
            hold.release();
        };
        tokio::join!(run, release).0
    };
    let (paused, taker) = tokio::join!(paused, taker);
    let taker = taker.unwrap();
    assert_eq!((taker.state, taker.total("queued")), (RunState::Done, 3), "{taker}");
    match paused {
        Err(linehub::pipelines::RunError::TakenOver { run_id, .. }) => assert_eq!(run_id, taker.run_id),
        other => panic!("the run that was taken over kept going: {other:?}"),
    }

    let runs = w.daemon.store().pipeline_runs(Some("import".into()), 5).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].state, "done");
    assert!(runs[0].counts.contains("\"queued\":3"), "the taker's counts stand: {}", runs[0].counts);
    let queued = w.daemon.store().outbox_list_blocking(false).unwrap();
    assert_eq!(queued.len(), 3, "the page was committed once: {queued:?}");
}
