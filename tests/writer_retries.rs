//! The writer's retry promises, each asserted directly: a write HubSpot refuses for good is
//! dead-lettered after exactly three refusals; a 207 retries only the members that failed; and
//! `linehub outbox retry ID` puts back exactly that dead row.

mod common;

use std::time::Duration;

use common::World;
use linehub::store::OutboxRow;
use linehub_sandbox::webhook as line;

const T0: i64 = 1_764_000_000_000; // 2025-11-24T16:00:00Z

/// Every outbox row, dead or alive.
fn outbox_rows(w: &World) -> Vec<OutboxRow> {
    w.daemon.store().outbox_list_blocking(false).unwrap()
}

/// How many recorded HubSpot requests mention `needle` (a LINE user id) in their body.
fn requests_naming(w: &World, needle: &str) -> usize {
    w.sandbox.hubspot().recorded_requests().iter().filter(|r| r.body.to_string().contains(needle)).count()
}

/// An admin renames the options of `LINE Follow _1`: every follow on `tokyo` is refused (400
/// INVALID_OPTION, or a 207 member error), and stays refused.
async fn refusing_tokyo_follows() -> World {
    let w = World::new().await;
    w.daemon.ensure_properties().await.unwrap();
    w.sandbox.hubspot().set_property_options("line_follow_1", &["はい", "いいえ"]).unwrap();
    w
}

/// Runs `linehub outbox ARGS --config` on the world's store; returns its stdout.
fn outbox_cli(w: &World, args: &[&str]) -> String {
    let out = common::linehub().arg("outbox").args(args).arg("--config").arg(w.config_path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_write_is_dead_lettered_after_exactly_three_permanent_refusals() {
    let w = refusing_tokyo_follows().await;
    let user = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&user, T0, false)]).await;
    w.sandbox.hubspot().record_requests();
    for refusal in 1..=5 {
        let report = w.daemon.settle().await.unwrap();
        let rows = outbox_rows(&w);
        assert_eq!(rows.len(), 1, "{rows:#?}");
        let sent = requests_naming(&w, &user);
        match refusal {
            1 | 2 => {
                assert_eq!(sent, refusal, "one try per round");
                assert!(!rows[0].dead, "dead after {refusal} refusal(s): {rows:#?}");
                assert_eq!(rows[0].attempts, refusal as i64);
                assert_eq!((report.retried, report.dead), (1, 0), "{report:?}");
            }
            3 => {
                assert_eq!(sent, 3);
                assert!(rows[0].dead, "still alive after three refusals: {rows:#?}");
                assert_eq!(report.dead, 1, "{report:?}");
            }
            _ => assert_eq!(sent, 3, "a dead write is not tried a fourth time"),
        }
        w.clock.advance(Duration::from_secs(3600));
    }
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_207_retries_only_the_members_that_failed() {
    let w = refusing_tokyo_follows().await;
    let refused = line::random_user_id();
    let fine = line::random_user_id();
    w.deliver("tokyo", vec![line::follow(&refused, T0, false)]).await;
    w.deliver("osaka", vec![line::follow(&fine, T0 + 1, false)]).await;
    w.sandbox.hubspot().record_requests();
    for _ in 0..6 {
        w.daemon.settle().await.unwrap();
        w.clock.advance(Duration::from_secs(3600));
    }
    let recorded = w.sandbox.hubspot().recorded_requests();
    let first = recorded.iter().find(|r| r.endpoint.contains("batch/create")).expect("a batch create");
    let body = first.body.to_string();
    assert!(body.contains(&refused) && body.contains(&fine), "both in one batch: {body}");
    assert_eq!(requests_naming(&w, &fine), 1, "the member HubSpot took is not sent again");
    assert_eq!(requests_naming(&w, &refused), 3, "the refused member alone, three times");
    assert_eq!(w.contact("line_user_id_2", &fine).properties["line_follow_2"], "Yes");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn outbox_retry_with_an_id_puts_back_exactly_that_dead_row() {
    let w = refusing_tokyo_follows().await;
    let users: Vec<String> = (0..3).map(|_| line::random_user_id()).collect();
    for (i, user) in users.iter().enumerate() {
        w.deliver("tokyo", vec![line::follow(user, T0 + i as i64, false)]).await;
    }
    for _ in 0..6 {
        w.daemon.settle().await.unwrap();
        w.clock.advance(Duration::from_secs(3600));
    }
    let dead = outbox_rows(&w);
    assert!(dead.len() == 3 && dead.iter().all(|r| r.dead), "{dead:#?}");
    let chosen = dead.iter().find(|r| r.key == format!("contact:{}", users[1])).expect("the second user's row");

    let out = outbox_cli(&w, &["retry", &chosen.id.to_string()]);
    assert!(out.contains("1 write(s) queued again"), "{out}");
    for row in outbox_rows(&w) {
        if row.id == chosen.id {
            assert!(!row.dead && row.attempts == 0, "{row:?}");
        } else {
            assert!(row.dead, "another row came back: {row:?}");
        }
    }
    // The admin puts the options back: only the row retried is written.
    w.sandbox.hubspot().set_property_options("line_follow_1", &["Yes", "No"]).unwrap();
    w.clock.advance(Duration::from_secs(1));
    w.daemon.settle().await.unwrap();
    assert_eq!(w.contact("line_user_id_1", &users[1]).properties["line_follow_1"], "Yes");
    for other in [&users[0], &users[2]] {
        assert!(w.sandbox.hubspot().find_by_property("line_user_id_1", other).is_empty());
    }
    assert_eq!(outbox_rows(&w).iter().filter(|r| r.dead).count(), 2);
}
