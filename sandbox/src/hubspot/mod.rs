//! The HubSpot simulator: the CRM (contacts, tasks, notes, properties, owners, lists) and
//! workflow-action callbacks.
//!
//! Requests to `/crm/...` (the `/crm/v3/...` paths and the dated `/crm/objects/2026-03/...`
//! forms, mapped onto them by the server) and to `/automation/v4/actions/callbacks/...` (and the
//! dated `/automation/actions/callbacks/2026-03/...`) run through, in order:
//! 1. linehub's HubSpot contract (`contracts/hubspot.yaml`): a violation answers 400
//!    `VALIDATION_ERROR` (404/405 for unknown paths/methods) and is recorded;
//! 2. faults (outage 503, rate-limit storm 429);
//! 3. `Authorization: Bearer` must equal the configured token, else 401 `INVALID_AUTHENTICATION`;
//! 4. rate limits (see [`rate_limit`]): burst and daily for everything but search, the search
//!    bucket for search; counted responses carry the `X-HubSpot-RateLimit-*` headers;
//! 5. the operation (see `objects`, `batch`, `merge`, `search`, `properties`, `owners`, `lists`,
//!    `callbacks`).
//!
//! Every request counts in [`HubSpotStats`]. The [`HubSpotControl`] handle lets tests seed and
//! inspect state the way a HubSpot user would through the UI, bypassing limits and statistics.
//! [`signing`] computes the signatures HubSpot puts on the requests it sends to an app.

pub mod actions;
mod batch;
mod callbacks;
mod error;
mod lists;
mod merge;
mod objects;
mod owners;
mod properties;
pub mod rate_limit;
mod search;
pub mod signing;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

pub use callbacks::{CallbackCompletion, CompletionRequest};
pub use merge::ContactMerge;
pub use owners::{Owner, OwnerSpec};
pub use properties::{PropertyInfo, PropertyOption};
pub use rate_limit::HubSpotStats;
pub use store::Association;

use crate::contract::{Matched, RequestParts, Violation, ViolationKind};
use crate::error::ControlError;
use crate::faults::{Injected, RateLimit, Service};
use crate::reply::Reply;
use crate::server::{SandboxConfig, Shared};
use crate::{lock, specs, time};
use error::Policy;
use rate_limit::RateLimiter;
use store::{ObjectKind, ObjectStore, Record};

/// A contact as a test sees it: every stored property, system ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The record id.
    pub id: String,
    /// Every property with a value (`email` lower-case, `hs_object_id`, dates …).
    pub properties: BTreeMap<String, String>,
    /// Archived (deleted) contacts are kept 90 days in HubSpot.
    pub archived: bool,
}

/// A task or note as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// The record id.
    pub id: String,
    /// Every property with a value.
    pub properties: BTreeMap<String, String>,
    /// Contacts it was linked to on creation.
    pub associations: Vec<Association>,
    /// Whether it was archived.
    pub archived: bool,
}

/// All HubSpot state of one sandbox.
#[derive(Debug)]
pub(crate) struct HubSpotState {
    pub(crate) contacts: ObjectStore,
    tasks: ObjectStore,
    notes: ObjectStore,
    pub(crate) owners: Vec<Owner>,
    pub(crate) lists: BTreeMap<u64, lists::List>,
    next_list_id: u64,
    callbacks: callbacks::Callbacks,
    limiter: RateLimiter,
    stats: HubSpotStats,
    token: String,
    lag: Duration,
    /// The bodies of requests, kept only while a test asks for them
    /// ([`HubSpotControl::record_requests`]): benchmarks send too many to keep.
    journal: Option<Vec<RecordedRequest>>,
    /// Every contact merge, oldest first.
    merges: Vec<ContactMerge>,
}

/// One HubSpot API request as a test sees it, when recording ([`HubSpotControl::record_requests`]):
/// which inputs of a batch were sent how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// `METHOD /crm/v3/template`, as in [`HubSpotStats::by_endpoint`].
    pub endpoint: String,
    /// The JSON body (null when there is none).
    pub body: Value,
}

