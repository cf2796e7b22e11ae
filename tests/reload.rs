//! Hot reload and the scheduler from the outside: files on disk change, the daemon's webhooks,
//! serials, HubSpot properties and schedules follow, or nothing changes and the log says why.

mod common;

use std::time::Duration;

use chrono::TimeZone;
use common::World;
use linehub::daemon::ReloadError;
use linehub_sandbox::webhook as line;

const T0: i64 = 1_764_000_000_000;

/// The daemon's clock as a date in `tz`, for readable schedule assertions.
fn at(ms: i64, tz: chrono_tz::Tz) -> String {
    tz.timestamp_millis_opt(ms).single().unwrap().format("%H:%M %Z").to_string()
}

const FRIENDS_AT_NINE: &str =
    "schedule: { cron: \"0 9 * * *\", time_zone: Asia/Tokyo }\naccounts: [tokyo]\nsteps:\n  - import_friends: {}\n";

#[tokio::test]
async fn a_good_change_moves_a_schedule_without_a_restart() {
    let w = World::new().await;
    w.add_pipeline("nightly.yaml", FRIENDS_AT_NINE).await;
    let next = w.daemon.next_pipeline_run("nightly").unwrap();
    assert_eq!(at(next, chrono_tz::Asia::Tokyo), "09:00 JST");

    w.write_pipeline(
        "nightly.yaml",
        &FRIENDS_AT_NINE.replace("0 9 * * *", "30 10 * * *").replace("Asia/Tokyo", "Asia/Bangkok"),
    );
    let outcome = w.daemon.reload().await.unwrap();
    assert_eq!(outcome.pipelines_changed, ["nightly"]);
    let next = w.daemon.next_pipeline_run("nightly").unwrap();
    assert_eq!(at(next, chrono_tz::Asia::Bangkok), "10:30 +07");

    // Nothing is due until the clock reaches it; then the pipeline runs once.
    let user = line::random_user_id();
    w.friend("tokyo", &user, "Early Bird");
    assert!(w.daemon.run_due_pipelines().await.is_empty());
    w.clock.advance(Duration::from_millis(u64::try_from(next - linehub::clock::Clock::now_ms(&*w.clock)).unwrap()));
    let ran = w.daemon.run_due_pipelines().await;
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].as_ref().unwrap().total("queued"), 1);
    assert!(w.daemon.run_due_pipelines().await.is_empty(), "it runs once per occurrence");
    assert!(w.daemon.next_pipeline_run("nightly").unwrap() > next);
    let runs = w.daemon.store().pipeline_runs(Some("nightly".into()), 5).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].counts.contains("\"queued\":1"), "{}", runs[0].counts);
}

#[tokio::test]
async fn a_broken_pipeline_file_changes_nothing_and_names_file_line_and_field() {
    let w = World::new().await;
    w.add_pipeline("nightly.yaml", FRIENDS_AT_NINE).await;
    let before = w.daemon.next_pipeline_run("nightly");
    let path = w.write_pipeline(
        "nightly.yaml",
        "schedule: { cron: \"0 9 * * *\", time_zone: Asia/Tokyo }\naccounts: [tokyo]\nsteps:\n  - import_friends: { page_sise: 10 }\n",
    );
    let Err(ReloadError::Invalid(errors)) = w.daemon.reload().await else { panic!("a broken file was accepted") };
    let text = errors.to_string();
    assert!(
        text.contains(&format!("{}:4:", path.display()))
            && text.contains("steps[0].import_friends")
            && text.contains("page_sise"),
        "{text}"
    );
    assert_eq!(w.daemon.reload_failures(), 1);
    // The old definition still runs.
    assert_eq!(w.daemon.next_pipeline_run("nightly"), before);
    // A step failure is an Ok report too, so the report itself must say the run went through.
    let report = w.daemon.run_pipeline("nightly", true).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.state, linehub::store::pipelines::RunState::Done, "{:?}", report.error);
    assert_eq!(report.steps.iter().map(|s| s.kind).collect::<Vec<_>>(), ["import_friends"]);

    // An unknown step kind, a bad time zone and a wrong type: all reported at once or one by one,
    // each located; nothing changes.
    for (yaml, expected) in [
        ("accounts: [tokyo]\nsteps:\n  - import_frends: {}\n", "3:5"),
        (
            "schedule: { cron: \"0 9 * * *\", time_zone: Asia/Osaka }\naccounts: [tokyo]\nsteps:\n  - import_friends: {}\n",
            "schedule.time_zone",
        ),
        ("accounts: [tokyo]\nsteps:\n  - import_friends: { page_size: lots }\n", "steps[0].import_friends.page_size"),
        ("accounts: [kyoto]\nsteps:\n  - import_friends: {}\n", "accounts[0]: no account `kyoto`"),
        (
            "accounts: [tokyo]\nsteps:\n  - broadcast_to_list: { list_id: \"1\", messages: [ { text: \"\" } ] }\n",
            "messages[0].text",
        ),
    ] {
        w.write_pipeline("nightly.yaml", yaml);
        let Err(ReloadError::Invalid(errors)) = w.daemon.reload().await else { panic!("accepted:\n{yaml}") };
        assert!(errors.to_string().contains(expected), "expected `{expected}` in {errors}");
    }
    assert_eq!(w.daemon.settings().pipelines.len(), 1);
    assert_eq!(w.daemon.next_pipeline_run("nightly"), before);
}

