//! The LINE Login and LIFF simulator, driven over HTTP as a browser and the daemon drive it.

mod common;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Harness, LINE_TOKEN, start, status_json};
use hmac::{Hmac, KeyInit, Mac};
use linehub_sandbox::line_login::sign_hs256;
use linehub_sandbox::{LoginChannelSpec, LoginConsent, LoginVia, ViolationKind, webhook};
use reqwest::Client;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CHANNEL_ID: &str = "1650000001";
const CHANNEL_SECRET: &str = "login-channel-secret";
const CALLBACK: &str = "https://app.example/line/callback";
const LIFF_ID: &str = "1650000001-AbCd1234";
const VERIFIER: &str = "sandbox-pkce-verifier-0123456789-abcdefghijklmnop";

/// A harness with a Login channel linked to the harness's bot, with email permission and a LIFF app.
async fn login_harness() -> Harness {
    let h = start().await;
    let mut spec = LoginChannelSpec::new(CHANNEL_ID, CHANNEL_SECRET, CALLBACK);
    spec.linked_bot_access_token = Some(LINE_TOKEN.to_string());
    spec.liff_ids = vec![LIFF_ID.to_string()];
    spec.email_permission = true;
    h.sandbox.line().add_login_channel(spec).expect("login channel");
    h
}

/// A client that shows redirects instead of following them, as a test of a callback needs.
fn browser() -> Client {
    Client::builder().redirect(Policy::none()).build().expect("client")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn authorize_url(h: &Harness, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", CHANNEL_ID),
        ("redirect_uri", redirect_uri),
        ("state", "st4te"),
        ("scope", "openid profile email"),
        ("nonce", "n0nce"),
    ];
    pairs.extend_from_slice(extra);
    h.url(&format!("/oauth2/v2.1/authorize?{}", form(&pairs)))
}

async fn post_form(h: &Harness, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
    browser()
        .post(h.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .expect("the sandbox answers")
}

/// The hidden `session` value of the consent form.
fn session_of(html: &str) -> String {
    let at = html.find("name=\"session\" value=\"").expect("a session field") + "name=\"session\" value=\"".len();
    html[at..].split('"').next().expect("quoted").to_string()
}

/// Query parameters of a redirect location.
fn params_of(location: &str) -> Vec<(String, String)> {
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    query.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_string(), v.replace("%20", " "))).collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Shows the consent page of the next scripted login and presses `decision`; returns the
/// redirect location.
async fn consent(h: &Harness, url: &str, decision: &str) -> String {
    let resp = browser().get(url).send().await.expect("authorize page");
    assert_eq!(resp.status().as_u16(), 200);
    let html = resp.text().await.expect("html");
    let resp =
        post_form(h, "/oauth2/v2.1/authorize/consent", &[("session", &session_of(&html)), ("decision", decision)])
            .await;
    assert_eq!(resp.status().as_u16(), 302);
    resp.headers()["location"].to_str().expect("ascii").to_string()
}

async fn exchange(h: &Harness, code: &str, verifier: &str) -> (u16, Value) {
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("client_id", CHANNEL_ID),
        ("client_secret", CHANNEL_SECRET),
        ("code_verifier", verifier),
    ];
    status_json(post_form(h, "/oauth2/v2.1/token", &pairs).await).await
}

/// The claims of a JWT whose HS256 signature is `secret`'s (checked here, not by the sandbox).
fn hs256_claims(token: &str, secret: &str) -> Value {
    let (input, signature) = token.rsplit_once('.').expect("three parts");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(input.as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).expect("b64")).expect("signed with the channel secret");
    let payload = input.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

fn jwt_part(token: &str, i: usize) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(i).expect("part")).expect("b64")).expect("json")
}

async fn verify_id_token(h: &Harness, token: &str, client_id: &str, nonce: Option<&str>) -> (u16, Value) {
    let mut pairs = vec![("id_token", token), ("client_id", client_id)];
    if let Some(n) = nonce {
        pairs.push(("nonce", n));
    }
    status_json(post_form(h, "/oauth2/v2.1/verify", &pairs).await).await
}

