//! Workflow-action callbacks: how linehub finishes a blocked "Push LINE message" action.
//!
//! linehub answers HubSpot's call to its action URL with `hs_execution_state: BLOCK`, pushes the
//! LINE message, then completes the execution with
//! `POST /automation/v4/actions/callbacks/{callbackId}/complete` (or the batch form). HubSpot does
//! not document what a second completion or an unknown id does, so the simulator decides, as the
//! contract's comments say:
//! - any callback id is accepted (linehub's tests make them up) and its completion recorded,
//!   unless a test has let it expire ([`super::HubSpotControl::expire_callback`], as a workflow
//!   execution does once its `hs_expiration_duration` has passed): completing it then answers
//!   400 `VALIDATION_ERROR` `Callback <id> has expired or does not exist`, and nothing changes;
//!   or unless a test has made HubSpot forget it ([`super::HubSpotControl::forget_callback`], as
//!   when its workflow or action is deleted): completing it then answers 404 `OBJECT_NOT_FOUND`
//!   `Callback <id> not found`;
//! - `outputFields.hs_execution_state` must be `SUCCESS` or `FAIL_CONTINUE` (a rule violation
//!   otherwise);
//! - completing an already-completed callback answers 400 `VALIDATION_ERROR`
//!   `Callback <id> is already completed` and keeps the first completion;
//! - a batch completes all its inputs or none: one expired, unknown or repeated input refuses
//!   the whole batch with that input's answer (the first such input's, in input order);
//! - every attempt of a well-formed request counts for its callback, refused repeats included,
//!   so a test can tell how often linehub tried;
//! - every well-formed completion request is also logged per callback with the state it asked
//!   for and the status it got ([`CompletionRequest`]), so a test observes each completion linehub
//!   made, a second one included, instead of only the first that the simulator keeps.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error;
use super::{Ctx, HubSpotState, Refusal};
use crate::reply::Reply;
use crate::time;

/// The completion of one workflow-action callback, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackCompletion {
    /// The callback id from the request path (or batch input).
    pub callback_id: String,
    /// The output fields of the first, accepted completion (`hs_execution_state` included).
    pub output_fields: BTreeMap<String, Value>,
    /// When the accepted completion arrived, as `2026-03-30T12:34:56.789Z`.
    pub completed_at: String,
    /// Completion requests made for this callback, the accepted one and refused repeats.
    pub attempts: u32,
}

/// One completion request for one callback (a batch logs one per input), as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionRequest {
    /// The callback the request completes.
    pub callback_id: String,
    /// The output fields asked for (`hs_execution_state` included).
    pub output_fields: BTreeMap<String, Value>,
    /// When it arrived, as `2026-03-30T12:34:56.789Z`.
    pub at: String,
    /// The status the simulator decided: 204 accepted, 400 a refused repeat or expired, 404
    /// unknown (a fault may still lose the answer on its way back).
    pub status: u16,
}

/// Every completed callback, in completion order.
#[derive(Debug, Default)]
pub(crate) struct Callbacks {
    completed: Vec<CallbackCompletion>,
    /// Every well-formed completion request, in arrival order, whatever it was answered.
    requests: Vec<CompletionRequest>,
    by_id: HashMap<String, usize>,
    /// Callbacks whose execution expired before it was completed: HubSpot no longer knows them.
    expired: BTreeSet<String>,
    /// Callbacks HubSpot has forgotten (their workflow or action was deleted): not found.
    unknown: BTreeSet<String>,
}

impl Callbacks {
    /// Every completion, oldest first.
    pub(crate) fn all(&self) -> Vec<CallbackCompletion> {
        self.completed.clone()
    }

    /// Every completion request, oldest first.
    pub(crate) fn requests(&self) -> Vec<CompletionRequest> {
        self.requests.clone()
    }

