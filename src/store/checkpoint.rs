//! WAL checkpoints on their own thread.
//!
//! SQLite normally checkpoints inside whichever commit crosses the WAL size threshold, so that
//! commit (and every webhook waiting on it) pays for copying pages into the database file.
//! linehub turns that off on the writer connection and checkpoints from a separate connection in
//! PASSIVE mode instead, which never blocks the writer. The thread ends with the writer.

use std::path::Path;
use std::thread;
use std::time::Duration;

use rusqlite::Connection;

use super::writer::Writer;

/// How often the WAL is folded back into the database file.
const INTERVAL: Duration = Duration::from_millis(250);

/// Starts the checkpoint thread for the database at `path`, alive as long as `writer` is.
pub fn spawn(path: &Path, writer: &Writer) -> std::io::Result<()> {
    let path = path.to_path_buf();
    let alive = writer.liveness();
    thread::Builder::new().name("linehub-store-checkpoint".into()).spawn(move || {
        let conn = match Connection::open(&path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "store checkpoint thread could not open the database");
                return;
            }
        };
        let _ = conn.pragma_update(None, "busy_timeout", 1000);
        while alive.upgrade().is_some() {
            thread::sleep(INTERVAL);
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "store checkpoint failed; will retry");
            }
        }
    })?;
    Ok(())
}
