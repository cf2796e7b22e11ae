//! `linehub check` from the outside: every broken config names file, line and field.

mod common;

use std::path::Path;

use common::{linehub, output, write_config_text};

const GOOD: &str = r#"server:
  listen: "127.0.0.1:8080"
  public_base_url: "https://linehub.example.com"
store:
  path: "linehub.db"
plan: starter
hubspot:
  token: "${TEST_HUBSPOT_TOKEN}"
accounts:
  - id: tokyo
    channel_secret: "${TEST_SECRET}"
    channel_access_token: "token-1"
  - id: osaka
    channel_secret: "secret-2"
    channel_access_token: "token-2"
"#;

/// Runs `linehub check`, returning (success, stdout + stderr).
fn check(path: &Path) -> (bool, String) {
    output(
        linehub()
            .args(["check", "--config"])
            .arg(path)
            .env("TEST_HUBSPOT_TOKEN", "pat-na1-0000")
            .env("TEST_SECRET", "s3cret"),
    )
}

fn assert_refused(text: &str, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config_text(dir.path(), text);
    let (ok, output) = check(&path);
    assert!(!ok, "check accepted a broken config:\n{output}");
    for e in expected {
        let e = format!("{}:{e}", path.display());
        assert!(output.contains(&e), "expected `{e}` in:\n{output}");
    }
    assert!(!output.contains("s3cret") && !output.contains("pat-na1"), "a secret reached the output:\n{output}");
}

#[test]
fn a_good_config_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, output) = check(&write_config_text(dir.path(), GOOD));
    assert!(ok, "{output}");
    assert!(output.contains("2 accounts, 2 active, plan starter"), "{output}");
}

#[test]
fn the_example_config_passes_with_its_variables_set() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.yaml");
    let (ok, text) = output(
        linehub()
            .args(["check", "--config"])
            .arg(&example)
            .env("HUBSPOT_TOKEN", "x")
            .env("LINE_TOKYO_CHANNEL_SECRET", "x")
            .env("LINE_TOKYO_ACCESS_TOKEN", "x"),
    );
    assert!(ok, "{text}");
}

#[test]
fn an_unknown_key_is_located() {
    let text = GOOD
        .replace("    channel_access_token: \"token-2\"\n", "    channel_access_token: \"token-2\"\n    actve: true\n");
    assert_refused(&text, &["16:5: accounts[1].actve: unknown field `actve`"]);
}

#[test]
fn a_wrong_type_is_located() {
    let text = GOOD.replace(
        "  public_base_url: \"https://linehub.example.com\"\n",
        "  public_base_url: \"https://linehub.example.com\"\n  max_body_bytes: lots\n",
    );
    assert_refused(&text, &["4:19: server.max_body_bytes: invalid u64"]);
}

#[test]
fn a_yaml_syntax_error_is_located() {
    let text = GOOD.replace("  path: \"linehub.db\"", "\tpath: \"linehub.db\"");
    assert_refused(&text, &["5:2: tabs disallowed"]);
}

#[test]
fn more_active_accounts_than_the_plan_allows_is_an_error() {
    let text = format!("{GOOD}  - id: kyoto\n    channel_secret: s\n    channel_access_token: t\n");
    assert_refused(&text, &["16:9: accounts[2].id: plan `starter` allows 2 active accounts"]);
    // The same three accounts fit once one is inactive, or on a bigger plan.
    let dir = tempfile::tempdir().unwrap();
    let inactive =
        format!("{GOOD}  - id: kyoto\n    channel_secret: s\n    channel_access_token: t\n    active: false\n");
    assert!(check(&write_config_text(dir.path(), &inactive)).0);
    let bigger = text.replace("plan: starter", "plan: professional");
    assert!(check(&write_config_text(dir.path(), &bigger)).0);
}

#[test]
fn every_error_in_a_file_is_reported_at_once() {
    let text = GOOD
        .replace("plan: starter", "plan: gold")
        .replace("id: osaka", "id: tokyo")
        .replace("${TEST_SECRET}", "${NOT_SET_ANYWHERE}")
        .replace("127.0.0.1:8080", "localhost");
    assert_refused(
        &text,
        &[
            "2:11: server.listen: `localhost` is not an address",
            "6:7: plan: unknown plan `gold`; use one of trial, starter, professional, enterprise",
            "11:21: accounts[0].channel_secret: environment variable `NOT_SET_ANYWHERE` is not set",
            "13:9: accounts[1].id: `tokyo` is used by an earlier account",
        ],
    );
}

#[test]
fn a_missing_file_says_so() {
    let (ok, output) = check(Path::new("/nonexistent/linehub.yaml"));
    assert!(!ok);
    assert!(output.contains("/nonexistent/linehub.yaml: cannot read the config file"), "{output}");
}

#[test]
fn hubspot_settings_are_checked() {
    let text = GOOD.replace(
        "  token: \"${TEST_HUBSPOT_TOKEN}\"\n",
        "  token: \"${TEST_HUBSPOT_TOKEN}\"\n  tier: platinum\n  timeout_secs: 0\n  dummy_email_domain: \"not a domain\"\n",
    );
    assert_refused(
        &text,
        &[
            "9:9: hubspot.tier: unknown HubSpot tier `platinum`",
            "10:17: hubspot.timeout_secs: must be between 1 and 300",
            "11:23: hubspot.dummy_email_domain: `not a domain` is not a domain name",
        ],
    );
}

#[test]
fn credentials_in_a_url_never_reach_the_output() {
    let text = GOOD.replace("https://linehub.example.com", "https://admin:hunter2@").replace(
        "  token: \"${TEST_HUBSPOT_TOKEN}\"\n",
        "  token: \"t\"\n  base_url: \"ftp://admin:${TEST_SECRET}@api.example.com/\"\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_config_text(dir.path(), &text);
    let (ok, output) = check(&path);
    assert!(!ok, "{output}");
    assert!(output.contains("server.public_base_url: `https://***@` is not a URL"), "{output}");
    assert!(
        output.contains("hubspot.base_url: `ftp://***@api.example.com/` must be an http:// or https:// URL"),
        "{output}"
    );
    assert!(!output.contains("hunter2") && !output.contains("s3cret") && !output.contains("admin"), "{output}");
}

#[test]
fn a_broken_login_block_names_each_mistake() {
    let text = GOOD.replace(
        "    channel_access_token: \"token-1\"\n",
        "    channel_access_token: \"token-1\"\n    login:\n      channel_id: \"not-digits\"\n      channel_secret: \"${TEST_UNSET_LOGIN_SECRET}\"\n      liff_id: \"nodash\"\n      after_login_url: \"line.me/R/ti/p/@x\"\n      bot_prompt: loud\n",
    );
    assert_refused(
        &text,
        &[
            "14:19: accounts[0].login.channel_id:",
            "15:23: accounts[0].login.channel_secret:",
            "16:16: accounts[0].login.liff_id:",
            "17:24: accounts[0].login.after_login_url:",
            "18:19: accounts[0].login.bot_prompt: unknown bot_prompt `loud`",
        ],
    );
}

#[test]
fn a_good_login_block_passes() {
    let text = GOOD.replace(
        "    channel_access_token: \"token-1\"\n",
        "    channel_access_token: \"token-1\"\n    login:\n      channel_id: \"1650000001\"\n      channel_secret: \"${TEST_SECRET}\"\n      liff_id: \"1650000001-AbCdEfGh\"\n      after_login_url: \"https://line.me/R/ti/p/@linehub\"\n      email: true\n      bot_prompt: aggressive\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let (ok, output) = check(&write_config_text(dir.path(), &text));
    assert!(ok, "{output}");
}
