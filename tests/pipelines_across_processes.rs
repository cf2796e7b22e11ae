//! Pipeline runs across processes, from the outside: the real `linehub run` and `linehub pipeline
//! run` as child processes on one store, LINE and HubSpot in an in-process sandbox whose held
//! answers keep a run busy at a known moment, SIGSTOP and SIGKILL for hung and crashed runs. What
//! counts is what the sandbox saw (LINE requests, HubSpot contacts) and what the store recorded
//! (runs, queued writes).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{Datelike, Timelike};
use common::{ConfigFile, Process, TOKYO_SECRET, linehub, start_sandbox};
use linehub::store::{Op, Store};
use linehub_sandbox::{FaultControl, Hold, Service};

const TOKEN: &str = "tokyo-access-token";

/// `n` friends of `tokyo` in the sandbox; returns their user ids.
fn friends(sandbox: &linehub_sandbox::Sandbox, n: usize) -> Vec<String> {
    let line = sandbox.line();
    line.add_channel(linehub_sandbox::ChannelSpec::new(TOKEN, TOKYO_SECRET)).unwrap();
    (0..n)
        .map(|i| {
            let user = linehub_sandbox::webhook::random_user_id();
            line.add_friend(TOKEN, &user, linehub_sandbox::Profile::named(format!("Friend {i}"))).unwrap();
            user
        })
        .collect()
}

/// A config for account `tokyo` in `dir` with LINE and HubSpot at `upstream`; returns its path.
fn write_config(dir: &Path, upstream: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    ConfigFile::bare(dir).upstream(upstream).account("tokyo", TOKYO_SECRET, TOKEN).write()
}

/// Writes pipeline `import`: `import_friends` of `tokyo`, `page_size` friends a page, no
/// profile reads (so its only LINE requests are `followers/ids` pages), after `schedule:` when
/// given.
fn write_import(dir: &Path, page_size: usize, schedule: Option<&str>) {
    let schedule = schedule.map(|s| format!("schedule: {s}\n")).unwrap_or_default();
    let yaml = format!(
        "{schedule}accounts: [tokyo]\nsteps:\n  - import_friends: {{ page_size: {page_size}, profiles: false }}\n"
    );
    std::fs::write(dir.join("pipelines").join("import.yaml"), yaml).unwrap();
}

