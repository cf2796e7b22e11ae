//! One request budget per portal across processes.
//!
//! The daemon and `linehub pipeline run` may call the same portal at the same time, each with its
//! own in-process limiter; together they could exceed HubSpot's 10-second limit. So both also
//! pass a GCRA gate whose state (the theoretical arrival time, in ms since the epoch) lives in a
//! small file beside the store, read and advanced under an exclusive file lock. The lock is held
//! for a read and a write of a few bytes; a process that dies holding it releases it (the kernel
//! drops advisory locks with their file). Same parameters as the in-process limiter, so a process
//! alone is paced exactly as before.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A GCRA gate shared through a file.
#[derive(Debug, Clone)]
pub struct SharedPace {
    path: PathBuf,
    /// One request per this long, sustained (ms).
    period_ms: i64,
    /// Requests that may go at once.
    burst: i64,
}

impl SharedPace {
    /// A gate in `path` letting one request through per `period`, `burst` at once.
    pub fn new(path: &Path, period: Duration, burst: u32) -> SharedPace {
        let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX / 4).max(1);
        SharedPace { path: path.to_path_buf(), period_ms, burst: i64::from(burst.max(1)) }
    }

    /// The pace file of the store at `db`.
    pub fn beside(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push(".hubspot-pace");
        PathBuf::from(name)
    }

    /// Waits until this process may send one request, counting it against every process.
    pub async fn until_ready(&self) {
        loop {
            let gate = self.clone();
            let wait = tokio::task::spawn_blocking(move || gate.try_take(crate::clock::system_now_ms()))
                .await
                .unwrap_or(Ok(0));
            match wait {
                Ok(0) => return,
                Ok(ms) => tokio::time::sleep(Duration::from_millis(u64::try_from(ms).unwrap_or(1))).await,
                Err(e) => {
                    // The gate is an addition to the in-process limiter: without it, pace alone.
                    tracing::warn!(file = %self.path.display(), error = %e, "the shared HubSpot pace file is unusable; pacing this process alone");
                    return;
                }
            }
        }
    }

    /// Takes a slot at `now` if one is free (returns 0), else says how long to wait (ms).
    fn try_take(&self, now: i64) -> std::io::Result<i64> {
        let mut file = open_private(&self.path)?;
        file.lock()?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let tat = text.trim().parse::<i64>().unwrap_or(0).max(now);
        let early = tat - now - (self.burst - 1) * self.period_ms;
        if early > 0 {
            return Ok(early);
        }
        file.seek(SeekFrom::Start(0))?;
        file.set_len(0)?;
        write!(file, "{}", tat + self.period_ms)?;
        Ok(0)
    }
}

/// Opens (creating) the pace file, readable by the service user only.
fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_gates_on_one_file_share_one_budget() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("db.hubspot-pace");
        let (a, b) = (
            SharedPace::new(&path, Duration::from_millis(100), 2),
            SharedPace::new(&path, Duration::from_millis(100), 2),
        );
        let now = 1_000_000;
        assert_eq!(a.try_take(now).unwrap_or(-1), 0);
        assert_eq!(b.try_take(now).unwrap_or(-1), 0, "a burst of two");
        let wait = a.try_take(now).unwrap_or(-1);
        assert_eq!(wait, 100, "the third waits a period, whichever process asks");
        assert!(b.try_take(now).unwrap_or(-1) > 0);
        assert_eq!(b.try_take(now + 100).unwrap_or(-1), 0);
        assert!(a.try_take(now + 100).unwrap_or(-1) > 0, "and the slot b took is gone for a too");
    }
}
