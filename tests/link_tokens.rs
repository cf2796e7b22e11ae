//! Link tokens for email linkage from the outside: a HubSpot list in, a `linehub_link_token` on
//! each member and its hash in the store out.

mod common;

use std::time::Duration;

use common::World;
use linehub::clock::Clock;
use linehub::login::hash_link_token;
use linehub::store::pipelines::RunState;

const DAY_MS: i64 = 24 * 3600 * 1000;
const TOKEN: &str = "linehub_link_token";

/// `n` contacts in a list; returns (list id, member ids).
async fn members(w: &World, n: usize) -> (String, Vec<String>) {
    w.daemon.ensure_properties().await.unwrap();
    let hs = w.sandbox.hubspot();
    let ids: Vec<String> =
        (0..n).map(|i| hs.create_contact(&[("email", &format!("member{i}@example.com"))]).unwrap()).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    (hs.add_list("Newsletter", &refs).unwrap(), ids)
}

/// A pipeline over both accounts issuing tokens to the list's members, with `extra` lines in
/// its `with:` block.
fn issue(list: &str, extra: &str) -> String {
    format!(
        "accounts: [tokyo, osaka]\nsteps:\n  - issue_link_tokens:\n      list_id: \"{list}\"\n      \
         page_size: 7\n{extra}"
    )
}

/// Each member's token, as HubSpot holds it.
fn tokens(w: &World, ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| {
            let c = w.sandbox.hubspot().contact(id).unwrap();
            c.properties.get(TOKEN).cloned().unwrap_or_else(|| panic!("contact {id} has no {TOKEN}: {c:?}"))
        })
        .collect()
}

/// Checks that each token resolves, on both accounts, to its own contact, expiring at `expires_at`.
async fn assert_resolve(w: &World, ids: &[String], tokens: &[String], expires_at: i64) {
    for (id, token) in ids.iter().zip(tokens) {
        for account in ["tokyo", "osaka"] {
            let record = w.daemon.store().link_token(hash_link_token(token), account.into()).await.unwrap();
            let record = record.unwrap_or_else(|| panic!("the store does not know the token of contact {id}"));
            assert_eq!((&record.contact, record.expires_at), (id, expires_at), "contact {id}");
            assert_eq!(record.used_by, None);
        }
    }
}

#[tokio::test]
async fn every_member_gets_its_own_token_and_the_store_resolves_it_to_that_contact() {
    let w = World::new().await;
    let (list, ids) = members(&w, 20).await;
    w.add_pipeline("tokens.yaml", &issue(&list, "")).await;

    let report = w.daemon.run_pipeline("tokens", false).await.unwrap();
    assert_eq!(report.state, RunState::Done, "{report}");
    let tokyo = &report.steps[0];
    assert_eq!(tokyo.account, "tokyo");
    assert_eq!(
        (tokyo.report.get("issued"), tokyo.report.get("kept"), tokyo.report.get("pages")),
        (20, 0, 3),
        "{report}"
    );
    // The token is per contact: the second account's pass keeps what the first issued.
    let osaka = &report.steps[1];
    assert_eq!((osaka.report.get("issued"), osaka.report.get("kept")), (0, 20), "{report}");
    w.daemon.settle().await.unwrap();

    let tokens = tokens(&w, &ids);
    assert!(!report.to_string().contains(&tokens[0]), "a report never shows a token:\n{report}");
    let unique: std::collections::HashSet<&String> = tokens.iter().collect();
    assert_eq!(unique.len(), ids.len(), "tokens are unique");
    assert!(tokens.iter().all(|t| t.len() >= 40), "{tokens:?}");
    assert_resolve(&w, &ids, &tokens, w.clock.now_ms() + 30 * DAY_MS).await;

    // One shared property, in linehub's group.
    let def = w.sandbox.hubspot().contact_property(TOKEN).unwrap();
    assert_eq!((def.label.as_str(), def.kind.as_str(), def.field_type.as_str()), ("LINE link token", "string", "text"));
    assert_eq!(def.group_name, "line");
    w.sandbox.assert_no_violations();
}

