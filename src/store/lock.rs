//! The daemon lock: one `linehub run` per store.
//!
//! Two daemons on one database would each run an applier, a sender and a writer, so one LINE
//! message would become two owner tasks and one workflow push could be sent twice. `linehub run`
//! therefore takes an exclusive advisory lock (`flock`) on `<database>.lock` beside the database
//! and holds it until the process ends; the kernel releases it however the process ends, so a
//! crash never leaves a stale lock. The file holds the holder's pid, so a refused daemon can
//! name it.
//!
//! Only the daemon takes it. `linehub pipeline run` shares the store with a running daemon
//! through the pipeline claim ([`super::pipelines`]), and the listing commands open the store
//! read-only, so neither needs it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Held for the life of a daemon; dropping it (or the process ending) releases the store.
#[derive(Debug)]
pub struct DaemonLock {
    /// The locked file; the lock lives as long as this handle.
    _file: File,
    /// Where it is.
    path: PathBuf,
}

impl DaemonLock {
    /// Takes the lock of the database at `db`, or says which process holds it.
    pub fn acquire(db: &Path) -> Result<DaemonLock, StoreError> {
        let path = lock_path(db);
        let io = |source| StoreError::Io { path: path.clone(), source };
        if let Some(dir) = path.parent() {
            super::create_private_dir(dir)?;
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse().ok());
                return Err(StoreError::Locked { lock: path, holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DaemonLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `<database>.lock`, beside the database.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "linehub.db".into());
    name.push(".lock");
    db.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_refused_while_held_and_free_once_dropped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = dir.path().join("linehub.db");
        let first = DaemonLock::acquire(&db).unwrap_or_else(|e| panic!("{e}"));
        match DaemonLock::acquire(&db) {
            Err(StoreError::Locked { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("a second lock was not refused: {other:?}"),
        }
        drop(first);
        DaemonLock::acquire(&db).unwrap_or_else(|e| panic!("{e}"));
    }
}
