//! The step registry: one file per step kind, one trait, one line each in `steps!`.
//!
//! To add a step kind `frobnicate`: write `frobnicate.rs` here with its `with:` struct
//! `Frobnicate` (`#[serde(deny_unknown_fields)]`, documented field by field: that is the user
//! reference) and its [`Step`] impl, then add `Frobnicate => frobnicate,` to the list at the
//! bottom of this file. That one line declares the module, the [`StepSpec`] variant (the YAML
//! key), its place in [`KINDS`] and the dispatch of `kind`, `check` and `run`. Add an example
//! under `pipelines/`; the tests check that every kind has one and that names agree everywhere.
//!
//! A step runs once per account of its pipeline with a [`StepContext`] (see
//! [`crate::pipelines::context`]), and commits each page of work with [`StepContext::commit`].

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::checkpoint::CheckpointError;
use super::checks::Checks;
use super::context::StepContext;
use crate::hubspot::HubSpotError;
use crate::line::client::LineError;
use crate::store::StoreError;

/// One kind of pipeline step.
pub trait Step {
    /// The YAML key, the file name and the name in reports.
    const KIND: &'static str;

    /// Checks what serde cannot (ranges, formats), reporting each problem with its location.
    fn check(&self, checks: &mut Checks<'_>);

    /// Runs the step for `ctx.account`. Reads freely; writes only through `ctx.commit` (or,
    /// for sends, the store's broadcast records), and never in a dry run.
    fn run(&self, ctx: &mut StepContext) -> impl Future<Output = Result<(), StepError>> + Send;
}

/// Why a step stopped.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A LINE call failed.
    #[error("LINE: {0}")]
    Line(#[from] LineError),
    /// A HubSpot read failed.
    #[error("HubSpot: {0}")]
    HubSpot(#[from] HubSpotError),
    /// The store failed; nothing of the current page was committed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run's checkpoint or the step's resume point could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The step cannot do its work as configured; the message says what to change.
    #[error("{0}")]
    Refused(String),
    /// Sends are held (message quota); the run resumes when they may go.
    #[error("sends held: {0}")]
    Held(String),
}

/// Declares the step kinds from one list of `TypeName => file_name` lines: the modules, the
/// [`StepSpec`] enum (externally tagged, its YAML key the snake_case of the type name), [`KINDS`]
/// and the dispatch of `kind`, `check` and `run`. The registry tests check that each file name,
/// `Step::KIND` and YAML key agree.
macro_rules! steps {
    ($($variant:ident => $module:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// Every step kind, by its YAML key: `- import_friends: { page_size: 1000 }`.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum StepSpec {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant($module::$variant),
            )+
        }

        /// The YAML key of every step kind, in registry order.
        pub const KINDS: &[&str] = &[$(<$module::$variant as Step>::KIND),+];

        /// The file name (without `.rs`) of every step kind, in registry order.
        #[cfg(test)]
        const MODULES: &[&str] = &[$(stringify!($module)),+];

        impl StepSpec {
            /// The step's YAML key.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(StepSpec::$variant(_) => <$module::$variant as Step>::KIND,)+
                }
            }

            /// Checks the `with:` block.
            pub fn check(&self, checks: &mut Checks<'_>) {
                match self {
                    $(StepSpec::$variant(s) => s.check(checks),)+
                }
            }

            /// Runs the step for one account.
            pub async fn run(&self, ctx: &mut StepContext) -> Result<(), StepError> {
                match self {
                    $(StepSpec::$variant(s) => s.run(ctx).await,)+
                }
            }
        }
    };
}

steps! {
    ImportLineIdsFromList => import_line_ids_from_list,
    ImportFriends => import_friends,
    ReconcileFollowStatus => reconcile_follow_status,
    EnforcePlanLimits => enforce_plan_limits,
    BroadcastToList => broadcast_to_list,
    IssueLinkTokens => issue_link_tokens,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn step_kinds_are_unique_and_match_their_file_names() {
        let unique: HashSet<_> = KINDS.iter().collect();
        assert_eq!(unique.len(), KINDS.len(), "{KINDS:?}");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pipelines/steps");
        for kind in KINDS {
            assert!(dir.join(format!("{kind}.rs")).is_file(), "no src/pipelines/steps/{kind}.rs");
        }
        assert_eq!(KINDS, MODULES, "each step's KIND must be its file name");
    }

    #[test]
    fn every_example_pipeline_loads_and_every_step_kind_has_one() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let pipelines =
            crate::pipelines::load_dir(&root.join("pipelines"), &["tokyo-store"]).unwrap_or_else(|e| panic!("{e}"));
        let used: HashSet<&str> = pipelines.iter().flat_map(|p| p.steps.iter().map(StepSpec::kind)).collect();
        for kind in KINDS {
            assert!(used.contains(kind), "no example in pipelines/ uses `{kind}`");
        }
    }

    #[test]
    fn the_yaml_keys_serde_accepts_are_exactly_the_registered_kinds() {
        // Serde lists the keys it accepts when it meets one it does not.
        let e = serde_json::from_str::<StepSpec>(r#"{"no_such_step": {}}"#).err().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        let (_, expected) = e.split_once("expected one of ").unwrap_or_else(|| panic!("unexpected error: {e}"));
        let expected = expected.split(" at line").next().unwrap_or_default();
        let accepted: Vec<&str> = expected.split(", ").map(|k| k.trim_matches('`')).collect();
        assert_eq!(accepted, KINDS);
    }

    #[test]
    fn each_example_step_is_written_under_its_kind() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let pipelines =
            crate::pipelines::load_dir(&root.join("pipelines"), &["tokyo-store"]).unwrap_or_else(|e| panic!("{e}"));
        for step in pipelines.iter().flat_map(|p| &p.steps) {
            let json = serde_json::to_value(step).unwrap_or_else(|e| panic!("{e}"));
            let keys: Vec<&String> = json.as_object().map(|o| o.keys().collect()).unwrap_or_default();
            assert_eq!(keys, [step.kind()], "{json}");
        }
    }
}
