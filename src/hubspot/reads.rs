//! Reads pipeline steps make: a list's members a page at a time, and contacts by id.
//!
//! Reads share the portal's client, so they count against the same rate limiter as the writer.
//! Nothing here writes: a step that wants to change a contact queues an outbox row.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use super::api;
use super::client::HubSpotClient;
use super::error::HubSpotError;

/// One page of a list's members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembersPage {
    /// Contact record ids, ascending.
    pub record_ids: Vec<String>,
    /// The cursor of the next page; `None` on the last.
    pub after: Option<String>,
    /// Members in the whole list, when HubSpot says.
    pub total: Option<u64>,
}

/// A contact as read: its id and the requested properties that have a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactRead {
    /// The record id.
    pub id: String,
    /// Requested properties with a value.
    pub properties: BTreeMap<String, String>,
}

/// `GET /crm/v3/lists/{list_id}/memberships?after=&limit=`.
pub async fn list_members(
    client: &HubSpotClient,
    list_id: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<MembersPage, HubSpotError> {
    let mut query = vec![("limit", limit.clamp(1, api::LIST_PAGE_LIMIT).to_string())];
    if let Some(after) = after {
        query.push(("after", after.to_string()));
    }
    let path = format!("{}/{list_id}/memberships", api::LISTS);
    let reply = client.send(Method::GET, &path, &query, None).await?;
    let record_ids = reply.body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| match &r["recordId"] {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect();
    let after = reply.body["paging"]["next"]["after"].as_str().map(str::to_string);
    Ok(MembersPage { record_ids, after, total: reply.body["total"].as_u64() })
}

/// `POST /crm/v3/objects/contacts/batch/read` of at most 100 `ids` with `properties`; contacts
/// that do not exist (any more) are left out.
pub async fn contacts(
    client: &HubSpotClient,
    ids: &[String],
    properties: &[String],
) -> Result<Vec<ContactRead>, HubSpotError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let inputs: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
    let body = json!({ "properties": properties, "inputs": inputs });
    let reply = client.send(Method::POST, &format!("{}/batch/read", api::CONTACTS), &[], Some(&body)).await?;
    Ok(reply.body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let id = r["id"].as_str()?.to_string();
            let properties = r["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| v.as_str().filter(|s| !s.is_empty()).map(|s| (k.clone(), s.to_string())))
                .collect();
            Some(ContactRead { id, properties })
        })
        .collect())
}
