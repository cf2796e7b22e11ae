//! Crash suite: the real binary against the standalone sandbox, killed with SIGKILL at random
//! moments while signed webhooks stream in, restarted each time. At the end the sandbox must
//! show every accepted event applied: no acknowledged event lost, no contact duplicated, and each
//! user's contact in the state of their newest event whatever order events arrived in. Then a
//! LINE broadcast to all of them is run and SIGKILLed mid-send, again and again: every friend
//! gets it exactly once. Last, HubSpot workflows ask for a LINE push to each contact while the
//! daemon is SIGKILLed again: every push is sent once, logged once and completed once.
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

/// What a user's contact must look like once their events are applied.
#[derive(Debug, Default, Clone, PartialEq)]
struct Expected {
    follow_ts: i64,
    follow: &'static str,
    message_ts: i64,
    last_response: String,
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
            .json(&json!({ "channel": TOKEN, "userId": u, "displayName": "Friend" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
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

    for round in 0..rounds {
        let mut daemon = Process::daemon(&config, "error");
        wait_up(&http, &daemon_health).await;
        let kill_after = Duration::from_millis(rng.random_range(50..800));
        let sending = tokio::spawn(send_all(Some(kill_after + Duration::from_millis(200))));
        tokio::time::sleep(kill_after).await;
        daemon.kill(); // SIGKILL
        sending.await.unwrap();
        println!("round {round}: killed after {kill_after:?}; {} event ids acknowledged", acked.lock().unwrap().len());
    }

    // The last start: deliver what is left and let it drain.
    let mut daemon = Process::daemon(&config, "error");
    wait_up(&http, &daemon_health).await;
    send_all(None).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut lost, mut duplicated, mut reordered);
    loop {
        let contacts: Vec<Value> =
            http.get(format!("{sandbox_url}/_sandbox/hubspot/contacts")).send().await.unwrap().json().await.unwrap();
        let mut by_user: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for c in contacts.iter().filter(|c| !c["archived"].as_bool().unwrap_or(false)) {
            if let Some(u) = c["properties"]["line_user_id_1"].as_str() {
                by_user.entry(u.to_string()).or_default().push(c);
            }
        }
        duplicated = by_user.values().filter(|cs| cs.len() > 1).count();
        lost = expected.keys().filter(|u| !by_user.contains_key(*u)).count();
        reordered = expected
            .iter()
            .filter(|(u, e)| {
                by_user.get(*u).and_then(|cs| cs.first()).is_some_and(|c| {
                    let p = &c["properties"];
                    p["line_follow_1"].as_str() != Some(e.follow)
                        || (e.message_ts > 0 && p["line_last_response_1"].as_str() != Some(e.last_response.as_str()))
                })
            })
            .count();
        if (lost == 0 && reordered == 0) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Phase 2: a broadcast to every contact, its runner (`linehub pipeline run`) SIGKILLed at
    // random moments while LINE is slow to answer; each rerun resumes. Nobody may get it twice.
    let contacts: Vec<Value> =
        http.get(format!("{sandbox_url}/_sandbox/hubspot/contacts")).send().await.unwrap().json().await.unwrap();
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
    let run_sale = || {
        Process::spawn(
            linehub()
                .args(["pipeline", "run", "sale", "--config"])
                .arg(&config)
                .env("LINEHUB_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
    };
    let (mut kills, mut done) = (0, false);
    for _ in 0..rounds.min(8) {
        let mut runner = run_sale();
        std::thread::sleep(Duration::from_millis(rng.random_range(50..600)));
        if let Some(status) = runner.try_wait() {
            // It finished before the kill: the broadcast is complete.
            assert!(status.success(), "a run of the broadcast failed");
            done = true;
            break;
        }
        runner.kill();
        kills += 1;
    }
    fault(&http, &sandbox_url, json!({ "fault": "clear", "service": "line" })).await;
    if !done {
        // The interrupted run is resumed, not started again.
        assert!(run_sale().wait().success(), "the resumed broadcast failed");
    }
    let sent: Vec<Value> =
        http.get(format!("{sandbox_url}/_sandbox/line/messages")).send().await.unwrap().json().await.unwrap();
    let mut received: HashMap<String, usize> = HashMap::new();
    for m in sent.iter().filter(|m| m["kind"] == "multicast") {
        for u in m["deliveredTo"].as_array().into_iter().flatten() {
            *received.entry(u.as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    let sent_twice = received.values().filter(|n| **n > 1).count();
    let should_receive: Vec<&String> = expected.iter().filter(|(_, e)| e.follow == "Yes").map(|(u, _)| u).collect();
    let never_sent = should_receive.iter().filter(|u| !received.contains_key(**u)).count();
    println!(
        "broadcast: {kills} kills mid-send; {} recipients, sent twice: {sent_twice}, never sent: {never_sent}",
        received.len()
    );
    let pushes = pushes_survive_sigkill(&http, &sandbox_url, daemon_addr, &config, &mut daemon, &mut rng, rounds).await;
    println!(
        "workflow pushes: {} kills; {} contacts, sent twice: {}, never sent: {}, notes not exactly one: {}, not completed once: {}",
        pushes.kills,
        pushes.contacts,
        pushes.sent_twice,
        pushes.never_sent,
        pushes.notes_wrong,
        pushes.completions_wrong
    );
    daemon.kill();

    // Every acknowledged event is in the inbox and was processed.
    let store = linehub::store::Store::open(&dir.path().join("linehub.db")).unwrap();
    let stored: HashSet<String> = store.inbox_ids().await.unwrap().into_iter().collect();
    let lost_events = acked.lock().unwrap().iter().filter(|id| !stored.contains(*id)).count();
    let violations: Vec<Value> =
        http.get(format!("{sandbox_url}/_sandbox/violations")).send().await.unwrap().json().await.unwrap();
    sandbox.kill();

    println!(
        "lost events: {lost_events}, users without a contact: {lost}, duplicated contacts: {duplicated}, contacts not in their newest state: {reordered}"
    );
    assert_eq!((lost_events, lost, duplicated, reordered), (0, 0, 0, 0), "seed {seed}");
    assert_eq!((sent_twice, never_sent), (0, 0), "broadcast, seed {seed}");
    assert_eq!(
        (pushes.sent_twice, pushes.never_sent, pushes.notes_wrong, pushes.completions_wrong),
        (0, 0, 0, 0),
        "workflow pushes, seed {seed}"
    );
    assert!(violations.is_empty(), "contract violations: {violations:#?}");
}

/// Action requests not yet answered 200: (callback id, body).
type Requests = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// What phase 3 found.
struct PushOutcome {
    kills: usize,
    contacts: usize,
    sent_twice: usize,
    never_sent: usize,
    notes_wrong: usize,
    completions_wrong: usize,
}

/// Phase 3: a signed "Push LINE message" action for every contact, delivered while the daemon
/// is SIGKILLed at random moments and LINE is slow; unanswered requests are delivered again, as
/// HubSpot would. Each contact must get one push, one timeline note and one completion.
async fn pushes_survive_sigkill(
    http: &reqwest::Client,
    sandbox_url: &str,
    daemon_addr: SocketAddr,
    config: &std::path::Path,
    daemon: &mut Process,
    rng: &mut rand::rngs::StdRng,
    rounds: usize,
) -> PushOutcome {
    let contacts: Vec<Value> =
        http.get(format!("{sandbox_url}/_sandbox/hubspot/contacts")).send().await.unwrap().json().await.unwrap();
    let targets: Vec<(String, String)> = contacts
        .iter()
        .filter_map(|c| Some((c["id"].as_str()?.to_string(), c["properties"]["line_user_id_1"].as_str()?.to_string())))
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
    let mut kills = 0;
    for _ in 0..rounds.min(8) {
        let kill_after = Duration::from_millis(rng.random_range(100..700));
        let delivering = tokio::spawn(deliver(Some(kill_after)));
        tokio::time::sleep(kill_after).await;
        daemon.kill(); // SIGKILL
        kills += 1;
        delivering.await.unwrap();
        *daemon = Process::daemon(config, "error");
        wait_up(http, &format!("http://{daemon_addr}/healthz")).await;
    }
    fault(http, sandbox_url, json!({ "fault": "clear", "service": "line" })).await;
    deliver(None).await;

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done: Vec<Value> =
            http.get(format!("{sandbox_url}/_sandbox/hubspot/callbacks")).send().await.unwrap().json().await.unwrap();
        if done.len() >= targets.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Notes are written just before completions in the same pass; give the last pass a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent: Vec<Value> =
        http.get(format!("{sandbox_url}/_sandbox/line/messages")).send().await.unwrap().json().await.unwrap();
    let mut pushed: HashMap<String, usize> = HashMap::new();
    for m in sent.iter().filter(|m| m["kind"] == "push") {
        for u in m["to"].as_array().into_iter().flatten() {
            *pushed.entry(u.as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    let notes: Vec<Value> =
        http.get(format!("{sandbox_url}/_sandbox/hubspot/notes")).send().await.unwrap().json().await.unwrap();
    let mut noted: HashMap<String, usize> = HashMap::new();
    for n in &notes {
        for a in n["associations"].as_array().into_iter().flatten() {
            *noted.entry(a["toId"].as_str().unwrap_or_default().to_string()).or_default() += 1;
        }
    }
    let done: Vec<Value> =
        http.get(format!("{sandbox_url}/_sandbox/hubspot/callbacks")).send().await.unwrap().json().await.unwrap();
    let completed: HashMap<String, &Value> =
        done.iter().filter_map(|c| Some((c["callbackId"].as_str()?.to_string(), c))).collect();
    PushOutcome {
        kills,
        contacts: targets.len(),
        sent_twice: pushed.values().filter(|n| **n > 1).count(),
        never_sent: targets.iter().filter(|(_, u)| !pushed.contains_key(u)).count(),
        notes_wrong: targets.iter().filter(|(c, _)| noted.get(c).copied().unwrap_or(0) != 1).count(),
        completions_wrong: targets
            .iter()
            .filter(|(c, _)| {
                completed
                    .get(&format!("ap-crash-{c}"))
                    .is_none_or(|v| v["outputFields"]["hs_execution_state"] != "SUCCESS")
            })
            .count(),
    }
}
