//! Hostile and malformed input, generated from a seed: the LINE webhook and the HubSpot workflow
//! action never panic, never store what is not signed (or is stale), and answer only with the
//! documented statuses; a broken config is always refused with a located error and never
//! half-loaded.
//!
//! Bounded here; `LINEHUB_HOSTILE_CASES=100000 cargo test --release --test hostile_input` runs longer.

mod common;

use common::*;
use rand::{Rng, SeedableRng};

fn cases(default: usize) -> usize {
    std::env::var("LINEHUB_HOSTILE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn seed() -> u64 {
    let seed = std::env::var("LINEHUB_HOSTILE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("seed {seed} (replay with LINEHUB_HOSTILE_SEED={seed})");
    seed
}

/// A valid webhook body, then damaged in one of several ways.
fn mutate(rng: &mut impl Rng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    match rng.random_range(0..7) {
        0 => {
            let i = rng.random_range(0..b.len());
            b[i] = rng.random();
        }
        1 => {
            let i = rng.random_range(0..b.len());
            b.truncate(i);
        }
        2 => {
            let i = rng.random_range(0..b.len());
            let junk: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
            b.splice(i..i, junk);
        }
        3 => b = (0..rng.random_range(0..512)).map(|_| rng.random()).collect(),
        4 => {
            // Deep nesting.
            let depth = rng.random_range(1..2000);
            b = format!("{{\"events\":{}{}}}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
        }
        5 => {
            // Wrong types where the envelope expects others.
            let v = [
                "{\"events\":null}",
                "{\"events\":[null]}",
                "{\"events\":[{\"type\":7,\"timestamp\":\"x\"}]}",
                "{}",
                "\"events\"",
            ];
            b = v[rng.random_range(0..v.len())].as_bytes().to_vec();
        }
        _ => {
            // Valid JSON with odd but legal content: unknown types, huge numbers, unicode.
            b = format!(
                "{{\"destination\":\"U0\",\"events\":[{{\"type\":\"{}\",\"timestamp\":{},\"webhookEventId\":\"h{}\",\"source\":{{\"type\":\"user\",\"userId\":\"U\\u0000{}\"}}}}]}}",
                ["follow", "message", "x".repeat(300).as_str(), "📦"][rng.random_range(0..4)],
                rng.random::<i64>(),
                rng.random::<u64>(),
                rng.random::<u32>()
            )
            .into_bytes();
        }
    }
    b
}

#[tokio::test]
async fn hostile_webhooks_never_panic_and_unsigned_ones_are_never_stored() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(ConfigFile::standard(dir.path(), "http://127.0.0.1:9").load()).await;
    let http = reqwest::Client::new();
    let base = body(vec![text_event("01HOSTILE00000000000000000", "U1", 1, "hi")]);
    let mut stored_signed = 0u64;
    for i in 0..cases(600) {
        let raw = mutate(&mut rng, &base);
        let sig = match i % 3 {
            0 => None,
            1 => Some(sign_webhook("some other secret", &raw)),
            _ => Some(sign_webhook(TOKYO_SECRET, &raw)),
        };
        let signed = i % 3 == 2;
        let res = post_webhook(&http, daemon.addr(), "tokyo", raw.clone(), sig).await;
        let status = res.status().as_u16();
        if signed {
            assert!([200, 400, 413].contains(&status), "signed input got {status}: {}", String::from_utf8_lossy(&raw));
            if status == 200 {
                stored_signed += 1;
            }
        } else {
            assert_eq!(status, 401, "unsigned input got {status}");
        }
    }
    // Only signed, well-formed bodies reached the inbox.
    let n = daemon.store().inbox_len().await.unwrap();
    assert!(n <= stored_signed, "{n} events stored from {stored_signed} accepted signed bodies");
    // Still serving.
    let ok = post_signed_webhook(&http, daemon.addr(), "tokyo", TOKYO_SECRET, base).await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn hostile_action_requests_never_panic_and_unsigned_ones_are_never_stored() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(ConfigFile::standard(dir.path(), "http://127.0.0.1:9").load()).await;
    let http = reqwest::Client::new();
    let inputs = serde_json::json!({ "account": "tokyo", "message_1": "Hi {{contact.firstname}}",
        "message_2": "{\"type\":\"sticker\",\"packageId\":\"446\",\"stickerId\":\"1988\"}" });
    let base = action_body("ap-hostile", "501", inputs);
    let mut blocked = 0u64;
    for i in 0..cases(600) {
        let mut raw = mutate(&mut rng, &base);
        if i % 7 == 0 {
            // Keep some bodies valid JSON with a fresh callback id, so the happy path is fuzzed too.
            raw = String::from_utf8_lossy(&base).replace("ap-hostile", &format!("ap-hostile-{i}")).into_bytes();
        }
        let now = linehub::clock::system_now_ms();
        let headers = match i % 4 {
            0 => Vec::new(),
            1 => action_headers("another-app", &raw, now),
            2 => action_headers(HUBSPOT_CLIENT_SECRET, &raw, now - 10 * 60 * 1000),
            _ => action_headers(HUBSPOT_CLIENT_SECRET, &raw, now),
        };
        let (status, answer) = post_action(&http, daemon.addr(), raw.clone(), headers).await;
        if i % 4 == 3 {
            assert!([200, 400, 413].contains(&status), "signed input got {status}: {}", String::from_utf8_lossy(&raw));
            let state = answer["outputFields"]["hs_execution_state"].as_str();
            assert!(status != 200 || matches!(state, Some("BLOCK" | "FAIL_CONTINUE")), "{answer}");
            if state == Some("BLOCK") {
                blocked += 1;
            }
        } else {
            assert_eq!(status, 401, "unsigned, wrongly signed or stale input got {status}");
        }
    }
    assert!(blocked > 0, "no request was taken at all");
    // Only requests answered BLOCK were stored, and a repeated callback id only once.
    let stored = daemon.store().sends(100_000).await.unwrap().len() as u64;
    assert!(stored <= blocked, "{stored} sends stored from {blocked} accepted requests");
}

#[test]
fn broken_configs_are_refused_with_a_location_and_never_half_loaded() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let dir = tempfile::tempdir().unwrap();
    let good = ConfigFile::standard(dir.path(), "http://127.0.0.1:9").text();
    let path = dir.path().join("config.yaml");
    assert!(linehub::settings::Settings::load_str(&path, &good).is_ok());
    let lines: Vec<&str> = good.lines().collect();
    for _ in 0..cases(2000) {
        let mut text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        match rng.random_range(0..5) {
            0 => {
                text.remove(rng.random_range(0..text.len()));
            }
            1 => {
                let i = rng.random_range(0..text.len());
                let line = &mut text[i];
                if !line.is_empty() {
                    let at = rng.random_range(0..line.len());
                    if line.is_char_boundary(at) {
                        line.insert(at, ['\t', ':', '"', '[', '{', '#', '-', '\'', 'é'][rng.random_range(0..9)]);
                    }
                }
            }
            2 => {
                let (a, b) = (rng.random_range(0..text.len()), rng.random_range(0..text.len()));
                text.swap(a, b);
            }
            3 => {
                let i = rng.random_range(0..text.len());
                text[i] = format!("  {}", text[i]);
            }
            _ => {
                let i = rng.random_range(0..text.len());
                text.insert(i, "  unexpected: ${UNSET_VARIABLE_FOR_TEST}".into());
            }
        }
        let text = text.join("\n");
        match linehub::settings::Settings::load_str(&path, &text) {
            // Some damage is harmless (a swapped pair of keys): then the result must equal the
            // original in what matters.
            Ok(c) => assert_eq!(c.config.accounts.len(), 2, "{text}"),
            Err(errors) => {
                for e in &errors.0 {
                    assert_eq!(e.file, path);
                    assert!(!e.message.is_empty());
                    assert!(e.line > 0 || e.message.contains("empty"), "unlocated error `{e}` for:\n{text}");
                }
            }
        }
    }
}

#[test]
fn broken_pipeline_files_are_refused_with_a_location() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let accounts =
        ConfigFile::bare(std::path::Path::new("/x")).account("tokyo-store", "s", "t").load().config.accounts.clone();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut originals = Vec::new();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            linehub::pipelines::spec::load_str(&path, &text, &accounts)
                .unwrap_or_else(|e| panic!("example {}: {e}", path.display()));
            originals.push((path, text));
        }
    }
    assert!(!originals.is_empty());
    let (n, mut refused) = (cases(2000), 0);
    for _ in 0..n {
        let (path, text) = &originals[rng.random_range(0..originals.len())];
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let i = rng.random_range(0..lines.len());
        match rng.random_range(0..4) {
            0 => {
                lines.remove(i);
            }
            1 => lines[i].push_str([": x", " [", "\"", "  extra_field: 1", "\t"][rng.random_range(0..5)]),
            2 => lines.insert(
                i,
                [
                    "  - no_such_step: {}",
                    "schedule: { cron: \"61 9 * * *\", time_zone: Asia/Tokyo }",
                    "accounts: [nowhere]",
                    "steps: 7",
                ][rng.random_range(0..4)]
                .to_string(),
            ),
            _ => {
                let j = rng.random_range(0..lines.len());
                lines.swap(i, j);
            }
        }
        let broken = lines.join("\n");
        match linehub::pipelines::spec::load_str(path, &broken, &accounts) {
            // Some damage is harmless (two lines swapped, an optional key removed): then what
            // loaded must still be a pipeline the config can run.
            Ok(p) => {
                assert!(!p.steps.is_empty(), "a pipeline without steps loaded from:\n{broken}");
                assert!(
                    p.accounts.iter().all(|a| a == "tokyo-store"),
                    "unknown account {:?} in:\n{broken}",
                    p.accounts
                );
                assert_eq!(&p.source, path);
            }
            Err(errors) => {
                refused += 1;
                assert!(!errors.0.is_empty(), "refused without a reason:\n{broken}");
                for e in &errors.0 {
                    assert_eq!(&e.file, path);
                    assert!(e.line > 0 || e.message.contains("empty"), "unlocated error `{e}` for:\n{broken}");
                }
            }
        }
    }
    assert!(refused * 4 >= n, "only {refused} of {n} damaged files were refused: the damage is too mild to test");
}
