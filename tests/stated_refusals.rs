//! Refusals the README promises, each asserted directly: a webhook to an inactive account, a
//! reload that changes a setting only a restart can change (every such setting, by name), and a
//! workflow push over the account's monthly message limit.

mod common;

use common::{ConfigFile, OSAKA_SECRET, TOKYO_SECRET, World, action_body, post_signed_webhook, start_daemon};
use linehub::daemon::ReloadError;
use linehub_sandbox::webhook as line;
use serde_json::json;

const T0: i64 = 1_764_000_000_000; // 2025-11-24T16:00:00Z

#[tokio::test]
async fn a_webhook_to_an_inactive_account_is_refused_with_404_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = ConfigFile::standard(dir.path(), "http://127.0.0.1:9");
    let text = file.text().replace(
        &format!("    channel_secret: \"{OSAKA_SECRET}\"\n"),
        &format!("    channel_secret: \"{OSAKA_SECRET}\"\n    active: false\n"),
    );
    assert!(text.contains("active: false"), "{text}");
    let settings = linehub::settings::Settings::load_str(&file.path(), &text).unwrap_or_else(|e| panic!("{e}"));
    let daemon = start_daemon(settings).await;
    let http = reqwest::Client::new();
    let bot = "U0123456789abcdef0123456789abcdef";

    let event = line::text_message(&line::random_user_id(), T0, "anyone there?");
    let body = line::body(bot, vec![event]);
    let res = post_signed_webhook(&http, daemon.addr(), "osaka", OSAKA_SECRET, body).await;
    assert_eq!(res.status(), 404, "{}", res.text().await.unwrap());
    assert_eq!(daemon.store().inbox_len().await.unwrap(), 0, "nothing stored for an inactive account");

    // The same delivery to an active account is stored: the store is visible to this test.
    let event = line::text_message(&line::random_user_id(), T0, "anyone there?");
    let res = post_signed_webhook(&http, daemon.addr(), "tokyo", TOKYO_SECRET, line::body(bot, vec![event])).await;
    assert_eq!(res.status(), 200);
    assert_eq!(daemon.store().inbox_len().await.unwrap(), 1);
    daemon.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_restart_only_setting_is_refused_on_reload_by_name() {
    let w = World::new().await;
    let original = std::fs::read_to_string(w.config_path()).unwrap();
    let db = w.dir.path().join("linehub.db").display().to_string();
    let other_db = w.dir.path().join("elsewhere.db").display().to_string();
    let url = w.sandbox.base_url();
    let add_to_hubspot = |line: &str| original.replace("hubspot:\n", &format!("hubspot:\n  {line}\n"));
    let changes: Vec<(&str, String)> = vec![
        ("server.listen", original.replace("listen: \"127.0.0.1:0\"", "listen: \"127.0.0.1:1\"")),
        ("server.max_body_bytes", original.replace("max_body_bytes: 65536", "max_body_bytes: 32768")),
        ("store.path", original.replace(&db, &other_db)),
        ("hubspot.base_url", original.replace(&format!("  base_url: \"{url}\""), "  base_url: \"http://127.0.0.1:9\"")),
        ("hubspot.token", original.replace("token: \"sandbox-hubspot-token\"", "token: \"a-new-secret-token\"")),
        ("hubspot.requests_per_10s", add_to_hubspot("requests_per_10s: 50")),
        ("hubspot.timeout_secs", original.replace("timeout_secs: 2", "timeout_secs: 5")),
        ("hubspot.dummy_email_domain", add_to_hubspot("dummy_email_domain: \"people.example.invalid\"")),
        ("line.api_base_url", original.replace("\n  api_base_url:", "\n  api_base_url: \"http://127.0.0.1:9\"\n  x:")),
        (
            "line.data_api_base_url",
            original.replace("data_api_base_url:", "data_api_base_url: \"http://127.0.0.1:9\"\n  x:"),
        ),
        ("line.login_base_url", original.replace("login_base_url:", "login_base_url: \"http://127.0.0.1:9\"\n  x:")),
    ];
    let before = format!("{:?}", w.daemon.config());
    for (i, (key, text)) in changes.into_iter().enumerate() {
        // Each edit leaves everything else as it was (the `x:` lines carry the old URL away).
        let text = text.lines().filter(|l| !l.starts_with("  x:")).map(|l| format!("{l}\n")).collect::<String>();
        assert_ne!(text, original, "{key}: the edit changed nothing");
        std::fs::write(w.config_path(), &text).unwrap();
        match w.daemon.reload().await {
            Err(ReloadError::NeedsRestart(named)) => {
                assert_eq!(named.len(), 1, "{key}: {named:?}");
                assert!(named[0].starts_with(&format!("{key} changed")), "{key}: {named:?}");
                assert!(named[0].contains("restart"), "{key}: {named:?}");
                assert!(!named[0].contains("a-new-secret-token"), "a secret in the message: {named:?}");
            }
            other => panic!("{key}: the reload was not refused as needing a restart: {other:?}"),
        }
        assert_eq!(format!("{:?}", w.daemon.config()), before, "{key}: the running config changed");
        assert_eq!(w.daemon.reload_failures(), i as u64 + 1);
    }
    std::fs::write(w.config_path(), &original).unwrap();
    w.daemon.reload().await.unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_workflow_push_over_the_monthly_message_limit_fails_with_its_reason() {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    let (user, contact) = w.friends_with_contacts("tokyo", 1, 1).remove(0);
    // The account has used up this month's messages.
    w.sandbox.line().set_monthly_quota("tokyo-access-token", Some(10)).unwrap();
    w.sandbox.line().use_quota("tokyo-access-token", 10).unwrap();
    let (status, answer) =
        w.post_signed_action(action_body("ap-quota", &contact, json!({ "account": "tokyo", "message_1": "Hi" }))).await;
    assert_eq!(status, 200, "{answer}");
    w.daemon.settle().await.unwrap();
    let done = w.sandbox.hubspot().callback("ap-quota").expect("the action was completed");
    assert_eq!(done.output_fields["hs_execution_state"], "FAIL_CONTINUE", "{done:?}");
    let error = done.output_fields["error"].as_str().unwrap_or_default();
    assert!(error.contains("monthly message limit"), "{error}");
    assert!(w.sandbox.line().sent_messages().iter().all(|m| m.to != [user.clone()]), "nothing was sent");
    let sends = w.daemon.store().sends(10).await.unwrap();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].state, "failed", "{sends:?}");
    w.sandbox.assert_no_violations();
}
