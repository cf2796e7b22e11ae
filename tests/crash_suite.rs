//! Crash suite: the real binary against the standalone sandbox, killed with SIGKILL at random
//! moments while signed webhooks stream in, restarted each time. At the end the sandbox must
//! show every accepted event applied: no acknowledged event lost, no contact duplicated, and each
//! user's contact in the state of their newest event whatever order events arrived in. Then a
//! LINE broadcast to all of them is run and SIGKILLed mid-send, again and again: every friend
//! gets it exactly once. Last, HubSpot workflows ask for a LINE push to each contact while the
//! daemon is SIGKILLed again: every push is sent once, logged once and completed once.
//!
//! Every phase must kill at least once. Some rounds arm crash points (`LINEHUB_CRASH_POINTS`,
//! see `linehub::crash`) so the process also dies where a SIGKILL from outside rarely lands:
//! between a durable commit and its reply, and between HubSpot's answer and the outbox update.
//! What is compared is the whole outcome: each contact's every LINE property, exactly one owner
//! task per contact with an owner that messaged, every completion request HubSpot received (a
//! second accepted one is a duplicate), and an outbox that ends empty with no dead letter. The
//! broadcast reaches at least 1,001 friends, so it spans three multicast chunks of 500.
//!
//! CI runs a bounded version. The full run:
//! `LINEHUB_CRASH_USERS=1000 LINEHUB_CRASH_EVENTS=10000 LINEHUB_CRASH_ROUNDS=20 cargo test --release --test crash_suite -- --nocapture`
//! (`LINEHUB_CRASH_SEED=N` replays a run; the seed is printed.)

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    ConfigFile, Process, action_body, action_headers, free_port, linehub, sandbox_command, sign_webhook,
    try_post_action, try_post_webhook, wait_up,
};
use linehub::store::Store;
use linehub_sandbox::webhook as line;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const SECRET: &str = "crash-suite-channel-secret-0123456789";
const TOKEN: &str = "crash-suite-access-token";
const CLIENT_SECRET: &str = "crash-suite-hubspot-app-secret";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Sets a fault on the standalone sandbox over its admin API.
async fn fault(http: &reqwest::Client, sandbox_url: &str, body: Value) {
    assert!(
        http.post(format!("{sandbox_url}/_sandbox/faults")).json(&body).send().await.unwrap().status().is_success()
    );
}

/// What the sandbox's control API at `sandbox_url` answers for `GET /_sandbox/{path}`.
async fn admin_get<T: serde::de::DeserializeOwned>(http: &reqwest::Client, sandbox_url: &str, path: &str) -> T {
    http.get(format!("{sandbox_url}/_sandbox/{path}")).send().await.unwrap().json().await.unwrap()
}

/// Recipients the broadcast must reach at least: three multicast chunks of 500.
const BROADCAST_MIN: usize = 1001;

/// How the process under test ended a round.
enum Ended {
    /// It ended by itself (an armed crash point, or a run that finished), with this status.
    ByItself(std::process::ExitStatus),
    /// It was still running and was SIGKILLed.
    Killed,
}

