//! ID linking's durable state: LINE Login attempts, link tokens, and links an operator must see.
//!
//! An attempt (`state`, `nonce`, PKCE verifier) is stored before the person is sent to LINE, so
//! a restart mid-login still works; it is taken once, and not after it expires. A link token is
//! stored hashed (the token itself lives only in the contact's property and the email), with
//! the contact it links and its expiry; the first LINE user who links with it on an account is
//! recorded, so a forwarded email cannot bind another person. A login is committed in one
//! transaction: the token's use, the friend's state, and the outbox row that makes the writer
//! link the contact in HubSpot.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::friends::put_friends;
use super::{Op, Store, StoreError, outbox};
use crate::sync::login::TokenRecord;
use crate::sync::rules::FriendState;

/// How long attempts are kept after they expire, for the "already used" and "expired" answers.
const KEEP_ATTEMPTS_MS: i64 = 24 * 3600 * 1000;

/// One login in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAttempt {
    /// The OAuth `state`: random, single use; also the attempt's key.
    pub state: String,
    /// The account whose login route started it.
    pub account_id: String,
    /// `web` (LINE Login redirect) or `liff` (the LIFF page).
    pub via: String,
    /// Echoed in the ID token.
    pub nonce: String,
    /// The PKCE verifier whose S256 challenge went to LINE.
    pub code_verifier: String,
    /// The hash of the link token the login was started with (`?link=`), if any.
    pub link_token: Option<String>,
    /// When it stops being accepted (ms).
    pub expires_at: i64,
}

/// What taking an attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakenAttempt {
    /// Taken now: it cannot be taken again.
    Taken(LoginAttempt),
    /// No such state (never issued, or long gone).
    Unknown,
    /// Already taken: a replayed callback.
    Used,
    /// Past its expiry.
    Expired,
}

/// A login to commit: the user LINE vouched for and what the writer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginCommit {
    /// The attempt's state (names the outbox row).
    pub state: String,
    /// The account.
    pub account_id: String,
    /// The account's serial.
    pub serial: i64,
    /// The LINE user.
    pub user_id: String,
    /// The link token's hash, when the login carried a valid one: its use is recorded.
    pub link_token: Option<String>,
    /// The contact the token names.
    pub token_contact: Option<String>,
    /// The email LINE vouched for, normalised.
    pub email: Option<String>,
}

/// What committing a login did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginCommitted {
    /// Stored; the writer links the contact. `known_before`: the account had seen this user.
    Queued {
        /// Whether the account knew the user before the login.
        known_before: bool,
    },
    /// Another LINE user linked with the same token first; nothing was stored.
    TokenUsedByAnother,
}

/// A link an operator must look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkProblem {
    /// Row id.
    pub id: i64,
    /// `conflict` (two contacts with real emails) or `provider` (the Login channel is likely
    /// under another provider).
    pub kind: String,
    /// The account.
    pub account_id: String,
    /// The LINE user.
    pub user_id: String,
    /// The contact the user stays linked to.
    pub contact_id: Option<String>,
    /// The contact the login pointed at.
    pub other_contact_id: Option<String>,
    /// What happened, for people.
    pub detail: String,
    /// When (ms).
    pub created_at: i64,
}

