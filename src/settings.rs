//! What linehub runs on: `config.yaml` and the pipelines beside it, validated together.
//!
//! The config ([`crate::config`]) knows nothing of pipelines; the pipelines
//! ([`crate::pipelines`]) name the config's accounts. This module is where the two meet: it
//! loads both and accepts them only as a whole (every problem of either is reported at once),
//! and it says what a reload of both would change. The daemon holds one [`Settings`] at a time
//! and swaps it whole.

use std::path::Path;
use std::sync::Arc;

use crate::config::reload::{ReloadOutcome, needs_restart};
use crate::config::{self, Config, ConfigErrors};
use crate::pipelines::{self, Pipeline};

/// A checked config and its checked pipelines.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `config.yaml`.
    pub config: Arc<Config>,
    /// The pipelines of `config.pipelines_dir`, checked against its accounts, in file name order.
    pub pipelines: Vec<Pipeline>,
}

impl Settings {
    /// Reads and checks the config file at `path` and the pipelines it points at.
    pub fn load(path: &Path) -> Result<Settings, ConfigErrors> {
        Settings::with_pipelines(config::load(path)?)
    }

    /// Checks config text as if read from `path`, then the pipelines it points at.
    pub fn load_str(path: &Path, text: &str) -> Result<Settings, ConfigErrors> {
        Settings::with_pipelines(config::load_str(path, text)?)
    }

    /// `config` with the pipelines of its `pipelines_dir`.
    pub fn with_pipelines(config: Config) -> Result<Settings, ConfigErrors> {
        let pipelines = pipelines::load_dir(&config.pipelines_dir, &config.accounts)?;
        Ok(Settings { config: Arc::new(config), pipelines })
    }

    /// The pipeline called `name`.
    pub fn pipeline(&self, name: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.name == name)
    }

    /// Settings that differ from `self` in `new` but only take effect on a restart.
    pub fn needs_restart(&self, new: &Settings) -> Vec<String> {
        needs_restart(&self.config, &new.config)
    }

    /// What swapping `self` for `new` changes; `serials` are the store's, new accounts included.
    pub fn compare(&self, new: &Settings, serials: &[(String, i64)]) -> ReloadOutcome {
        let mut outcome = ReloadOutcome::accounts(&self.config, &new.config, serials);
        pipelines::spec::compare(&self.pipelines, &new.pipelines, &mut outcome);
        outcome
    }
}
