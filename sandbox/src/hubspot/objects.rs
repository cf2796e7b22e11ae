//! Single-record operations on contacts, tasks and notes: create, read, update, archive, list.
//!
//! One implementation serves every object type; the differences are data: contacts have unique
//! emails, tasks and notes require `hs_timestamp` and link to contacts inline with association
//! type 204 (task) or 202 (note). Records are addressed by id or, with `?idProperty=`, by email or
//! any property with `hasUniqueValue`. Archived records answer 404 unless `?archived=true` asks
//! for them. Batches are in `batch`.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::error;
use super::store::{Association, Changes, ObjectKind};
use super::{Ctx, HubSpotState, Refusal};
use crate::contract::{Violation, ViolationKind};
use crate::reply::Reply;

/// The association type id HubSpot defines from `kind` to contacts, if any.
fn contact_association_type(kind: ObjectKind) -> Option<u64> {
    match kind {
        ObjectKind::Tasks => Some(204),
        ObjectKind::Notes => Some(202),
        ObjectKind::Contacts => None,
    }
}

/// Checks inline `associations` of a create input found at JSON pointer `at`.
pub(crate) fn associations(
    state: &HubSpotState,
    kind: ObjectKind,
    raw: &Value,
    at: &str,
    ctx: &Ctx<'_>,
) -> Result<Vec<Association>, Refusal> {
    let mut out = Vec::new();
    for (i, a) in raw.as_array().into_iter().flatten().enumerate() {
        let to = a["to"]["id"].as_str().unwrap_or_default();
        for (j, t) in a["types"].as_array().into_iter().flatten().enumerate() {
            let here = format!("{at}/{i}/types/{j}");
            let category = t["associationCategory"].as_str().unwrap_or_default();
            let type_id = t["associationTypeId"].as_u64().unwrap_or_default();
            if category != "HUBSPOT_DEFINED" {
                return Err(Violation::new(
                    ViolationKind::NotSimulated,
                    ctx.request.clone(),
                    ctx.matched.operation_id.clone(),
                    format!("linehub-sandbox simulates only HUBSPOT_DEFINED associations, not {category}"),
                )
                .with_detail(format!("{here}/associationCategory"), category)
                .into());
            }
            let Some(expected) = contact_association_type(kind) else {
                return Err(Violation::new(
                    ViolationKind::NotSimulated,
                    ctx.request.clone(),
                    ctx.matched.operation_id.clone(),
                    format!("linehub-sandbox simulates no associations from {}", kind.path_name()),
                )
                .with_detail(here, format!("associationTypeId {type_id}"))
                .into());
            };
            if type_id != expected {
                return Err(ctx
                    .rule(
                        "wrong association type",
                        vec![(
                            format!("{here}/associationTypeId"),
                            format!(
                                "{type_id} does not link a {} to a contact; HubSpot defines {expected}",
                                kind.upper().to_lowercase()
                            ),
                        )],
                    )
                    .into());
            }
            let exists = to.parse::<u64>().ok().is_some_and(|id| state.contacts.live(id).is_some());
            if !exists {
                return Err(Refusal::Answer(error::validation(&format!(
                    "Association target contact {to} does not exist."
                ))));
            }
            out.push(Association { to_object: "contacts".to_string(), to_id: to.to_string(), type_id: type_id as u32 });
        }
    }
    Ok(out)
}

/// Tasks and notes need `hs_timestamp` on create (documented as required).
pub(crate) fn require_timestamp(kind: ObjectKind, changes: &Changes, at: &str, ctx: &Ctx<'_>) -> Result<(), Violation> {
    let needs = matches!(kind, ObjectKind::Tasks | ObjectKind::Notes);
    if needs && !matches!(changes.get("hs_timestamp"), Some(Some(_))) {
        return Err(ctx.rule(
            &format!("hs_timestamp is required to create {}", kind.path_name()),
            vec![(format!("{at}/hs_timestamp"), "is required but missing".to_string())],
        ));
    }
    Ok(())
}

/// Looks up the record named by the path, honouring `idProperty` and `archived`.
fn locate(state: &HubSpotState, ctx: &Ctx<'_>, archived: bool) -> Result<Option<u64>, Refusal> {
    let kind = ctx.kind();
    let key = ctx.record_key();
    state
        .store(kind)
        .find(key, ctx.matched.query_param("idProperty"), archived)
        .map_err(|m| Refusal::Answer(error::validation(&m)))
}

fn not_found(ctx: &Ctx<'_>) -> Reply {
    error::not_found(&format!("No {} with id {} was found.", ctx.kind().upper().to_lowercase(), ctx.record_key()))
}

