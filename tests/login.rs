//! ID linking through LINE Login, from the outside: a browser-like client opens the login link,
//! LINE's (simulated) consent page answers, and the contact in (simulated) HubSpot is checked.

mod common;

use common::*;
use linehub::login::hash_link_token;
use linehub_sandbox::webhook;

fn user() -> String {
    webhook::random_user_id()
}

/// A user who followed the account and so has a placeholder contact; returns its id.
async fn placeholder_of(world: &LoginWorld, user: &str) -> String {
    world.sandbox.line().add_friend("tokyo-access-token", user, linehub_sandbox::Profile::named("Ann")).unwrap();
    assert_eq!(world.deliver(vec![webhook::follow(user, world.now() - 60_000, false)]).await, 200);
    world.settle().await;
    let found = world.contacts("line_user_id_1", user);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].properties["email"].ends_with("@line.linehub.invalid"));
    found[0].id.clone()
}

#[tokio::test]
async fn a_new_user_with_an_email_gets_a_contact_with_that_email_and_their_line_identity() {
    let world = LoginWorld::new(&login_block("")).await;
    let u = user();
    world.script(LoginWorld::person(&u, "Ann Tanaka", Some("Ann@Example.com")));
    let landed = world.open_login("/line/tokyo/login", "allow").await;
    assert_eq!(landed.status, 200, "{landed:?}");
    assert!(landed.body.contains("Your LINE account is linked"), "{}", landed.body);
    world.settle().await;
    let found = world.contacts("email", "ann@example.com");
    assert_eq!(found.len(), 1, "{found:#?}");
    let p = &found[0].properties;
    assert_eq!(p["line_user_id_1"], u);
    assert_eq!(p["line_user_name_1"], "Ann Tanaka");
    assert_eq!(p["line_follow_1"], "Yes", "added as a friend on the consent screen");
    assert!(p.get("line_id_sync_date_1").is_some_and(|d| d.len() == 10), "{p:?}");
    assert!(world.contacts("line_user_id_1", &u).len() == 1);
    world.sandbox.assert_no_violations();
}

#[tokio::test]
async fn an_existing_contact_found_by_email_gets_the_line_identity_and_no_duplicate_is_made() {
    let world = LoginWorld::new(&login_block("")).await;
    let rep_made =
        world.sandbox.hubspot().create_contact(&[("email", "ken@example.com"), ("firstname", "Ken")]).unwrap();
    let u = user();
    world.script(LoginWorld::person(&u, "Ken", Some("ken@example.com")));
    assert_eq!(world.open_login("/line/tokyo/login", "allow").await.status, 200);
    world.settle().await;
    let found = world.contacts("line_user_id_1", &u);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, rep_made);
    assert_eq!(found[0].properties["firstname"], "Ken", "the rep's contact is kept as it was");
    assert_eq!(world.contacts("email", "ken@example.com").len(), 1);
    world.sandbox.assert_no_violations();
}

#[tokio::test]
async fn the_placeholder_is_merged_into_the_contact_found_by_email_and_later_events_follow_it() {
    let world = LoginWorld::new(&login_block("")).await;
    let u = user();
    let placeholder = placeholder_of(&world, &u).await;
    let rep_made = world.sandbox.hubspot().create_contact(&[("email", "mia@example.com")]).unwrap();
    world.script(LoginWorld::person(&u, "Mia", Some("mia@example.com")));
    assert_eq!(world.open_login("/line/tokyo/login", "allow").await.status, 200);
    world.settle().await;
    let found = world.contacts("line_user_id_1", &u);
    assert_eq!(found.len(), 1, "one person, one contact: {found:#?}");
    assert_eq!(found[0].id, rep_made, "the rep's contact survives");
    assert_ne!(placeholder, rep_made);
    // The person writes again: the survivor is updated, no placeholder comes back.
    let ts = world.now();
    assert_eq!(world.deliver(vec![common::text_event("m-after-merge", &u, ts, "hello")]).await, 200);
    world.settle().await;
    let found = world.contacts("line_user_id_1", &u);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].id, rep_made);
    assert_eq!(found[0].properties["line_unanswered_1"], "Yes");
    world.sandbox.assert_no_violations();
}

