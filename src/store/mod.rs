//! The store: one SQLite file in WAL mode, holding everything linehub must not lose.
//!
//! What is here: the inbox of accepted webhook events ([`inbox`]), the serial number of each
//! account ([`accounts`]), what linehub knows per friend ([`friends`]), LINE user → contact links
//! and owner tasks ([`contacts`]), the outbox of HubSpot writes ([`outbox`]), pipeline runs with
//! their checkpoints ([`pipelines`]), broadcast recipients, chunks and send holds
//! ([`broadcasts`]), the one-to-one sends HubSpot asks for ([`sends`]), and LINE Login attempts
//! and link tokens ([`logins`]).
//!
//! Times are milliseconds since the Unix epoch, always handed in by the caller (`now`): the
//! store never reads a clock, so tests that drive time drive it here too. The store is a leaf:
//! it knows the domain's types ([`crate::sync`]) and nothing else of linehub. Writes go through
//! one thread with group commit ([`writer`]) and `synchronous=FULL`, so a write that has
//! returned survives a crash or power loss; reads use their own connections and never wait for
//! the writer.
//!
//! Several processes may open one store: the daemon, `linehub pipeline run` (which shares it
//! through the pipeline claim), `linehub outbox retry`. Only one daemon may: `linehub run` takes
//! the [`DaemonLock`] beside the database for its whole life. Commands that only list open the
//! store read-only ([`Store::open_read_only`]) and never migrate it. Files are created readable
//! by the service user only.

pub mod accounts;
pub mod broadcasts;
mod checkpoint;
pub mod contacts;
pub mod friends;
pub mod inbox;
mod lock;
pub mod logins;
mod migrations;
pub mod outbox;
pub mod pipelines;
mod retry_key;
pub mod sends;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use checkpoint::Checkpointer;
pub use friends::{AppliedBatch, EventOutcome};
pub use inbox::{InboxEvent, InboxOutcome, InboxRow};
pub use lock::DaemonLock;
pub use outbox::{Op, OutboxRow};
use writer::Writer;

use crate::liveness::Beat;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused a statement.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The group commit failed; nothing in it is stored.
    #[error("store commit failed: {0}")]
    Commit(String),
    /// The writer thread is gone (shutting down, or it could not open a transaction).
    #[error("store writer is not available")]
    WriterGone,
    /// The database was written by a newer linehub.
    #[error("store schema version {found} is newer than this linehub understands ({supported}); upgrade linehub")]
    TooNew {
        /// Version in the file.
        found: usize,
        /// Version this build writes.
        supported: usize,
    },
    /// The directory or file could not be created.
    #[error("store path {path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A blocking read task panicked or was cancelled.
    #[error("store read task failed: {0}")]
    Task(String),
    /// The store was opened read-only (a listing command) and something tried to write.
    #[error("the store was opened read-only")]
    ReadOnly,
    /// A read-only open found no database.
    #[error("no store at {path} (`linehub run` creates it)")]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A read-only open found a schema older than this build reads; only a daemon migrates.
    #[error(
        "store schema version {found} is older than this linehub reads ({supported}); start `linehub run` once to upgrade it"
    )]
    Outdated {
        /// Version in the file.
        found: usize,
        /// Version this build reads.
        supported: usize,
    },
    /// A pipeline run is no longer this owner's: it was paused past its lease and another owner
    /// took it over. Nothing of the write was stored; the caller must stop.
    #[error("pipeline run {run_id} is no longer ours: another owner ({}) took it over after its lease expired", holder.as_deref().unwrap_or("none"))]
    RunTakenOver {
        /// The run.
        run_id: i64,
        /// Who holds it now (`None`: nobody is running it).
        holder: Option<String>,
    },
    /// Another `linehub run` holds the store.
    #[error("another `linehub run` {} already runs on this store (lock {lock}); stop it first: two daemons on one store would do every task twice", holder.map_or("process".to_string(), |pid| format!("(pid {pid})")))]
    Locked {
        /// The lock file.
        lock: PathBuf,
        /// The process holding it, when it could be read.
        holder: Option<u32>,
    },
}