#[tokio::test]
async fn a_web_login_round_trip_yields_tokens_that_verify_and_a_new_friend() {
    let h = login_harness().await;
    let user = webhook::random_user_id();
    let mut who = LoginConsent::allow(&user, "Ann <Sato>");
    who.picture = Some("https://profile.example/ann.png".into());
    who.email = Some("ann@example.com".into());
    who.grant_email = true;
    who.add_friend = true;
    h.sandbox.line().script_login(CHANNEL_ID, who).expect("scripted");

    let redirect_uri = format!("{CALLBACK}?acct=1");
    let url = authorize_url(
        &h,
        &redirect_uri,
        &[("bot_prompt", "normal"), ("code_challenge", &challenge(VERIFIER)), ("code_challenge_method", "S256")],
    );
    let resp = browser().get(&url).send().await.expect("page");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    let html = resp.text().await.expect("html");
    for expected in
        ["<title>LINE Login</title>", "Ann &lt;Sato&gt;", "id=\"add_friend\"", "id=\"email\"", "id=\"allow\""]
    {
        assert!(html.contains(expected), "{expected} missing from {html}");
    }
    let resp =
        post_form(&h, "/oauth2/v2.1/authorize/consent", &[("session", &session_of(&html)), ("decision", "allow")])
            .await;
    assert_eq!(resp.status().as_u16(), 302);
    let location = resp.headers()["location"].to_str().expect("ascii").to_string();
    assert!(location.starts_with(&format!("{redirect_uri}&")), "{location}");
    let params = params_of(&location);
    assert_eq!(param(&params, "state"), Some("st4te"));
    assert_eq!(param(&params, "friendship_status_changed"), Some("true"));
    let code = param(&params, "code").expect("a code").to_string();

    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", CHANNEL_ID),
        ("client_secret", CHANNEL_SECRET),
        ("code_verifier", VERIFIER),
    ];
    let (status, tokens) = status_json(post_form(&h, "/oauth2/v2.1/token", &pairs).await).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["expires_in"], 2_592_000);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid profile");
    assert!(tokens["refresh_token"].is_string());
    let id_token = tokens["id_token"].as_str().expect("an id token with openid");
    assert_eq!(jwt_part(id_token, 0)["alg"], "HS256");
    let claims = hs256_claims(id_token, CHANNEL_SECRET);
    assert_eq!(claims["iss"], "https://access.line.me");
    assert_eq!(claims["sub"], json!(user));
    assert_eq!(claims["aud"], CHANNEL_ID);
    assert_eq!(claims["nonce"], "n0nce");
    assert_eq!(claims["amr"], json!(["linesso"]));
    assert_eq!(claims["name"], "Ann <Sato>");
    assert_eq!(claims["picture"], "https://profile.example/ann.png");
    assert_eq!(claims["email"], "ann@example.com");
    assert_eq!(claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"), 3600);

    let (status, payload) = verify_id_token(&h, id_token, CHANNEL_ID, Some("n0nce")).await;
    assert_eq!((status, &payload["sub"]), (200, &json!(user)));

    let access = tokens["access_token"].as_str().expect("access token");
    let (status, info) = status_json(
        browser().get(h.url(&format!("/oauth2/v2.1/verify?access_token={access}"))).send().await.expect("ok"),
    )
    .await;
    assert_eq!((status, &info["client_id"]), (200, &json!(CHANNEL_ID)));
    assert!(info["expires_in"].as_u64().expect("expires_in") > 2_500_000);
    let (status, profile) =
        status_json(browser().get(h.url("/v2/profile")).bearer_auth(access).send().await.expect("ok")).await;
    assert_eq!(status, 200);
    assert_eq!(
        profile,
        json!({"userId": user, "displayName": "Ann <Sato>", "pictureUrl": "https://profile.example/ann.png"})
    );
    let (status, friendship) =
        status_json(browser().get(h.url("/friendship/v1/status")).bearer_auth(access).send().await.expect("ok")).await;
    assert_eq!((status, friendship), (200, json!({"friendFlag": true})));

    let friends = h.sandbox.line().friends(LINE_TOKEN).expect("friends");
    assert!(friends.iter().any(|f| f.user_id == user && f.profile.display_name == "Ann <Sato>"));
    h.sandbox.line().block(LINE_TOKEN, &user).expect("block");
    let (_, friendship) =
        status_json(browser().get(h.url("/friendship/v1/status")).bearer_auth(access).send().await.expect("ok")).await;
    assert_eq!(friendship, json!({"friendFlag": false}));
    assert_eq!(h.sandbox.line().tokens_issued(CHANNEL_ID), Ok(1));
    let logins = h.sandbox.line().logins();
    assert_eq!(logins.len(), 1);
    assert!(logins[0].allowed && logins[0].became_friend && logins[0].via == LoginVia::Web);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused_and_a_code_works_only_once() {
    let h = login_harness().await;
    let pkce = [("code_challenge", challenge(VERIFIER)), ("code_challenge_method", "S256".to_string())];
    let pkce: Vec<(&str, &str)> = pkce.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for _ in 0..2 {
        h.sandbox.line().script_login(CHANNEL_ID, LoginConsent::allow(webhook::random_user_id(), "Bo")).expect("ok");
    }

    let location = consent(&h, &authorize_url(&h, CALLBACK, &pkce), "allow").await;
    let code = param(&params_of(&location), "code").expect("code").to_string();
    let other = "another-verifier-that-is-long-enough-to-be-valid-0123";
    let (status, body) = exchange(&h, &code, other).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")), "{body}");

    let location = consent(&h, &authorize_url(&h, CALLBACK, &pkce), "allow").await;
    let code = param(&params_of(&location), "code").expect("code").to_string();
    assert!(param(&params_of(&location), "friendship_status_changed").is_none(), "no bot_prompt, no flag");
    let (status, body) = exchange(&h, &code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = exchange(&h, &code, VERIFIER).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")), "{body}");
    assert_eq!(h.sandbox.line().tokens_issued(CHANNEL_ID), Ok(1));
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn an_unregistered_redirect_uri_or_client_gets_an_error_page_not_a_redirect() {
    let h = login_harness().await;
    h.sandbox.line().script_login(CHANNEL_ID, LoginConsent::allow(webhook::random_user_id(), "Cy")).expect("ok");
    let resp = browser().get(authorize_url(&h, "https://evil.example/cb", &[])).send().await.expect("page");
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers().get("location").is_none());
    assert!(resp.text().await.expect("html").contains("redirect_uri"));

    let url = authorize_url(&h, CALLBACK, &[]).replace(CHANNEL_ID, "1659999999");
    let resp = browser().get(url).send().await.expect("page");
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers().get("location").is_none());

    // The scripted user is still waiting for a real authorization request.
    let location = consent(&h, &authorize_url(&h, CALLBACK, &[]), "allow").await;
    assert!(param(&params_of(&location), "code").is_some());
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_user_who_cancels_comes_back_with_access_denied_and_nobody_scripted_gets_no_form() {
    let h = login_harness().await;
    h.sandbox.line().script_login(CHANNEL_ID, LoginConsent::deny(webhook::random_user_id(), "Di")).expect("ok");
    // The scripted decision wins over the button pressed.
    let location = consent(&h, &authorize_url(&h, CALLBACK, &[("bot_prompt", "aggressive")]), "allow").await;
    let params = params_of(&location);
    assert_eq!(param(&params, "error"), Some("ACCESS_DENIED"));
    assert_eq!(param(&params, "state"), Some("st4te"));
    assert!(param(&params, "error_description").is_some());
    assert!(param(&params, "code").is_none());

    let resp = browser().get(authorize_url(&h, CALLBACK, &[])).send().await.expect("page");
    assert_eq!(resp.status().as_u16(), 200);
    let html = resp.text().await.expect("html");
    assert!(html.contains("No LINE user is signed in") && !html.contains("<form"), "{html}");
    assert!(!h.sandbox.line().logins()[0].allowed);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_liff_session_token_verifies_against_the_jwks_and_through_verify() {
    let h = login_harness().await;
    let user = webhook::random_user_id();
    let mut who = LoginConsent::allow(&user, "Eri");
    who.add_friend = true;
    h.sandbox.line().script_login(CHANNEL_ID, who).expect("ok");

    let sdk = browser().get(h.url("/liff/sdk.js")).send().await.expect("sdk");
    assert!(sdk.headers()["content-type"].to_str().expect("ascii").contains("javascript"));
    let sdk = sdk.text().await.expect("js");
    assert!(sdk.contains("window.liff") && sdk.contains("/_sandbox/liff/") && sdk.contains("document.currentScript"));

    let resp = browser().post(h.url(&format!("/_sandbox/liff/{LIFF_ID}/session"))).send().await.expect("session");
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    let (status, session) = status_json(resp).await;
    assert_eq!(status, 200, "{session}");
    let id_token = session["idToken"].as_str().expect("id token");
    let header = jwt_part(id_token, 0);
    assert_eq!(header["alg"], "ES256");

    let (status, jwks) = status_json(browser().get(h.url("/oauth2/v2.1/certs")).send().await.expect("certs")).await;
    assert_eq!(status, 200);
    let key = jwks["keys"].as_array().expect("keys").iter().find(|k| k["kid"] == header["kid"]).expect("key by kid");
    assert_eq!((&key["kty"], &key["crv"], &key["alg"]), (&json!("EC"), &json!("P-256"), &json!("ES256")));
    let mut point = vec![4u8];
    for c in ["x", "y"] {
        point.extend(URL_SAFE_NO_PAD.decode(key[c].as_str().expect("coordinate")).expect("b64"));
    }
    let (input, signature) = id_token.rsplit_once('.').expect("parts");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(signature).expect("b64"))
        .expect("signed by the published key");
    let claims = jwt_part(id_token, 1);
    assert_eq!((&claims["sub"], &claims["aud"], &claims["name"]), (&json!(user), &json!(CHANNEL_ID), &json!("Eri")));

    let (status, payload) = verify_id_token(&h, id_token, CHANNEL_ID, None).await;
    assert_eq!((status, &payload["sub"]), (200, &json!(user)));
    let access = session["accessToken"].as_str().expect("access token");
    let (status, friendship) =
        status_json(browser().get(h.url("/friendship/v1/status")).bearer_auth(access).send().await.expect("ok")).await;
    assert_eq!((status, friendship), (200, json!({"friendFlag": true})));

    let (status, body) =
        status_json(browser().post(h.url(&format!("/_sandbox/liff/{LIFF_ID}/session"))).send().await.expect("ok"))
            .await;
    assert_eq!(status, 409, "nobody scripted: {body}");
    assert_eq!(h.sandbox.line().logins()[0].via, LoginVia::Liff);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn verify_refuses_wrong_audience_expired_forged_and_replayed_tokens() {
    let h = login_harness().await;
    let line = h.sandbox.line();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let claims = |aud: &str, exp: i64| {
        json!({"iss": "https://access.line.me", "sub": webhook::random_user_id(), "aud": aud,
               "exp": exp, "iat": now, "nonce": "n1", "amr": ["linesso"]})
    };
    let cases = [
        (line.mint_liff_id_token(&claims("1650000002", now + 600)), None, "Invalid IdToken Audience."),
        (line.mint_liff_id_token(&claims(CHANNEL_ID, now - 10)), None, "IdToken expired."),
        (sign_hs256("not-the-secret", &claims(CHANNEL_ID, now + 600)), None, "Invalid IdToken."),
        (sign_hs256(CHANNEL_SECRET, &claims(CHANNEL_ID, now + 600)), Some("other"), "Invalid IdToken Nonce."),
        ("not.a.jwt".to_string(), None, "Invalid IdToken."),
    ];
    for (token, nonce, expected) in cases {
        let (status, body) = verify_id_token(&h, &token, CHANNEL_ID, nonce).await;
        assert_eq!(status, 400, "{expected}: {body}");
        assert_eq!(body, json!({"error": "invalid_request", "error_description": expected}));
    }
    let mut tampered = line.mint_liff_id_token(&claims(CHANNEL_ID, now + 600));
    let (_, body) = verify_id_token(&h, &tampered, CHANNEL_ID, Some("n1")).await;
    assert_eq!(body["aud"], CHANNEL_ID, "the untampered token verifies");
    tampered = tampered.replacen('.', ".e", 1);
    let (status, _) = verify_id_token(&h, &tampered, CHANNEL_ID, None).await;
    assert_eq!(status, 400);
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn an_off_contract_token_request_is_answered_invalid_request_and_recorded() {
    let h = login_harness().await;
    let (status, body) = status_json(
        post_form(
            &h,
            "/oauth2/v2.1/token",
            &[("grant_type", "authorization_code"), ("code", "x"), ("client_id", CHANNEL_ID)],
        )
        .await,
    )
    .await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")), "{body}");
    let seen = h.sandbox.take_violations();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].kind, ViolationKind::OffContract);
    assert!(seen[0].details.iter().any(|(at, _)| at == "/client_secret"), "{}", seen[0]);

    // An authorization request without state is not redirected either.
    let url = authorize_url(&h, CALLBACK, &[]).replace("&state=st4te", "");
    let resp = browser().get(url).send().await.expect("page");
    assert_eq!(resp.status().as_u16(), 400);
    assert!(h.sandbox.take_violations().iter().any(|v| v.details.iter().any(|(at, _)| at == "query:state")));
    h.sandbox.assert_no_violations();
}

#[tokio::test]
async fn another_process_sets_up_login_channels_and_scripted_users_through_the_admin_api() {
    let h = start().await;
    let http = Client::new();
    let (status, _) = status_json(
        http.post(h.url("/_sandbox/line/login-channels"))
            .json(&json!({"channelId": CHANNEL_ID, "channelSecret": CHANNEL_SECRET, "callbackUrls": [CALLBACK],
                          "linkedBotAccessToken": LINE_TOKEN, "liffIds": [LIFF_ID]}))
            .send()
            .await
            .expect("ok"),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = status_json(
        http.post(h.url("/_sandbox/line/login-channels"))
            .json(&json!({"channelId": "12ab", "channelSecret": "s", "callbackUrls": [CALLBACK]}))
            .send()
            .await
            .expect("ok"),
    )
    .await;
    assert_eq!(status, 400);
    let user = webhook::random_user_id();
    let (status, body) = status_json(
        http.post(h.url("/_sandbox/line/logins"))
            .json(&json!({"channelId": CHANNEL_ID, "userId": user, "name": "Fumi", "addFriend": true}))
            .send()
            .await
            .expect("ok"),
    )
    .await;
    assert_eq!((status, &body["userId"]), (201, &json!(user)));
    let (status, _) =
        status_json(http.post(h.url(&format!("/_sandbox/liff/{LIFF_ID}/session"))).send().await.expect("ok")).await;
    assert_eq!(status, 200);
    let (_, logins) = status_json(http.get(h.url("/_sandbox/line/logins")).send().await.expect("ok")).await;
    assert_eq!(
        logins,
        json!([{"channelId": CHANNEL_ID, "userId": user, "via": "liff", "allowed": true, "becameFriend": true}])
    );
    let (_, channels) = status_json(http.get(h.url("/_sandbox/line/login-channels")).send().await.expect("ok")).await;
    assert_eq!(channels[0]["liffIds"], json!([LIFF_ID]));
    h.sandbox.assert_no_violations();
}
