//! The admin HTTP API under `/_sandbox/`: the control handles, for tests in another process.
//!
//! A crash test runs the real daemon binary against `linehub sandbox --listen ADDR`; it cannot
//! call [`crate::Sandbox`] methods, so each control operation has a route here. Bodies are JSON in
//! camelCase; mistakes answer `{"error": "…"}` with 400/404/409. No authentication: the sandbox
//! is a test fixture and must only listen on a loopback address.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ControlError;
use crate::faults::{FaultControl, Outage, RateLimit, Service};
use crate::hubspot::{HubSpotControl, OwnerSpec};
use crate::line::login::{LoginChannelSpec, LoginConsent};
use crate::line::{ChannelSpec, LineControl, Profile};
use crate::lock;
use crate::server::Shared;

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match self {
            ControlError::UnknownChannel(_)
            | ControlError::UnknownFriend { .. }
            | ControlError::UnknownRecord { .. } => StatusCode::NOT_FOUND,
            ControlError::DuplicateChannel(_) => StatusCode::CONFLICT,
            ControlError::InvalidUserId(_) | ControlError::InvalidSpec(_) | ControlError::Refused(_) => {
                StatusCode::BAD_REQUEST
            }
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// The extractor every admin handler takes.
type AppState = State<Arc<Shared>>;

fn line(shared: &Arc<Shared>) -> LineControl {
    LineControl { shared: shared.clone() }
}

fn hubspot(shared: &Arc<Shared>) -> HubSpotControl {
    HubSpotControl { shared: shared.clone() }
}

/// The admin routes; the server adds the simulators as the fallback.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sandbox/health", get(health))
        .route("/_sandbox/line/channels", post(add_channel).get(list_channels))
        .route("/_sandbox/line/friends", post(add_friend).get(list_friends))
        .route("/_sandbox/line/messages", get(sent_messages))
        .route("/_sandbox/line/login-channels", post(add_login_channel).get(list_login_channels))
        .route("/_sandbox/line/logins", post(script_login).get(logins))
        .route("/_sandbox/liff/{liff_id}/session", post(liff_session))
        .route("/_sandbox/hubspot/contacts", get(contacts).post(create_contact))
        .route("/_sandbox/hubspot/contacts/{id}", delete(delete_contact))
        .route("/_sandbox/hubspot/merges", get(merges).post(merge_contacts))
        .route("/_sandbox/hubspot/tasks", get(tasks))
        .route("/_sandbox/hubspot/notes", get(notes))
        .route("/_sandbox/hubspot/callbacks", get(callbacks))
        .route("/_sandbox/hubspot/callbacks/requests", get(completion_requests))
        .route("/_sandbox/hubspot/owners", post(add_owner))
        .route("/_sandbox/hubspot/lists", post(add_list))
        .route("/_sandbox/hubspot/stats", get(stats))
        .route("/_sandbox/faults", post(set_fault))
        .route("/_sandbox/violations", get(violations).delete(take_violations))
}

/// `GET /_sandbox/health` → 200 `{"status":"ok","lineChannels","hubspotContacts","violations"}`;
/// a launcher polls it to know the sandbox is up.
async fn health(State(shared): AppState) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "lineChannels": line(&shared).channels().len(),
        "hubspotContacts": hubspot(&shared).contacts().len(),
        "violations": shared.violations.all().len(),
    }))
}