/// Creates the directories up to `dir` that are missing, readable by the service user only
/// (0700). Existing directories are left as they are.
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })
}

/// Creates the database file at `path` (and its directory) if missing, readable by the service
/// user only (0600). SQLite gives the WAL and shared-memory files the database file's mode.
fn create_private(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop).map_err(|source| StoreError::Io { path: path.to_path_buf(), source })
}

/// Read connections open at once at most (idle ones are kept for reuse up to the same number).
const MAX_READERS: usize = 8;

/// A HubSpot record linehub asked for where HubSpot offers no idempotency key (an owner task, a
/// timeline note): recorded before the request, so that after an answer that never came linehub
/// looks for the record instead of making a second one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Asked for; the answer (and the record's id) never came. HubSpot may have made it.
    Asked,
    /// Made, with HubSpot's id.
    Made(String),
}

impl Requested {
    /// From the nullable id column that stores it (`NULL`: asked, id unknown).
    fn from_id(id: Option<String>) -> Requested {
        id.map_or(Requested::Asked, Requested::Made)
    }
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    path: Arc<PathBuf>,
    /// `None` for a read-only store: writes are refused with [`StoreError::ReadOnly`].
    writer: Option<Writer>,
    /// The WAL checkpoint thread; `None` for a read-only store.
    checkpoints: Option<Arc<Checkpointer>>,
    /// Idle read-only connections, reused to avoid reopening the file per read.
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Reads running at once, so a flood of requests cannot open connections (and blocking
    /// threads) without bound.
    reads: Arc<tokio::sync::Semaphore>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        create_private(path)?;
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: the WAL is fsync'd at every commit, so an acknowledged webhook survives power loss.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoints run on their own thread (see `checkpoint`), not inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // When a checkpoint lets the WAL start over, a WAL file grown past the limit is cut back.
        conn.pragma_update(None, "journal_size_limit", i64::try_from(checkpoint::WAL_LIMIT).unwrap_or(i64::MAX))?;
        migrations::migrate(&mut conn)?;
        let io = |source| StoreError::Io { path: path.to_path_buf(), source };
        let writer = Writer::spawn(conn).map_err(io)?;
        let checkpoints = Checkpointer::spawn(path, &writer).map_err(io)?;
        Ok(Store {
            path: Arc::new(path.to_path_buf()),
            writer: Some(writer),
            checkpoints: Some(Arc::new(checkpoints)),
            readers: Arc::default(),
            reads: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
        })
    }