#[tokio::test]
async fn a_broken_config_keeps_the_old_one_serving_webhooks() {
    let w = World::new().await;
    let good = std::fs::read_to_string(w.config_path()).unwrap();
    std::fs::write(w.config_path(), good.replace("plan: starter", "plan: gold")).unwrap();
    let Err(ReloadError::Invalid(errors)) = w.daemon.reload().await else { panic!("accepted") };
    assert!(errors.to_string().contains("config.yaml:7:7: plan: unknown plan `gold`"), "{errors}");
    let user = line::random_user_id();
    assert_eq!(w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await, 200);
    assert_eq!(w.daemon.config().plan, linehub::config::PlanTier::Starter);
}

#[tokio::test]
async fn settings_that_need_a_restart_are_refused_by_name() {
    let w = World::new().await;
    let good = std::fs::read_to_string(w.config_path()).unwrap();
    let changed = good
        .replace("listen: \"127.0.0.1:0\"", "listen: \"127.0.0.1:9\"")
        .replace("sandbox-hubspot-token", "other-token");
    std::fs::write(w.config_path(), changed).unwrap();
    let Err(ReloadError::NeedsRestart(names)) = w.daemon.reload().await else { panic!("accepted") };
    let text = names.join("\n");
    assert!(text.contains("server.listen changed (127.0.0.1:0 → 127.0.0.1:9)"), "{text}");
    assert!(text.contains("hubspot.token changed (value not shown)"), "{text}");
    assert!(!text.contains("other-token"), "a secret reached the message: {text}");
}

