//! The single writer thread, with group commit.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync. One thread owns the
//! write connection; callers hand it closures over a channel and await a reply. The thread takes
//! every job that is waiting, runs each inside its own savepoint (so one failing job does not undo
//! the others), commits them all with a single fsync, and only then answers each caller. Under
//! load many webhooks share one commit; alone, a webhook waits for exactly one.
//!
//! Some errors (disk full, I/O errors) make SQLite roll the whole transaction back, not just the
//! failing statement. The group is then over: the jobs already run are undone and reported
//! failed, and the rest are reported failed without running, since outside a transaction each
//! would commit on its own while its caller is told it failed.
//!
//! The outcome of the latest commit and the thread's heartbeat are kept for `/healthz`.

use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::StoreError;
use crate::liveness::Beat;

/// How long one commit group may run before health calls the writer stuck: a group is at most
/// [`MAX_GROUP`] small writes and one fsync, and SQLite waits at most 5 s for a lock.
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// How many waiting jobs one commit may take; bounds the latency a single commit adds.
const MAX_GROUP: usize = 1024;

/// What the writer thread runs: does its work (on `Some` connection; `None` skips it, its
/// group having failed already), says whether it succeeded, and returns the function that
/// reports the outcome once the commit is known.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Completion) + Send>;
/// Reports to the caller: `Ok` once its job is durable, or the commit error.
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A cheap handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Dropped with the last handle; companions (the checkpoint thread) watch it to stop.
    alive: std::sync::Arc<()>,
    /// Why the latest commit failed, `None` once one succeeds: health reports a store that cannot
    /// commit (a full disk) without having to write anything itself.
    failing: Arc<Mutex<Option<String>>>,
    /// The thread's heartbeat, for health.
    beat: Arc<Beat>,
    /// The thread, joined by the test hook that kills it.
    thread: Arc<Mutex<Option<thread::JoinHandle<()>>>>,
}

impl Writer {
    /// Starts the writer thread on `conn`; it stops when the last handle is dropped.
    pub fn spawn(conn: Connection) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Job>();
        let failing = Arc::new(Mutex::new(None));
        let beat = Beat::new("store writer thread", STUCK_AFTER);
        let (outcome, beating) = (failing.clone(), beat.clone());
        let handle = thread::Builder::new().name("linehub-store-writer".into()).spawn(move || {
            let _alive = beating.alive();
            run(conn, rx, &outcome, &beating);
        })?;
        Ok(Writer { jobs: tx, alive: Arc::new(()), failing, beat, thread: Arc::new(Mutex::new(Some(handle))) })
    }

    /// The thread's heartbeat: it is busy while it runs a commit group, idle while it waits.
    pub fn beat(&self) -> Arc<Beat> {
        self.beat.clone()
    }

    /// Test hook: occupies the writer thread with a job that waits until the returned sender is
    /// dropped, as a write hanging on a dead disk would; returns once the job runs.
    pub fn hold_for_tests(&self) -> mpsc::Sender<()> {
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let job: Job = Box::new(move |_| {
            let _ = started_tx.send(());
            let _ = released.recv();
            let done: Completion = Box::new(|_| {});
            (true, done)
        });
        if self.jobs.send(job).is_ok() {
            let _ = started.recv();
        }
        release
    }

    /// Test hook: makes the writer thread panic, as a bug in a write would, and waits until it
    /// has ended. Every write after it fails with [`StoreError::WriterGone`].
    pub fn kill_for_tests(&self) {
        let job: Job = Box::new(|_| panic!("the store writer thread was killed by a test hook"));
        let _ = self.jobs.send(job);
        let handle = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// Why the latest commit failed, if it did; `None` once a commit succeeds again.
    pub fn commit_failure(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A token that stops upgrading once every handle to this writer is gone.
    pub fn liveness(&self) -> std::sync::Weak<()> {
        std::sync::Arc::downgrade(&self.alive)
    }

    /// Runs `f` in a write transaction and resolves once that transaction is durably committed.
    pub async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    {
        let (job, rx) = job(f);
        self.jobs.send(job).map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

/// Wraps `f` as a job for the writer thread, with the receiver of its outcome.
fn job<R, F>(f: F) -> (Job, oneshot::Receiver<Result<R, StoreError>>)
where
    R: Send + 'static,
    F: FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move |conn| {
        let Some(conn) = conn else {
            let done: Completion = Box::new(move |commit| {
                let why = commit.err().unwrap_or_else(|| "the commit group failed before this write ran".into());
                let _ = tx.send(Err(StoreError::Commit(why)));
            });
            return (false, done);
        };
        let result = f(conn);
        let ok = result.is_ok();
        let done: Completion = Box::new(move |commit| {
            let outcome = match (result, commit) {
                (Ok(r), Ok(())) => Ok(r),
                (Err(e), _) => Err(StoreError::Sqlite(e)),
                (Ok(_), Err(e)) => Err(StoreError::Commit(e)),
            };
            let _ = tx.send(outcome);
        });
        (ok, done)
    });
    (job, rx)
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>, failing: &Mutex<Option<String>>, beat: &Beat) {
    beat.idle();
    while let Ok(first) = rx.recv() {
        beat.busy();
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&conn, group, failing);
        beat.idle();
    }
}