#[tokio::test]
async fn without_an_email_the_users_placeholder_is_used_or_made() {
    let world = LoginWorld::new(&login_block("")).await;
    let u = user();
    world.script(LoginWorld::person(&u, "Noa", None));
    assert_eq!(world.open_login("/line/tokyo/login", "allow").await.status, 200);
    world.settle().await;
    let found = world.contacts("line_user_id_1", &u);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].properties["email"], format!("{}@line.linehub.invalid", u.to_ascii_lowercase()));
    assert_eq!(found[0].properties["line_user_name_1"], "Noa");
    // A second login changes nothing but the properties.
    world.script(LoginWorld::person(&u, "Noa", None));
    assert_eq!(world.open_login("/line/tokyo/login", "allow").await.status, 200);
    world.settle().await;
    assert_eq!(world.contacts("line_user_id_1", &u).len(), 1);
    world.sandbox.assert_no_violations();
}

#[tokio::test]
async fn two_contacts_with_real_emails_are_never_merged_and_the_conflict_is_listed() {
    let world = LoginWorld::new(&login_block("")).await;
    let u = user();
    let first = world.sandbox.hubspot().create_contact(&[("email", "sho@example.com")]).unwrap();
    world.script(LoginWorld::person(&u, "Sho", Some("sho@example.com")));
    assert_eq!(world.open_login("/line/tokyo/login", "allow").await.status, 200);
    world.settle().await;
    // The same LINE user later logs in with an email that another real contact has.
    let other = world.sandbox.hubspot().create_contact(&[("email", "sho.work@example.com")]).unwrap();
    world.script(LoginWorld::person(&u, "Sho", Some("sho.work@example.com")));
    assert_eq!(world.open_login("/line/tokyo/login", "allow").await.status, 200);
    world.settle().await;
    let found = world.contacts("line_user_id_1", &u);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, first, "the existing link is kept");
    assert_eq!(world.contacts("email", "sho.work@example.com")[0].id, other);
    let problems = world.daemon.store().link_problems(10).await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, "conflict");
    assert_eq!(problems[0].contact_id.as_deref(), Some(first.as_str()));
    assert_eq!(problems[0].other_contact_id.as_deref(), Some(other.as_str()));
    world.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_link_token_links_its_own_contact_once_and_a_forwarded_one_is_refused() {
    let world = LoginWorld::new(&login_block("")).await;
    let target = world.sandbox.hubspot().create_contact(&[("email", "yui@example.com")]).unwrap();
    let token = linehub::login::new_link_token();
    let expires = world.now() + 30 * 24 * 3600 * 1000;
    world
        .daemon
        .store()
        .put_link_tokens(vec![(hash_link_token(&token), target.clone())], expires, false, world.now())
        .await
        .unwrap();
    // Yui's LINE account has another email: the token wins.
    let yui = user();
    world.script(LoginWorld::person(&yui, "Yui", Some("yui.private@example.net")));
    let landed = world.open_login(&format!("/line/tokyo/login?link={token}"), "allow").await;
    assert_eq!(landed.status, 200, "{landed:?}");
    world.settle().await;
    let found = world.contacts("line_user_id_1", &yui);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, target);
    assert!(world.contacts("email", "yui.private@example.net").is_empty());
    // Yui opens it again: nothing to do.
    world.script(LoginWorld::person(&yui, "Yui", None));
    let again = world.open_login(&format!("/line/tokyo/login?link={token}"), "allow").await;
    assert_eq!(again.status, 200);
    assert!(again.body.contains("already linked"), "{}", again.body);
    // The email was forwarded: another LINE user is refused, and nothing changes.
    let attacker = user();
    world.script(LoginWorld::person(&attacker, "Mallory", Some("mallory@example.org")));
    let refused = world.open_login(&format!("/line/tokyo/login?link={token}"), "allow").await;
    assert_eq!(refused.status, 409, "{refused:?}");
    assert!(refused.body.contains("already used by another LINE account"), "{}", refused.body);
    world.settle().await;
    assert!(world.contacts("line_user_id_1", &attacker).is_empty());
    assert!(world.contacts("email", "mallory@example.org").is_empty());
    assert_eq!(world.contacts("line_user_id_1", &yui)[0].id, target);
    world.sandbox.assert_no_violations();
}

