//! Noticing that `config.yaml` or a pipeline file changed on disk.
//!
//! Editors save by writing a temporary file and renaming it over the original, so watching the
//! file itself loses track of it after the first save; the directories are watched instead (the
//! config's directory, recursively, which holds the default `pipelines/`, and `pipelines_dir`
//! when it lives elsewhere), and events are kept only when they touch the config file or a
//! `*.yaml`/`*.yml` file in the pipelines directory. Bursts of events are debounced into one
//! notification. What to do about a change (reload, validate, swap) is the daemon's business.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

/// Watches a config file and its pipelines directory; dropping it stops watching.
pub struct ConfigWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    changes: mpsc::Receiver<Vec<PathBuf>>,
}

/// Whether `path` is one linehub reads its config from.
fn relevant(path: &Path, config: &Path, pipelines: &Path) -> bool {
    if path == config {
        return true;
    }
    path.starts_with(pipelines)
        && (path == pipelines || matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
}

impl ConfigWatcher {
    /// Starts watching `config` and `pipelines_dir`; changes arrive `debounce` after the last
    /// event of a burst.
    pub fn start(config: &Path, pipelines_dir: &Path, debounce: Duration) -> notify::Result<ConfigWatcher> {
        let config = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
        let pipelines = std::path::absolute(pipelines_dir).unwrap_or_else(|_| pipelines_dir.to_path_buf());
        let config_dir = config.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let (tx, changes) = mpsc::channel(16);
        let (c, p) = (config.clone(), pipelines.clone());
        let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
            let Ok(events) = result else { return };
            let mut paths: Vec<PathBuf> =
                events.iter().flat_map(|e| e.paths.iter()).filter(|path| relevant(path, &c, &p)).cloned().collect();
            paths.sort();
            paths.dedup();
            if !paths.is_empty() {
                // A full channel already holds a pending reload, which reads the files anew.
                let _ = tx.try_send(paths);
            }
        })?;
        debouncer.watch(&config_dir, RecursiveMode::Recursive)?;
        if !pipelines.starts_with(&config_dir) && pipelines.is_dir() {
            debouncer.watch(&pipelines, RecursiveMode::NonRecursive)?;
        }
        Ok(ConfigWatcher { _debouncer: debouncer, changes })
    }

    /// The files that changed in the next burst; `None` once the watcher has stopped.
    pub async fn changed(&mut self) -> Option<Vec<PathBuf>> {
        self.changes.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_config_file_and_pipeline_yaml_files_count() {
        let (c, p) = (Path::new("/etc/linehub/config.yaml"), Path::new("/etc/linehub/pipelines"));
        assert!(relevant(c, c, p));
        assert!(relevant(Path::new("/etc/linehub/pipelines/a.yaml"), c, p));
        assert!(relevant(Path::new("/etc/linehub/pipelines/b.yml"), c, p));
        assert!(!relevant(Path::new("/etc/linehub/pipelines/.a.yaml.swp"), c, p));
        assert!(!relevant(Path::new("/etc/linehub/linehub.db-wal"), c, p));
        assert!(!relevant(Path::new("/etc/linehub/config.yaml~"), c, p));
    }
}
