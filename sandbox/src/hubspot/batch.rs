//! Batch operations (`…/batch/read|create|update|upsert|archive`), with HubSpot's partial-failure
//! rules.
//!
//! - create: a duplicate email (or a bad value) fails the whole batch (409 / 400) unless every
//!   input carries `objectWriteTraceId`; then the good inputs are created and each failure is
//!   reported in a 207 `errors[]` entry with `context.objectWriteTraceId`.
//! - update: unknown ids are reported (207, `OBJECT_NOT_FOUND`, `context.ids`) and the others
//!   applied; bad values and conflicts follow the create rule.
//! - upsert: by `idProperty` (email or a `hasUniqueValue` property); results carry `new`. Any bad
//!   input fails the whole batch (HubSpot does not do partial upserts by email).
//! - read: unknown ids are reported in a 207, found records returned.
//! - archive: 204, unknown ids ignored.
//! - the same id twice in one update, upsert or archive batch is refused (callers coalesce).
//!
//! All successes answer 200 (`201` for create) `{"status":"COMPLETE","results",…}`.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error;
use super::objects::{associations, require_timestamp};
use super::properties::PropertyProblem;
use super::store::{Association, Changes};
use super::{Ctx, HubSpotState, Refusal};
use crate::reply::Reply;
use crate::time;

/// Why one input of a batch failed.
enum Failure {
    Invalid(Vec<PropertyProblem>),
    Conflict(String),
    /// Any other refusal (an association to a missing contact), with HubSpot's answer.
    Refused(Reply),
}

impl Failure {
    /// The whole-batch answer when partial results are not allowed.
    fn whole(&self) -> Reply {
        match self {
            Failure::Invalid(p) => error::invalid_properties(p),
            Failure::Conflict(m) => error::conflict(m),
            Failure::Refused(r) => r.clone(),
        }
    }

    /// The 207 `errors[]` entry for the input carrying `trace`.
    fn entry(&self, trace: &str) -> Value {
        let context = json!({ "objectWriteTraceId": [trace] });
        match self {
            Failure::Invalid(p) => error::batch_error("VALIDATION_ERROR", &error::problems_message(p), context),
            Failure::Conflict(m) => error::batch_error("CONFLICT", m, context),
            Failure::Refused(r) => {
                let field = |k: &str| r.body.as_ref().and_then(|b| b[k].as_str()).unwrap_or_default().to_string();
                error::batch_error(&field("category"), &field("message"), context)
            }
        }
    }
}

fn inputs(ctx: &Ctx<'_>) -> Vec<Value> {
    ctx.body()["inputs"].as_array().cloned().unwrap_or_default()
}

fn trace_of(input: &Value) -> Option<&str> {
    input["objectWriteTraceId"].as_str()
}

/// The batch envelope: 200/201 when `errors` is empty, 207 otherwise.
fn envelope(ok: StatusCode, results: Vec<Value>, errors: Vec<Value>, started_ms: i64) -> Reply {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": time::format_iso(started_ms),
        "completedAt": time::format_iso(time::now_ms()),
    });
    if errors.is_empty() {
        return Reply::json(ok, body);
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = Value::Array(errors);
    Reply::json(StatusCode::MULTI_STATUS, body)
}

/// Refuses a batch that names the same record twice.
fn no_duplicates(ctx: &Ctx<'_>, keys: &[String]) -> Result<(), Refusal> {
    let mut seen = BTreeSet::new();
    let dups: Vec<&String> = keys.iter().filter(|k| !seen.insert(k.as_str())).collect();
    if dups.is_empty() {
        return Ok(());
    }
    let list: Vec<&str> = dups.iter().map(|s| s.as_str()).collect();
    Err(ctx
        .rule(
            &format!("Duplicate IDs found in batch input: [{}]", list.join(", ")),
            vec![("/inputs".to_string(), "each record may appear once per batch".to_string())],
        )
        .into())
}