/// `linehub pipeline run import` in the background (killed if the test fails).
fn spawn_run(config: &Path) -> Process {
    Process::spawn(
        linehub()
            .args(["pipeline", "run", "import", "--config"])
            .arg(config)
            .env("LINEHUB_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// `linehub pipeline run import` to its end: its exit code and its stdout then stderr.
async fn run_to_end(config: &Path) -> (Option<i32>, String) {
    let mut command = linehub();
    command.args(["pipeline", "run", "import", "--config"]).arg(config).env("LINEHUB_LOG", "error");
    let out = tokio::time::timeout(Duration::from_secs(60), tokio::process::Command::from(command).output())
        .await
        .expect("`linehub pipeline run` did not end within 60 s")
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// The store in `dir`, read-only (a daemon may be running on it).
fn store(dir: &Path) -> Store {
    Store::open_read_only(&dir.join("linehub.db")).unwrap_or_else(|e| panic!("{e}"))
}

/// Contact writes queued in the store's outbox, per LINE user.
fn queued_contacts(dir: &Path) -> BTreeMap<String, usize> {
    let mut queued = BTreeMap::new();
    for row in store(dir).outbox_list_blocking(false).unwrap() {
        if let Op::Contact { user_id, .. } = row.op {
            *queued.entry(user_id).or_insert(0) += 1;
        }
    }
    queued
}

/// Asserts that every one of `users` has exactly one queued contact write, and nobody else.
fn assert_each_queued_once(dir: &Path, users: &[String]) {
    let queued = queued_contacts(dir);
    let twice: Vec<_> = queued.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "friends queued more than once: {twice:?}");
    let never: Vec<_> = users.iter().filter(|u| !queued.contains_key(*u)).collect();
    assert!(never.is_empty(), "friends never queued: {never:?}");
    assert_eq!(queued.len(), users.len(), "writes for users who are not friends");
}

/// Sends signal `sig`, as `kill` spells it (`-STOP`), to `process`.
fn signal(process: &mut Process, sig: &str) {
    let pid = process.child().id().to_string();
    assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
}

/// LINE's answers held one request at a time, and every LINE request counted: the sandbox
/// carries each request out, then its answer waits until [`Gate::step`] lets it go.
struct Gate {
    faults: FaultControl,
    holds: Vec<Hold>,
}

impl Gate {
    /// Holds every LINE answer from now on.
    fn new(sandbox: &linehub_sandbox::Sandbox) -> Gate {
        let faults = sandbox.faults();
        let holds = vec![faults.hold_answers(Service::Line)];
        Gate { faults, holds }
    }

    /// Waits until a request's answer is held.
    async fn held(&self) {
        let hold = self.holds.last().unwrap();
        tokio::time::timeout(Duration::from_secs(30), hold.arrived(1))
            .await
            .expect("no LINE request arrived within 30 s");
    }

    /// Lets the held answer go and holds the next one.
    fn step(&mut self) {
        self.holds.push(self.faults.hold_answers(Service::Line));
    }

    /// Lets every answer go from now on (still counting requests).
    fn open(&self) {
        self.holds.last().unwrap().release();
    }

    /// LINE requests so far.
    fn requests(&self) -> usize {
        self.holds.iter().map(Hold::count).sum()
    }
}

/// Polls `check` every 25 ms until it returns `Some`; panics naming `what` after 30 s.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(t) = check().await {
            return t;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_is_refused_a_pipeline_the_daemons_scheduler_is_running_and_the_work_is_done_once() {
    let sandbox = start_sandbox().await;
    let users = friends(&sandbox, 6);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sandbox.base_url());
    // Scheduled once, a few seconds from now.
    let at = chrono::Utc::now() + chrono::Duration::seconds(5);
    let cron = format!("{} {} {} {} {} *", at.second(), at.minute(), at.hour(), at.day(), at.month());
    write_import(dir.path(), 2, Some(&format!("{{ cron: \"{cron}\", time_zone: UTC }}")));

    let gate = Gate::new(&sandbox);
    let _daemon = Process::daemon(&config, "error");
    // The scheduler's run asked LINE for the first page and waits for the answer.
    gate.held().await;
    let (code, text) = run_to_end(&config).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("pipeline `import` is already running (run 1); it was not started again"), "{text}");
    assert_eq!(gate.requests(), 1, "the refused command asked LINE for nothing");

    gate.open();
    let runs = eventually("the daemon's run to finish", async || {
        let runs = store(dir.path()).pipeline_runs(Some("import".into()), 10).await.unwrap();
        runs.iter().all(|r| r.state != "running").then_some(runs)
    })
    .await;
    assert_eq!(runs.len(), 1, "one run only: {runs:?}");
    assert_eq!(runs[0].state, "done", "{runs:?}");
    assert!(runs[0].counts.contains("\"queued\":6"), "{}", runs[0].counts);
    assert_eq!(gate.requests(), 3, "three pages of two friends, each asked for once");

    // The daemon's writer creates one contact per friend.
    let hubspot = sandbox.hubspot();
    eventually("every friend's contact in HubSpot", async || (hubspot.contacts().len() >= users.len()).then_some(()))
        .await;
    for u in &users {
        let found: Vec<_> = hubspot.find_by_property("line_user_id_1", u).into_iter().filter(|c| !c.archived).collect();
        assert_eq!(found.len(), 1, "contacts of {u}: {found:#?}");
    }
    assert_eq!(hubspot.contacts().len(), users.len());
    sandbox.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_is_not_taken_over_before_its_lease_and_a_killed_one_is_resumed_at_once() {
    let sandbox = start_sandbox().await;
    let users = friends(&sandbox, 6);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sandbox.base_url());
    write_import(dir.path(), 2, None);

    // The first run commits a page, asks for the second and hangs: its process is stopped.
    let mut gate = Gate::new(&sandbox);
    let mut hung = spawn_run(&config);
    gate.held().await;
    gate.step();
    gate.held().await;
    signal(&mut hung, "-STOP");
    let stopped = tokio::time::Instant::now();

    // Longer than the 20 s between heartbeats, so the stopped run has missed one, but within
    // its 90 s lease: the run is still its own. (The takeover after the lease is shown in
    // process by pipelines_import's a_run_paused_past_its_lease_and_taken_over_stops_when_it_resumes:
    // the lease is a constant that cannot be shortened from outside.)
    tokio::time::sleep_until(stopped + Duration::from_secs(25)).await;
    let (code, text) = run_to_end(&config).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("pipeline `import` is already running (run 1)"), "{text}");
    assert_eq!(gate.requests(), 2, "the refused command asked LINE for nothing");
    let runs = store(dir.path()).pipeline_runs(Some("import".into()), 10).await.unwrap();
    assert_eq!((runs.len(), runs[0].state.as_str()), (1, "running"), "{runs:?}");

    // Its process dies: the next run takes the run over at once and resumes after page one.
    hung.kill();
    gate.open();
    let (code, text) = run_to_end(&config).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("pipeline import: done (run 1, resumed)"), "{text}");
    assert!(text.contains("pages=3") && text.contains("queued=6"), "{text}");
    assert_eq!(gate.requests(), 4, "only the page whose answer the stopped run never read is asked again");
    assert_each_queued_once(dir.path(), &users);
    sandbox.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_pipeline_starts_afresh_instead_of_resuming_the_interrupted_run() {
    let sandbox = start_sandbox().await;
    let users = friends(&sandbox, 10);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sandbox.base_url());
    write_import(dir.path(), 2, None);

    // The first run commits its first page of two, then is killed waiting for the second.
    let mut gate = Gate::new(&sandbox);
    let mut killed = spawn_run(&config);
    gate.held().await;
    gate.step();
    gate.held().await;
    killed.kill();
    assert_eq!(queued_contacts(dir.path()).len(), 2, "the first page was committed");

    // The pipeline changes before the next run: three friends a page.
    write_import(dir.path(), 3, None);
    gate.open();
    let before = gate.requests();
    let (code, text) = run_to_end(&config).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("pipeline import: done (run 2)"), "a new run, not run 1 resumed: {text}");
    assert!(text.contains("friends=10") && text.contains("pages=4"), "it listed every friend from the first: {text}");
    assert!(text.contains("queued=8") && text.contains("unchanged=2"), "{text}");
    assert_eq!(gate.requests() - before, 4, "four pages of three, from the start");

    let runs = store(dir.path()).pipeline_runs(Some("import".into()), 10).await.unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0].state, "done", "{runs:?}");
    assert_eq!(runs[1].state, "abandoned", "{runs:?}");
    let error = runs[1].error.clone().unwrap_or_default();
    assert!(error.contains("the pipeline definition changed before it could resume"), "{error}");
    assert_each_queued_once(dir.path(), &users);
    sandbox.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_friends_killed_mid_import_resumes_from_its_cursor_and_imports_every_friend_once() {
    const FRIENDS: usize = 500;
    const PAGE: usize = 20;
    const PAGES: usize = FRIENDS / PAGE;
    const COMMITTED: usize = 8;
    let sandbox = start_sandbox().await;
    let users = friends(&sandbox, FRIENDS);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sandbox.base_url());
    write_import(dir.path(), PAGE, None);

    // Eight pages are committed; the command is SIGKILLed waiting for the ninth.
    let mut gate = Gate::new(&sandbox);
    let mut killed = spawn_run(&config);
    gate.held().await;
    for _ in 0..COMMITTED {
        gate.step();
        gate.held().await;
    }
    killed.kill();
    assert_eq!(queued_contacts(dir.path()).len(), COMMITTED * PAGE, "eight pages were committed");

    gate.open();
    let (code, text) = run_to_end(&config).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("pipeline import: done (run 1, resumed)"), "{text}");
    assert!(text.contains(&format!("pages={PAGES}")) && text.contains(&format!("queued={FRIENDS}")), "{text}");
    let requests = gate.requests();
    assert!(requests < 2 * PAGES, "{requests} page requests for {PAGES} pages");
    assert_eq!(requests, PAGES + 1, "only the page whose answer the kill cut off is asked for again");
    assert_each_queued_once(dir.path(), &users);
    sandbox.assert_no_violations();
}