#[tokio::test]
async fn a_new_account_gets_its_serial_and_properties_and_takes_webhooks() {
    let w = World::new().await;
    let secret = "kyoto-channel-secret-0123456789ab";
    let bot = w.sandbox.line().add_channel(linehub_sandbox::ChannelSpec::new("kyoto-access-token", secret)).unwrap();
    let user = line::random_user_id();
    w.sandbox.line().add_friend("kyoto-access-token", &user, linehub_sandbox::Profile::named("Kyoto Friend")).unwrap();
    let body = line::body(&bot, vec![line::follow(&user, T0, false)]);
    let post = |body: Vec<u8>| common::post_signed_webhook(&w.http, w.daemon.addr(), "kyoto", secret, body);
    assert_eq!(post(body.clone()).await.status(), 404, "not configured yet");

    let good = std::fs::read_to_string(w.config_path()).unwrap();
    let added = good.replace("plan: starter", "plan: professional")
        + &format!(
            "  - id: kyoto\n    channel_secret: \"{secret}\"\n    channel_access_token: \"kyoto-access-token\"\n"
        );
    std::fs::write(w.config_path(), added).unwrap();
    let outcome = w.daemon.reload().await.unwrap();
    assert_eq!(outcome.accounts_added, [("kyoto".to_string(), 3)]);

    assert_eq!(post(body).await.status(), 200);
    w.daemon.settle().await.unwrap();
    let c = w.contact("line_user_id_3", &user);
    assert_eq!(c.properties["line_user_name_3"], "Kyoto Friend");
    assert_eq!(w.sandbox.hubspot().contact_property("line_follow_3").unwrap().label, "LINE Follow _3");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_removed_account_stops_taking_webhooks_and_keeps_its_data_and_serial() {
    let w = World::new().await;
    let user = line::random_user_id();
    w.friend("osaka", &user, "Osaka Friend");
    assert_eq!(w.deliver("osaka", vec![line::follow(&user, T0, false)]).await, 200);
    w.daemon.settle().await.unwrap();

    let good = std::fs::read_to_string(w.config_path()).unwrap();
    let without = good[..good.find("  - id: osaka").unwrap()].to_string();
    std::fs::write(w.config_path(), &without).unwrap();
    let outcome = w.daemon.reload().await.unwrap();
    assert_eq!(outcome.accounts_removed, ["osaka"]);
    assert_eq!(w.deliver("osaka", vec![line::follow(&user, T0 + 1, false)]).await, 404);
    assert_eq!(w.contact("line_user_id_2", &user).properties["line_follow_2"], "Yes");

    // Back again, it is account 2 as before.
    std::fs::write(w.config_path(), good).unwrap();
    let outcome = w.daemon.reload().await.unwrap();
    assert_eq!(outcome.accounts_added, [("osaka".to_string(), 2)]);
    assert_eq!(w.deliver("osaka", vec![line::unfollow(&user, T0 + 2)]).await, 200);
    w.daemon.settle().await.unwrap();
    assert_eq!(w.contact("line_user_id_2", &user).properties["line_follow_2"], "No");
}

#[tokio::test]
async fn a_pipeline_naming_a_removed_account_fails_the_reload() {
    let w = World::new().await;
    w.add_pipeline("osaka.yaml", "accounts: [osaka]\nsteps:\n  - import_friends: {}\n").await;
    let good = std::fs::read_to_string(w.config_path()).unwrap();
    std::fs::write(w.config_path(), &good[..good.find("  - id: osaka").unwrap()]).unwrap();
    let Err(ReloadError::Invalid(errors)) = w.daemon.reload().await else { panic!("accepted") };
    assert!(errors.to_string().contains("osaka.yaml:1:12: accounts[0]: no account `osaka`"), "{errors}");
    assert!(w.daemon.config().account("osaka").is_some(), "the old config is still in force");
}

#[tokio::test]
async fn the_watcher_notices_a_file_saved_by_rename() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "x: 1\n").unwrap();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir(&pipelines).unwrap();
    let mut watcher =
        linehub::config::watch::ConfigWatcher::start(&config, &pipelines, Duration::from_millis(100)).unwrap();
    // An editor's save: write a temporary file, rename it over the original.
    let tmp = dir.path().join(".config.yaml.swp");
    std::fs::write(&tmp, "x: 2\n").unwrap();
    std::fs::rename(&tmp, &config).unwrap();
    // The pipelines directory, made just before the watcher started, may be reported first in a
    // burst of its own; the save must follow, and nothing else may be named.
    loop {
        let changed = tokio::time::timeout(Duration::from_secs(5), watcher.changed()).await.unwrap().unwrap();
        assert!(changed.iter().all(|p| p.ends_with("config.yaml") || p.ends_with("pipelines")), "{changed:?}");
        if changed.iter().any(|p| p.ends_with("config.yaml")) {
            break;
        }
    }
    // A new pipeline file counts too; the store's own files beside the config do not.
    std::fs::write(dir.path().join("linehub.db-wal"), "noise").unwrap();
    std::fs::write(pipelines.join("new.yaml"), "accounts: []\n").unwrap();
    // The directory itself may be reported too (its listing changed); the store's file never is.
    loop {
        let changed = tokio::time::timeout(Duration::from_secs(5), watcher.changed()).await.unwrap().unwrap();
        assert!(changed.iter().all(|p| p.ends_with("new.yaml") || p.ends_with("pipelines")), "{changed:?}");
        if changed.iter().any(|p| p.ends_with("new.yaml")) {
            break;
        }
    }
}

#[tokio::test]
async fn a_changed_url_is_named_without_the_credentials_in_it() {
    let w = World::new().await;
    let good = std::fs::read_to_string(w.config_path()).unwrap();
    let base = w.sandbox.base_url();
    let with_password = base.replacen("http://", "http://admin:hunter2@", 1);
    let changed = good.replacen(&format!("  base_url: \"{base}\""), &format!("  base_url: \"{with_password}\""), 1);
    assert_ne!(changed, good);
    std::fs::write(w.config_path(), changed).unwrap();
    let Err(ReloadError::NeedsRestart(names)) = w.daemon.reload().await else { panic!("accepted") };
    let text = names.join("\n");
    assert!(text.contains("hubspot.base_url changed"), "{text}");
    assert!(text.contains("http://***@127.0.0.1"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("admin"), "a credential reached the message: {text}");
}