/// `POST …/batch/create`.
pub(crate) fn create(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let kind = ctx.kind();
    let inputs = inputs(ctx);
    let all_traced = inputs.iter().all(|i| trace_of(i).is_some());
    let owners = state.owner_ids();
    let mut claimed = Vec::new();
    let mut next_id = state.store(kind).peek_next_id();
    let mut plan: Vec<Result<(Changes, Vec<Association>), Failure>> = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let raw = input["properties"].as_object().cloned().unwrap_or_default();
        let store = state.store(kind);
        let changes = match store.prepare(&raw, None, &owners) {
            Ok(c) => c,
            Err(p) => {
                plan.push(Err(Failure::Invalid(p)));
                continue;
            }
        };
        require_timestamp(kind, &changes, &format!("/inputs/{i}/properties"), ctx)?;
        let at = format!("/inputs/{i}/associations");
        let links = match associations(state, kind, &input["associations"], &at, ctx) {
            Ok(l) => l,
            Err(Refusal::Answer(reply)) => {
                plan.push(Err(Failure::Refused(reply)));
                continue;
            }
            Err(violation) => return Err(violation),
        };
        let store = state.store(kind);
        if let Some(c) = store.conflict(&changes, None, &claimed) {
            plan.push(Err(Failure::Conflict(c.message(kind))));
            continue;
        }
        claimed.extend(store.claims(&changes, next_id));
        next_id += 1;
        plan.push(Ok((changes, links)));
    }
    if !all_traced && let Some(Err(f)) = plan.iter().find(|p| p.is_err()) {
        return Ok(f.whole());
    }
    let store = state.store_mut(kind);
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (input, step) in inputs.iter().zip(plan) {
        match step {
            Ok((changes, links)) => {
                let id = store.create(changes, links, ctx.now, ctx.now_ms, ctx.lag);
                let mut json = store.to_json(&store.records[&id], None);
                if let Some(t) = trace_of(input) {
                    json["objectWriteTraceId"] = json!(t);
                }
                results.push(json);
            }
            Err(f) => errors.push(f.entry(trace_of(input).unwrap_or_default())),
        }
    }
    Ok(envelope(StatusCode::CREATED, results, errors, ctx.now_ms))
}

/// `POST …/batch/update`.
pub(crate) fn update(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let kind = ctx.kind();
    let inputs = inputs(ctx);
    let keys: Vec<String> = inputs
        .iter()
        .map(|i| {
            format!(
                "{}={}",
                i["idProperty"].as_str().unwrap_or("hs_object_id"),
                i["id"].as_str().unwrap_or_default().to_lowercase()
            )
        })
        .collect();
    no_duplicates(ctx, &keys)?;
    let all_traced = inputs.iter().all(|i| trace_of(i).is_some());
    let owners = state.owner_ids();
    let store = state.store(kind);
    let mut missing = Vec::new();
    let mut claimed = Vec::new();
    let mut plan: Vec<Option<Result<(u64, Changes), Failure>>> = Vec::new();
    for input in &inputs {
        let key = input["id"].as_str().unwrap_or_default();
        let found =
            store.find(key, input["idProperty"].as_str(), false).map_err(|m| Refusal::Answer(error::validation(&m)))?;
        let Some(id) = found else {
            missing.push(key.to_string());
            plan.push(None);
            continue;
        };
        let raw = input["properties"].as_object().cloned().unwrap_or_default();
        let step = match store.prepare(&raw, store.records.get(&id), &owners) {
            Err(p) => Err(Failure::Invalid(p)),
            Ok(changes) => match store.conflict(&changes, Some(id), &claimed) {
                Some(c) => Err(Failure::Conflict(c.message(kind))),
                None => {
                    claimed.extend(store.claims(&changes, id));
                    Ok((id, changes))
                }
            },
        };
        plan.push(Some(step));
    }
    if !all_traced && let Some(Some(Err(f))) = plan.iter().find(|p| matches!(p, Some(Err(_)))) {
        return Ok(f.whole());
    }
    let store = state.store_mut(kind);
    let mut results = Vec::new();
    let mut errors = Vec::new();
    if !missing.is_empty() {
        errors.push(error::batch_error(
            "OBJECT_NOT_FOUND",
            &format!(
                "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                kind.upper()
            ),
            json!({ "ids": missing }),
        ));
    }
    for (input, step) in inputs.iter().zip(plan) {
        match step {
            Some(Ok((id, changes))) => {
                store.update(id, changes, ctx.now, ctx.now_ms, ctx.lag);
                let mut json = store.to_json(&store.records[&id], None);
                if let Some(t) = trace_of(input) {
                    json["objectWriteTraceId"] = json!(t);
                }
                results.push(json);
            }
            Some(Err(f)) => errors.push(f.entry(trace_of(input).unwrap_or_default())),
            None => {}
        }
    }
    Ok(envelope(StatusCode::OK, results, errors, ctx.now_ms))
}

