//! Making sure the `LINE` property group, each account's contact properties and the shared link
//! token property exist.
//!
//! Runs at start and whenever an account is added; idempotent: it reads what exists and creates
//! only what is missing, and a 409 from a concurrent creator counts as "exists".

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use super::api;
use super::client::HubSpotClient;
use super::error::HubSpotError;
use crate::sync::properties::{
    Field, GROUP_LABEL, GROUP_NAME, Kind, LINK_TOKEN, LINK_TOKEN_DESCRIPTION, LINK_TOKEN_LABEL, NO, YES,
};

/// The HubSpot definition of `field` for account `account` with serial `serial`.
pub fn definition(field: Field, serial: i64, account: &str) -> Value {
    let (kind, field_type) = match field.kind() {
        Kind::Text => ("string", "text"),
        Kind::LongText => ("string", "textarea"),
        Kind::YesNo => ("enumeration", "select"),
        Kind::Date => ("date", "date"),
    };
    let mut def = json!({
        "name": field.name(serial),
        "label": field.label(serial),
        "type": kind,
        "fieldType": field_type,
        "groupName": GROUP_NAME,
        "description": field.description(account),
    });
    if field.kind() == Kind::YesNo {
        def["options"] = json!([
            { "label": YES, "value": YES, "displayOrder": 0 },
            { "label": NO, "value": NO, "displayOrder": 1 },
        ]);
    }
    def
}

/// The HubSpot definition of the link token property: single-line text, one for all accounts.
pub fn link_token_definition() -> Value {
    json!({
        "name": LINK_TOKEN,
        "label": LINK_TOKEN_LABEL,
        "type": "string",
        "fieldType": "text",
        "groupName": GROUP_NAME,
        "description": LINK_TOKEN_DESCRIPTION,
    })
}

/// Creates the group, the link token property and any missing property of `accounts` (id,
/// serial). Returns how many properties were created.
pub async fn ensure(client: &HubSpotClient, accounts: &[(String, i64)]) -> Result<usize, HubSpotError> {
    let group_path = format!("{}/{GROUP_NAME}", api::CONTACT_PROPERTY_GROUPS);
    match client.send(Method::GET, &group_path, &[], None).await {
        Ok(_) => {}
        Err(HubSpotError::NotFound(_)) => {
            let body = json!({ "name": GROUP_NAME, "label": GROUP_LABEL, "displayOrder": -1 });
            match client.send(Method::POST, api::CONTACT_PROPERTY_GROUPS, &[], Some(&body)).await {
                Ok(_) | Err(HubSpotError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    let existing = client.send(Method::GET, api::CONTACT_PROPERTIES, &[], None).await?;
    let have: HashSet<&str> = existing.body["results"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    let shared = std::iter::once((LINK_TOKEN.to_string(), link_token_definition()));
    let per_account = accounts.iter().flat_map(|(account, serial)| {
        Field::ALL.into_iter().map(move |field| (field.name(*serial), definition(field, *serial, account)))
    });
    let mut created = 0;
    for (name, def) in shared.chain(per_account) {
        if have.contains(name.as_str()) {
            continue;
        }
        match client.send(Method::POST, api::CONTACT_PROPERTIES, &[], Some(&def)).await {
            Ok(_) => created += 1,
            Err(HubSpotError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}
