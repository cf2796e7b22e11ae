//! The single writer thread, with group commit.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync. One thread owns the
//! write connection; callers hand it closures over a channel and await a reply. The thread takes
//! every job that is waiting, runs each inside its own savepoint (so one failing job does not undo
//! the others), commits them all with a single fsync, and only then answers each caller. Under
//! load many webhooks share one commit; alone, a webhook waits for exactly one.

use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::StoreError;

/// How many waiting jobs one commit may take; bounds the latency a single commit adds.
const MAX_GROUP: usize = 1024;

/// What the writer thread runs: does its work, says whether it succeeded, and returns the
/// function that reports the outcome once the commit is known.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;
/// Reports to the caller: `Ok` once its job is durable, or the commit error.
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A cheap handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Dropped with the last handle; companions (the checkpoint thread) watch it to stop.
    alive: std::sync::Arc<()>,
}

impl Writer {
    /// Starts the writer thread on `conn`; it stops when the last handle is dropped.
    pub fn spawn(conn: Connection) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new().name("linehub-store-writer".into()).spawn(move || run(conn, rx))?;
        Ok(Writer { jobs: tx, alive: std::sync::Arc::new(()) })
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
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
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
        self.jobs.send(job).map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&conn, group);
    }
}

fn commit_group(conn: &Connection, group: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        // Dropping the jobs unrun makes each caller see `StoreError::WriterGone`.
        tracing::error!(error = %e, jobs = group.len(), "store cannot begin a transaction");
        return;
    }
    let mut completions = Vec::with_capacity(group.len());
    for job in group {
        let savepoint = run_cached(conn, "SAVEPOINT job");
        let (ok, done) = job(conn);
        let release = if ok || savepoint.is_err() {
            run_cached(conn, "RELEASE job")
        } else {
            run_cached(conn, "ROLLBACK TO job").and_then(|()| run_cached(conn, "RELEASE job"))
        };
        if let Err(e) = release {
            tracing::error!(error = %e, "store savepoint could not be released");
        }
        completions.push(done);
    }
    let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for done in completions {
        done(commit.clone());
    }
}

/// Runs a parameterless statement through the statement cache (savepoints run per job).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