/// `POST …/batch/upsert`.
pub(crate) fn upsert(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let kind = ctx.kind();
    let inputs = inputs(ctx);
    let keys: Vec<String> = inputs
        .iter()
        .map(|i| {
            format!(
                "{}={}",
                i["idProperty"].as_str().unwrap_or_default(),
                i["id"].as_str().unwrap_or_default().to_lowercase()
            )
        })
        .collect();
    no_duplicates(ctx, &keys)?;
    let owners = state.owner_ids();
    let store = state.store(kind);
    let mut claimed = Vec::new();
    let mut next_id = store.peek_next_id();
    let mut plan: Vec<(Option<u64>, Changes)> = Vec::new();
    for input in &inputs {
        let key = input["id"].as_str().unwrap_or_default();
        let prop = input["idProperty"].as_str().unwrap_or_default();
        if prop == "hs_object_id" {
            return Err(Refusal::Answer(error::validation(
                "Upsert needs email or a property with unique values as idProperty, not hs_object_id.",
            )));
        }
        let existing = store.find(key, Some(prop), false).map_err(|m| Refusal::Answer(error::validation(&m)))?;
        let mut raw = input["properties"].as_object().cloned().unwrap_or_default();
        if existing.is_none() {
            raw.entry(prop.to_string()).or_insert_with(|| json!(key));
        }
        let changes = store
            .prepare(&raw, existing.and_then(|id| store.records.get(&id)), &owners)
            .map_err(|p| Refusal::Answer(error::invalid_properties(&p)))?;
        if existing.is_none() {
            require_timestamp(kind, &changes, "/inputs/properties", ctx)?;
        }
        if let Some(c) = store.conflict(&changes, existing, &claimed) {
            return Ok(error::conflict(&c.message(kind)));
        }
        let claim_id = existing.unwrap_or_else(|| {
            next_id += 1;
            next_id - 1
        });
        claimed.extend(store.claims(&changes, claim_id));
        plan.push((existing, changes));
    }
    let store = state.store_mut(kind);
    let mut results = Vec::new();
    for (existing, changes) in plan {
        let (id, new) = match existing {
            Some(id) => {
                store.update(id, changes, ctx.now, ctx.now_ms, ctx.lag);
                (id, false)
            }
            None => (store.create(changes, Vec::new(), ctx.now, ctx.now_ms, ctx.lag), true),
        };
        let mut json = store.to_json(&store.records[&id], None);
        json["new"] = json!(new);
        results.push(json);
    }
    Ok(envelope(StatusCode::OK, results, Vec::new(), ctx.now_ms))
}

/// `POST …/batch/read`.
pub(crate) fn read(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let kind = ctx.kind();
    let body = ctx.body();
    let requested: Option<Vec<String>> =
        body["properties"].as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect());
    let id_property = body["idProperty"].as_str();
    let archived = ctx.flag("archived");
    let store = state.store(kind);
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in inputs(ctx) {
        let key = input["id"].as_str().unwrap_or_default();
        match store.find(key, id_property, archived).map_err(|m| Refusal::Answer(error::validation(&m)))? {
            Some(id) => results.push(store.to_json(&store.records[&id], requested.as_deref())),
            None => missing.push(key.to_string()),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![error::batch_error(
            "OBJECT_NOT_FOUND",
            &format!(
                "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                kind.upper()
            ),
            json!({ "ids": missing }),
        )]
    };
    Ok(envelope(StatusCode::OK, results, errors, ctx.now_ms))
}

/// `POST …/batch/archive`.
pub(crate) fn archive(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let inputs = inputs(ctx);
    let keys: Vec<String> = inputs.iter().map(|i| i["id"].as_str().unwrap_or_default().to_string()).collect();
    no_duplicates(ctx, &keys)?;
    let store = state.store_mut(ctx.kind());
    for key in keys {
        if let Ok(id) = key.parse::<u64>() {
            let id = store.survivor(id);
            store.archive(id, ctx.now, ctx.now_ms, ctx.lag);
        }
    }
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}
