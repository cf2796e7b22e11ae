//! Broadcasts and quota from the outside: a HubSpot list in, LINE's log of sent messages out.
//! Every recipient must get each message exactly once, whatever fails on the way.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::World;
use linehub::store::pipelines::RunState;
use linehub_sandbox::{SendKind, Service};

const TOKYO: &str = "tokyo-access-token";

/// `n` friends with contacts on a list (plus contacts the broadcast must skip: no LINE id, and
/// one who blocked the account); returns the list id and the recipients' user ids.
async fn vip_list(w: &World, n: usize) -> (String, Vec<String>) {
    w.daemon.ensure_properties().await.unwrap();
    let friends = w.friends_with_contacts("tokyo", 1, n);
    let hs = w.sandbox.hubspot();
    let mut members: Vec<String> = friends.iter().map(|(_, c)| c.clone()).collect();
    for i in 0..10 {
        members.push(hs.create_contact(&[("email", &format!("nolink{i}@example.com"))]).unwrap());
    }
    let blocked = w.friends_with_contacts("tokyo", 1, 1);
    hs.update_contact(&blocked[0].1, &[("line_follow_1", "No")]).unwrap();
    members.push(blocked[0].1.clone());
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let list = hs.add_list("VIP", &refs).unwrap();
    (list, friends.into_iter().map(|(u, _)| u).collect())
}

fn broadcast(list: &str) -> String {
    format!(
        r#"accounts: [tokyo]
steps:
  - broadcast_to_list:
      list_id: "{list}"
      messages:
        - text: "春のセール開催中"
        - sticker: {{ package_id: "446", sticker_id: "1988" }}
"#
    )
}

/// Multicasts accepted by LINE, and how many times each user received the broadcast.
fn deliveries(w: &World) -> (usize, BTreeMap<String, usize>) {
    let sent: Vec<_> = w.sandbox.line().sent_messages().into_iter().filter(|m| m.kind == SendKind::Multicast).collect();
    let mut per_user = BTreeMap::new();
    for m in &sent {
        assert_eq!(m.messages.len(), 2);
        assert_eq!(m.messages[0]["text"], "春のセール開催中");
        assert!(m.to.len() <= 500, "a multicast to {} users", m.to.len());
        let key = m.retry_key.as_deref().unwrap_or_else(|| panic!("a multicast without X-Line-Retry-Key"));
        assert_eq!(key.len(), 36, "{key}");
        for u in &m.delivered_to {
            *per_user.entry(u.clone()).or_default() += 1;
        }
    }
    (sent.len(), per_user)
}

fn assert_exactly_once(w: &World, recipients: &[String]) {
    let (_, per_user) = deliveries(w);
    let twice: Vec<_> = per_user.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{} users got the broadcast more than once: {twice:?}", twice.len());
    let missing: Vec<_> = recipients.iter().filter(|u| !per_user.contains_key(*u)).collect();
    assert!(missing.is_empty(), "{} users never got it", missing.len());
    assert_eq!(per_user.len(), recipients.len());
}