#[tokio::test]
async fn a_second_run_keeps_the_tokens_and_extends_them_without_writing_hubspot() {
    let w = World::new().await;
    let (list, ids) = members(&w, 10).await;
    w.add_pipeline("tokens.yaml", &issue(&list, "      valid_for_days: 7\n")).await;
    w.daemon.run_pipeline("tokens", false).await.unwrap();
    w.daemon.settle().await.unwrap();
    let first = tokens(&w, &ids);
    assert_resolve(&w, &ids, &first, w.clock.now_ms() + 7 * DAY_MS).await;

    w.clock.advance(Duration::from_millis(3 * DAY_MS as u64));
    let again = w.daemon.run_pipeline("tokens", false).await.unwrap();
    assert_eq!((again.total("kept"), again.total("issued"), again.total("rotated")), (20, 0, 0), "{again}");
    assert_eq!(w.daemon.settle().await.unwrap().rows_done, 0, "nothing to write");
    assert_eq!(tokens(&w, &ids), first);
    assert_resolve(&w, &ids, &first, w.clock.now_ms() + 7 * DAY_MS).await;
}

#[tokio::test]
async fn an_expired_token_is_replaced_not_revived() {
    let w = World::new().await;
    let (list, ids) = members(&w, 3).await;
    w.add_pipeline("tokens.yaml", &issue(&list, "      valid_for_days: 7\n")).await;
    w.daemon.run_pipeline("tokens", false).await.unwrap();
    w.daemon.settle().await.unwrap();
    let first = tokens(&w, &ids);
    w.clock.advance(Duration::from_millis(8 * DAY_MS as u64));
    let again = w.daemon.run_pipeline("tokens", false).await.unwrap();
    assert_eq!(again.total("kept"), 3, "the second account keeps what the first issued: {again}");
    assert_eq!(again.total("issued"), 3, "{again}");
    w.daemon.settle().await.unwrap();
    let second = tokens(&w, &ids);
    assert!(first.iter().zip(&second).all(|(a, b)| a != b), "new tokens");
    for old in &first {
        let record = w.daemon.store().link_token(hash_link_token(old), "tokyo".into()).await.unwrap().unwrap();
        assert!(record.expires_at <= w.clock.now_ms(), "the old link stays expired");
    }
    assert_resolve(&w, &ids, &second, w.clock.now_ms() + 7 * DAY_MS).await;
}

#[tokio::test]
async fn a_token_linehub_does_not_know_for_that_contact_is_replaced() {
    let w = World::new().await;
    let (list, ids) = members(&w, 3).await;
    w.add_pipeline("tokens.yaml", &issue(&list, "")).await;
    w.daemon.run_pipeline("tokens", false).await.unwrap();
    w.daemon.settle().await.unwrap();
    let first = tokens(&w, &ids);
    // One token typed in by hand, one copied from another contact.
    let hs = w.sandbox.hubspot();
    hs.update_contact(&ids[0], &[(TOKEN, "made-up-by-hand")]).unwrap();
    hs.update_contact(&ids[1], &[(TOKEN, &first[2])]).unwrap();

    let report = w.daemon.run_pipeline("tokens", false).await.unwrap();
    assert_eq!((report.total("issued"), report.total("kept")), (2, 4), "{report}");
    w.daemon.settle().await.unwrap();
    let now = tokens(&w, &ids);
    assert!(now[0] != "made-up-by-hand" && now[1] != first[2] && now[1] != first[1], "{now:?}");
    assert_eq!(now[2], first[2]);
    assert_resolve(&w, &ids, &now, w.clock.now_ms() + 30 * DAY_MS).await;
    let copied = w.daemon.store().link_token(hash_link_token(&first[2]), "tokyo".into()).await.unwrap().unwrap();
    assert_eq!(copied.contact, ids[2], "a copied token still names its own contact only");
}

