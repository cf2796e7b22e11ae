//! The store: one SQLite file in WAL mode, holding everything linehub must not lose.
//!
//! What is here: the inbox of accepted webhook events ([`inbox`]), the serial number of each
//! account ([`accounts`]), what linehub knows per friend ([`friends`]), LINE user → contact links
//! and owner tasks ([`contacts`]), the outbox of HubSpot writes ([`outbox`]), pipeline runs with
//! their checkpoints ([`pipelines`]), broadcast recipients, chunks and send holds
//! ([`broadcasts`]), and the one-to-one sends HubSpot asks for ([`sends`]).
//!
//! Times are milliseconds since the Unix epoch, always handed in by the caller (`now`): the
//! store never reads a clock, so tests that drive time drive it here too. The store is a leaf:
//! it knows the domain's types ([`crate::sync`]) and nothing else of linehub. Writes go through
//! one thread with group commit ([`writer`]) and `synchronous=FULL`, so a write that has
//! returned survives a crash or power loss; reads use their own connections and never wait for
//! the writer.

pub mod accounts;
pub mod broadcasts;
mod checkpoint;
pub mod contacts;
pub mod friends;
pub mod inbox;
mod migrations;
pub mod outbox;
pub mod pipelines;
mod retry_key;
pub mod sends;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

pub use friends::{AppliedBatch, EventOutcome};
pub use inbox::{InboxEvent, InboxOutcome, InboxRow};
pub use outbox::{Op, OutboxRow};
use writer::Writer;

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
    writer: Writer,
    /// Idle read-only connections, reused to avoid reopening the file per read.
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Reads running at once, so a flood of requests cannot open connections (and blocking
    /// threads) without bound.
    reads: Arc<tokio::sync::Semaphore>,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        }
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: the WAL is fsync'd at every commit, so an acknowledged webhook survives power loss.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoints run on their own thread (see `checkpoint`), not inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let found = usize::try_from(found).unwrap_or(usize::MAX);
        if found > migrations::LATEST {
            return Err(StoreError::TooNew { found, supported: migrations::LATEST });
        }
        migrations::migrate(&mut conn)?;
        let writer = Writer::spawn(conn).map_err(|source| StoreError::Io { path: path.to_path_buf(), source })?;
        checkpoint::spawn(path, &writer).map_err(|source| StoreError::Io { path: path.to_path_buf(), source })?;
        Ok(Store {
            path: Arc::new(path.to_path_buf()),
            writer,
            readers: Arc::default(),
            reads: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
        })
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
        self.writer.write(f).await
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
