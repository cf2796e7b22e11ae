//! The daemon's background loops: the applier, the writer, the sender and the scheduler, each
//! woken by its queue's notification or when its next row falls due, and stopped together.
//!
//! Each loop beats ([`Beat`]) when it starts a round and when it goes back to waiting, and
//! holds its beat's guard, so `/healthz` sees it die or hang.
//!
//! The writer loop also makes sure the HubSpot properties of every active account exist before
//! it writes (again after a reload adds an account, or HubSpot reports one missing); while they
//! cannot be made it backs off with the one retry policy.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::Core;
use crate::hubspot::properties;
use crate::liveness::Beat;
use crate::pipelines::RunError;
use crate::retry::backoff;

/// Ensures the properties if they are not known to exist (or HubSpot reported one missing).
/// Returns whether they exist now; failures are logged, as the writer will try again.
pub(super) async fn properties_ready(core: &Core) -> bool {
    use std::sync::atomic::Ordering;
    if core.writer.take_properties_stale() {
        core.properties_ready.store(false, Ordering::SeqCst);
    }
    if core.properties_ready.load(Ordering::SeqCst) {
        return true;
    }
    match ensure_properties(core).await {
        Ok(_) => {
            core.properties_ready.store(true, Ordering::SeqCst);
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "HubSpot properties could not be ensured; will retry");
            false
        }
    }
}

pub(super) async fn ensure_properties(core: &Core) -> anyhow::Result<usize> {
    let config = core.settings.borrow().config.clone();
    let serials = core.store.serials().await?;
    let accounts: Vec<(String, i64)> =
        serials.into_iter().filter(|(id, _)| config.account(id).is_some_and(|a| a.active)).collect();
    let created = properties::ensure(core.writer.client(), &accounts).await?;
    core.writer.set_property_serials(accounts.iter().map(|(_, serial)| *serial).collect());
    if created > 0 {
        tracing::info!(created, "HubSpot properties created");
    }
    Ok(created)
}

/// Runs scheduled pipelines when they are due, and resumes at start the runs a crash
/// interrupted. Stopping cancels the runs in progress and marks them interrupted.
pub(super) async fn schedule_loop(core: Arc<Core>, mut stop: watch::Receiver<bool>, beat: Arc<Beat>) {
    let _alive = beat.alive();
    let mut settings_rx = core.settings.clone();
    let mut runs: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
    // Interrupted runs are looked for at start, and again every 30 s while some remain (their
    // owner's lease may not have expired yet).
    let mut look_for_interrupted = true;
    let mut next_look = 0i64;
    loop {
        beat.busy();
        let settings = settings_rx.borrow_and_update().clone();
        let now = core.clock.now_ms();
        let mut due = {
            let mut s = core.scheduler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            s.sync(&settings.pipelines, now);
            s.due(&settings.pipelines, now)
        };
        if look_for_interrupted && now >= next_look {
            next_look = now + 30_000;
            match core.runner.interrupted().await {
                Ok(mut names) => {
                    names.retain(|name| settings.pipeline(name).is_some() && !due.contains(name));
                    look_for_interrupted = !names.is_empty();
                    due.extend(names);
                }
                // Keep looking: a run cut off mid-send must not wait for a restart.
                Err(e) => tracing::error!(error = %e, "cannot read interrupted pipeline runs; will look again"),
            }
        }
        for name in due {
            let (core, settings) = (core.clone(), settings.clone());
            runs.spawn(async move {
                match core.runner.run(settings.config.clone(), &settings.pipelines, &name, false).await {
                    Ok(report) => tracing::info!(pipeline = %name, "{report}"),
                    Err(e @ RunError::AlreadyRunning { .. }) => tracing::info!(pipeline = %name, "{e}"),
                    Err(e) => tracing::error!(pipeline = %name, error = %e, "pipeline could not start"),
                }
            });
        }
        while runs.try_join_next().is_some() {}
        let now = core.clock.now_ms();
        let wake = core.scheduler.lock().ok().and_then(|s| s.next_wake()).unwrap_or(now + 60_000);
        let wake = if look_for_interrupted { wake.min(next_look) } else { wake };
        let sleep = Duration::from_millis(u64::try_from((wake - now).clamp(10, 60_000)).unwrap_or(60_000));
        beat.idle();
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = settings_rx.changed() => {}
            _ = stop.changed() => {
                let active = core.runner.active_runs();
                runs.shutdown().await;
                core.runner.interrupt(active).await;
                return;
            }
        }
    }
}

/// Waits for `notify`, `timeout` or a stop, whichever first. Returns false on stop.
async fn wait(notify: &Notify, timeout: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = notify.notified() => true,
        _ = tokio::time::sleep(timeout) => true,
        _ = stop.changed() => false,
    }
}

pub(super) async fn apply_loop(core: Arc<Core>, mut stop: watch::Receiver<bool>, beat: Arc<Beat>) {
    let _alive = beat.alive();
    loop {
        loop {
            beat.busy();
            let config = core.settings.borrow().config.clone();
            match core.applier.apply_batch(&config).await {
                Ok(0) => break,
                Ok(_) => core.outbox.notify_one(),
                Err(e) => {
                    tracing::error!(error = %e, "applying inbox events failed; retrying");
                    break;
                }
            }
        }
        beat.idle();
        if !wait(&core.inbox, Duration::from_secs(1), &mut stop).await || *stop.borrow() {
            return;
        }
    }
}

pub(super) async fn write_loop(core: Arc<Core>, mut stop: watch::Receiver<bool>, beat: Arc<Beat>) {
    let _alive = beat.alive();
    let mut failures = 0i64;
    loop {
        beat.busy();
        if !properties_ready(&core).await {
            failures += 1;
            beat.idle();
            if !wait(&core.outbox, backoff(failures), &mut stop).await {
                return;
            }
            continue;
        }
        failures = 0;
        if let Err(e) = core.writer.drain().await {
            tracing::error!(error = %e, "draining the outbox failed; retrying");
        }
        let now = core.clock.now_ms();
        let next_due = core.store.outbox_next_due().await.ok().flatten();
        let wake = [next_due, core.writer.paused_until()].into_iter().flatten().max().unwrap_or(now + 5_000);
        let sleep = Duration::from_millis(u64::try_from((wake - now).clamp(10, 5_000)).unwrap_or(5_000));
        beat.idle();
        if !wait(&core.outbox, sleep, &mut stop).await || *stop.borrow() {
            return;
        }
    }
}

/// Carries out stored sends as they arrive and when their retries fall due.
pub(super) async fn send_loop(core: Arc<Core>, mut stop: watch::Receiver<bool>, beat: Arc<Beat>) {
    let _alive = beat.alive();
    loop {
        beat.busy();
        let config = core.settings.borrow().config.clone();
        match core.sender.drain(&config).await {
            Ok(r) if r.sent + r.failed > 0 => core.outbox.notify_one(),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "sending failed; retrying"),
        }
        let now = core.clock.now_ms();
        let wake = core.store.sends_next_due().await.ok().flatten().unwrap_or(now + 5_000);
        let sleep = Duration::from_millis(u64::try_from((wake - now).clamp(10, 5_000)).unwrap_or(5_000));
        beat.idle();
        if !wait(&core.sends, sleep, &mut stop).await || *stop.borrow() {
            return;
        }
    }
}