#[tokio::test]
async fn a_broadcast_reaches_every_list_member_once_in_chunks_of_500() {
    let w = World::new().await;
    let (list, recipients) = vip_list(&w, 1_234).await;
    w.add_pipeline("sale.yaml", &broadcast(&list)).await;

    let report = w.daemon.run_pipeline("sale", false).await.unwrap();
    assert_eq!(report.state, RunState::Done, "{report}");
    assert_eq!(report.total("recipients"), 1_234, "{report}");
    assert_eq!(report.total("without_line_id"), 10, "{report}");
    assert_eq!(report.total("not_following"), 1, "{report}");
    let (multicasts, _) = deliveries(&w);
    assert_eq!(multicasts, 3);
    let sizes: Vec<usize> = w.sandbox.line().sent_messages().iter().map(|m| m.to.len()).collect();
    assert_eq!(sizes, [500, 500, 234]);
    let keys: HashSet<_> = w.sandbox.line().sent_messages().into_iter().filter_map(|m| m.retry_key).collect();
    assert_eq!(keys.len(), 3, "one retry key per chunk");
    assert_exactly_once(&w, &recipients);
    assert_eq!(w.sandbox.line().quota_used(TOKYO).unwrap(), 1_234);

    // Each recipient's contact records the send.
    w.daemon.settle().await.unwrap();
    let c = w.contact("line_user_id_1", &recipients[999]);
    assert_eq!(c.properties["line_last_broadcast_1"], "sale");
    assert!(c.properties.contains_key("line_last_broadcast_date_1"));
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn lost_answers_then_a_restart_resume_the_broadcast_without_a_double_send() {
    let mut w = World::new().await;
    let (list, recipients) = vip_list(&w, 1_100).await;
    w.add_pipeline("sale.yaml", &broadcast(&list)).await;
    // LINE takes the first chunk, but no answer reaches linehub: not the first attempt's, nor
    // those of its retries (409s for the same key).
    w.sandbox.faults().lose_responses_of(Service::Line, "multicast", 3);

    let failed = w.daemon.run_pipeline("sale", false).await.unwrap();
    assert_eq!(failed.state, RunState::Failed, "{failed}");
    assert_eq!(deliveries(&w).0, 1, "LINE accepted one chunk");

    w.restart().await;
    let resumed = w.daemon.run_pipeline("sale", false).await.unwrap();
    assert_eq!(resumed.state, RunState::Done, "{resumed}");
    assert!(resumed.resumed);
    assert_eq!(resumed.run_id, failed.run_id, "the same run continues");
    assert_eq!(resumed.total("replayed_chunks"), 1, "the uncertain chunk was resent with its key: {resumed}");
    assert_exactly_once(&w, &recipients);
    assert_eq!(w.sandbox.line().quota_used(TOKYO).unwrap(), 1_100);
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_crash_mid_broadcast_then_resume_sends_every_message_exactly_once() {
    let mut w = World::new().await;
    let (list, recipients) = vip_list(&w, 2_345).await;
    w.add_pipeline("sale.yaml", &broadcast(&list)).await;
    // Each LINE answer arrives 150 ms after LINE acted. The process dies at a random moment
    // after LINE took the first chunk: between chunks, or with a chunk sent and its answer not
    // yet back.
    w.sandbox.faults().latency(Service::Line, Duration::from_millis(150));
    let crash = async {
        while w.sandbox.line().sent_messages().is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..300))).await;
    };
    tokio::select! {
        r = w.daemon.run_pipeline("sale", false) => panic!("the run finished before the crash: {r:?}"),
        () = crash => {}
    }
    let sent_before = deliveries(&w).0;
    assert!(sent_before < 5, "the crash came mid-broadcast ({sent_before} of 5 chunks sent)");

    w.restart().await;
    w.sandbox.faults().clear(Service::Line);
    // The dead process's claim expires after its lease.
    w.clock.advance(Duration::from_secs(120));
    let resumed = w.daemon.run_pipeline("sale", false).await.unwrap();
    assert_eq!(resumed.state, RunState::Done, "{resumed}");
    assert!(resumed.resumed, "{resumed}");
    assert_exactly_once(&w, &recipients);
    let runs = w.daemon.store().pipeline_runs(Some("sale".into()), 10).await.unwrap();
    assert_eq!(runs.len(), 1, "one run, resumed: {runs:?}");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_second_start_of_a_running_pipeline_is_refused() {
    let w = World::new().await;
    let (list, recipients) = vip_list(&w, 600).await;
    w.add_pipeline("sale.yaml", &broadcast(&list)).await;
    // LINE's answers wait until the second start has been tried: the first run is mid-broadcast.
    let hold = w.sandbox.faults().hold_answers(Service::Line);
    let (first, second) = tokio::join!(w.daemon.run_pipeline("sale", false), async {
        let arrived = tokio::time::timeout(Duration::from_secs(30), hold.arrived(1)).await;
        arrived.expect("the first run never reached LINE");
        let second = w.daemon.run_pipeline("sale", false).await;
        hold.release();
        second
    });
    assert_eq!(first.unwrap().state, RunState::Done);
    let refused = second.unwrap_err().to_string();
    assert!(refused.contains("already running"), "{refused}");
    assert_exactly_once(&w, &recipients);
}

