//! When each scheduled pipeline runs next.
//!
//! Pure bookkeeping on a clock the caller passes in: [`Scheduler::sync`] takes the pipelines in
//! force (after start or a reload) and computes the next run of each new or changed schedule,
//! keeping the others; [`Scheduler::due`] returns the pipelines whose time has come and moves
//! each to its following occurrence. Runs missed while linehub was stopped are not caught up
//! (cron's rule); a run interrupted by a stop is resumed at start instead. The daemon's loop
//! sleeps until [`Scheduler::next_wake`] (at most a minute at a time) or a reload.

use std::collections::HashMap;

use super::Pipeline;

/// The next run of every scheduled pipeline.
#[derive(Debug, Default)]
pub struct Scheduler {
    /// Pipeline name → (schedule as written, next run in ms; `None`: never again).
    next: HashMap<String, (String, Option<i64>)>,
}

impl Scheduler {
    /// An empty scheduler; call [`Scheduler::sync`].
    pub fn new() -> Scheduler {
        Scheduler::default()
    }

    /// Adopts `pipelines` at `now`: new or changed schedules get their next run after `now`;
    /// unchanged ones keep theirs; removed or unscheduled pipelines are dropped.
    pub fn sync(&mut self, pipelines: &[Pipeline], now: i64) {
        let mut next = HashMap::new();
        for p in pipelines {
            let Some(schedule) = &p.schedule else { continue };
            let key = format!("{} {}", schedule.cron, schedule.time_zone.name());
            let entry = match self.next.remove(&p.name) {
                Some((old, at)) if old == key => (old, at),
                _ => (key, schedule.next_after(now)),
            };
            next.insert(p.name.clone(), entry);
        }
        self.next = next;
    }

    /// Pipelines due at `now`, in name order; each moves to its next occurrence after `now`.
    pub fn due(&mut self, pipelines: &[Pipeline], now: i64) -> Vec<String> {
        let mut due: Vec<String> = Vec::new();
        for p in pipelines {
            let (Some(schedule), Some((_, at))) = (&p.schedule, self.next.get_mut(&p.name)) else { continue };
            if at.is_some_and(|t| t <= now) {
                *at = schedule.next_after(now);
                due.push(p.name.clone());
            }
        }
        due.sort();
        due
    }

    /// The earliest next run, if any pipeline is scheduled.
    pub fn next_wake(&self) -> Option<i64> {
        self.next.values().filter_map(|(_, at)| *at).min()
    }

    /// The next run of `name` (ms), if it is scheduled.
    pub fn next_run(&self, name: &str) -> Option<i64> {
        self.next.get(name).and_then(|(_, at)| *at)
    }
}
