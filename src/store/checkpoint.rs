//! WAL checkpoints on their own thread, keeping the WAL file bounded.
//!
//! SQLite normally checkpoints inside whichever commit crosses the WAL size threshold, so that
//! commit (and every webhook waiting on it) pays for copying pages into the database file.
//! linehub turns that off on the writer connection and checkpoints from a separate connection in
//! PASSIVE mode instead, which never blocks the writer.
//!
//! A PASSIVE checkpoint cannot copy past a reader's snapshot, and it never shrinks the WAL file:
//! with a long reader (a listing, a pipeline's read) or readers that never all stop at once, the
//! WAL would only grow. Once the file is larger than [`WAL_LIMIT`], the thread escalates to a
//! TRUNCATE checkpoint, which waits briefly for readers to move on, copies everything and empties
//! the file. If a reader still holds it, the attempt is retried with a growing pause (a waiting
//! TRUNCATE holds writers back), and the WAL size is logged and reported to health.
//!
//! The thread ends with the writer. It beats on every pass, so health sees it die or hang.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread;
use std::time::Duration;

use rusqlite::Connection;

use super::writer::Writer;
use crate::liveness::Beat;

/// How often the WAL is folded back into the database file.
const INTERVAL: Duration = Duration::from_millis(250);
/// WAL file size above which a PASSIVE checkpoint is not enough (SQLite's own automatic
/// checkpoint threshold is about 4 MiB too).
pub const WAL_LIMIT: u64 = 4 * 1024 * 1024;
/// How long a TRUNCATE checkpoint waits for readers; writers wait behind it meanwhile.
const ESCALATION_WAIT: Duration = Duration::from_millis(100);
/// At most this many passes between TRUNCATE attempts while a reader keeps holding the WAL.
const MAX_ESCALATION_PAUSE: u32 = 32;
/// How long one pass may take before health calls the thread stuck.
const STUCK_AFTER: Duration = Duration::from_secs(60);

/// The running checkpoint thread, as health and the test hooks see it.
pub struct Checkpointer {
    /// Beats on every pass.
    beat: Arc<Beat>,
    /// The WAL file's size after the latest pass, in bytes.
    wal_bytes: Arc<AtomicU64>,
    /// Set by the test hook that kills the thread.
    stop: Arc<AtomicBool>,
    /// Passes completed, for tests that wait for a checkpoint.
    passes: Arc<(Mutex<u64>, Condvar)>,
    /// The thread, joined by the test hook that kills it.
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts the checkpoint thread for the database at `path`, alive as long as `writer` is.
    pub fn spawn(path: &Path, writer: &Writer) -> std::io::Result<Checkpointer> {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let run = Run {
            path: path.to_path_buf(),
            wal: PathBuf::from(wal),
            writer: writer.liveness(),
            beat: Beat::new("store checkpoint thread", STUCK_AFTER),
            wal_bytes: Arc::default(),
            stop: Arc::default(),
            passes: Arc::default(),
        };
        let (beat, wal_bytes, stop, passes) =
            (run.beat.clone(), run.wal_bytes.clone(), run.stop.clone(), run.passes.clone());
        let handle = thread::Builder::new().name("linehub-store-checkpoint".into()).spawn(move || {
            let _alive = run.beat.alive();
            run.run();
        })?;
        Ok(Checkpointer { beat, wal_bytes, stop, passes, thread: Mutex::new(Some(handle)) })
    }

    /// The thread's heartbeat.
    pub fn beat(&self) -> Arc<Beat> {
        self.beat.clone()
    }

    /// The WAL file's size after the latest pass, in bytes.
    pub fn wal_bytes(&self) -> u64 {
        self.wal_bytes.load(Ordering::SeqCst)
    }

    /// Test hook: waits until `n` more passes have completed (or the thread has ended).
    pub fn wait_for_passes(&self, n: u64) {
        let (count, done) = &*self.passes;
        let mut passes = count.lock().unwrap_or_else(PoisonError::into_inner);
        let until = *passes + n;
        while *passes < until && !self.beat.ended() {
            passes = done.wait_timeout(passes, INTERVAL).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Test hook: stops the thread, as a crash of it would, and waits until it has ended.
    pub fn kill_for_tests(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let handle = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// What the thread owns.
struct Run {
    path: PathBuf,
    wal: PathBuf,
    writer: Weak<()>,
    beat: Arc<Beat>,
    wal_bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    passes: Arc<(Mutex<u64>, Condvar)>,
}

impl Run {
    fn run(&self) {
        let conn = match Connection::open(&self.path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "store checkpoint thread could not open the database");
                return;
            }
        };
        let _ = conn.busy_timeout(Duration::from_secs(1));
        // Passes to skip before the next TRUNCATE attempt, and the pause after a failed one.
        let (mut skip, mut pause) = (0u32, 1u32);
        let mut warned_at = 0u64;
        while self.writer.upgrade().is_some() && !self.stop.load(Ordering::SeqCst) {
            self.beat.busy();
            thread::sleep(INTERVAL);
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "store checkpoint failed; will retry");
            }
            let mut size = self.size();
            if size > WAL_LIMIT {
                if skip > 0 {
                    skip -= 1;
                } else {
                    let complete = truncate(&conn);
                    size = self.size();
                    if complete && size <= WAL_LIMIT {
                        pause = 1;
                    } else {
                        skip = pause;
                        pause = (pause * 2).min(MAX_ESCALATION_PAUSE);
                        // Once per doubling, not on every attempt.
                        if size >= warned_at.saturating_mul(2) {
                            warned_at = size;
                            tracing::warn!(
                                wal_bytes = size,
                                "the store's WAL cannot be emptied: a reader holds an old snapshot; will retry"
                            );
                        }
                    }
                }
            } else {
                (skip, pause, warned_at) = (0, 1, 0);
            }
            self.wal_bytes.store(size, Ordering::SeqCst);
            let (count, done) = &*self.passes;
            *count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            done.notify_all();
        }
    }

    /// The WAL file's size (0 when there is none).
    fn size(&self) -> u64 {
        std::fs::metadata(&self.wal).map_or(0, |m| m.len())
    }
}

/// A TRUNCATE checkpoint waiting at most [`ESCALATION_WAIT`] for readers; whether it completed.
fn truncate(conn: &Connection) -> bool {
    let _ = conn.busy_timeout(ESCALATION_WAIT);
    let result = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0));
    let _ = conn.busy_timeout(Duration::from_secs(1));
    match result {
        Ok(busy) => busy == 0,
        Err(e) => {
            tracing::warn!(error = %e, "store TRUNCATE checkpoint failed; will retry");
            false
        }
    }
}
