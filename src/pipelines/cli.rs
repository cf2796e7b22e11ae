//! `linehub pipeline list` and `linehub pipeline run`: what the commands print and do.
//!
//! The command runs a pipeline in its own process, against the same store as the daemon: the
//! store's claim keeps it from running a pipeline the daemon is running. HubSpot writes it
//! queues go to the outbox, where the daemon's writer (the one writer of the portal) sends them.

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Context;
use chrono::TimeZone;
use tokio::sync::Notify;

use super::{Pipeline, RunReport, Runner};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::hubspot::HubSpotClient;
use crate::line::client::LineClient;
use crate::store::{Store, StoreError};

/// The text of `linehub pipeline list`: each pipeline's schedule, next run, accounts, steps and
/// last run.
pub async fn list(config: &Config, pipelines: &[Pipeline]) -> anyhow::Result<String> {
    let mut out = String::new();
    if pipelines.is_empty() {
        writeln!(out, "no pipelines in {} (add *.yaml files there)", config.pipelines_dir.display())?;
        return Ok(out);
    }
    // Read-only: the list never creates or migrates the store, and works beside a daemon.
    let store = match Store::open_read_only(&config.store.path) {
        Ok(store) => Some(store),
        Err(StoreError::Missing { .. }) => None,
        Err(e) => return Err(e).with_context(|| format!("opening the store at {}", config.store.path.display())),
    };
    let now = SystemClock.now_ms();
    for p in pipelines {
        let steps: Vec<&str> = p.steps.iter().map(|s| s.kind()).collect();
        writeln!(out, "{}  ({})", p.name, p.source.display())?;
        if let Some(d) = &p.description {
            writeln!(out, "  {d}")?;
        }
        match &p.schedule {
            Some(s) => {
                let next = s
                    .next_after(now)
                    .and_then(|ms| s.time_zone.timestamp_millis_opt(ms).single())
                    .map_or("never".to_string(), |t| t.format("%Y-%m-%d %H:%M %Z").to_string());
                writeln!(out, "  schedule: {} = {}; next run {next}", s.cron, s.describe())?;
            }
            None => writeln!(out, "  schedule: none (runs with `linehub pipeline run {}`)", p.name)?,
        }
        writeln!(out, "  accounts: {}", p.accounts.join(", "))?;
        writeln!(out, "  steps: {}", steps.join(" → "))?;
        if let Some(store) = &store
            && let Some(last) = store.pipeline_runs(Some(p.name.clone()), 1).await?.into_iter().next()
        {
            let at =
                chrono::DateTime::from_timestamp_millis(last.ended_at.unwrap_or(last.started_at)).unwrap_or_default();
            let dry = if last.dry_run { " (dry run)" } else { "" };
            let error = last.error.map(|e| format!(": {e}")).unwrap_or_default();
            writeln!(out, "  last run {}{dry}: {} at {}{error}", last.id, last.state, at.format("%Y-%m-%dT%H:%M:%SZ"))?;
        }
    }
    Ok(out)
}

/// Runs pipeline `name` now; returns its report and how many HubSpot writes wait in the outbox.
pub async fn run(
    config: Arc<Config>,
    pipelines: &[Pipeline],
    name: &str,
    dry_run: bool,
) -> anyhow::Result<(RunReport, u64)> {
    let store = Store::open(&config.store.path)
        .with_context(|| format!("opening the store at {}", config.store.path.display()))?;
    let line = LineClient::new(&config.line.api_base_url).context("building the LINE client")?;
    let hubspot = HubSpotClient::from_config(&config.hubspot)
        .context("building the HubSpot client")?
        .shared_with_store(&config.store.path);
    let ids = config.accounts.iter().map(|a| a.id.clone()).collect();
    store.ensure_serials(ids, SystemClock.now_ms()).await.context("assigning account serials")?;
    let runner = Runner::new(store.clone(), line, hubspot, Arc::new(SystemClock), Arc::new(Notify::new()), None);
    let report = runner.run(config, pipelines, name, dry_run).await?;
    Ok((report, store.outbox_len().await?))
}