    /// Opens an existing database for reading only (the listing commands): nothing is created,
    /// migrated or written, so it is safe beside a running daemon. A schema of another version
    /// than this build's is refused: only `linehub run` migrates.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing { path: path.to_path_buf() });
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let found = usize::try_from(found).unwrap_or(usize::MAX);
        if found > migrations::LATEST {
            return Err(StoreError::TooNew { found, supported: migrations::LATEST });
        }
        if found < migrations::LATEST {
            return Err(StoreError::Outdated { found, supported: migrations::LATEST });
        }
        Ok(Store {
            path: Arc::new(path.to_path_buf()),
            writer: None,
            checkpoints: None,
            readers: Arc::new(Mutex::new(vec![conn])),
            reads: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
        })
    }

    /// Test hook: with `full`, the writer connection may not grow the database by a single page
    /// (SQLite's `max_page_count`), so a write that needs one fails as on a full disk and SQLite
    /// rolls its transaction back; without, the limit is lifted. Only tests call it.
    #[doc(hidden)]
    pub async fn simulate_full_disk(&self, full: bool) -> Result<(), StoreError> {
        self.write(move |conn| {
            let pages: i64 =
                if full { conn.query_row("PRAGMA page_count", [], |r| r.get(0))? } else { i64::from(u32::MAX - 1) };
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
        })
        .await
    }

    /// Why the store's latest commit failed (a full disk, an I/O error), if it did; `None` once a
    /// commit succeeds again, and for a read-only store. Constant time: nothing is written.
    pub fn commit_failure(&self) -> Option<String> {
        self.writer.as_ref().and_then(Writer::commit_failure)
    }

    /// The heartbeats of the store's threads (the writer and the checkpointer), for health; none
    /// for a read-only store.
    pub fn beats(&self) -> Vec<Arc<Beat>> {
        let writer = self.writer.as_ref().map(Writer::beat);
        writer.into_iter().chain(self.checkpoints.as_ref().map(|c| c.beat())).collect()
    }

    /// The WAL file's size in bytes as of the latest checkpoint pass (`None` for a read-only
    /// store). Constant time.
    pub fn wal_bytes(&self) -> Option<u64> {
        self.checkpoints.as_ref().map(|c| c.wal_bytes())
    }

    /// Test hook: makes the writer thread panic and waits until it has ended.
    #[doc(hidden)]
    pub fn kill_writer_for_tests(&self) {
        if let Some(w) = &self.writer {
            w.kill_for_tests();
        }
    }

    /// Test hook: holds the writer thread busy until the returned sender is dropped.
    #[doc(hidden)]
    pub fn hold_writer_for_tests(&self) -> Option<std::sync::mpsc::Sender<()>> {
        self.writer.as_ref().map(Writer::hold_for_tests)
    }

    /// Test hook: stops the checkpoint thread and waits until it has ended.
    #[doc(hidden)]
    pub fn kill_checkpointer_for_tests(&self) {
        if let Some(c) = &self.checkpoints {
            c.kill_for_tests();
        }
    }

    /// Test hook: blocks until `n` more checkpoint passes have completed.
    #[doc(hidden)]
    pub fn wait_for_checkpoints(&self, n: u64) {
        if let Some(c) = &self.checkpoints {
            c.wait_for_passes(n);
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a write transaction; resolves once it is durably committed.
    pub async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    {
        match &self.writer {
            Some(w) => w.write(f).await,
            None => Err(StoreError::ReadOnly),
        }
    }

    /// Runs `f` on a read-only connection on the blocking pool.
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, rusqlite::Error> + Send + 'static,
    {
        let store = self.clone();
        let permit = self.reads.clone().acquire_owned().await.map_err(|e| StoreError::Task(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let result = store.read_blocking(f);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` on a read-only connection on the calling thread (for CLI commands and tests).
    pub fn read_blocking<R>(&self, f: impl FnOnce(&Connection) -> Result<R, rusqlite::Error>) -> Result<R, StoreError> {
        let idle = self.readers.lock().ok().and_then(|mut r| r.pop());
        let conn = match idle {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    self.path.as_path(),
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.pragma_update(None, "busy_timeout", 5000)?;
                c
            }
        };
        let result = f(&conn);
        if let Ok(mut r) = self.readers.lock()
            && r.len() < MAX_READERS
        {
            r.push(conn);
        }
        Ok(result?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_writer_commits_to_a_wal_with_full_sync_and_readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("linehub.db")).unwrap_or_else(|e| panic!("{e}"));
        let (journal, synchronous) = store
            .write(|conn| {
                let journal: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
                Ok((journal, synchronous))
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(journal, "wal");
        assert_eq!(synchronous, 2, "synchronous=FULL: every commit is fsync'd before it is acknowledged");

        let (read_only, write) = store
            .read(|conn| Ok((conn.is_readonly("main")?, conn.execute("CREATE TABLE intruder (x)", []).err())))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(read_only, "read connections are opened read-only");
        assert!(write.is_some(), "a read connection refuses to write");
        let made: i64 = store
            .read(|conn| conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'intruder'", [], |r| r.get(0)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(made, 0);
    }
}
