//! Contact merges (`POST /crm/v3/objects/contacts/merge`), and what a merge leaves behind.
//!
//! The primary contact survives with its id. Values it lacks are taken from the merged contact,
//! whose email becomes one of its additional emails (`hs_additional_emails`, still taken) and
//! whose id joins `hs_merged_object_ids`. The merged id then keeps answering: reads, updates and
//! batch reads or updates by it act on the survivor and answer with the survivor's id, and a
//! lookup by its old email finds the survivor. Tasks, notes and list memberships of the merged
//! contact move to the survivor. A contact merged with itself is 400, an unknown id 404.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error;
use super::store::{MergeRefusal, ObjectKind};
use super::{Ctx, HubSpotState, Refusal};
use crate::reply::Reply;

/// One merge, as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactMerge {
    /// The contact that survived (after following earlier merges).
    pub primary_id: String,
    /// The contact merged into it, whose id now stands for the survivor.
    pub merged_id: String,
}

/// Merges contact `other` into `primary` (ids as requested, earlier merges followed); returns
/// the survivor's id.
pub(crate) fn merge_contacts(
    state: &mut HubSpotState,
    primary: &str,
    other: &str,
    now: tokio::time::Instant,
    now_ms: i64,
    lag: std::time::Duration,
) -> Result<u64, MergeRefusal> {
    let resolve = |key: &str| -> Result<u64, MergeRefusal> {
        let id = key.parse::<u64>().map_err(|_| MergeRefusal::Unknown(key.to_string()))?;
        let id = state.contacts.survivor(id);
        state.contacts.live(id).map(|_| id).ok_or_else(|| MergeRefusal::Unknown(key.to_string()))
    };
    let (survivor, gone) = (resolve(primary)?, resolve(other)?);
    state.contacts.merge(survivor, gone, now, now_ms, lag)?;
    let (from, to) = (gone.to_string(), survivor.to_string());
    for kind in [ObjectKind::Tasks, ObjectKind::Notes] {
        for record in state.store_mut(kind).records.values_mut() {
            for link in record.associations.iter_mut().filter(|a| a.to_object == "contacts" && a.to_id == from) {
                link.to_id = to.clone();
            }
        }
    }
    for list in state.lists.values_mut() {
        if let Some(pos) = list.members.iter().position(|(m, _)| *m == gone) {
            let (_, joined) = list.members.remove(pos);
            if !list.members.iter().any(|(m, _)| *m == survivor) {
                list.members.push((survivor, joined));
                list.members.sort_unstable();
            }
        }
    }
    state.merges.push(ContactMerge { primary_id: to, merged_id: from });
    Ok(survivor)
}

/// `POST /crm/v3/objects/contacts/merge` → 200 with the survivor, as a read returns it.
pub(crate) fn merge(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let body = ctx.body();
    let primary = body["primaryObjectId"].as_str().unwrap_or_default();
    let other = body["objectIdToMerge"].as_str().unwrap_or_default();
    match merge_contacts(state, primary, other, ctx.now, ctx.now_ms, ctx.lag) {
        Ok(id) => {
            let store = &state.contacts;
            Ok(Reply::json(StatusCode::OK, store.to_json(&store.records[&id], None)))
        }
        Err(MergeRefusal::SameRecord) => {
            Ok(error::validation(&format!("Cannot merge contact {primary} with itself ({other}).")))
        }
        Err(MergeRefusal::Unknown(id)) => Ok(error::not_found(&format!("No contact with id {id} was found."))),
    }
}