impl HubSpotState {
    pub(crate) fn new(cfg: &SandboxConfig) -> HubSpotState {
        HubSpotState {
            contacts: ObjectStore::new(ObjectKind::Contacts, 101),
            tasks: ObjectStore::new(ObjectKind::Tasks, 9001),
            notes: ObjectStore::new(ObjectKind::Notes, 7001),
            owners: Vec::new(),
            lists: BTreeMap::new(),
            next_list_id: 1,
            callbacks: callbacks::Callbacks::default(),
            limiter: RateLimiter::new(
                cfg.hubspot_burst_per_10s,
                cfg.hubspot_daily_limit,
                cfg.hubspot_search_per_second,
            ),
            stats: HubSpotStats { burst_limit: cfg.hubspot_burst_per_10s, ..HubSpotStats::default() },
            token: cfg.hubspot_token.clone(),
            lag: cfg.search_lag,
            journal: None,
            merges: Vec::new(),
        }
    }

    pub(crate) fn store(&self, kind: ObjectKind) -> &ObjectStore {
        match kind {
            ObjectKind::Contacts => &self.contacts,
            ObjectKind::Tasks => &self.tasks,
            ObjectKind::Notes => &self.notes,
        }
    }

    pub(crate) fn store_mut(&mut self, kind: ObjectKind) -> &mut ObjectStore {
        match kind {
            ObjectKind::Contacts => &mut self.contacts,
            ObjectKind::Tasks => &mut self.tasks,
            ObjectKind::Notes => &mut self.notes,
        }
    }

    /// Ids valid in `hubspot_owner_id`.
    pub(crate) fn owner_ids(&self) -> Vec<String> {
        self.owners.iter().map(|o| o.id.clone()).collect()
    }
}

/// Why an operation did not succeed: a recorded violation, or an ordinary HubSpot error answer.
pub(crate) enum Refusal {
    /// Off-contract: answered 400 and recorded.
    Violation(Violation),
    /// HubSpot's own answer (404, 409, 400 for bad values …), not a violation.
    Answer(Reply),
}

impl From<Violation> for Refusal {
    fn from(v: Violation) -> Refusal {
        Refusal::Violation(v)
    }
}

/// One authenticated, admitted CRM call, as the operations see it.
pub(crate) struct Ctx<'a> {
    pub(crate) matched: &'a Matched,
    /// `METHOD /path`, for violations.
    pub(crate) request: String,
    pub(crate) now: Instant,
    pub(crate) now_ms: i64,
    pub(crate) lag: Duration,
    /// Raw body length in bytes (search limits the body size).
    pub(crate) body_len: usize,
}

impl Ctx<'_> {
    /// The parsed JSON body (null when there is none).
    pub(crate) fn body(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.matched.body.as_ref().unwrap_or(&NULL)
    }

    /// A boolean query flag (`?archived=true`).
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.matched.query_param(name) == Some("true")
    }

    /// A list-valued query parameter, comma-separated or repeated.
    pub(crate) fn list_param(&self, name: &str) -> Option<Vec<String>> {
        let values: Vec<String> = self
            .matched
            .query
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        (!values.is_empty()).then_some(values)
    }

    /// The object type from the path template (`/crm/v3/objects/{type}/…`).
    pub(crate) fn kind(&self) -> ObjectKind {
        self.matched.template.split('/').nth(4).and_then(ObjectKind::from_path).unwrap_or(ObjectKind::Contacts)
    }

    /// The record key from the path (`contactId`, `taskId`, `noteId`).
    pub(crate) fn record_key(&self) -> &str {
        self.matched.path_params.iter().find(|(k, _)| k.ends_with("Id")).map(|(_, v)| v.as_str()).unwrap_or_default()
    }

    /// A documented rule the contract's schemas cannot express was broken.
    pub(crate) fn rule(&self, message: &str, details: Vec<(String, String)>) -> Violation {
        Violation {
            kind: ViolationKind::Rule,
            request: self.request.clone(),
            operation: self.matched.operation_id.clone(),
            message: message.to_string(),
            details,
        }
    }
}

/// HubSpot's answer to a violation.
fn violation_reply(v: &Violation) -> Reply {
    match v.kind {
        ViolationKind::NoSuchPath => error::not_found("Not found."),
        ViolationKind::NoSuchMethod => error::error(StatusCode::METHOD_NOT_ALLOWED, "VALIDATION_ERROR", &v.message),
        ViolationKind::NotSimulated => error::error(StatusCode::NOT_IMPLEMENTED, "NOT_SIMULATED", &v.message),
        ViolationKind::OffContract | ViolationKind::Rule => {
            let mut reply = error::validation(&v.message);
            let errors: Vec<Value> =
                v.details.iter().map(|(at, m)| json!({ "message": format!("{at}: {m}"), "in": at })).collect();
            if let Some(body) = reply.body.as_mut() {
                body["errors"] = Value::Array(errors);
            }
            reply
        }
    }
}

