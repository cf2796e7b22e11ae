//! The command line from the outside: `demo`, `sandbox`, `outbox` and `--help`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{ConfigFile, Process, free_port, linehub, sandbox_command, wait_up};

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["check", "--help"],
        &["sandbox", "--help"],
        &["demo", "--help"],
        &["outbox", "list", "--help"],
        &["outbox", "retry", "--help"],
        &["sends", "--help"],
    ] {
        let out = linehub().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn the_demo_plays_its_scenario_and_exits_with_once() {
    let out = linehub()
        .args(["demo", "--once", "--listen", "127.0.0.1:0", "--sandbox-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "(follow, signed) -> 200",
        "created",
        "LINE User Name _1        Sato Hanako",
        "LINE Follow _1           Yes",
        "LINE Unanswered _1       Yes",
        "LINE Last Response _1    こんにちは！予約できますか？",
        "task \"Reply on LINE (demo)\"",
        "POST /hubspot/actions/push-line-message (signed) -> BLOCK",
        "Sato Hanako様、ご予約を承りました。 + [sticker]",
        "linehub send #1",
        "\"hs_execution_state\":\"SUCCESS\"",
        "opens the login link",
        "-> linehub: \"Your LINE account is linked.",
        "which now has the LINE identity",
        "email                    hanako.sato@example.com",
        "0 violations",
    ] {
        assert!(stdout.contains(expected), "missing `{expected}` in:\n{stdout}");
    }
}

#[test]
fn the_standalone_sandbox_serves_line_and_hubspot_on_one_listener() {
    let port = free_port();
    let mut sandbox = Process::spawn(sandbox_command(port).stdout(Stdio::piped()));
    let mut first = String::new();
    // Kept open until the end: the sandbox keeps writing to it.
    let mut stdout = BufReader::new(sandbox.child().stdout.take().unwrap());
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains(&format!("http://127.0.0.1:{port}")), "{first}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (line_status, hubspot_status) = rt.block_on(async {
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        wait_up(&http, &format!("{base}/_sandbox/health")).await;
        let line = http.get(format!("{base}/v2/bot/info")).bearer_auth("nobody").send().await.unwrap().status();
        let hubspot = http
            .get(format!("{base}/crm/v3/owners"))
            .bearer_auth("sandbox-hubspot-token")
            .send()
            .await
            .unwrap()
            .status();
        (line.as_u16(), hubspot.as_u16())
    });
    sandbox.kill();
    drop(stdout);
    assert_eq!(line_status, 401, "LINE answers for an unknown channel token");
    assert_eq!(hubspot_status, 200);
}

#[test]
fn the_outbox_commands_list_and_retry_on_a_fresh_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::bare(dir.path()).write();
    let out = linehub().args(["outbox", "list", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no dead-lettered writes"));
    let out = linehub().args(["outbox", "retry", "--config"]).arg(&config).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 write(s) queued again"));
}
