//! Pipeline runs and their checkpoints.
//!
//! A run is a row in `pipeline_runs`: who runs it (`owner`, with a heartbeat), its state
//! (`running`, `done`, `failed`, `held`, `abandoned`), counts and error, and the checkpoint it
//! resumes from. Claiming a run is one transaction, so two processes (the daemon's scheduler and
//! `linehub pipeline run`) never run one pipeline at once: a live owner's heartbeat keeps others
//! out; a stale one (a crash) lets the next claimant resume from the checkpoint.
//!
//! A step commits each page of work with its checkpoint in one transaction ([`PipelineCommit`]):
//! friend states, contact links, outbox rows. A crash before the commit redoes the page; after
//! it, the page is never done twice.
//!
//! Claims are fenced: every write a run makes after its claim (heartbeat, page commit,
//! checkpoint, broadcast records, finish) names its owner and is refused with
//! [`StoreError::RunTakenOver`], storing nothing, once another owner has taken the run over. A
//! run paused past its lease (a long GC pause, a suspended VM) thus stops when it resumes instead
//! of driving the run beside its new owner.
//!
//! Broadcast recipients and chunks are in [`super::broadcasts`].

use rusqlite::{Connection, OptionalExtension, params};

use super::friends::merge_friends;
use super::outbox::{self, Op};
use super::{Store, StoreError};
use crate::sync::FriendState;
use crate::sync::properties::Field;

/// A run that was claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunClaim {
    /// The run's id.
    pub run_id: i64,
    /// The checkpoint of the interrupted run this claim resumes (JSON), if it resumes one.
    pub resumed: Option<String>,
    /// An interrupted run of an older definition, given up on instead of resumed.
    pub abandoned: Option<i64>,
}

/// What claiming a run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller runs the pipeline.
    Claimed(RunClaim),
    /// Another live owner is running it.
    Busy {
        /// Its run.
        run_id: i64,
        /// When it last showed it is alive (ms).
        heartbeat_at: i64,
    },
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Every step finished.
    Done,
    /// A step failed; the next run resumes from the checkpoint.
    Failed,
    /// Sends were held (message quota); the next run resumes once they may go.
    Held,
}

impl RunState {
    fn name(self) -> &'static str {
        match self {
            RunState::Done => "done",
            RunState::Failed => "failed",
            RunState::Held => "held",
        }
    }
}

/// A run as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// Run id.
    pub id: i64,
    /// Pipeline name.
    pub pipeline: String,
    /// `running`, `done`, `failed`, `held` or `abandoned`.
    pub state: String,
    /// A dry run changed nothing.
    pub dry_run: bool,
    /// Start (ms).
    pub started_at: i64,
    /// End (ms), once ended.
    pub ended_at: Option<i64>,
    /// Counts per step (JSON object).
    pub counts: String,
    /// Why it failed or was held.
    pub error: Option<String>,
    /// Where an interrupted run resumes (JSON).
    pub checkpoint: Option<String>,
}

/// A run as its owner names it in the writes it makes: refused once another owner took it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLease {
    /// The run.
    pub run_id: i64,
    /// Who claimed it.
    pub owner: String,
}

/// One page of a step's work, committed with the run's checkpoint in one transaction.
#[derive(Debug, Default)]
pub struct PipelineCommit {
    /// The run.
    pub run_id: i64,
    /// Who runs it: the commit is refused if the run has another owner now.
    pub owner: String,
    /// The checkpoint after this page (JSON).
    pub checkpoint: String,
    /// New friend states by (serial, user).
    pub friends: Vec<((i64, String), FriendState)>,
    /// LINE user → contact links learned from HubSpot's answers; an existing link is kept.
    pub links: Vec<(String, String)>,
    /// HubSpot writes to queue.
    pub ops: Vec<Op>,
    /// A broadcast chunk this page marks as sent: (step, account, chunk).
    pub chunk_sent: Option<(i64, String, i64)>,
    /// Now (ms).
    pub now: i64,
}