#[tokio::test]
async fn expired_and_unknown_link_tokens_link_nothing() {
    let world = LoginWorld::new(&login_block("")).await;
    let target = world.sandbox.hubspot().create_contact(&[("email", "rin@example.com")]).unwrap();
    let token = linehub::login::new_link_token();
    let now = world.now();
    world
        .daemon
        .store()
        .put_link_tokens(vec![(hash_link_token(&token), target)], now + 1000, false, now)
        .await
        .unwrap();
    world.clock.advance(std::time::Duration::from_secs(2));
    let u = user();
    world.script(LoginWorld::person(&u, "Rin", None));
    let expired = world.open_login(&format!("/line/tokyo/login?link={token}"), "allow").await;
    assert_eq!(expired.status, 400);
    assert!(expired.body.contains("expired"), "{}", expired.body);
    world.script(LoginWorld::person(&u, "Rin", None));
    let unknown = world.open_login("/line/tokyo/login?link=not-a-token-we-issued", "allow").await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.body.contains("not valid"), "{}", unknown.body);
    world.settle().await;
    assert!(world.contacts("line_user_id_1", &u).is_empty(), "nothing was linked");
    world.sandbox.assert_no_violations();
}

#[tokio::test]
async fn the_liff_page_links_with_tokens_linehub_has_line_verify() {
    let world = LoginWorld::new(&login_block(&format!("liff_id: \"{LIFF_ID}\""))).await;
    let page = world.browser.get(world.url("/line/tokyo/liff")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("/liff/sdk.js"), "{page}");
    let state = page.split("state: \"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string();
    // What the LIFF SDK does inside LINE: obtain the person's tokens.
    let u = user();
    world.script(LoginWorld::person(&u, "Emi", Some("emi@example.com")));
    let session: serde_json::Value = world
        .browser
        .post(format!("{}/_sandbox/liff/{LIFF_ID}/session", world.sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id_token, access_token) = (session["idToken"].as_str().unwrap(), session["accessToken"].as_str().unwrap());
    let post = |state: String, id_token: String| {
        let form = [("state", state), ("id_token", id_token), ("access_token", access_token.to_string())];
        world.browser.post(world.url("/line/tokyo/liff/link")).form(&form).send()
    };
    // A token LINE made for another channel is refused, and uses up nothing but its state.
    let foreign = world.sandbox.line().mint_liff_id_token(&serde_json::json!({
        "iss": "https://access.line.me", "sub": u, "aud": "1659999999", "exp": world.now() / 1000 + 600, "iat": world.now() / 1000
    }));
    let res = post(state.clone(), foreign).await.unwrap();
    assert_eq!(res.status(), 400);
    let answer: serde_json::Value = res.json().await.unwrap();
    assert_eq!(answer["linked"], false);
    // Expired, or changed after LINE signed it: refused the same way.
    let fresh_state = || async {
        let page = world.browser.get(world.url("/line/tokyo/liff")).send().await.unwrap().text().await.unwrap();
        page.split("state: \"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string()
    };
    let expired = world.sandbox.line().mint_liff_id_token(&serde_json::json!({
        "iss": "https://access.line.me", "sub": u, "aud": LOGIN_CHANNEL, "exp": 1_600_000_000, "iat": 1_599_999_000
    }));
    assert_eq!(post(fresh_state().await, expired).await.unwrap().status(), 400);
    let mut parts: Vec<String> = id_token.split('.').map(str::to_string).collect();
    parts[1] = parts[1].chars().rev().collect();
    assert_eq!(post(fresh_state().await, parts.join(".")).await.unwrap().status(), 400);
    // A fresh page's state with LINE's real token links.
    let page = world.browser.get(world.url("/line/tokyo/liff")).send().await.unwrap().text().await.unwrap();
    let state = page.split("state: \"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string();
    let res = post(state.clone(), id_token.to_string()).await.unwrap();
    assert_eq!(res.status(), 200);
    let answer: serde_json::Value = res.json().await.unwrap();
    assert_eq!(answer["linked"], true, "{answer}");
    // The same state again is a replay.
    assert_eq!(post(state, id_token.to_string()).await.unwrap().status(), 400);
    world.settle().await;
    let found = world.contacts("email", "emi@example.com");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].properties["line_user_id_1"], u);
    world.sandbox.assert_no_violations();
}

#[tokio::test]
async fn bad_callbacks_get_a_clear_page_and_change_nothing() {
    let world = LoginWorld::new(&login_block("")).await;
    let u = user();
    // The person cancels on LINE's consent screen.
    world.script(LoginWorld::person(&u, "Ao", Some("ao@example.com")));
    let denied = world.open_login("/line/tokyo/login", "deny").await;
    assert_eq!(denied.status, 400);
    assert!(denied.body.contains("You cancelled the LINE login"), "{}", denied.body);
    // A callback replayed after it was used.
    world.script(LoginWorld::person(&u, "Ao", Some("ao@example.com")));
    let done = world.open_login("/line/tokyo/login", "allow").await;
    assert_eq!(done.status, 200);
    let callback = world.sandbox.line().logins();
    assert!(!callback.is_empty());
    // Unknown state, LINE's other errors, accounts without a login.
    let cases = [
        ("/line/tokyo/login/callback?code=abc&state=never-issued", 400, "not valid"),
        ("/line/tokyo/login/callback?error=SERVER_ERROR&error_description=x&state=never-issued", 400, "not valid"),
        ("/line/tokyo/login/callback?code=abc", 400, "not valid"),
        ("/line/osaka/login", 404, "no LINE login"),
        ("/line/nowhere/login", 404, "no LINE login"),
        ("/line/osaka/login/qr.png", 404, "no LINE login"),
        ("/line/tokyo/liff", 404, "no LINE login"),
    ];
    for (path, status, text) in cases {
        let res = world.browser.get(world.url(path)).send().await.unwrap();
        assert_eq!(res.status(), status, "{path}");
        let body = res.text().await.unwrap();
        assert!(body.contains(text), "{path}: {body}");
        assert!(!body.contains(LOGIN_SECRET));
    }
    // An attempt that took longer than ten minutes.
    world.script(LoginWorld::person(&user(), "Late", None));
    let res = world.browser.get(world.url("/line/tokyo/login")).send().await.unwrap();
    let page = land(res).await;
    let session = hidden_field(&page.body, "session").unwrap();
    world.clock.advance(std::time::Duration::from_secs(11 * 60));
    let consent = format!("{}/oauth2/v2.1/authorize/consent", world.sandbox.base_url());
    let late = land(
        world.browser.post(consent).form(&[("session", session.as_str()), ("decision", "allow")]).send().await.unwrap(),
    )
    .await;
    assert_eq!(late.status, 400);
    assert!(late.body.contains("expired"), "{}", late.body);
    world.settle().await;
    let linked: Vec<_> = world.contacts("line_user_id_1", &u);
    assert_eq!(linked.len(), 1, "only the completed login linked");
    world.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let world = LoginWorld::new(&login_block("")).await;
    let u = user();
    world.script(LoginWorld::person(&u, "Kai", None));
    let res = world.browser.get(world.url("/line/tokyo/login")).send().await.unwrap();
    let page = land(res).await;
    let session = hidden_field(&page.body, "session").unwrap();
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let consent = format!("{}/oauth2/v2.1/authorize/consent", world.sandbox.base_url());
    let back =
        no_redirects.post(consent).form(&[("session", session.as_str()), ("decision", "allow")]).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(world.browser.get(&callback).send().await.unwrap().status(), 200);
    let replay = land(world.browser.get(&callback).send().await.unwrap()).await;
    assert_eq!(replay.status, 400);
    assert!(replay.body.contains("already completed"), "{}", replay.body);
    world.sandbox.assert_no_violations();
}

#[tokio::test]
async fn the_login_goes_on_to_the_after_login_url() {
    let world = LoginWorld::new(&login_block("after_login_url: \"https://line.me/R/ti/p/@linehub-test\"")).await;
    world.script(LoginWorld::person(&user(), "Ema", None));
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let start = no_redirects.get(world.url("/line/tokyo/login")).send().await.unwrap();
    assert_eq!(start.status(), 303);
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    for part in
        ["scope=openid%20profile%20email", "code_challenge_method=S256", "bot_prompt=normal", "nonce=", "state="]
    {
        assert!(authorize.contains(part), "{part} in {authorize}");
    }
    let page = land(no_redirects.get(&authorize).send().await.unwrap()).await;
    let session = hidden_field(&page.body, "session").unwrap();
    let consent = format!("{}/oauth2/v2.1/authorize/consent", world.sandbox.base_url());
    let back =
        no_redirects.post(consent).form(&[("session", session.as_str()), ("decision", "allow")]).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    let done = no_redirects.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], "https://line.me/R/ti/p/@linehub-test");
    world.sandbox.assert_no_violations();
}