#[tokio::test]
async fn rotating_replaces_every_token_once_and_the_old_ones_stop_resolving() {
    let w = World::new().await;
    let (list, ids) = members(&w, 10).await;
    w.add_pipeline("tokens.yaml", &issue(&list, "")).await;
    w.daemon.run_pipeline("tokens", false).await.unwrap();
    w.daemon.settle().await.unwrap();
    let old = tokens(&w, &ids);

    w.clock.advance(Duration::from_millis(DAY_MS as u64));
    w.add_pipeline("rotate.yaml", &issue(&list, "      rotate: true\n")).await;
    let report = w.daemon.run_pipeline("rotate", false).await.unwrap();
    assert_eq!(report.state, RunState::Done, "{report}");
    assert_eq!((report.steps[0].report.get("rotated"), report.steps[0].report.get("issued")), (10, 0), "{report}");
    assert_eq!(report.steps[1].report.get("kept"), 10, "the second account keeps the new tokens: {report}");
    w.daemon.settle().await.unwrap();

    let new = tokens(&w, &ids);
    for (o, n) in old.iter().zip(&new) {
        assert_ne!(o, n);
        assert_eq!(w.daemon.store().link_token(hash_link_token(o), "tokyo".into()).await.unwrap(), None);
    }
    assert_resolve(&w, &ids, &new, w.clock.now_ms() + 30 * DAY_MS).await;
    let hashes = w.daemon.store().link_token_hashes(ids.clone(), w.clock.now_ms()).await.unwrap();
    assert!(hashes.values().all(|h| h.len() == 1), "one token per contact after rotation: {hashes:?}");
}

#[tokio::test]
async fn a_dry_run_reports_and_writes_nothing() {
    let w = World::new().await;
    let (list, ids) = members(&w, 10).await;
    w.add_pipeline("tokens.yaml", &issue(&list, "")).await;
    let before = w.sandbox.hubspot().contacts();

    let report = w.daemon.run_pipeline("tokens", true).await.unwrap();
    assert!(report.dry_run && report.state == RunState::Done, "{report}");
    assert_eq!(report.steps[0].report.get("issued"), 10, "{report}");
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0);
    assert!(w.daemon.store().link_token_hashes(ids.clone(), w.clock.now_ms()).await.unwrap().is_empty());
    assert_eq!(w.daemon.settle().await.unwrap().rows_done, 0);
    assert_eq!(w.sandbox.hubspot().contacts(), before);

    // Nor does a dry rotation of tokens already issued.
    w.daemon.run_pipeline("tokens", false).await.unwrap();
    w.daemon.settle().await.unwrap();
    let issued = tokens(&w, &ids);
    let hashes = w.daemon.store().link_token_hashes(ids.clone(), w.clock.now_ms()).await.unwrap();
    w.add_pipeline("rotate.yaml", &issue(&list, "      rotate: true\n")).await;
    let dry = w.daemon.run_pipeline("rotate", true).await.unwrap();
    assert_eq!(dry.steps[0].report.get("rotated"), 10, "{dry}");
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0);
    assert_eq!(w.daemon.store().link_token_hashes(ids.clone(), w.clock.now_ms()).await.unwrap(), hashes);
    assert_eq!(tokens(&w, &ids), issued);
}

#[tokio::test]
async fn a_contact_deleted_before_its_token_is_written_is_dropped_not_recreated() {
    let w = World::new().await;
    let (list, ids) = members(&w, 3).await;
    w.add_pipeline("tokens.yaml", &issue(&list, "")).await;
    w.daemon.run_pipeline("tokens", false).await.unwrap();
    w.sandbox.hubspot().delete_contact(&ids[1]).unwrap();
    let before = w.sandbox.hubspot().contacts().len();

    w.daemon.settle().await.unwrap();
    assert_eq!(w.daemon.store().outbox_len().await.unwrap(), 0, "the gone contact's write is dropped");
    assert_eq!(w.sandbox.hubspot().contacts().len(), before, "nothing is created");
    assert!(w.sandbox.hubspot().contact(&ids[1]).unwrap().archived);
    tokens(&w, &[ids[0].clone(), ids[2].clone()]);
}

#[tokio::test]
async fn a_with_block_out_of_range_is_refused_at_load() {
    let w = World::new().await;
    let path = w.write_pipeline("tokens.yaml", &issue("12", "      valid_for_days: 400\n"));
    let err = w.daemon.reload().await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("valid_for_days") && err.contains("between 1 and 365"), "{err}");
    assert!(err.contains(&path.file_name().unwrap().to_string_lossy().into_owned()), "{err}");
}