/// `POST /crm/v3/objects/{type}`.
pub(crate) fn create(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let kind = ctx.kind();
    let body = ctx.body();
    let owners = state.owner_ids();
    let raw = body["properties"].as_object().cloned().unwrap_or_default();
    let changes =
        state.store(kind).prepare(&raw, None, &owners).map_err(|p| Refusal::Answer(error::invalid_properties(&p)))?;
    require_timestamp(kind, &changes, "/properties", ctx)?;
    let links = associations(state, kind, &body["associations"], "/associations", ctx)?;
    let store = state.store_mut(kind);
    if let Some(c) = store.conflict(&changes, None, &[]) {
        return Ok(error::conflict(&c.message(kind)));
    }
    let id = store.create(changes, links, ctx.now, ctx.now_ms, ctx.lag);
    let record = &store.records[&id];
    Ok(Reply::json(StatusCode::CREATED, store.to_json(record, None)))
}

/// `GET /crm/v3/objects/{type}/{id}`.
pub(crate) fn get(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let Some(id) = locate(state, ctx, ctx.flag("archived"))? else {
        return Ok(not_found(ctx));
    };
    let store = state.store(ctx.kind());
    let requested = ctx.list_param("properties");
    let mut body = store.to_json(&store.records[&id], requested.as_deref());
    if let Some(wanted) = ctx.list_param("associations") {
        if ctx.kind() == ObjectKind::Contacts {
            // A contact's activities: the tasks and notes whose associations point at it.
            let contact_id = id.to_string();
            let mut assoc = serde_json::Map::new();
            for (name, kind) in [("tasks", ObjectKind::Tasks), ("notes", ObjectKind::Notes)] {
                if !wanted.iter().any(|w| w == name) {
                    continue;
                }
                let links: Vec<Value> = state
                    .store(kind)
                    .records
                    .values()
                    .filter(|r| !r.archived && r.associations.iter().any(|a| a.to_id == contact_id))
                    .map(|r| json!({ "id": r.id.to_string(), "type": format!("contact_to_{}", &name[..name.len() - 1]) }))
                    .collect();
                if !links.is_empty() {
                    assoc.insert(name.to_string(), json!({ "results": links }));
                }
            }
            if !assoc.is_empty() {
                body["associations"] = Value::Object(assoc);
            }
        } else {
            let links: Vec<Value> = store.records[&id]
                .associations
                .iter()
                .map(|a| json!({"id": a.to_id, "type": format!("{}_to_contact", ctx.kind().upper().to_lowercase())}))
                .collect();
            if !links.is_empty() {
                body["associations"] = json!({ "contacts": { "results": links } });
            }
        }
    }
    Ok(Reply::json(StatusCode::OK, body))
}

/// `PATCH /crm/v3/objects/{type}/{id}`.
pub(crate) fn update(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let kind = ctx.kind();
    let Some(id) = locate(state, ctx, false)? else {
        return Ok(not_found(ctx));
    };
    let owners = state.owner_ids();
    let raw = ctx.body()["properties"].as_object().cloned().unwrap_or_default();
    let store = state.store_mut(kind);
    let changes = store
        .prepare(&raw, store.records.get(&id), &owners)
        .map_err(|p| Refusal::Answer(error::invalid_properties(&p)))?;
    if let Some(c) = store.conflict(&changes, Some(id), &[]) {
        return Ok(error::conflict(&c.message(kind)));
    }
    store.update(id, changes, ctx.now, ctx.now_ms, ctx.lag);
    Ok(Reply::json(StatusCode::OK, store.to_json(&store.records[&id], None)))
}

/// `DELETE /crm/v3/objects/{type}/{id}`: archives; 204 even when there was nothing to archive.
pub(crate) fn archive(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    if let Some(id) = locate(state, ctx, false)? {
        state.store_mut(ctx.kind()).archive(id, ctx.now, ctx.now_ms, ctx.lag);
    }
    Ok(Reply::empty(StatusCode::NO_CONTENT))
}

/// Cursors are opaque to callers, as HubSpot's are.
pub(crate) fn encode_cursor(n: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("after:{n}"))
}

/// The position a cursor from [`encode_cursor`] stands for.
pub(crate) fn decode_cursor(s: &str) -> Option<u64> {
    let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("after:")?.parse().ok()
}

/// `GET /crm/v3/objects/contacts`: a page of records in id order.
pub(crate) fn list(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let archived = ctx.flag("archived");
    let limit = ctx.matched.query_param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(10);
    let after = match ctx.matched.query_param("after") {
        None => 0,
        Some(c) => decode_cursor(c)
            .ok_or_else(|| Refusal::Answer(error::validation(&format!("Invalid after cursor {c:?}."))))?,
    };
    let store = state.store(ctx.kind());
    let requested = ctx.list_param("properties");
    let matching: Vec<_> = store.records.values().filter(|r| r.archived == archived && r.id > after).collect();
    let results: Vec<Value> = matching.iter().take(limit).map(|r| store.to_json(r, requested.as_deref())).collect();
    let mut body = json!({ "results": results });
    if matching.len() > limit
        && let Some(last) = matching.get(limit - 1)
    {
        body["paging"] = json!({ "next": { "after": encode_cursor(last.id) } });
    }
    Ok(Reply::json(StatusCode::OK, body))
}