/// Runs `group` in one transaction, records the commit's outcome in `failing` (before any caller
/// hears of it, so health never lags an answer) and reports each job's outcome.
fn commit_group(conn: &Connection, group: Vec<Job>, failing: &Mutex<Option<String>>) {
    let record = |outcome: Option<String>| *failing.lock().unwrap_or_else(PoisonError::into_inner) = outcome;
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %e, jobs = group.len(), "store cannot begin a transaction");
        record(Some(format!("cannot begin a transaction: {e}")));
        // Dropping the jobs unrun makes each caller see `StoreError::WriterGone`.
        return;
    }
    let mut completions = Vec::with_capacity(group.len());
    let mut rolled_back = None;
    for job in group {
        if rolled_back.is_some() {
            completions.push(job(None).1);
            continue;
        }
        let savepoint = run_cached(conn, "SAVEPOINT job");
        let (ok, done) = job(Some(conn));
        completions.push(done);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (disk full, I/O error): every job so far is
            // undone, and the rest must not run outside a transaction.
            tracing::error!("store transaction was rolled back by SQLite; the writes of this commit failed");
            rolled_back = Some(
                "the transaction was rolled back (disk full or I/O error); nothing of this commit is stored"
                    .to_string(),
            );
            continue;
        }
        let release = if ok || savepoint.is_err() {
            run_cached(conn, "RELEASE job")
        } else {
            run_cached(conn, "ROLLBACK TO job").and_then(|()| run_cached(conn, "RELEASE job"))
        };
        if let Err(e) = release {
            tracing::error!(error = %e, "store savepoint could not be released");
        }
    }
    let commit = match rolled_back {
        Some(why) => Err(why),
        None => conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
    };
    if commit.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    record(commit.clone().err());
    if commit.is_ok() {
        // Durable, but no caller knows yet: where the crash suite may end the process.
        crate::crash::point("store.after_commit");
    }
    for done in completions {
        done(commit.clone());
    }
}

/// Runs a parameterless statement through the statement cache (savepoints run per job).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(key: &'static str, bytes: i64) -> impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static {
        move |conn| {
            conn.execute("INSERT INTO t (k, v) VALUES (?1, zeroblob(?2))", rusqlite::params![key, bytes]).map(|_| ())
        }
    }

    #[test]
    fn a_group_rolled_back_by_a_full_disk_stores_nothing_it_reports_failed_and_loses_nothing_it_accepted() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let conn = Connection::open(dir.path().join("linehub.db")).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB);")
            .unwrap_or_else(|e| panic!("{e}"));
        // A disk with room for a few rows but not for a 100 kB one: SQLite rolls the whole
        // transaction back when it runs out of pages.
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap_or_else(|e| panic!("{e}"));
        conn.pragma_update(None, "max_page_count", pages + 2).unwrap_or_else(|e| panic!("{e}"));

        let keys = ["before", "full", "after", "last"];
        let (mut group, mut outcomes) = (Vec::new(), Vec::new());
        for (key, bytes) in keys.into_iter().zip([10, 100_000, 10, 10]) {
            let (job, rx) = job(insert(key, bytes));
            group.push(job);
            outcomes.push(rx);
        }
        let failing = Mutex::new(None);
        commit_group(&conn, group, &failing);
        assert!(failing.lock().unwrap_or_else(|e| panic!("{e}")).is_some(), "the failed commit is recorded");
        // The next group commits normally.
        let (job, next) = job(insert("next", 10));
        commit_group(&conn, vec![job], &failing);
        assert!(failing.lock().unwrap_or_else(|e| panic!("{e}")).is_none(), "the next commit clears it");

        let stored = |key: &str| -> bool {
            conn.query_row("SELECT COUNT(*) FROM t WHERE k = ?1", [key], |r| r.get::<_, i64>(0))
                .unwrap_or_else(|e| panic!("{e}"))
                == 1
        };
        for (key, mut rx) in keys.into_iter().zip(outcomes) {
            let outcome = rx.try_recv().unwrap_or_else(|e| panic!("{key}: no outcome: {e}"));
            match outcome {
                Ok(()) => assert!(stored(key), "`{key}` was reported durable but is not stored"),
                Err(e) => assert!(!stored(key), "`{key}` was reported failed ({e}) but is stored"),
            }
        }
        assert!(matches!(next.blocking_recv(), Ok(Ok(()))) && stored("next"), "the writer recovers");
    }
}