#[tokio::test]
async fn qr_codes_decode_to_the_login_url_or_the_liff_url() {
    let decode = |png: &[u8]| {
        let img = image::load_from_memory(png).unwrap().to_luma8();
        let mut prepared = rqrr::PreparedImage::prepare(img);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().unwrap().1
    };
    let world = LoginWorld::new(&login_block("")).await;
    let png = world.browser.get(world.url("/line/tokyo/login/qr.png?size=300")).send().await.unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(decode(&png.bytes().await.unwrap()), world.url("/line/tokyo/login"));
    let svg = world.browser.get(world.url("/line/tokyo/login/qr.svg")).send().await.unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
    let sample = world.browser.get(world.url("/line/tokyo/login/sample")).send().await.unwrap();
    assert_eq!(sample.status(), 200);
    assert!(sample.text().await.unwrap().contains("Why we ask for your email address"));
    // The CLI writes the same code, of the LIFF URL once LIFF is configured.
    let liff = LoginWorld::new(&login_block(&format!("liff_id: \"{LIFF_ID}\""))).await;
    let out = liff.dir.path().join("qr.png");
    let config = liff.dir.path().join("config.yaml");
    let (ok, log) = output(linehub().args(["qr", "--config"]).arg(&config).arg("-o").arg(&out).arg("tokyo"));
    assert!(ok, "{log}");
    assert_eq!(decode(&std::fs::read(&out).unwrap()), format!("https://liff.line.me/{LIFF_ID}"));
}

#[tokio::test]
async fn a_friend_the_account_never_saw_is_flagged_as_a_login_channel_under_another_provider() {
    let world = LoginWorld::new(&login_block("")).await;
    let u = user();
    // LINE says this user is a friend, yet no webhook ever named them: the user id LINE Login
    // gives is not the one the Messaging API channel knows.
    world.sandbox.line().add_friend("tokyo-access-token", &u, linehub_sandbox::Profile::named("Jun")).unwrap();
    let mut consent = LoginWorld::person(&u, "Jun", None);
    consent.add_friend = false;
    world.script(consent);
    assert_eq!(world.open_login("/line/tokyo/login", "allow").await.status, 200);
    let problems = world.daemon.store().link_problems(10).await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((problems[0].kind.as_str(), problems[0].user_id.as_str()), ("provider", u.as_str()));
    // A user who became a friend during this very login is not a sign of anything.
    let v = user();
    world.script(LoginWorld::person(&v, "Rui", None));
    assert_eq!(world.open_login("/line/tokyo/login", "allow").await.status, 200);
    assert_eq!(world.daemon.store().link_problems(10).await.unwrap().len(), 1);
    world.sandbox.assert_no_violations();
}