/// `POST /_sandbox/line/channels` with a [`ChannelSpec`] (`accessToken`, `channelSecret`
/// required; `botUserId`, `basicId`, `displayName`, `verified`, `monthlyQuota` optional) → 201
/// with the full spec, generated fields filled in.
async fn add_channel(State(shared): AppState, Json(spec): Json<ChannelSpec>) -> Response {
    match line(&shared).add_channel(spec.clone()) {
        Ok(_) => (StatusCode::CREATED, Json(spec)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /_sandbox/line/channels` → every registered channel.
async fn list_channels(State(shared): AppState) -> Json<Vec<ChannelSpec>> {
    Json(line(&shared).channels())
}

/// Body of `POST /_sandbox/line/friends`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FriendRequest {
    /// Access token or bot user id of the channel.
    channel: String,
    /// The friend's user id; a random one when absent.
    user_id: Option<String>,
    #[serde(flatten)]
    profile: Profile,
    /// Add the friend in the blocked state.
    #[serde(default)]
    blocked: bool,
}

/// `POST /_sandbox/line/friends` `{channel, userId?, displayName, pictureUrl?, statusMessage?,
/// language?, blocked?}` → 201 `{"userId"}`. Re-adding a friend updates the profile and sets
/// the blocked state as given (so `blocked: true` on an existing friend is a block).
async fn add_friend(State(shared): AppState, Json(req): Json<FriendRequest>) -> Response {
    let control = line(&shared);
    let user_id = req.user_id.unwrap_or_else(crate::line::webhook::random_user_id);
    let result = control
        .add_friend(&req.channel, &user_id, req.profile)
        .and_then(|()| if req.blocked { control.block(&req.channel, &user_id) } else { Ok(()) });
    match result {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "userId": user_id }))).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Query of `GET /_sandbox/line/friends`.
#[derive(Debug, Deserialize)]
struct ChannelQuery {
    channel: String,
}

/// `GET /_sandbox/line/friends?channel=TOKEN_OR_BOT_ID` → the channel's friends.
async fn list_friends(State(shared): AppState, Query(q): Query<ChannelQuery>) -> Response {
    match line(&shared).friends(&q.channel) {
        Ok(friends) => Json(friends).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /_sandbox/line/messages` → every accepted send (push, multicast, reply, broadcast),
/// oldest first, with recipients actually reached.
async fn sent_messages(State(shared): AppState) -> Response {
    Json(line(&shared).sent_messages()).into_response()
}

/// `POST /_sandbox/line/login-channels` with a [`LoginChannelSpec`] (`channelId`,
/// `channelSecret`, `callbackUrls` required; `linkedBotAccessToken`, `liffIds`,
/// `emailPermission` optional) → 201 with the spec; 400 for a malformed one, 404 for an unknown
/// linked bot, 409 for a channel or LIFF id already registered.
async fn add_login_channel(State(shared): AppState, Json(spec): Json<LoginChannelSpec>) -> Response {
    match line(&shared).add_login_channel(spec.clone()) {
        Ok(()) => (StatusCode::CREATED, Json(spec)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /_sandbox/line/login-channels` → every registered Login channel.
async fn list_login_channels(State(shared): AppState) -> Json<Vec<LoginChannelSpec>> {
    Json(line(&shared).login_channels())
}

/// Body of `POST /_sandbox/line/logins`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScriptedLogin {
    /// The Login channel whose next login this is.
    channel_id: String,
    #[serde(flatten)]
    consent: LoginConsent,
}

/// `POST /_sandbox/line/logins` `{channelId, userId, name, picture?, email?, grantEmail?,
/// addFriend?, deny?}` → 201 `{"userId"}`: queues the user of the channel's next authorization
/// request or LIFF session ([`LineControl::script_login`]).
async fn script_login(State(shared): AppState, Json(req): Json<ScriptedLogin>) -> Response {
    let user_id = req.consent.user_id.clone();
    match line(&shared).script_login(&req.channel_id, req.consent) {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "userId": user_id }))).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /_sandbox/line/logins` → every decided login, oldest first, as
/// `[{channelId, userId, via: "web"|"liff", allowed, becameFriend}]`.
async fn logins(State(shared): AppState) -> Response {
    Json(line(&shared).logins()).into_response()
}

/// `POST /_sandbox/liff/{liffId}/session` → `{idToken, accessToken}`: what the stand-in LIFF
/// SDK's `liff.init` calls (from the page's origin, hence CORS). 404 unknown LIFF id, 409 no
/// login scripted, 403 the scripted user refused.
async fn liff_session(State(shared): AppState, Path(liff_id): Path<String>) -> Response {
    let result = crate::line::login::liff_session(&mut lock(&shared.line), &liff_id);
    let response = match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err((status, message)) => (status, Json(json!({ "error": message }))).into_response(),
    };
    ([("access-control-allow-origin", "*")], response).into_response()
}

/// `GET /_sandbox/hubspot/contacts` → every contact, archived included, with all properties.
async fn contacts(State(shared): AppState) -> Response {
    Json(hubspot(&shared).contacts()).into_response()
}

/// Body of `POST /_sandbox/hubspot/contacts`.
#[derive(Debug, Deserialize)]
struct NewContact {
    properties: BTreeMap<String, String>,
}

/// `POST /_sandbox/hubspot/contacts` `{"properties":{…}}` → 201 `{"id"}`: a contact made by a
/// HubSpot user (values checked as the API would, no rate limit).
async fn create_contact(State(shared): AppState, Json(req): Json<NewContact>) -> Response {
    let pairs: Vec<(&str, &str)> = req.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    match hubspot(&shared).create_contact(&pairs) {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /_sandbox/hubspot/contacts/{id}` → 204: a user deletes (archives) the contact in
/// HubSpot's UI; 404 if there is no live contact with that id.
async fn delete_contact(State(shared): AppState, Path(id): Path<String>) -> Response {
    match hubspot(&shared).delete_contact(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Body of `POST /_sandbox/hubspot/merges`, named as the API names them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MergeRequest {
    primary_object_id: String,
    object_id_to_merge: String,
}

/// `POST /_sandbox/hubspot/merges` `{primaryObjectId, objectIdToMerge}` → 200 `{"id"}` of the
/// survivor: a HubSpot user merges two contacts in the UI. 404 unknown id, 400 same contact.
async fn merge_contacts(State(shared): AppState, Json(req): Json<MergeRequest>) -> Response {
    match hubspot(&shared).merge_contacts(&req.primary_object_id, &req.object_id_to_merge) {
        Ok(id) => Json(json!({ "id": id })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /_sandbox/hubspot/merges` → every contact merge, oldest first, as
/// `[{primaryId, mergedId}]`.
async fn merges(State(shared): AppState) -> Response {
    Json(hubspot(&shared).merges()).into_response()
}

/// `GET /_sandbox/hubspot/tasks` → every task with its associations.
async fn tasks(State(shared): AppState) -> Response {
    Json(hubspot(&shared).tasks()).into_response()
}

/// `GET /_sandbox/hubspot/notes` → every note with its associations.
async fn notes(State(shared): AppState) -> Response {
    Json(hubspot(&shared).notes()).into_response()
}

/// `GET /_sandbox/hubspot/callbacks` → every completed workflow-action callback, in completion
/// order, as `[{callbackId, outputFields, completedAt, attempts}]` ([`crate::CallbackCompletion`]).
async fn callbacks(State(shared): AppState) -> Response {
    Json(hubspot(&shared).callbacks()).into_response()
}

/// `GET /_sandbox/hubspot/callbacks/requests` → every workflow-action completion request, in
/// arrival order, as `[{callbackId, outputFields, at, status}]` ([`crate::CompletionRequest`]):
/// a second completion of one callback shows here even though the first one stands.
async fn completion_requests(State(shared): AppState) -> Response {
    Json(hubspot(&shared).completion_requests()).into_response()
}

/// `POST /_sandbox/hubspot/owners` `{email, firstName, lastName}` → 201 `{"id"}`.
async fn add_owner(State(shared): AppState, Json(spec): Json<OwnerSpec>) -> Response {
    let id = hubspot(&shared).add_owner(spec);
    (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
}

/// Body of `POST /_sandbox/hubspot/lists`.
#[derive(Debug, Deserialize)]
struct NewList {
    name: String,
    members: Vec<String>,
}

/// `POST /_sandbox/hubspot/lists` `{name, members: [contact ids]}` → 201 `{"listId"}`.
async fn add_list(State(shared): AppState, Json(req): Json<NewList>) -> Response {
    let members: Vec<&str> = req.members.iter().map(String::as_str).collect();
    match hubspot(&shared).add_list(&req.name, &members) {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "listId": id }))).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /_sandbox/hubspot/stats` → [`crate::HubSpotStats`]: requests, 429s, violations, per
/// endpoint counts, burst limit and the busiest 10 s window.
async fn stats(State(shared): AppState) -> Response {
    Json(hubspot(&shared).stats()).into_response()
}

/// Body of `POST /_sandbox/faults`, tagged by `fault`.
#[derive(Debug, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
enum FaultRequest {
    /// `{"fault":"outage","service":"hubspot","requests":3}` or `…,"forMs":5000}`.
    Outage {
        service: Service,
        requests: Option<u32>,
        #[serde(rename = "forMs")]
        for_ms: Option<u64>,
    },
    /// `{"fault":"latency","service":"line","ms":250}` (0 removes it).
    Latency { service: Service, ms: u64 },
    /// `{"fault":"rate_limit_storm","service":"hubspot","requests":10}`, optionally with
    /// `"daily":true`, `"retryAfter":"30"` or `"intervalMs":60000` (see [`RateLimit`]).
    RateLimitStorm {
        service: Service,
        requests: u32,
        #[serde(default)]
        daily: bool,
        #[serde(rename = "retryAfter")]
        retry_after: Option<String>,
        #[serde(rename = "intervalMs")]
        interval_ms: Option<u64>,
    },
    /// `{"fault":"lose_responses","service":"line","requests":1}`: carried out, answered as an
    /// outage; with `"operation":"multicast"` only requests of that operation.
    LoseResponses { service: Service, requests: u32, operation: Option<String> },
    /// `{"fault":"clear","service":"line"}`, or without `service` to clear both.
    Clear { service: Option<Service> },
}

/// `POST /_sandbox/faults` with a [`FaultRequest`] → 204; an outage without `requests` or
/// `forMs` → 400.
async fn set_fault(State(shared): AppState, Json(req): Json<FaultRequest>) -> Response {
    let faults = FaultControl { shared: shared.clone() };
    match req {
        FaultRequest::Outage { service, requests, for_ms } => match (requests, for_ms) {
            (Some(n), None) => faults.outage(service, Outage::Requests(n)),
            (None, Some(ms)) => faults.outage(service, Outage::For(Duration::from_millis(ms))),
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "an outage needs exactly one of requests or forMs"})),
                )
                    .into_response();
            }
        },
        FaultRequest::Latency { service, ms } => {
            faults.latency(service, Duration::from_millis(ms));
        }
        FaultRequest::RateLimitStorm { service, requests, daily, retry_after, interval_ms } => {
            faults.rate_limit(service, RateLimit { daily, retry_after, interval_ms }, requests);
        }
        FaultRequest::LoseResponses { service, requests, operation: None } => faults.lose_responses(service, requests),
        FaultRequest::LoseResponses { service, requests, operation: Some(op) } => {
            faults.lose_responses_of(service, &op, requests)
        }
        FaultRequest::Clear { service: Some(s) } => faults.clear(s),
        FaultRequest::Clear { service: None } => faults.clear_all(),
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_sandbox/violations` → every contract violation recorded, as
/// `[{kind, request, operation, message, details: [[location, problem]]}]`.
async fn violations(State(shared): AppState) -> Response {
    Json(shared.violations.all()).into_response()
}

/// `DELETE /_sandbox/violations` → the recorded violations, which are then forgotten.
async fn take_violations(State(shared): AppState) -> Response {
    Json(shared.violations.take()).into_response()
}
