//! Pipelines: periodic jobs defined in YAML, run beside the HTTP listener.
//!
//! A pipeline file (`pipelines/*.yaml`, see the examples in the repository's `pipelines/`)
//! names a schedule (cron in an IANA time zone), the accounts it applies to, and an ordered list
//! of steps. Each step is a plugin: one file under [`steps`], one [`steps::Step`] impl, one
//! line in the registry ([`steps::StepSpec`]), whose `with:` block is a typed struct, so a typo
//! is a load-time error with file, line and field.
//!
//! - [`spec`]: the YAML model and its checks (loaded with `config.yaml`, validated whole);
//!   [`checks`] locates the problems of a step's `with:` block.
//! - [`context`]: what a step sees while it runs, and how it commits a page of work;
//!   [`report`] what it tells the operator; [`checkpoint`] where an interrupted run resumes.
//! - [`runner`]: runs one pipeline: claims it in the store (never two copies at once), records
//!   the run, commits each page of work with its checkpoint, resumes an interrupted run.
//! - [`scheduler`]: when each scheduled pipeline runs next, on a clock the caller provides.
//! - [`cli`]: `linehub pipeline list|run`.
//!
//! Every step that changes anything supports dry runs: it reports what it would write or send
//! and changes nothing. Steps read HubSpot and LINE directly; HubSpot writes go through the
//! outbox and the writer, like every other write.

pub mod checkpoint;
pub mod checks;
pub mod cli;
pub mod context;
pub mod report;
pub mod runner;
pub mod scheduler;
pub mod spec;
pub mod steps;

pub use checks::Checks;
pub use context::{Page, StepContext};
pub use report::StepReport;
pub use runner::{RunError, RunReport, Runner, StepOutcome};
pub use scheduler::Scheduler;
pub use spec::{Pipeline, Schedule, load_dir};