const RUN_COLUMNS: &str = "id, pipeline, state, dry_run, started_at, ended_at, counts, error, checkpoint";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        pipeline: r.get(1)?,
        state: r.get(2)?,
        dry_run: r.get(3)?,
        started_at: r.get(4)?,
        ended_at: r.get(5)?,
        counts: r.get(6)?,
        error: r.get(7)?,
        checkpoint: r.get(8)?,
    })
}

/// Whether the process behind a claim may still be running. Owners are `{pid}-{random}`, and
/// every claimant shares this host (the store is a local file), so a pid with no process means
/// a crashed owner whose claim can be taken at once instead of after its lease. A pid reused by
/// another process only makes us wait for the lease, which is safe.
fn owner_may_be_alive(owner: &str) -> bool {
    let Some(pid) = owner.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { return true };
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") { std::path::Path::new(&format!("/proc/{pid}")).exists() } else { true }
}

fn claim(
    conn: &Connection,
    pipeline: &str,
    spec_hash: &str,
    owner: &str,
    now: i64,
    lease_ms: i64,
) -> rusqlite::Result<ClaimOutcome> {
    let open: Option<(i64, String, String, i64, String, Option<String>)> = conn
        .query_row(
            "SELECT id, state, spec_hash, heartbeat_at, owner, checkpoint FROM pipeline_runs
             WHERE pipeline = ?1 AND dry_run = 0 AND state IN ('running', 'failed', 'held')
             ORDER BY id DESC LIMIT 1",
            [pipeline],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()?;
    let mut abandoned = None;
    if let Some((id, state, hash, heartbeat_at, holder, checkpoint)) = open {
        if state == "running" && holder != owner && now - heartbeat_at < lease_ms && owner_may_be_alive(&holder) {
            return Ok(ClaimOutcome::Busy { run_id: id, heartbeat_at });
        }
        if hash == spec_hash {
            conn.execute(
                "UPDATE pipeline_runs SET state = 'running', owner = ?2, heartbeat_at = ?3, ended_at = NULL,
                 error = NULL WHERE id = ?1",
                params![id, owner, now],
            )?;
            return Ok(ClaimOutcome::Claimed(RunClaim { run_id: id, resumed: checkpoint, abandoned: None }));
        }
        conn.execute(
            "UPDATE pipeline_runs SET state = 'abandoned', ended_at = ?2,
             error = COALESCE(error || '; ', '') || 'the pipeline definition changed before it could resume'
             WHERE id = ?1",
            params![id, now],
        )?;
        abandoned = Some(id);
    }
    conn.execute(
        "INSERT INTO pipeline_runs (pipeline, spec_hash, dry_run, state, started_at, heartbeat_at, owner)
         VALUES (?1, ?2, 0, 'running', ?3, ?3, ?4)",
        params![pipeline, spec_hash, now, owner],
    )?;
    Ok(ClaimOutcome::Claimed(RunClaim { run_id: conn.last_insert_rowid(), resumed: None, abandoned }))
}

impl Store {
    /// Runs `f` in a write transaction only while `owner` still runs `run_id`; otherwise
    /// stores nothing and fails with [`StoreError::RunTakenOver`].
    pub(crate) async fn write_as_run_owner<R, F>(&self, run_id: i64, owner: String, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    {
        let outcome = self
            .write(move |conn| {
                let holder: Option<String> = conn
                    .query_row("SELECT owner FROM pipeline_runs WHERE id = ?1 AND state = 'running'", [run_id], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if holder.as_deref() != Some(owner.as_str()) {
                    return Ok(Err(holder));
                }
                f(conn).map(Ok)
            })
            .await?;
        outcome.map_err(|holder| StoreError::RunTakenOver { run_id, holder })
    }

    /// Claims a run of `pipeline` for `owner`: resumes its interrupted run when the definition
    /// (`spec_hash`) is unchanged, refuses while another owner's heartbeat is younger than
    /// `lease_ms`. A dry run is recorded but never claims or resumes anything.
    pub async fn claim_run(
        &self,
        pipeline: &str,
        spec_hash: &str,
        owner: &str,
        now: i64,
        lease_ms: i64,
        dry_run: bool,
    ) -> Result<ClaimOutcome, StoreError> {
        let (pipeline, spec_hash, owner) = (pipeline.to_string(), spec_hash.to_string(), owner.to_string());
        self.write(move |conn| {
            if dry_run {
                conn.execute(
                    "INSERT INTO pipeline_runs (pipeline, spec_hash, dry_run, state, started_at, heartbeat_at, owner)
                     VALUES (?1, ?2, 1, 'running', ?3, ?3, ?4)",
                    params![pipeline, spec_hash, now, owner],
                )?;
                let run_id = conn.last_insert_rowid();
                return Ok(ClaimOutcome::Claimed(RunClaim { run_id, resumed: None, abandoned: None }));
            }
            claim(conn, &pipeline, &spec_hash, &owner, now, lease_ms)
        })
        .await
    }

    /// Pipelines with a run left `running` by another owner than `owner` (a crash, or a run
    /// going on in another process).
    pub async fn interrupted_pipelines(&self, owner: String) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT DISTINCT pipeline FROM pipeline_runs WHERE state = 'running' AND dry_run = 0 AND owner != ?1
                 ORDER BY pipeline",
            )?;
            let rows = stmt.query_map([owner], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    /// Shows the run's owner is alive; refused once another owner took the run over.
    pub async fn heartbeat_run(&self, run_id: i64, owner: String, now: i64) -> Result<(), StoreError> {
        self.write_as_run_owner(run_id, owner, move |conn| {
            conn.execute("UPDATE pipeline_runs SET heartbeat_at = ?2 WHERE id = ?1", params![run_id, now]).map(|_| ())
        })
        .await
    }

    /// Records a checkpoint with nothing else to commit (as the run's `owner`).
    pub async fn save_checkpoint(
        &self,
        run_id: i64,
        owner: String,
        checkpoint: String,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_as_run_owner(run_id, owner, move |conn| {
            conn.execute(
                "UPDATE pipeline_runs SET checkpoint = ?2, heartbeat_at = ?3 WHERE id = ?1",
                params![run_id, checkpoint, now],
            )
            .map(|_| ())
        })
        .await
    }

    /// Ends a run with its counts (JSON) and error (as the run's `owner`).
    pub async fn finish_run(
        &self,
        run_id: i64,
        owner: String,
        state: RunState,
        counts: String,
        error: Option<String>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_as_run_owner(run_id, owner, move |conn| {
            conn.execute(
                "UPDATE pipeline_runs SET state = ?2, counts = ?3, error = ?4, ended_at = ?5, heartbeat_at = ?5
                 WHERE id = ?1",
                params![run_id, state.name(), counts, error, now],
            )
            .map(|_| ())
        })
        .await
    }

    /// Marks a run `owner` was running as interrupted (linehub is stopping): it keeps its
    /// checkpoint and counts, and the next run resumes it at once. A run another owner took
    /// over is left alone.
    pub async fn interrupt_run(&self, run_id: i64, owner: String, now: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE pipeline_runs SET state = 'failed', error = 'interrupted: linehub stopped', ended_at = ?2
                 WHERE id = ?1 AND state = 'running' AND owner = ?3",
                params![run_id, now, owner],
            )
            .map(|_| ())
        })
        .await
    }

    /// Commits one page of a step's work and the run's checkpoint atomically. The page's friend
    /// states are merged with what is stored ([`merge_friends`]): where an event applied since
    /// the step read the state is newer, it stays, and the page's `LINE Follow _N` write for that
    /// friend is dropped (the event queued its own).
    pub async fn pipeline_commit(&self, mut c: PipelineCommit) -> Result<(), StoreError> {
        self.write_as_run_owner(c.run_id, std::mem::take(&mut c.owner), move |conn| {
            let stale = merge_friends(conn, c.friends.iter().map(|(k, s)| (k, s)))?;
            for (serial, user) in &stale {
                let follow = Field::Follow.name(*serial);
                for op in &mut c.ops {
                    if let Op::Contact { user_id, properties, .. } = op
                        && user_id == user
                    {
                        properties.remove(&follow);
                    }
                }
            }
            c.ops.retain(|op| !matches!(op, Op::Contact { properties, create: false, .. } if properties.is_empty()));
            let mut link = conn.prepare_cached(
                "INSERT INTO contact_links (user_id, contact_id, linked_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id) DO NOTHING",
            )?;
            for (user, contact) in &c.links {
                link.execute(params![user, contact, c.now])?;
            }
            outbox::push(conn, &c.ops, c.now)?;
            if let Some((step, account, chunk)) = &c.chunk_sent {
                conn.execute(
                    "UPDATE broadcast_chunks SET state = 'sent', sent_at = ?5
                     WHERE run_id = ?1 AND step = ?2 AND account_id = ?3 AND chunk = ?4",
                    params![c.run_id, step, account, chunk, c.now],
                )?;
            }
            conn.execute(
                "UPDATE pipeline_runs SET checkpoint = ?2, heartbeat_at = ?3 WHERE id = ?1",
                params![c.run_id, c.checkpoint, c.now],
            )?;
            Ok(())
        })
        .await
    }

    /// The most recent runs, newest first, of one pipeline or of all.
    pub async fn pipeline_runs(&self, pipeline: Option<String>, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM pipeline_runs WHERE ?1 IS NULL OR pipeline = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![pipeline, limit as i64], run_row)?;
            rows.collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::AppliedBatch;
    use crate::sync::link::observe_follow;

    const USER: &str = "U0123456789abcdef0123456789abcdef";

    fn friend(follow_ts: i64, following: bool, response_ts: Option<i64>) -> FriendState {
        FriendState {
            follow_ts: Some(follow_ts),
            following: Some(following),
            response_ts,
            synced_on: Some("2026-01-01".into()),
            profile_fetched: true,
            ..FriendState::default()
        }
    }

    async fn apply(store: &Store, state: FriendState, ops: Vec<Op>) {
        let batch =
            AppliedBatch { friends: [((1, USER.to_string()), state)].into_iter().collect(), ops, events: Vec::new() };
        store.apply_batch(batch, 0).await.unwrap_or_else(|e| panic!("{e}"));
    }

    fn contact(props: &[(&str, &str)]) -> Op {
        let properties: BTreeMap<String, String> = props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Op::Contact { user_id: USER.into(), properties, create: true }
    }

    #[tokio::test]
    async fn the_owner_a_run_was_taken_from_can_neither_heartbeat_commit_nor_finish_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("linehub.db")).unwrap_or_else(|e| panic!("{e}"));
        let claim = |owner: &'static str, now: i64| store.claim_run("import", "h", owner, now, 90_000, false);
        let Ok(ClaimOutcome::Claimed(first)) = claim("1-a", 0).await else { panic!("refused") };
        let Ok(ClaimOutcome::Claimed(second)) = claim("1-b", 100_000).await else { panic!("no takeover") };
        assert_eq!(first.run_id, second.run_id);
        let taken = |r: Result<(), StoreError>| matches!(r, Err(StoreError::RunTakenOver { holder: Some(h), .. }) if h == "1-b");
        assert!(taken(store.heartbeat_run(first.run_id, "1-a".into(), 100_001).await));
        assert!(taken(store.save_checkpoint(first.run_id, "1-a".into(), "{\"a\":1}".into(), 100_001).await));
        let page = PipelineCommit {
            run_id: first.run_id,
            owner: "1-a".into(),
            checkpoint: "{\"a\":2}".into(),
            ops: vec![contact(&[("line_user_name_1", "Sato")])],
            now: 100_002,
            ..PipelineCommit::default()
        };
        assert!(taken(store.pipeline_commit(page).await));
        assert!(taken(store.finish_run(first.run_id, "1-a".into(), RunState::Done, "{}".into(), None, 100_003).await));
        assert!(
            store.outbox_list_blocking(false).unwrap_or_else(|e| panic!("{e}")).is_empty(),
            "the loser's page was stored"
        );
        let row = store.pipeline_runs(None, 1).await.unwrap_or_else(|e| panic!("{e}")).remove(0);
        assert_eq!((row.state.as_str(), row.checkpoint), ("running", None));
        store.heartbeat_run(second.run_id, "1-b".into(), 100_004).await.unwrap_or_else(|e| panic!("{e}"));
        store
            .finish_run(second.run_id, "1-b".into(), RunState::Done, "{}".into(), None, 100_005)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn a_page_whose_friend_state_was_read_before_an_unfollow_does_not_undo_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("linehub.db")).unwrap_or_else(|e| panic!("{e}"));
        let ClaimOutcome::Claimed(run) =
            store.claim_run("import", "h", "1-a", 0, 90_000, false).await.unwrap_or_else(|e| panic!("{e}"))
        else {
            panic!("refused");
        };
        apply(&store, friend(100, true, None), Vec::new()).await;
        // The step reads the friend, then asks LINE (observed at 200)…
        let key = (1, USER.to_string());
        let read = store.friend_states(vec![key.clone()]).await.unwrap_or_else(|e| panic!("{e}"))[&key].clone();
        let page = observe_follow(&read, true, 200);
        // …while an unfollow at 300 and a message at 250 are applied.
        apply(&store, friend(300, false, Some(250)), vec![contact(&[("line_follow_1", "No")])]).await;
        let commit = |state: FriendState, now: i64| PipelineCommit {
            run_id: run.run_id,
            owner: "1-a".into(),
            checkpoint: "{}".into(),
            friends: vec![(key.clone(), state)],
            ops: vec![contact(&[("line_follow_1", "Yes"), ("line_user_name_1", "Sato")])],
            now,
            ..PipelineCommit::default()
        };
        store.pipeline_commit(commit(page, 400)).await.unwrap_or_else(|e| panic!("{e}"));

        let stored = store.friend_states(vec![key.clone()]).await.unwrap_or_else(|e| panic!("{e}"))[&key].clone();
        assert_eq!(stored, friend(300, false, Some(250)), "the page replaced newer friend state");
        let rows = store.outbox_list_blocking(false).unwrap_or_else(|e| panic!("{e}"));
        let Some(Op::Contact { properties, .. }) = rows.last().map(|r| &r.op) else { panic!("{rows:?}") };
        assert_eq!(
            properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
            [("line_user_name_1", "Sato")],
            "the page's stale follow value would overwrite the unfollow in HubSpot"
        );

        // An observation newer than the unfollow wins.
        let newer = observe_follow(&stored, true, 500);
        store.pipeline_commit(commit(newer, 500)).await.unwrap_or_else(|e| panic!("{e}"));
        let stored = store.friend_states(vec![key.clone()]).await.unwrap_or_else(|e| panic!("{e}"))[&key].clone();
        assert_eq!(stored, friend(500, true, Some(250)));
        let rows = store.outbox_list_blocking(false).unwrap_or_else(|e| panic!("{e}"));
        let Some(Op::Contact { properties, .. }) = rows.last().map(|r| &r.op) else { panic!("{rows:?}") };
        assert_eq!(properties.get("line_follow_1").map(String::as_str), Some("Yes"));
    }
}