    /// The completion of one callback, if it was completed.
    pub(crate) fn get(&self, id: &str) -> Option<&CallbackCompletion> {
        self.by_id.get(id).and_then(|&i| self.completed.get(i))
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut CallbackCompletion> {
        self.by_id.get(id).and_then(|&i| self.completed.get_mut(i))
    }

    /// Lets a callback's execution expire: it can no longer be completed.
    pub(crate) fn expire(&mut self, id: &str) {
        self.expired.insert(id.to_string());
    }

    /// Forgets a callback, as when its workflow or action is deleted: completing it is not found.
    pub(crate) fn forget(&mut self, id: &str) {
        self.unknown.insert(id.to_string());
    }

    fn insert(&mut self, completion: CallbackCompletion) {
        self.by_id.insert(completion.callback_id.clone(), self.completed.len());
        self.completed.push(completion);
    }
}

/// The states that finish a blocked execution.
const COMPLETION_STATES: [&str; 2] = ["SUCCESS", "FAIL_CONTINUE"];

/// The output fields at `at` (JSON pointer), checked for a completion state.
fn output_fields(ctx: &Ctx<'_>, raw: &Value, at: &str) -> Result<BTreeMap<String, Value>, Refusal> {
    let fields: BTreeMap<String, Value> =
        raw.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    let problem = match fields.get("hs_execution_state") {
        None => "is required to complete a callback but missing".to_string(),
        Some(Value::String(s)) if COMPLETION_STATES.contains(&s.as_str()) => return Ok(fields),
        Some(other) => format!("{other} does not complete a callback; use SUCCESS or FAIL_CONTINUE"),
    };
    Err(ctx
        .rule(
            "hs_execution_state must be SUCCESS or FAIL_CONTINUE to complete a callback",
            vec![(format!("{at}/hs_execution_state"), problem)],
        )
        .into())
}

/// Records the completions, all or none: the first expired or unknown callback refuses the
/// request; a repeat counts as an attempt and refuses it.
fn apply(state: &mut HubSpotState, ctx: &Ctx<'_>, inputs: Vec<(String, BTreeMap<String, Value>)>) -> Reply {
    let logged = inputs.clone();
    let reply = decide(state, ctx, inputs);
    let status = reply.status.as_u16();
    let at = time::format_iso(ctx.now_ms);
    state.callbacks.requests.extend(logged.into_iter().map(|(callback_id, output_fields)| CompletionRequest {
        callback_id,
        output_fields,
        at: at.clone(),
        status,
    }));
    reply
}

/// What [`apply`] answers, and the completions it records.
fn decide(state: &mut HubSpotState, ctx: &Ctx<'_>, inputs: Vec<(String, BTreeMap<String, Value>)>) -> Reply {
    for (id, _) in &inputs {
        if state.callbacks.unknown.contains(id) {
            return error::not_found(&format!("Callback {id} not found"));
        }
        if state.callbacks.expired.contains(id) {
            return error::validation(&format!("Callback {id} has expired or does not exist"));
        }
    }
    let mut repeated = None;
    for (id, _) in &inputs {
        if let Some(done) = state.callbacks.get_mut(id) {
            done.attempts += 1;
            repeated.get_or_insert_with(|| id.clone());
        }
    }
    if let Some(id) = repeated {
        return error::validation(&format!("Callback {id} is already completed"));
    }
    for (callback_id, output_fields) in inputs {
        state.callbacks.insert(CallbackCompletion {
            callback_id,
            output_fields,
            completed_at: time::format_iso(ctx.now_ms),
            attempts: 1,
        });
    }
    Reply::empty(StatusCode::NO_CONTENT)
}

/// `POST /automation/v4/actions/callbacks/{callbackId}/complete`.
pub(crate) fn complete(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let id = ctx.matched.path_param("callbackId").unwrap_or_default().to_string();
    let fields = output_fields(ctx, &ctx.body()["outputFields"], "/outputFields")?;
    Ok(apply(state, ctx, vec![(id, fields)]))
}

/// `POST /automation/v4/actions/callbacks/complete`.
pub(crate) fn complete_batch(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let mut inputs = Vec::new();
    let mut seen = BTreeSet::new();
    let empty = Vec::new();
    for (i, input) in ctx.body()["inputs"].as_array().unwrap_or(&empty).iter().enumerate() {
        let id = input["callbackId"].as_str().unwrap_or_default().to_string();
        if !seen.insert(id.clone()) {
            return Err(ctx
                .rule(
                    &format!("Duplicate callback IDs found in batch input: [{id}]"),
                    vec![(format!("/inputs/{i}/callbackId"), "each callback may appear once per batch".to_string())],
                )
                .into());
        }
        let fields = output_fields(ctx, &input["outputFields"], &format!("/inputs/{i}/outputFields"))?;
        inputs.push((id, fields));
    }
    Ok(apply(state, ctx, inputs))
}