#[tokio::test]
async fn a_broadcast_that_would_exceed_the_quota_is_held_then_sent_once_it_fits() {
    let w = World::new().await;
    w.sandbox.line().set_monthly_quota(TOKYO, Some(1_000)).unwrap();
    w.sandbox.line().use_quota(TOKYO, 850).unwrap();
    let (list, recipients) = vip_list(&w, 600).await;
    w.add_pipeline("sale.yaml", &broadcast(&list)).await;
    w.add_pipeline("limits.yaml", "accounts: [tokyo]\nsteps:\n  - enforce_plan_limits: {}\n").await;

    let dry = w.daemon.run_pipeline("sale", true).await.unwrap();
    assert_eq!((dry.total("quota_needed"), dry.total("quota_left")), (600, 150), "{dry}");
    assert!(dry.to_string().contains("would be held"), "{dry}");

    let held = w.daemon.run_pipeline("sale", false).await.unwrap();
    assert_eq!(held.state, RunState::Held, "{held}");
    assert!(held.error.as_deref().unwrap_or_default().contains("150 messages left"), "{held}");
    assert_eq!(deliveries(&w).0, 0, "nothing went to LINE to be refused there");

    let limits = w.daemon.run_pipeline("limits", false).await.unwrap();
    let text = limits.to_string();
    assert_eq!(limits.total("queued_recipients"), 600, "{text}");
    assert_eq!(limits.total("held"), 1, "{text}");
    assert!(text.contains("plan `starter`: 2 of 2 active accounts"), "{text}");
    assert!(text.contains("has used 850 of its 1000 messages this month (85%)"), "{text}");

    // The account's plan grows: the check releases the hold and the broadcast resumes.
    w.sandbox.line().set_monthly_quota(TOKYO, Some(5_000)).unwrap();
    let limits = w.daemon.run_pipeline("limits", false).await.unwrap();
    assert_eq!(limits.total("released"), 1, "{limits}");
    assert!(w.daemon.store().send_holds().await.unwrap().is_empty());
    let sent = w.daemon.run_pipeline("sale", false).await.unwrap();
    assert_eq!(sent.state, RunState::Done, "{sent}");
    assert!(sent.resumed);
    assert_exactly_once(&w, &recipients);
    assert_eq!(w.sandbox.line().quota_used(TOKYO).unwrap(), 1_450);
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_dry_run_broadcast_sends_nothing_and_says_what_it_would_use() {
    let w = World::new().await;
    let (list, _) = vip_list(&w, 700).await;
    w.add_pipeline("sale.yaml", &broadcast(&list)).await;
    let report = w.daemon.run_pipeline("sale", true).await.unwrap();
    assert_eq!(report.state, RunState::Done, "{report}");
    assert_eq!((report.total("recipients"), report.total("chunks"), report.total("quota_needed")), (700, 2, 700));
    assert!(report.steps[0].report.samples.iter().any(|s| s.contains("would receive 2 message(s)")), "{report}");
    assert!(w.sandbox.line().sent_messages().is_empty());
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0);
    assert!(w.daemon.store().queued_send_recipients().await.unwrap().is_empty());
    // The real run afterwards starts from scratch.
    let real = w.daemon.run_pipeline("sale", false).await.unwrap();
    assert!(!real.resumed);
    assert_eq!(real.total("sent_recipients"), 700, "{real}");
}

#[tokio::test]
async fn a_chunk_whose_outcome_is_unknown_for_23_hours_is_never_resent() {
    let w = World::new().await;
    let (list, recipients) = vip_list(&w, 700).await;
    w.add_pipeline("sale.yaml", &broadcast(&list)).await;
    // LINE takes the first chunk, but none of the answers reach linehub.
    w.sandbox.faults().lose_responses_of(Service::Line, "multicast", 3);
    let failed = w.daemon.run_pipeline("sale", false).await.unwrap();
    assert_eq!(failed.state, RunState::Failed, "{failed}");
    assert_eq!(deliveries(&w).0, 1, "LINE accepted one chunk");

    // A day later LINE no longer knows the chunk's retry key: resending it could deliver twice.
    w.clock.advance(Duration::from_secs(23 * 3600 + 60));
    let resumed = w.daemon.run_pipeline("sale", false).await.unwrap();
    assert_eq!(resumed.run_id, failed.run_id, "the same run continues");
    assert_eq!(resumed.total("expired_chunks"), 1, "{resumed}");
    assert_eq!(resumed.total("replayed_chunks"), 0, "{resumed}");
    assert!(resumed.to_string().contains("retry key has expired"), "{resumed}");
    assert_eq!(deliveries(&w).0, 2, "only the other chunk was sent");
    assert_exactly_once(&w, &recipients);
    w.sandbox.assert_no_violations();
}
