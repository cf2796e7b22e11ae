//! A crash between the login callback and the HubSpot write: the real binary dies right after
//! HubSpot merged the placeholder into the person's contact, before linehub recorded it. After a
//! restart the login is linked exactly once: one merge, one contact, the LINE identity on it.

mod common;

use std::time::Duration;

use common::*;
use linehub_sandbox::{LoginChannelSpec, webhook};

async fn until<F: Fn() -> bool>(what: &str, done: F) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_interrupted_after_the_merge_is_linked_exactly_once_after_a_restart() {
    let sandbox = start_sandbox().await;
    let bot =
        sandbox.line().add_channel(linehub_sandbox::ChannelSpec::new("tokyo-access-token", TOKYO_SECRET)).unwrap();
    sandbox.line().add_channel(linehub_sandbox::ChannelSpec::new("osaka-access-token", OSAKA_SECRET)).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut channel = LoginChannelSpec::new(LOGIN_CHANNEL, LOGIN_SECRET, format!("{base}/line/tokyo/login/callback"));
    channel.linked_bot_access_token = Some("tokyo-access-token".into());
    channel.email_permission = true;
    sandbox.line().add_login_channel(channel).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::standard(dir.path(), &sandbox.base_url())
        .port(port)
        .public_base_url(&base)
        .login("tokyo", &login_block(""))
        .write();
    let http = reqwest::Client::builder().cookie_store(true).timeout(Duration::from_secs(10)).build().unwrap();
    let hubspot = sandbox.hubspot();

    let mut daemon = Process::spawn(
        linehub()
            .args(["run", "--config", config.to_str().unwrap()])
            .env("LINEHUB_LOG", "warn")
            .env("LINEHUB_CRASH_POINTS", "login.after_merge=1")
            .stdout(std::process::Stdio::null()),
    );
    wait_up(&http, &format!("{base}/healthz")).await;

    // The person followed first, so linehub made a placeholder contact.
    let user = webhook::random_user_id();
    sandbox.line().add_friend("tokyo-access-token", &user, linehub_sandbox::Profile::named("Ann")).unwrap();
    let raw = webhook::body(&bot, vec![webhook::follow(&user, 1_700_000_000_000, false)]);
    assert_eq!(post_signed_webhook(&http, port_addr(port), "tokyo", TOKYO_SECRET, raw).await.status(), 200);
    until("the placeholder", || hubspot.find_by_property("line_user_id_1", &user).len() == 1).await;
    let placeholder = hubspot.find_by_property("line_user_id_1", &user)[0].id.clone();
    let real = hubspot.create_contact(&[("email", "ann@example.com"), ("firstname", "Ann")]).unwrap();

    // The login: the answer comes at once; the writer merges, and the process dies there.
    sandbox.line().script_login(LOGIN_CHANNEL, LoginWorld::person(&user, "Ann", Some("ann@example.com"))).unwrap();
    let page = land(http.get(format!("{base}/line/tokyo/login")).send().await.unwrap()).await;
    let session = hidden_field(&page.body, "session").unwrap();
    let consent = format!("{}/oauth2/v2.1/authorize/consent", sandbox.base_url());
    let done =
        land(http.post(consent).form(&[("session", session.as_str()), ("decision", "allow")]).send().await.unwrap())
            .await;
    assert_eq!(done.status, 200, "{done:?}");
    for _ in 0..200 {
        if daemon.try_wait().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = daemon.try_wait().expect("the daemon should have crashed after the merge");
    assert!(!status.success());
    assert_eq!(hubspot.merges().len(), 1, "HubSpot merged before the crash");

    // Restarted without the crash point, it finishes the login without merging again.
    let mut daemon = Process::daemon(&config, "warn");
    wait_up(&http, &format!("{base}/healthz")).await;
    until("the LINE identity on the real contact", || {
        hubspot.contact(&real).is_some_and(|c| c.properties.get("line_user_name_1").is_some_and(|n| n == "Ann"))
    })
    .await;
    let live = hubspot.find_by_property("line_user_id_1", &user);
    assert_eq!(live.len(), 1, "one person, one contact: {live:#?}");
    assert_eq!(live[0].id, real);
    assert_eq!(hubspot.merges().len(), 1, "merged exactly once");
    assert_eq!(hubspot.merges()[0].merged_id, placeholder);
    // …and the login's write is done with: nothing is left to write.
    let store = linehub::store::Store::open_read_only(&dir.path().join("linehub.db")).unwrap();
    let mut left = Vec::new();
    for _ in 0..200 {
        left = store.outbox_due(i64::MAX, 100).await.unwrap();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(left.is_empty(), "left in the outbox: {left:?}");
    daemon.kill();
    sandbox.assert_no_violations();
}

fn port_addr(port: u16) -> std::net::SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}