/// Runs one HubSpot API request (path already in `/crm/v3` form) through the whole pipeline.
pub(crate) fn handle(shared: &Shared, req: &RequestParts<'_>) -> Reply {
    let mut state = lock(&shared.hubspot);
    state.stats.requests += 1;
    let matched = match specs::hubspot().check(req) {
        Ok(m) => m,
        Err(v) => {
            state.stats.violations += 1;
            *state.stats.by_endpoint.entry(format!("{} (off-contract)", v.request)).or_default() += 1;
            drop(state);
            let reply = violation_reply(&v);
            shared.violations.record(v);
            return reply;
        }
    };
    *state.stats.by_endpoint.entry(matched.endpoint()).or_default() += 1;
    if let Some(journal) = state.journal.as_mut() {
        journal.push(RecordedRequest { endpoint: matched.endpoint(), body: matched.body.clone().unwrap_or_default() });
    }
    match shared.faults.take(Service::HubSpot) {
        Some(Injected::Outage) => return error::unavailable(),
        Some(Injected::RateLimited(limit)) => {
            state.stats.rate_limited += 1;
            let policy = if limit.daily { Policy::Daily } else { Policy::TenSecondlyRolling };
            let mut reply = error::rate_limited(policy);
            for (name, value) in state.limiter.exhausted_headers() {
                let value = match (name, &limit) {
                    ("x-hubspot-ratelimit-interval-milliseconds", RateLimit { interval_ms: Some(ms), .. }) => {
                        ms.to_string()
                    }
                    ("x-hubspot-ratelimit-daily-remaining", RateLimit { daily: true, .. }) => "0".to_string(),
                    _ => value,
                };
                reply = reply.with_header(name, value);
            }
            if let Some(value) = limit.retry_after {
                reply = reply.with_header("retry-after", value);
            }
            return reply;
        }
        Some(Injected::Refused { status, retry_after }) => {
            let reply = error::refused(status);
            return match retry_after {
                Some(value) => reply.with_header("retry-after", value),
                None => reply,
            };
        }
        None => {}
    }
    let token = crate::bearer(req.headers);
    if token != Some(state.token.as_str()) {
        return error::unauthorized();
    }
    let now = Instant::now();
    let is_search = matched.operation_id.as_deref() == Some("searchContacts");
    let headers = if is_search {
        if let Err(policy) = state.limiter.admit_search(now) {
            state.stats.rate_limited += 1;
            return error::rate_limited(policy);
        }
        Vec::new()
    } else {
        match state.limiter.admit(now) {
            Ok(admitted) => {
                state.stats.peak_in_window = state.limiter.peak;
                state.limiter.headers(admitted)
            }
            Err(policy) => {
                state.stats.rate_limited += 1;
                let mut reply = error::rate_limited(policy);
                for (name, value) in state.limiter.exhausted_headers() {
                    reply = reply.with_header(name, value);
                }
                return reply;
            }
        }
    };
    let ctx = Ctx {
        matched: &matched,
        request: format!("{} {}", req.method.to_ascii_uppercase(), req.path),
        now,
        now_ms: time::now_ms(),
        lag: state.lag,
        body_len: req.body.len(),
    };
    let mut reply = match dispatch(&mut state, &ctx) {
        Ok(_) if shared.faults.take_lost(Service::HubSpot, matched.operation_id.as_deref()) => error::unavailable(),
        Ok(reply) | Err(Refusal::Answer(reply)) => reply,
        Err(Refusal::Violation(v)) => {
            state.stats.violations += 1;
            drop(state);
            let reply = violation_reply(&v);
            shared.violations.record(v);
            reply
        }
    };
    for (name, value) in headers {
        reply = reply.with_header(name, value);
    }
    reply
}