/// Waits up to `after` for `process` to end by itself, polling; SIGKILLs it if it has not.
async fn end_within(process: &mut Process, after: Duration) -> Ended {
    let deadline = Instant::now() + after;
    loop {
        if let Some(status) = process.try_wait() {
            return Ended::ByItself(status);
        }
        if Instant::now() >= deadline {
            process.kill(); // SIGKILL
            return Ended::Killed;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether a process that ended by itself died at a crash point (`abort`, a signal).
fn crashed(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal().is_some()
}

/// Crash points for a daemon round, chosen from the seed: inside a commit (after it is durable,
/// before its caller hears) or between HubSpot's answer and the outbox update.
fn daemon_crash_points(rng: &mut rand::rngs::StdRng) -> String {
    if rng.random_bool(0.5) {
        format!("store.after_commit={}", rng.random_range(1..=20))
    } else {
        format!("hubspot.after_answer={}", rng.random_range(1..=4))
    }
}

/// `linehub run`, with crash points armed when `points` names some.
fn start_daemon(config: &std::path::Path, points: Option<&str>) -> Process {
    let mut c = linehub();
    c.args(["run", "--config"]).arg(config).env("LINEHUB_LOG", "error").stdout(Stdio::null()).stderr(Stdio::inherit());
    if let Some(points) = points {
        c.env("LINEHUB_CRASH_POINTS", points);
    }
    Process::spawn(&mut c)
}

/// Waits until the daemon serves `/healthz` or has ended (a crash point armed for its start).
async fn serving_or_ended(http: &reqwest::Client, health: &str, daemon: &mut Process) -> bool {
    for _ in 0..400 {
        if daemon.try_wait().is_some() {
            return false;
        }
        if http.get(health).send().await.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{health} did not come up");
}

/// Every outbox row left in the store, dead letters included.
fn outbox_rows(db: &std::path::Path) -> Vec<linehub::store::OutboxRow> {
    Store::open_read_only(db).and_then(|s| s.outbox_list_blocking(false)).unwrap()
}

/// Whether the newest run of `pipeline` in the store at `db` has finished its work. A runner can
/// die after committing that (a crash point between the commit and its reply): like an operator
/// reading `linehub pipeline list`, the suite then does not start the pipeline again, which would
/// be a new broadcast.
async fn last_run_done(db: &std::path::Path, pipeline: &str) -> bool {
    let store = Store::open_read_only(db).unwrap();
    let runs = store.pipeline_runs(Some(pipeline.to_string()), 1).await.unwrap();
    runs.first().is_some_and(|r| r.state == "done")
}

/// What a user's contact must look like once their events are applied.
#[derive(Debug, Default, Clone, PartialEq)]
struct Expected {
    follow_ts: i64,
    follow: &'static str,
    message_ts: i64,
    last_response: String,
}

impl Expected {
    /// Every LINE property of account 1 the contact must have, and nothing else of them.
    fn properties(&self, user: &str, sync_day: &str, picture: &str) -> BTreeMap<String, String> {
        let mut p = BTreeMap::from([
            ("line_user_id_1".to_string(), user.to_string()),
            ("line_user_name_1".to_string(), "Friend".to_string()),
            ("line_follow_1".to_string(), self.follow.to_string()),
            ("line_id_sync_date_1".to_string(), sync_day.to_string()),
            ("line_user_picture_1".to_string(), picture.to_string()),
        ]);
        if self.message_ts > 0 {
            p.insert("line_unanswered_1".into(), "Yes".into());
            p.insert("line_last_response_1".into(), self.last_response.clone());
        }
        p
    }
}

/// The profile picture the sandbox gives `user`.
fn picture_of(user: &str) -> String {
    format!("https://profile.line-scdn.net/crash-suite/{user}")
}

/// A contact's LINE properties (those of linehub's group), with a value.
fn line_properties(contact: &Value) -> BTreeMap<String, String> {
    contact["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| k.starts_with("line_") && v.as_str().is_some_and(|v| !v.is_empty()))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkill_and_apply_exactly_once_in_order() {
    let users_n = env_or("LINEHUB_CRASH_USERS", 200);
    let events_n = env_or("LINEHUB_CRASH_EVENTS", 2000);
    let rounds = env_or("LINEHUB_CRASH_ROUNDS", 4);
    let seed: u64 = std::env::var("LINEHUB_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("crash suite: {events_n} events over {users_n} users, {rounds} kills, seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();

    // The standalone sandbox, set up over its admin API.
    let sandbox_port = free_port();
    let sandbox_url = format!("http://127.0.0.1:{sandbox_port}");
    let mut sandbox = Process::spawn(sandbox_command(sandbox_port).env("LINEHUB_LOG", "error").stdout(Stdio::null()));
    wait_up(&http, &format!("{sandbox_url}/_sandbox/health")).await;
    let channel: Value = http
        .post(format!("{sandbox_url}/_sandbox/line/channels"))
        .json(&json!({ "accessToken": TOKEN, "channelSecret": SECRET }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bot = channel["botUserId"].as_str().unwrap().to_string();
    let users: Vec<String> = (0..users_n).map(|_| line::random_user_id()).collect();
    for u in &users {
        let res = http
            .post(format!("{sandbox_url}/_sandbox/line/friends"))
            .json(&json!({ "channel": TOKEN, "userId": u, "displayName": "Friend", "pictureUrl": picture_of(u) }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    // A third of the users are contacts with an owner before linehub sees them (made in HubSpot
    // with the placeholder email linehub creates them with): their messages owe the owner a task.
    let owner: Value = http
        .post(format!("{sandbox_url}/_sandbox/hubspot/owners"))
        .json(&json!({ "email": "rep@example.com", "firstName": "Sales", "lastName": "Rep" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let owner_id = owner["id"].as_str().map(str::to_string).unwrap_or_else(|| owner["id"].to_string());
    let owned: HashSet<String> = users.iter().step_by(3).cloned().collect();
    for u in &owned {
        let res = http
            .post(format!("{sandbox_url}/_sandbox/hubspot/contacts"))
            .json(&json!({ "properties": {
                "email": format!("{}@line.linehub.invalid", u.to_ascii_lowercase()),
                "hubspot_owner_id": owner_id,
            } }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap_or_default());
    }

    // Events with increasing timestamps per user, then shuffled across and within users.
    let t0 = 1_764_000_000_000i64;
    let mut expected: HashMap<String, Expected> = HashMap::new();
    let mut events = Vec::with_capacity(events_n);
    for i in 0..events_n {
        let user = &users[i % users_n];
        let ts = t0 + i as i64;
        let e = expected.entry(user.clone()).or_default();
        let event = match rng.random_range(0..10) {
            0..=3 if e.follow_ts == 0 => {
                e.follow_ts = ts;
                e.follow = "Yes";
                line::follow(user, ts, false)
            }
            0..=1 => {
                e.follow_ts = ts;
                e.follow = "No";
                line::unfollow(user, ts)
            }
            2..=3 => {
                e.follow_ts = ts;
                e.follow = "Yes";
                line::follow(user, ts, true)
            }
            _ => {
                let text = format!("message {i}");
                e.follow_ts = ts;
                e.follow = "Yes";
                e.message_ts = ts;
                e.last_response = text.clone();
                line::text_message(user, ts, &text)
            }
        };
        events.push(event);
    }
    events.shuffle(&mut rng);
    // Some events are delivered twice, the second time marked as a redelivery.
    let redeliveries: Vec<Value> =
        events.iter().filter(|_| rng.random_bool(0.05)).cloned().map(line::redelivered).collect();
    events.extend(redeliveries);
    let batches: Vec<Vec<Value>> = events.chunks(4).map(<[Value]>::to_vec).collect();
    // Paced so that deliveries spread over the rounds and kills land mid-stream.
    let pace = Duration::from_micros((rounds as u64 * 400_000 * 4 / batches.len().max(1) as u64).max(200));
    let ids_of = |b: &[Value]| b.iter().map(|e| e["webhookEventId"].as_str().unwrap().to_string()).collect::<Vec<_>>();

    // The daemon, killed and restarted.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = ConfigFile::bare(dir.path())
        .port(port)
        .upstream(&sandbox_url)
        .client_secret(CLIENT_SECRET)
        .tier("professional")
        .timeout_secs(5)
        .account("shop", SECRET, TOKEN)
        .write();
    let daemon_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let daemon_health = format!("http://{daemon_addr}/healthz");
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let pending: Arc<Mutex<Vec<Vec<Value>>>> = Arc::new(Mutex::new(batches.into_iter().rev().collect()));
    let db = dir.path().join("linehub.db");

    let send_all = |stop_after: Option<Duration>| {
        let (http, acked, pending, bot) = (http.clone(), acked.clone(), pending.clone(), bot.clone());
        async move {
            let started = Instant::now();
            let mut senders = Vec::new();
            for _ in 0..4 {
                let (http, acked, pending, bot) = (http.clone(), acked.clone(), pending.clone(), bot.clone());
                senders.push(tokio::spawn(async move {
                    loop {
                        if stop_after.is_some_and(|d| started.elapsed() >= d) {
                            return;
                        }
                        let Some(batch) = pending.lock().unwrap().pop() else { return };
                        let body = line::body(&bot, batch.clone());
                        let sig = sign_webhook(SECRET, &body);
                        let res = try_post_webhook(&http, daemon_addr, "shop", body, Some(sig)).await;
                        tokio::time::sleep(pace).await;
                        match res {
                            Ok(r) if r.status() == 200 => acked.lock().unwrap().extend(ids_of(&batch)),
                            Ok(r) => panic!("webhook answered {}", r.status()),
                            // Not acknowledged: LINE would redeliver it, and so do we.
                            Err(_) => {
                                pending.lock().unwrap().push(batch);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                }));
            }
            for s in senders {
                s.await.unwrap();
            }
        }
    };

    let (mut ingest_kills, mut crash_points_hit) = (0, 0);
    for round in 0..rounds {
        // Odd rounds arm a crash point and give it time to fire; the others SIGKILL at random.
        let points = (round % 2 == 1).then(|| daemon_crash_points(&mut rng));
        let mut daemon = start_daemon(&config, points.as_deref());
        let kill_after = match points {
            Some(_) => Duration::from_millis(2000),
            None => Duration::from_millis(rng.random_range(50..800)),
        };
        let how = if serving_or_ended(&http, &daemon_health, &mut daemon).await {
            let sending = tokio::spawn(send_all(Some(kill_after + Duration::from_millis(200))));
            let ended = end_within(&mut daemon, kill_after).await;
            sending.await.unwrap();
            ended
        } else {
            end_within(&mut daemon, Duration::ZERO).await
        };
        ingest_kills += 1;
        let how = match how {
            Ended::Killed => format!("killed after {kill_after:?}"),
            Ended::ByItself(status) => {
                assert!(crashed(status), "the daemon exited by itself: {status}");
                crash_points_hit += 1;
                format!("crashed at {}", points.as_deref().unwrap_or("?"))
            }
        };
        println!("round {round}: {how}; {} event ids acknowledged", acked.lock().unwrap().len());
    }

    // The last start: deliver what is left and let it drain.
    let mut daemon = Process::daemon(&config, "error");
    wait_up(&http, &daemon_health).await;
    send_all(None).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let sync_day = chrono::DateTime::from_timestamp_millis(t0).unwrap().format("%Y-%m-%d").to_string();
    let (mut lost, mut duplicated, mut reordered, mut tasks_wrong, mut outbox_left);
    let mut first_wrong: Option<(BTreeMap<String, String>, BTreeMap<String, String>)>;
    loop {
        let contacts: Vec<Value> = admin_get(&http, &sandbox_url, "hubspot/contacts").await;
        let mut by_user: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for c in contacts.iter().filter(|c| !c["archived"].as_bool().unwrap_or(false)) {
            if let Some(u) = c["properties"]["line_user_id_1"].as_str() {
                by_user.entry(u.to_string()).or_default().push(c);
            }
        }
        duplicated = by_user.values().filter(|cs| cs.len() > 1).count();
        lost = expected.keys().filter(|u| !by_user.contains_key(*u)).count();
        // Every LINE property, not only the two that order decides.
        first_wrong = None;
        reordered = expected
            .iter()
            .filter(|(u, e)| {
                by_user.get(*u).and_then(|cs| cs.first()).is_some_and(|c| {
                    let want = e.properties(u, &sync_day, &picture_of(u));
                    let got = line_properties(c);
                    let wrong = got != want;
                    if wrong && first_wrong.is_none() {
                        first_wrong = Some((want, got));
                    }
                    wrong
                })
            })
            .count();
        // Exactly one owner task per contact with an owner that messaged; none for the others.
        let tasks: Vec<Value> = admin_get(&http, &sandbox_url, "hubspot/tasks").await;
        let mut tasked: HashMap<String, usize> = HashMap::new();
        for t in tasks.iter().filter(|t| !t["archived"].as_bool().unwrap_or(false)) {
            for a in t["associations"].as_array().into_iter().flatten() {
                *tasked.entry(a["toId"].as_str().unwrap_or_default().to_string()).or_default() += 1;
            }
        }
        tasks_wrong = expected
            .iter()
            .filter(|(u, e)| {
                let want = usize::from(owned.contains(*u) && e.message_ts > 0);
                let contact = by_user.get(*u).and_then(|cs| cs.first()).and_then(|c| c["id"].as_str());
                contact.map_or(want, |id| tasked.get(id).copied().unwrap_or(0)) != want
            })
            .count();
        outbox_left = outbox_rows(&db).len();
        if (lost == 0 && reordered == 0 && tasks_wrong == 0 && outbox_left == 0) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Phase 2: a broadcast to every contact, its runner (`linehub pipeline run`) SIGKILLed at
    // random moments while LINE is slow to answer; each rerun resumes. Nobody may get it twice.
    // Friends made in HubSpot by hand top the audience up to three multicast chunks.
    let followers = expected.values().filter(|e| e.follow == "Yes").count();
    let mut extra_friends = Vec::new();
    for i in 0..BROADCAST_MIN.saturating_sub(followers) {
        let u = line::random_user_id();
        let res = http
            .post(format!("{sandbox_url}/_sandbox/line/friends"))
            .json(&json!({ "channel": TOKEN, "userId": u, "displayName": "Friend" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let res = http
            .post(format!("{sandbox_url}/_sandbox/hubspot/contacts"))
            .json(&json!({ "properties": {
                "email": format!("broadcast-{i}@example.com"), "line_user_id_1": u, "line_follow_1": "Yes",
            } }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap_or_default());
        extra_friends.push(u);
    }
    let contacts: Vec<Value> = admin_get(&http, &sandbox_url, "hubspot/contacts").await;
    let members: Vec<String> = contacts.iter().filter_map(|c| c["id"].as_str().map(str::to_string)).collect();
    let list: Value = http
        .post(format!("{sandbox_url}/_sandbox/hubspot/lists"))
        .json(&json!({ "name": "everyone", "members": members }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pipelines = dir.path().join("pipelines");
    std::fs::create_dir_all(&pipelines).unwrap();
    std::fs::write(
        pipelines.join("sale.yaml"),
        format!(
            "accounts: [shop]\nsteps:\n  - broadcast_to_list:\n      list_id: \"{}\"\n      messages:\n        - text: \"crash-suite sale\"\n",
            list["listId"].as_str().unwrap()
        ),
    )
    .unwrap();
    fault(&http, &sandbox_url, json!({ "fault": "latency", "service": "line", "ms": 300 })).await;
    let run_sale = |points: Option<&str>| {
        let mut c = linehub();
        c.args(["pipeline", "run", "sale", "--config"])
            .arg(&config)
            .env("LINEHUB_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(points) = points {
            c.env("LINEHUB_CRASH_POINTS", points);
        }
        Process::spawn(&mut c)
    };
    let (mut kills, mut done) = (0, false);
    for i in 0..rounds.min(8) {
        if last_run_done(&db, "sale").await {
            done = true;
            break;
        }
        // Odd runs die inside a commit of their own progress; the others are SIGKILLed.
        let points = (i % 2 == 1).then(|| format!("store.after_commit={}", rng.random_range(1..=12)));
        let mut runner = run_sale(points.as_deref());
        let kill_after = Duration::from_millis(if points.is_some() { 5000 } else { rng.random_range(50..600) });
        match end_within(&mut runner, kill_after).await {
            Ended::Killed => kills += 1,
            Ended::ByItself(status) if crashed(status) => {
                kills += 1;
                crash_points_hit += 1;
            }
            Ended::ByItself(status) => {
                // It finished before the kill: the broadcast is complete.
                assert!(status.success(), "a run of the broadcast failed: {status}");
                done = true;
                break;
            }
        }
    }
    fault(&http, &sandbox_url, json!({ "fault": "clear", "service": "line" })).await;
    if !done && !last_run_done(&db, "sale").await {
        // The interrupted run is resumed, not started again.
        assert!(run_sale(None).wait().success(), "the resumed broadcast failed");
    }
    let sent: Vec<Value> = admin_get(&http, &sandbox_url, "line/messages").await;
    let mut received: HashMap<String, usize> = HashMap::new();
    for m in sent.iter().filter(|m| m["kind"] == "multicast") {
        for u in m["deliveredTo"].as_array().into_iter().flatten() {
            *received.entry(u.as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    let sent_twice = received.values().filter(|n| **n > 1).count();
    let should_receive: Vec<&String> =
        expected.iter().filter(|(_, e)| e.follow == "Yes").map(|(u, _)| u).chain(&extra_friends).collect();
    let never_sent = should_receive.iter().filter(|u| !received.contains_key(**u)).count();
    let chunks = sent.iter().filter(|m| m["kind"] == "multicast").count();
    println!(
        "broadcast: {kills} kills mid-send; {} recipients in {chunks} multicasts, sent twice: {sent_twice}, never sent: {never_sent}",
        received.len()
    );
    let phase1_users: HashSet<String> = expected.keys().cloned().collect();
    let pushes = pushes_survive_sigkill(
        &http,
        &sandbox_url,
        daemon_addr,
        &config,
        &db,
        &mut daemon,
        &mut rng,
        rounds,
        &phase1_users,
    )
    .await;
    println!(
        "workflow pushes: {} kills ({} at crash points); {} contacts, sent twice: {}, never sent: {}, notes not exactly one: {}, \
         {} completion requests ({} refused repeats), completed twice: {}, not completed once with SUCCESS: {}",
        pushes.kills,
        pushes.crash_points_hit,
        pushes.contacts,
        pushes.sent_twice,
        pushes.never_sent,
        pushes.notes_wrong,
        pushes.completion_requests,
        pushes.repeats_refused,
        pushes.completed_twice,
        pushes.completions_wrong
    );
    crash_points_hit += pushes.crash_points_hit;
    daemon.kill();
    // The outbox ends empty: nothing left to write, and nothing dead-lettered.
    let rows_left = outbox_rows(&db);
    let dead_letters = rows_left.iter().filter(|r| r.dead).count();

    // Every acknowledged event is in the inbox and was processed.
    let store = Store::open(&db).unwrap();
    let stored: HashSet<String> = store.inbox_ids().await.unwrap().into_iter().collect();
    let lost_events = acked.lock().unwrap().iter().filter(|id| !stored.contains(*id)).count();
    let violations: Vec<Value> = admin_get(&http, &sandbox_url, "violations").await;
    sandbox.kill();

    println!(
        "ingest: {ingest_kills} kills; lost events: {lost_events}, users without a contact: {lost}, duplicated contacts: {duplicated}, \
         contacts not in their newest state (every LINE property): {reordered}, owner tasks not exactly one: {tasks_wrong}, \
         outbox rows left after ingest: {outbox_left}"
    );
    println!(
        "crash points hit: {crash_points_hit}; outbox rows left at the end: {}, dead letters: {dead_letters}",
        rows_left.len()
    );
    if let Some((want, got)) = &first_wrong {
        println!("first contact not in its newest state: want {want:?}, got {got:?}");
    }
    assert!(ingest_kills > 0 && kills > 0 && pushes.kills > 0, "every phase must kill, seed {seed}");
    assert!(crash_points_hit > 0, "no armed crash point fired, seed {seed}");
    assert_eq!(
        (lost_events, lost, duplicated, reordered, tasks_wrong, outbox_left),
        (0, 0, 0, 0, 0, 0),
        "ingest, seed {seed}"
    );
    assert!(chunks >= BROADCAST_MIN.div_ceil(500), "the broadcast went out in {chunks} multicasts, seed {seed}");
    assert_eq!((sent_twice, never_sent), (0, 0), "broadcast, seed {seed}");
    assert_eq!(
        (pushes.sent_twice, pushes.never_sent, pushes.notes_wrong, pushes.completed_twice, pushes.completions_wrong),
        (0, 0, 0, 0, 0),
        "workflow pushes, seed {seed}"
    );
    assert_eq!((rows_left.len(), dead_letters), (0, 0), "the outbox at the end: {rows_left:#?}");
    assert!(violations.is_empty(), "contract violations: {violations:#?}");
}

/// Action requests not yet answered 200: (callback id, body).
type Requests = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// What phase 3 found.
struct PushOutcome {
    kills: usize,
    /// Kills that were the daemon dying at an armed crash point.
    crash_points_hit: usize,
    contacts: usize,
    sent_twice: usize,
    never_sent: usize,
    notes_wrong: usize,
    /// Completion requests HubSpot received, repeats included.
    completion_requests: usize,
    /// Repeats HubSpot refused as already completed (expected after a crash between its answer
    /// and the outbox update; linehub counts them as done).
    repeats_refused: usize,
    /// Callbacks HubSpot accepted a completion of more than once: duplicates.
    completed_twice: usize,
    /// Callbacks not accepted exactly once, or asked for anything but SUCCESS.
    completions_wrong: usize,
}

/// Phase 3: a signed "Push LINE message" action for every contact, delivered while the daemon
/// is SIGKILLed at random moments and LINE is slow; unanswered requests are delivered again, as
/// HubSpot would. Each contact must get one push, one timeline note and one completion.
#[allow(clippy::too_many_arguments)]
async fn pushes_survive_sigkill(
    http: &reqwest::Client,
    sandbox_url: &str,
    daemon_addr: SocketAddr,
    config: &std::path::Path,
    db: &std::path::Path,
    daemon: &mut Process,
    rng: &mut rand::rngs::StdRng,
    rounds: usize,
    users: &HashSet<String>,
) -> PushOutcome {
    let contacts: Vec<Value> = admin_get(http, sandbox_url, "hubspot/contacts").await;
    let targets: Vec<(String, String)> = contacts
        .iter()
        .filter_map(|c| Some((c["id"].as_str()?.to_string(), c["properties"]["line_user_id_1"].as_str()?.to_string())))
        .filter(|(_, u)| users.contains(u))
        .collect();
    let pending: Requests = Arc::new(Mutex::new(
        targets
            .iter()
            .map(|(contact, _)| {
                let callback = format!("ap-crash-{contact}");
                let inputs = json!({ "account": "shop", "message_1": "Your order {{contact.hs_object_id}} shipped" });
                let body = action_body(&callback, contact, inputs);
                (callback, body)
            })
            .collect(),
    ));
    let deliver = |stop_after: Option<Duration>| {
        let (http, pending) = (http.clone(), pending.clone());
        async move {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let (http, pending) = (http.clone(), pending.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        if stop_after.is_some_and(|d| started.elapsed() >= d) {
                            return;
                        }
                        let Some((callback, body)) = pending.lock().unwrap().pop() else { return };
                        let now = chrono::Utc::now().timestamp_millis();
                        let headers = action_headers(CLIENT_SECRET, &body, now);
                        match try_post_action(&http, daemon_addr, body.clone(), headers).await {
                            Ok(r) if r.status() == 200 => {
                                let answer: Value = r.json().await.unwrap_or_default();
                                assert_eq!(answer["outputFields"]["hs_execution_state"], "BLOCK", "{answer}");
                            }
                            Ok(r) => panic!("action answered {}", r.status()),
                            Err(_) => {
                                pending.lock().unwrap().push((callback, body));
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    fault(http, sandbox_url, json!({ "fault": "latency", "service": "line", "ms": 100 })).await;
    let (mut kills, mut crash_points_hit) = (0, 0);
    let health = format!("http://{daemon_addr}/healthz");
    for i in 0..rounds.min(8) {
        // The running daemon has crash points armed on odd rounds (see the restart below).
        let armed = i % 2 == 1;
        let kill_after = Duration::from_millis(if armed { 2000 } else { rng.random_range(100..700) });
        let delivering = tokio::spawn(deliver(Some(kill_after)));
        let ended = end_within(daemon, kill_after).await;
        kills += 1;
        if let Ended::ByItself(status) = ended {
            assert!(crashed(status), "the daemon exited by itself: {status}");
            crash_points_hit += 1;
        }
        delivering.await.unwrap();
        // The next round's daemon: on odd rounds it dies between HubSpot's answer and the outbox
        // update, the moment a completion or a note is at risk of being made twice.
        loop {
            let points = (i % 2 == 0 && i + 1 < rounds.min(8))
                .then(|| format!("hubspot.after_answer={}", rng.random_range(1..=4)));
            *daemon = start_daemon(config, points.as_deref());
            if serving_or_ended(http, &health, daemon).await {
                break;
            }
        }
    }
    fault(http, sandbox_url, json!({ "fault": "clear", "service": "line" })).await;
    deliver(None).await;

    // Done once every execution is completed and the outbox holds nothing more to write.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done: Vec<Value> = admin_get(http, sandbox_url, "hubspot/callbacks").await;
        if (done.len() >= targets.len() && outbox_rows(db).iter().all(|r| r.dead)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let sent: Vec<Value> = admin_get(http, sandbox_url, "line/messages").await;
    let mut pushed: HashMap<String, usize> = HashMap::new();
    for m in sent.iter().filter(|m| m["kind"] == "push") {
        for u in m["to"].as_array().into_iter().flatten() {
            *pushed.entry(u.as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    let notes: Vec<Value> = admin_get(http, sandbox_url, "hubspot/notes").await;
    let mut noted: HashMap<String, usize> = HashMap::new();
    for n in &notes {
        for a in n["associations"].as_array().into_iter().flatten() {
            *noted.entry(a["toId"].as_str().unwrap_or_default().to_string()).or_default() += 1;
        }
    }
    // Every completion request HubSpot received, not only the first one it keeps.
    let requests: Vec<Value> = admin_get(http, sandbox_url, "hubspot/callbacks/requests").await;
    let mut accepted: HashMap<String, usize> = HashMap::new();
    let mut not_success: HashSet<String> = HashSet::new();
    for r in &requests {
        let callback = r["callbackId"].as_str().unwrap_or_default().to_string();
        if r["outputFields"]["hs_execution_state"] != "SUCCESS" {
            not_success.insert(callback.clone());
        }
        if r["status"] == 204 {
            *accepted.entry(callback).or_default() += 1;
        }
    }
    let accepted_of = |c: &str| accepted.get(&format!("ap-crash-{c}")).copied().unwrap_or(0);
    PushOutcome {
        kills,
        crash_points_hit,
        contacts: targets.len(),
        sent_twice: pushed.values().filter(|n| **n > 1).count(),
        never_sent: targets.iter().filter(|(_, u)| !pushed.contains_key(u)).count(),
        notes_wrong: targets.iter().filter(|(c, _)| noted.get(c).copied().unwrap_or(0) != 1).count(),
        completion_requests: requests.len(),
        repeats_refused: requests.iter().filter(|r| r["status"] == 400).count(),
        completed_twice: targets.iter().filter(|(c, _)| accepted_of(c) > 1).count(),
        completions_wrong: targets
            .iter()
            .filter(|(c, _)| accepted_of(c) != 1 || not_success.contains(&format!("ap-crash-{c}")))
            .count(),
    }
}
