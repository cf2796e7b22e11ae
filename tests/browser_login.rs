//! The login pages in headless Chromium: the login link through LINE's (simulated) consent page
//! and back, the LIFF page running the LIFF SDK, and the login's QR code read off the screen.
//! Screenshots are kept in `target/test-output/`.

mod common;

use common::*;

fn decode_qr(png: &[u8]) -> Vec<String> {
    let img = image::load_from_memory(png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    prepared.detect_grids().into_iter().filter_map(|g| g.decode().ok().map(|(_, text)| text)).collect()
}

/// Shows the image at `path` alone on a page of the daemon and returns a screenshot of it.
async fn show_image(browser: &Browser, world: &LoginWorld, path: &str, name: &str) -> Vec<u8> {
    browser.goto(&world.url("/line/tokyo/login/sample")).await;
    let script = format!(
        "document.title = ''; document.body.innerHTML = '<img src=\"{path}\">'; \
         document.body.firstChild.onload = () => {{ document.title = 'loaded'; }}; return true;"
    );
    browser.run(&script).await;
    for _ in 0..100 {
        if browser.run("return document.title").await == "loaded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.screenshot(name).await
}

#[tokio::test]
async fn a_person_logs_in_through_the_consent_page_and_the_qr_code_reads_back_the_login_url() {
    let world = LoginWorld::new(&login_block(&format!("liff_id: \"{LIFF_ID}\""))).await;
    let browser = Browser::start().await;

    let user = linehub_sandbox::webhook::random_user_id();
    world.script(LoginWorld::person(&user, "Hana", Some("hana@example.com")));
    browser.goto(&world.url("/line/tokyo/login")).await;
    let consent = browser.wait_for_text("Hana").await;
    assert!(browser.url().await.starts_with(&world.sandbox.base_url()), "on LINE's consent page");
    assert!(consent.to_lowercase().contains("email"), "{consent}");
    browser.screenshot("login-1-consent").await;
    browser.click("#allow").await;
    browser.wait_for_text("Your LINE account is linked").await;
    assert!(browser.url().await.starts_with(&world.url("/line/tokyo/login/callback")));
    browser.screenshot("login-2-linked").await;
    world.settle().await;
    let found = world.contacts("email", "hana@example.com");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].properties["line_user_id_1"], user);

    // The LIFF page, as LINE's in-app browser would open it.
    let liff_user = linehub_sandbox::webhook::random_user_id();
    world.script(LoginWorld::person(&liff_user, "Sora", Some("sora@example.com")));
    browser.goto(&world.url("/line/tokyo/liff")).await;
    browser.wait_for_text("Your LINE account is linked").await;
    browser.screenshot("login-3-liff").await;
    world.settle().await;
    assert_eq!(world.contacts("email", "sora@example.com")[0].properties["line_user_id_1"], liff_user);

    // The QR codes as a page shows them: the login URL's, and (the default with LIFF configured)
    // the LIFF URL's.
    let shown = show_image(&browser, &world, "/line/tokyo/login/qr.png?size=320&for=login", "login-4-qr-login").await;
    assert_eq!(decode_qr(&shown), vec![world.url("/line/tokyo/login")]);
    let shown = show_image(&browser, &world, "/line/tokyo/login/qr.png?size=320", "login-5-qr-liff").await;
    assert_eq!(decode_qr(&shown), vec![format!("https://liff.line.me/{LIFF_ID}")]);
    browser.close().await;
    world.sandbox.assert_no_violations();
}