/// Every operation of the contract, by `operationId`.
fn dispatch(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let op = ctx.matched.operation_id.as_deref().unwrap_or_default();
    match op {
        "listContacts" => objects::list(state, ctx),
        "createContact" | "createTask" | "createNote" => objects::create(state, ctx),
        "getContact" | "getTask" | "getNote" => objects::get(state, ctx),
        "updateContact" | "updateTask" => objects::update(state, ctx),
        "archiveContact" => objects::archive(state, ctx),
        "mergeContacts" => merge::merge(state, ctx),
        "batchReadContacts" | "batchReadTasks" | "batchReadNotes" => batch::read(state, ctx),
        "batchCreateContacts" | "batchCreateTasks" | "batchCreateNotes" => batch::create(state, ctx),
        "batchUpdateContacts" => batch::update(state, ctx),
        "batchUpsertContacts" => batch::upsert(state, ctx),
        "batchArchiveContacts" => batch::archive(state, ctx),
        "searchContacts" => search::search(state, ctx),
        "listProperties" => Ok(properties::list(state, ctx)),
        "getProperty" => Ok(properties::get(state, ctx)),
        "createProperty" => properties::create(state, ctx).map_err(Refusal::from),
        "listPropertyGroups" => Ok(properties::list_groups(state, ctx)),
        "getPropertyGroup" => Ok(properties::get_group(state, ctx)),
        "createPropertyGroup" => Ok(properties::create_group(state, ctx)),
        "listOwners" => owners::list(state, ctx),
        "getOwner" => owners::get(state, ctx),
        "getList" => lists::get(state, ctx),
        "getListMemberships" => lists::memberships(state, ctx),
        "completeCallback" => callbacks::complete(state, ctx),
        "completeCallbacks" => callbacks::complete_batch(state, ctx),
        _ => Err(Violation::new(
            ViolationKind::NotSimulated,
            ctx.request.clone(),
            ctx.matched.operation_id.clone(),
            format!("linehub-sandbox does not simulate {op}"),
        )
        .into()),
    }
}

/// Sets up and inspects the HubSpot simulator from tests, as a HubSpot user would in the UI:
/// no rate limits, no statistics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HubSpotControl {
    pub(crate) shared: Arc<Shared>,
}

fn contact_of(r: &Record) -> Contact {
    Contact { id: r.id.to_string(), properties: r.values.clone(), archived: r.archived }
}

fn activity_of(r: &Record) -> Activity {
    Activity {
        id: r.id.to_string(),
        properties: r.values.clone(),
        associations: r.associations.clone(),
        archived: r.archived,
    }
}

