//! Lists (v3, ILS ids): a list's definition and its members, as segments built in HubSpot's UI.
//!
//! Tests create lists through the control API (a user building a segment); the daemon reads them
//! with `GET /crm/v3/lists/{listId}` and pages members with
//! `GET /crm/v3/lists/{listId}/memberships?after=&limit=` (default 100, max 250, ascending
//! record id, opaque `after` cursors). `before` (descending pages) is not simulated.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error;
use super::objects::{decode_cursor, encode_cursor};
use super::{Ctx, HubSpotState, Refusal};
use crate::contract::{Violation, ViolationKind};
use crate::reply::Reply;
use crate::time;

/// A contact list with its members (contact record ids, ascending) and when each joined.
#[derive(Debug, Clone)]
pub(crate) struct List {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) members: Vec<(u64, i64)>,
    pub(crate) created_ms: i64,
}

fn find<'a>(state: &'a HubSpotState, ctx: &Ctx<'_>) -> Option<&'a List> {
    let id = ctx.matched.path_param("listId")?.parse::<u64>().ok()?;
    state.lists.get(&id)
}

fn missing(ctx: &Ctx<'_>) -> Reply {
    error::not_found(&format!("List does not exist with ID {}.", ctx.matched.path_param("listId").unwrap_or_default()))
}

/// `GET /crm/v3/lists/{listId}`.
pub(crate) fn get(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let Some(list) = find(state, ctx) else {
        return Ok(missing(ctx));
    };
    Ok(Reply::json(
        StatusCode::OK,
        json!({ "list": {
            "listId": list.id.to_string(),
            "listVersion": 1,
            "name": list.name,
            "objectTypeId": "0-1",
            "processingType": "MANUAL",
            "processingStatus": "COMPLETE",
            "size": list.members.len(),
            "createdAt": time::format_iso(list.created_ms),
            "updatedAt": time::format_iso(list.created_ms),
        }}),
    ))
}

/// `GET /crm/v3/lists/{listId}/memberships`.
pub(crate) fn memberships(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    if ctx.matched.query_param("before").is_some() {
        return Err(Violation::new(
            ViolationKind::NotSimulated,
            ctx.request.clone(),
            ctx.matched.operation_id.clone(),
            "linehub-sandbox does not simulate descending membership pages (before=)",
        )
        .into());
    }
    let Some(list) = find(state, ctx) else {
        return Ok(missing(ctx));
    };
    let limit = ctx.matched.query_param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(100);
    let start = match ctx.matched.query_param("after") {
        None => 0,
        Some(c) => decode_cursor(c)
            .ok_or_else(|| Refusal::Answer(error::validation(&format!("Invalid after cursor {c:?}."))))?
            as usize,
    };
    let results: Vec<Value> = list
        .members
        .iter()
        .skip(start)
        .take(limit)
        .map(|(id, at)| json!({ "recordId": id.to_string(), "membershipTimestamp": time::format_iso(*at) }))
        .collect();
    let mut body = json!({ "results": results, "total": list.members.len() });
    if start + limit < list.members.len() {
        body["paging"] = json!({ "next": { "after": encode_cursor((start + limit) as u64) } });
    }
    Ok(Reply::json(StatusCode::OK, body))
}
