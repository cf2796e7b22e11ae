//! The pipeline commands and reloads of `linehub run`, from the outside: the real binary, its
//! output, and its logs.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ConfigFile, Process, linehub, output, start_sandbox};

/// A config for account `tokyo` in `dir`, with LINE and HubSpot at `upstream`, and its
/// pipelines directory.
fn write_config(dir: &Path, upstream: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    ConfigFile::bare(dir).upstream(upstream).account("tokyo", "s3cret", "tokyo-access-token").write()
}

fn pipeline(dir: &Path, file: &str, yaml: &str) -> PathBuf {
    let path = dir.join("pipelines").join(file);
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn the_pipeline_commands_have_help() {
    for args in [&["pipeline", "--help"][..], &["pipeline", "list", "--help"], &["pipeline", "run", "--help"]] {
        let (ok, text) = output(linehub().args(args));
        assert!(ok && text.contains("Usage:"), "{args:?}: {text}");
    }
    let (_, text) = output(linehub().args(["pipeline", "run", "--help"]));
    assert!(text.contains("--dry-run"), "{text}");
}

#[test]
fn check_validates_the_pipelines_too_and_locates_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:1");
    pipeline(
        dir.path(),
        "nightly.yaml",
        "schedule: { cron: \"0 3 * * *\", time_zone: Asia/Taipei }\naccounts: [tokyo]\nsteps:\n  - import_friends: {}\n",
    );
    let (ok, text) = output(linehub().args(["check", "--config"]).arg(&config));
    assert!(ok, "{text}");
    assert!(text.contains("1 accounts, 1 active, plan trial, 1 pipelines"), "{text}");

    let broken = pipeline(
        dir.path(),
        "sale.yaml",
        "accounts: [tokyo]\nsteps:\n  - broadcast_to_list:\n      list_id: \"12\"\n      mesages: []\n",
    );
    let (ok, text) = output(linehub().args(["check", "--config"]).arg(&config));
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "{}:5:7: steps[0].broadcast_to_list.mesages: unknown field `mesages`",
            broken.display()
        )),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
}

#[test]
fn pipeline_list_shows_each_schedule_in_its_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:1");
    pipeline(
        dir.path(),
        "nightly.yaml",
        "description: Friends in\nschedule: { cron: \"0 3 * * *\", time_zone: Asia/Bangkok }\naccounts: [tokyo]\nsteps:\n  - import_friends: {}\n  - reconcile_follow_status: {}\n",
    );
    pipeline(dir.path(), "adhoc.yaml", "accounts: [tokyo]\nsteps:\n  - enforce_plan_limits: {}\n");
    let (ok, text) = output(linehub().args(["pipeline", "list", "--config"]).arg(&config));
    assert!(ok, "{text}");
    assert!(text.contains("nightly") && text.contains("Friends in"), "{text}");
    assert!(
        text.contains("schedule: 0 3 * * *")
            && text.contains("(Asia/Bangkok); next run")
            && text.contains(" 03:00 +07"),
        "{text}"
    );
    assert!(text.contains("steps: import_friends → reconcile_follow_status"), "{text}");
    assert!(text.contains("schedule: none (runs with `linehub pipeline run adhoc`)"), "{text}");
}

#[test]
fn pipeline_run_reports_a_dry_run_and_records_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sandbox = rt.block_on(start_sandbox());
    let line = sandbox.line();
    line.add_channel(linehub_sandbox::ChannelSpec::new("tokyo-access-token", "s3cret")).unwrap();
    line.set_monthly_quota("tokyo-access-token", Some(500)).unwrap();
    line.use_quota("tokyo-access-token", 450).unwrap();
    for i in 0..3 {
        let user = linehub_sandbox::webhook::random_user_id();
        line.add_friend("tokyo-access-token", &user, linehub_sandbox::Profile::named(format!("F{i}"))).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sandbox.base_url());
    pipeline(
        dir.path(),
        "daily.yaml",
        "accounts: [tokyo]\nsteps:\n  - enforce_plan_limits: {}\n  - import_friends: {}\n",
    );

    let (ok, text) = output(linehub().args(["pipeline", "run", "daily", "--dry-run", "--config"]).arg(&config));
    assert!(ok, "{text}");
    assert!(text.contains("pipeline daily: done (run 1, dry run: nothing was changed)"), "{text}");
    assert!(text.contains("1. enforce_plan_limits [tokyo]:") && text.contains("quota_left=50"), "{text}");
    assert!(text.contains("has used 450 of its 500 messages this month (90%)"), "{text}");
    assert!(text.contains("2. import_friends [tokyo]:") && text.contains("queued=3"), "{text}");
    assert!(text.contains("create or update the contact"), "{text}");
    assert!(!text.contains("queued; the running daemon"), "a dry run queues nothing: {text}");

    let (ok, text) = output(linehub().args(["pipeline", "run", "daily", "--config"]).arg(&config));
    assert!(ok, "{text}");
    assert!(text.contains("pipeline daily: done (run 2)"), "{text}");
    assert!(text.contains("3 HubSpot write(s) are queued; the running daemon (`linehub run`) sends them"), "{text}");
    let (_, text) = output(linehub().args(["pipeline", "list", "--config"]).arg(&config));
    assert!(text.contains("last run 2: done at"), "{text}");

    let (ok, text) = output(linehub().args(["pipeline", "run", "nightly", "--config"]).arg(&config));
    assert!(!ok && text.contains("no pipeline named `nightly` (pipelines: daily)"), "{text}");
    assert!(sandbox.line().sent_messages().is_empty());
    sandbox.assert_no_violations();
    drop(sandbox);
}

/// Lines of a child's stderr, as they come.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits up to 10 s for a line containing every one of `needles`; returns it.
fn wait_for(rx: &mpsc::Receiver<String>, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if needles.iter().all(|n| line.contains(n)) => return line,
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no log line with {needles:?}; saw:\n{}", seen.join("\n"));
}

#[test]
fn the_running_daemon_reloads_on_sighup_and_on_file_changes_and_refuses_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:1");
    let mut daemon = Process::spawn(
        linehub()
            .args(["run", "--config"])
            .arg(&config)
            .env("LINEHUB_LOG", "linehub=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let logs = lines_of(daemon.child());
    wait_for(&logs, &["linehub listening"]);

    pipeline(
        dir.path(),
        "nightly.yaml",
        "schedule: { cron: \"0 3 * * *\", time_zone: Asia/Tokyo }\naccounts: [tokyo]\nsteps:\n  - import_friends: {}\n",
    );
    wait_for(&logs, &["config reloaded", "pipelines added: nightly"]);

    let broken =
        pipeline(dir.path(), "nightly.yaml", "accounts: [tokyo]\nsteps:\n  - import_friends: { page_size: 0 }\n");
    let line = wait_for(&logs, &["config reload refused"]);
    assert!(
        line.contains(&format!("{}:3:", broken.display())) && line.contains("steps[0].import_friends.page_size"),
        "{line}"
    );

    let status = Command::new("kill").args(["-HUP", &daemon.child().id().to_string()]).status().unwrap();
    assert!(status.success());
    wait_for(&logs, &["SIGHUP"]);
    wait_for(&logs, &["config reload refused"]);

    daemon.kill();
}