impl HubSpotControl {
    fn state(&self) -> std::sync::MutexGuard<'_, HubSpotState> {
        lock(&self.shared.hubspot)
    }

    /// Every contact, archived ones included, in id order.
    pub fn contacts(&self) -> Vec<Contact> {
        self.state().contacts.records.values().map(contact_of).collect()
    }

    /// One contact by id (archived or not); a merged contact's id gives the survivor.
    pub fn contact(&self, id: &str) -> Option<Contact> {
        let id = id.parse::<u64>().ok()?;
        let state = self.state();
        state.contacts.records.get(&state.contacts.survivor(id)).map(contact_of)
    }

    /// Merges contact `merged` into `primary`, as a HubSpot user would in the UI (earlier merges
    /// followed); returns the survivor's id.
    pub fn merge_contacts(&self, primary: &str, merged: &str) -> Result<String, ControlError> {
        let mut state = self.state();
        let lag = state.lag;
        merge::merge_contacts(&mut state, primary, merged, Instant::now(), time::now_ms(), lag)
            .map(|id| id.to_string())
            .map_err(|refusal| match refusal {
                store::MergeRefusal::SameRecord => ControlError::Refused(format!("cannot merge {primary} with itself")),
                store::MergeRefusal::Unknown(id) => ControlError::UnknownRecord { object: "contact", id },
            })
    }

    /// Every contact merge (API or [`HubSpotControl::merge_contacts`]), oldest first.
    pub fn merges(&self) -> Vec<ContactMerge> {
        self.state().merges.clone()
    }

    /// The live contact with this email (compared without case).
    pub fn contact_by_email(&self, email: &str) -> Option<Contact> {
        let state = self.state();
        let id = state.contacts.find(email, Some("email"), false).ok()??;
        state.contacts.records.get(&id).map(contact_of)
    }

    /// Live contacts whose property `name` equals `value` (email without case).
    pub fn find_by_property(&self, name: &str, value: &str) -> Vec<Contact> {
        let wanted = if name == "email" { value.to_lowercase() } else { value.to_string() };
        self.state()
            .contacts
            .records
            .values()
            .filter(|r| !r.archived && r.values.get(name) == Some(&wanted))
            .map(contact_of)
            .collect()
    }

    fn write(&self, id: Option<u64>, properties: &[(&str, &str)]) -> Result<u64, ControlError> {
        let mut state = self.state();
        let owners = state.owner_ids();
        let lag = state.lag;
        let raw: Map<String, Value> = properties.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let store = &mut state.contacts;
        let existing = match id {
            Some(id) => {
                Some(store.live(id).ok_or(ControlError::UnknownRecord { object: "contact", id: id.to_string() })?)
            }
            None => None,
        };
        let changes =
            store.prepare(&raw, existing, &owners).map_err(|p| ControlError::Refused(error::problems_message(&p)))?;
        if let Some(c) = store.conflict(&changes, id, &[]) {
            return Err(ControlError::Refused(c.message(ObjectKind::Contacts)));
        }
        let (now, now_ms) = (Instant::now(), time::now_ms());
        Ok(match id {
            Some(id) => {
                store.update(id, changes, now, now_ms, lag);
                id
            }
            None => store.create(changes, Vec::new(), now, now_ms, lag),
        })
    }

    /// Creates a contact (checked like the API would); returns its id.
    pub fn create_contact(&self, properties: &[(&str, &str)]) -> Result<String, ControlError> {
        self.write(None, properties).map(|id| id.to_string())
    }

    /// Edits a live contact, as a user would in the UI.
    pub fn update_contact(&self, id: &str, properties: &[(&str, &str)]) -> Result<(), ControlError> {
        let id =
            id.parse::<u64>().map_err(|_| ControlError::UnknownRecord { object: "contact", id: id.to_string() })?;
        self.write(Some(id), properties).map(|_| ())
    }

    /// Archives a contact, as a user deleting it in the UI.
    pub fn delete_contact(&self, id: &str) -> Result<(), ControlError> {
        let mut state = self.state();
        let lag = state.lag;
        let archived = id.parse::<u64>().is_ok_and(|n| {
            let n = state.contacts.survivor(n);
            state.contacts.archive(n, Instant::now(), time::now_ms(), lag)
        });
        if archived { Ok(()) } else { Err(ControlError::UnknownRecord { object: "contact", id: id.to_string() }) }
    }

    /// A contact property definition by name.
    pub fn contact_property(&self, name: &str) -> Option<PropertyInfo> {
        self.state().contacts.props.defs.get(name).cloned()
    }

    /// Replaces the option values of an enumeration property, as an admin editing it in
    /// HubSpot's settings would (labels equal values). Errors when there is no such property.
    pub fn set_property_options(&self, name: &str, values: &[&str]) -> Result<(), ControlError> {
        let mut state = self.state();
        let def = state
            .contacts
            .props
            .defs
            .get_mut(name)
            .ok_or_else(|| ControlError::UnknownRecord { object: "property", id: name.to_string() })?;
        def.options =
            values.iter().map(|v| properties::PropertyOption { label: v.to_string(), value: v.to_string() }).collect();
        Ok(())
    }

    /// Deletes a contact property, as an admin could in HubSpot's settings; records keep no
    /// value for it. Errors when there is no such property.
    pub fn delete_property(&self, name: &str) -> Result<(), ControlError> {
        let mut state = self.state();
        state
            .contacts
            .props
            .defs
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| ControlError::UnknownRecord { object: "property", id: name.to_string() })
    }

    /// Adds an owner; returns the owner `id` (what `hubspot_owner_id` takes).
    pub fn add_owner(&self, spec: OwnerSpec) -> String {
        let mut state = self.state();
        let n = state.owners.len() as u64;
        let owner = Owner {
            id: (50_001 + n).to_string(),
            user_id: 1_000_001 + n,
            email: spec.email,
            first_name: spec.first_name,
            last_name: spec.last_name,
            created_ms: time::now_ms(),
        };
        let id = owner.id.clone();
        state.owners.push(owner);
        id
    }

    /// Every owner.
    pub fn owners(&self) -> Vec<Owner> {
        self.state().owners.clone()
    }

    /// Every task, in id order.
    pub fn tasks(&self) -> Vec<Activity> {
        self.state().tasks.records.values().map(activity_of).collect()
    }

    /// Every note, in id order.
    pub fn notes(&self) -> Vec<Activity> {
        self.state().notes.records.values().map(activity_of).collect()
    }

    /// Every completed workflow-action callback, in completion order, with its attempt count.
    pub fn callbacks(&self) -> Vec<CallbackCompletion> {
        self.state().callbacks.all()
    }

    /// Every well-formed completion request, oldest first, with the status it was answered:
    /// each completion linehub made is here, repeats included.
    pub fn completion_requests(&self) -> Vec<CompletionRequest> {
        self.state().callbacks.requests()
    }

    /// One callback's completion, if it was completed.
    pub fn callback(&self, callback_id: &str) -> Option<CallbackCompletion> {
        self.state().callbacks.get(callback_id).cloned()
    }

    /// Lets a workflow-action execution expire before it is completed (its
    /// `hs_expiration_duration` passed): completing `callback_id` is refused from now on.
    pub fn expire_callback(&self, callback_id: &str) {
        self.state().callbacks.expire(callback_id);
    }

    /// Makes HubSpot forget a workflow-action callback, as when its workflow or action is
    /// deleted before it is completed: completing `callback_id` answers 404 from now on.
    pub fn forget_callback(&self, callback_id: &str) {
        self.state().callbacks.forget(callback_id);
    }

    /// Creates a contact list with these member contact ids; returns its list id.
    pub fn add_list(&self, name: &str, members: &[&str]) -> Result<String, ControlError> {
        let mut state = self.state();
        let mut ids = Vec::new();
        for m in members {
            match m.parse::<u64>().ok().filter(|id| state.contacts.records.contains_key(id)) {
                Some(id) => ids.push(id),
                None => {
                    return Err(ControlError::UnknownRecord { object: "contact", id: m.to_string() });
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let now_ms = time::now_ms();
        let id = state.next_list_id;
        state.next_list_id += 1;
        state.lists.insert(
            id,
            lists::List {
                id,
                name: name.to_string(),
                members: ids.into_iter().map(|m| (m, now_ms)).collect(),
                created_ms: now_ms,
            },
        );
        Ok(id.to_string())
    }

    /// Starts keeping the body of every on-contract request (refused ones included) from now
    /// on, forgetting any kept before; see [`HubSpotControl::recorded_requests`].
    pub fn record_requests(&self) {
        self.state().journal = Some(Vec::new());
    }

    /// The requests kept since [`HubSpotControl::record_requests`], oldest first (none if it
    /// was not called).
    pub fn recorded_requests(&self) -> Vec<RecordedRequest> {
        self.state().journal.clone().unwrap_or_default()
    }

    /// Request statistics so far.
    pub fn stats(&self) -> HubSpotStats {
        self.state().stats.clone()
    }

    /// Forgets the statistics (not the rate-limit windows), e.g. between benchmark phases.
    pub fn reset_stats(&self) {
        let mut state = self.state();
        let burst_limit = state.stats.burst_limit;
        state.stats = HubSpotStats { burst_limit, ..HubSpotStats::default() };
        state.limiter.peak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of the contract is simulated, and no operation panics on a bare request.
    #[test]
    fn every_contract_operation_is_dispatched() {
        let mut state = HubSpotState::new(&SandboxConfig::default());
        for (method, template, op) in specs::hubspot().operations() {
            let path_params = template
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(|name| {
                    let value = if name == "objectType" { "contacts" } else { "1" };
                    (name.to_string(), value.to_string())
                })
                .collect();
            let matched = Matched {
                operation_id: op.clone(),
                method: method.clone(),
                template: template.clone(),
                path_params,
                query: Vec::new(),
                body: None,
            };
            let ctx = Ctx {
                matched: &matched,
                request: format!("{method} {template}"),
                now: Instant::now(),
                now_ms: 0,
                lag: Duration::ZERO,
                body_len: 0,
            };
            if let Err(Refusal::Violation(v)) = dispatch(&mut state, &ctx) {
                assert_ne!(v.kind, ViolationKind::NotSimulated, "{v}");
            }
        }
    }
}
