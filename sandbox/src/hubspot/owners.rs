//! Owners: the portal's users that records can be assigned to (`hubspot_owner_id`).
//!
//! `GET /crm/v3/owners` pages through them (filter by `email`), `GET /crm/v3/owners/{ownerId}`
//! reads one by `id` or, with `?idProperty=userId`, by user id. Records are assigned with the
//! owner's `id`, never the `userId`; the property checks enforce that.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error;
use super::objects::{decode_cursor, encode_cursor};
use super::{Ctx, HubSpotState, Refusal};
use crate::reply::Reply;
use crate::time;

/// What a test says about a new owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerSpec {
    /// The user's login email.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
}

/// An owner as the sandbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// The id records are assigned with (`hubspot_owner_id`).
    pub id: String,
    /// The user id (a different number; not valid in `hubspot_owner_id`).
    pub user_id: u64,
    /// Login email.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    #[serde(skip)]
    pub(crate) created_ms: i64,
}

fn to_json(o: &Owner) -> Value {
    json!({
        "id": o.id,
        "email": o.email,
        "type": "PERSON",
        "firstName": o.first_name,
        "lastName": o.last_name,
        "userId": o.user_id,
        "userIdIncludingInactive": o.user_id,
        "createdAt": time::format_iso(o.created_ms),
        "updatedAt": time::format_iso(o.created_ms),
        "archived": false,
        "teams": [],
    })
}

/// `GET /crm/v3/owners`.
pub(crate) fn list(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let limit = ctx.matched.query_param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(100);
    let start = match ctx.matched.query_param("after") {
        None => 0,
        Some(c) => decode_cursor(c)
            .ok_or_else(|| Refusal::Answer(error::validation(&format!("Invalid after cursor {c:?}."))))?
            as usize,
    };
    let email = ctx.matched.query_param("email").map(str::to_lowercase);
    let matching: Vec<&Owner> = if ctx.flag("archived") {
        Vec::new()
    } else {
        state.owners.iter().filter(|o| email.as_ref().is_none_or(|e| o.email.to_lowercase() == *e)).collect()
    };
    let results: Vec<Value> = matching.iter().skip(start).take(limit).map(|o| to_json(o)).collect();
    let mut body = json!({ "results": results });
    if start + limit < matching.len() {
        body["paging"] = json!({ "next": { "after": encode_cursor((start + limit) as u64) } });
    }
    Ok(Reply::json(StatusCode::OK, body))
}

/// `GET /crm/v3/owners/{ownerId}`.
pub(crate) fn get(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let key = ctx.matched.path_param("ownerId").unwrap_or_default();
    let by_user = ctx.matched.query_param("idProperty") == Some("userId");
    let found = state.owners.iter().find(|o| if by_user { o.user_id.to_string() == key } else { o.id == key });
    match found {
        Some(o) if !ctx.flag("archived") => Ok(Reply::json(StatusCode::OK, to_json(o))),
        _ => Ok(error::not_found(&format!("No owner with id {key} was found."))),
    }
}