impl Store {
    /// Stores a new attempt at `now`, and forgets attempts long expired.
    pub async fn begin_login(&self, attempt: LoginAttempt, now: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM login_attempts WHERE expires_at < ?1")?
                .execute([now - KEEP_ATTEMPTS_MS])?;
            conn.prepare_cached(
                "INSERT INTO login_attempts
                   (state, account_id, via, nonce, code_verifier, link_token, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                attempt.state,
                attempt.account_id,
                attempt.via,
                attempt.nonce,
                attempt.code_verifier,
                attempt.link_token,
                now,
                attempt.expires_at
            ])?;
            Ok(())
        })
        .await
    }

    /// Takes the attempt of `state` for `account_id` at `now`: once, and only before it expires.
    pub async fn take_login(&self, account_id: String, state: String, now: i64) -> Result<TakenAttempt, StoreError> {
        self.write(move |conn| {
            let found = conn
                .prepare_cached(
                    "SELECT state, account_id, via, nonce, code_verifier, link_token, expires_at, used_at
                     FROM login_attempts WHERE state = ?1 AND account_id = ?2",
                )?
                .query_row(params![state, account_id], |r| {
                    Ok((
                        LoginAttempt {
                            state: r.get(0)?,
                            account_id: r.get(1)?,
                            via: r.get(2)?,
                            nonce: r.get(3)?,
                            code_verifier: r.get(4)?,
                            link_token: r.get(5)?,
                            expires_at: r.get(6)?,
                        },
                        r.get::<_, Option<i64>>(7)?,
                    ))
                })
                .optional()?;
            Ok(match found {
                None => TakenAttempt::Unknown,
                Some((_, Some(_))) => TakenAttempt::Used,
                Some((a, None)) if now >= a.expires_at => TakenAttempt::Expired,
                Some((a, None)) => {
                    conn.prepare_cached("UPDATE login_attempts SET used_at = ?2 WHERE state = ?1")?
                        .execute(params![a.state, now])?;
                    TakenAttempt::Taken(a)
                }
            })
        })
        .await
    }

    /// What linehub knows of the link token with hash `token_hash` on `account_id`.
    pub async fn link_token(&self, token_hash: String, account_id: String) -> Result<Option<TokenRecord>, StoreError> {
        self.read(move |conn| {
            let Some((contact, expires_at)) = conn
                .prepare_cached("SELECT contact_id, expires_at FROM link_tokens WHERE token_hash = ?1")?
                .query_row([&token_hash], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .optional()?
            else {
                return Ok(None);
            };
            let used_by = conn
                .prepare_cached("SELECT user_id FROM link_token_uses WHERE token_hash = ?1 AND account_id = ?2")?
                .query_row(params![token_hash, account_id], |r| r.get(0))
                .optional()?;
            Ok(Some(TokenRecord { contact, expires_at, used_by }))
        })
        .await
    }

    /// Stores link tokens (hash, contact) valid until `expires_at`, made at `now`. A contact's
    /// other tokens are dropped when `replace` (rotation); otherwise they stay valid.
    pub async fn put_link_tokens(
        &self,
        tokens: Vec<(String, String)>,
        expires_at: i64,
        replace: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            let mut drop_others =
                conn.prepare_cached("DELETE FROM link_tokens WHERE contact_id = ?1 AND token_hash <> ?2")?;
            let mut put = conn.prepare_cached(
                "INSERT INTO link_tokens (token_hash, contact_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (token_hash) DO UPDATE SET expires_at = excluded.expires_at
                 WHERE link_tokens.contact_id = excluded.contact_id",
            )?;
            for (hash, contact) in &tokens {
                if replace {
                    drop_others.execute(params![contact, hash])?;
                }
                put.execute(params![hash, contact, now, expires_at])?;
            }
            Ok(())
        })
        .await
    }

    /// The contacts among `contacts` that hold a link token still valid at `now`, with its hash.
    /// An expired token is not revived by a later issue: the contact gets a new one.
    pub async fn link_token_hashes(
        &self,
        contacts: Vec<String>,
        now: i64,
    ) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT token_hash FROM link_tokens WHERE contact_id = ?1 AND expires_at > ?2")?;
            let mut out = BTreeMap::new();
            for c in contacts {
                let hashes =
                    stmt.query_map(params![c, now], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
                if !hashes.is_empty() {
                    out.insert(c, hashes);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Commits a login at `now`: the token's use, the friend's state after `observe` (given the
    /// stored state, it returns the properties to write and the next state), and the outbox row
    /// that links the contact. Nothing is stored when another user used the token first.
    pub async fn commit_login<F>(&self, login: LoginCommit, observe: F, now: i64) -> Result<LoginCommitted, StoreError>
    where
        F: FnOnce(&FriendState) -> (BTreeMap<String, String>, FriendState) + Send + 'static,
    {
        self.write(move |conn| {
            if let Some(token) = &login.link_token {
                let used_by: Option<String> = conn
                    .prepare_cached("SELECT user_id FROM link_token_uses WHERE token_hash = ?1 AND account_id = ?2")?
                    .query_row(params![token, login.account_id], |r| r.get(0))
                    .optional()?;
                match used_by {
                    Some(u) if u != login.user_id => return Ok(LoginCommitted::TokenUsedByAnother),
                    Some(_) => {}
                    None => {
                        conn.prepare_cached(
                            "INSERT INTO link_token_uses (token_hash, account_id, user_id, used_at) VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![token, login.account_id, login.user_id, now])?;
                    }
                }
            }
            let stored = conn
                .prepare_cached(
                    "SELECT follow_ts, response_ts, synced_on, profile_fetched, following, display_name, picture_url
                     FROM friends WHERE serial = ?1 AND user_id = ?2",
                )?
                .query_row(params![login.serial, login.user_id], super::friends::friend_state)
                .optional()?;
            let known_before = stored.is_some();
            let (properties, next) = observe(&stored.unwrap_or_default());
            let key = (login.serial, login.user_id.clone());
            put_friends(conn, std::iter::once((&key, &next)))?;
            let op = Op::LinkLogin {
                login: login.state,
                account: login.account_id,
                user_id: login.user_id,
                properties,
                email: login.email,
                token_contact: login.token_contact,
            };
            outbox::push(conn, &[op], now)?;
            Ok(LoginCommitted::Queued { known_before })
        })
        .await
    }

    /// Records a link an operator must look at.
    pub async fn record_link_problem(&self, problem: LinkProblem) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO link_problems (kind, account_id, user_id, contact_id, other_contact_id, detail, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                problem.kind,
                problem.account_id,
                problem.user_id,
                problem.contact_id,
                problem.other_contact_id,
                problem.detail,
                problem.created_at
            ])?;
            Ok(())
        })
        .await
    }

    /// The most recent link problems, newest first.
    pub async fn link_problems(&self, limit: usize) -> Result<Vec<LinkProblem>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, kind, account_id, user_id, contact_id, other_contact_id, detail, created_at
                 FROM link_problems ORDER BY id DESC LIMIT ?1",
            )?
            .query_map([limit as i64], |r| {
                Ok(LinkProblem {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    account_id: r.get(2)?,
                    user_id: r.get(3)?,
                    contact_id: r.get(4)?,
                    other_contact_id: r.get(5)?,
                    detail: r.get(6)?,
                    created_at: r.get(7)?,
                })
            })?
            .collect()
        })
        .await
    }

    /// After HubSpot merged contact `from` into `to`: the user is linked to `to`, and the owner
    /// task linehub gave `from` is `to`'s (unless `to` has its own), in one transaction.
    pub async fn follow_merge(&self, user_id: String, from: String, to: String, now: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            super::contacts::link(conn, &[(user_id, to.clone())], now)?;
            conn.prepare_cached("UPDATE contact_links SET contact_id = ?2 WHERE contact_id = ?1")?
                .execute(params![from, to])?;
            conn.prepare_cached("UPDATE OR IGNORE owner_tasks SET contact_id = ?2 WHERE contact_id = ?1")?
                .execute(params![from, to])?;
            conn.prepare_cached("DELETE FROM owner_tasks WHERE contact_id = ?1")?.execute([from])?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        (dir, store)
    }

    fn attempt(state: &str, expires_at: i64) -> LoginAttempt {
        LoginAttempt {
            state: state.into(),
            account_id: "a".into(),
            via: "web".into(),
            nonce: "n".into(),
            code_verifier: "v".into(),
            link_token: None,
            expires_at,
        }
    }

    #[tokio::test]
    async fn an_attempt_is_taken_once_and_not_after_it_expires() {
        let (_dir, store) = store().await;
        store.begin_login(attempt("s1", 1000), 0).await.unwrap();
        store.begin_login(attempt("s2", 1000), 0).await.unwrap();
        assert!(matches!(store.take_login("a".into(), "s1".into(), 10).await.unwrap(), TakenAttempt::Taken(_)));
        assert_eq!(store.take_login("a".into(), "s1".into(), 11).await.unwrap(), TakenAttempt::Used);
        assert_eq!(store.take_login("a".into(), "s2".into(), 1000).await.unwrap(), TakenAttempt::Expired);
        assert_eq!(
            store.take_login("b".into(), "s2".into(), 5).await.unwrap(),
            TakenAttempt::Unknown,
            "another account"
        );
        assert_eq!(store.take_login("a".into(), "nope".into(), 5).await.unwrap(), TakenAttempt::Unknown);
    }

    #[tokio::test]
    async fn a_token_is_used_by_one_line_user_per_account() {
        let (_dir, store) = store().await;
        store.put_link_tokens(vec![("h".into(), "7".into())], 500, false, 0).await.unwrap();
        let login = |user: &str, account: &str| LoginCommit {
            state: format!("{user}{account}"),
            account_id: account.into(),
            serial: 1,
            user_id: user.into(),
            link_token: Some("h".into()),
            token_contact: Some("7".into()),
            email: None,
        };
        let observe = |s: &FriendState| (BTreeMap::new(), s.clone());
        let first = store.commit_login(login("U1", "a"), observe, 1).await.unwrap();
        assert_eq!(first, LoginCommitted::Queued { known_before: false });
        let again = store.commit_login(login("U1", "a"), observe, 2).await.unwrap();
        assert_eq!(again, LoginCommitted::Queued { known_before: true });
        assert_eq!(store.commit_login(login("U2", "a"), observe, 3).await.unwrap(), LoginCommitted::TokenUsedByAnother);
        assert!(matches!(
            store.commit_login(login("U2", "b"), observe, 3).await.unwrap(),
            LoginCommitted::Queued { .. }
        ));
        let record = store.link_token("h".into(), "a".into()).await.unwrap().unwrap();
        assert_eq!((record.contact.as_str(), record.used_by.as_deref()), ("7", Some("U1")));
        assert_eq!(store.outbox_due(10, 10).await.unwrap().len(), 3, "the refused login stored nothing");
    }

    #[tokio::test]
    async fn rotating_drops_a_contacts_older_tokens_and_keeping_extends_them() {
        let (_dir, store) = store().await;
        store.put_link_tokens(vec![("old".into(), "7".into())], 100, false, 0).await.unwrap();
        store.put_link_tokens(vec![("old".into(), "7".into())], 900, false, 50).await.unwrap();
        assert_eq!(store.link_token("old".into(), "a".into()).await.unwrap().unwrap().expires_at, 900);
        store.put_link_tokens(vec![("new".into(), "7".into())], 1000, true, 60).await.unwrap();
        assert_eq!(store.link_token("old".into(), "a".into()).await.unwrap(), None);
        assert_eq!(store.link_token_hashes(vec!["7".into()], 60).await.unwrap()["7"], vec!["new".to_string()]);
        assert!(store.link_token_hashes(vec!["7".into()], 1000).await.unwrap().is_empty(), "expired by then");
        store.put_link_tokens(vec![("new".into(), "8".into())], 2000, false, 70).await.unwrap();
        let record = store.link_token("new".into(), "a".into()).await.unwrap().unwrap();
        assert_eq!((record.contact.as_str(), record.expires_at), ("7", 1000), "a token never moves to another contact");
    }
}
