//! HubSpot's side of a custom workflow action: the request body HubSpot posts to the action's
//! URL when a workflow runs it on an enrolled record.
//!
//! The demo and the tests play HubSpot with it, so one description of the request (the
//! execution's `callbackId`, where it comes from, the enrolled object and the action's input
//! fields) serves every caller, and none of them borrows linehub's own parsing.

use serde_json::{Value, json};

/// The portal id the simulated HubSpot calls from.
pub const PORTAL_ID: u64 = 4_000_001;

/// The body of one action execution for contact `contact_id` with `input_fields` (the action's
/// inputs as the workflow filled them in), keyed by `callback_id`.
pub fn execution_request(callback_id: &str, contact_id: u64, input_fields: Value) -> Value {
    json!({
        "callbackId": callback_id,
        "origin": { "portalId": PORTAL_ID, "actionDefinitionId": 77, "actionDefinitionVersion": 1 },
        "context": { "source": "WORKFLOWS", "workflowId": 12 },
        "object": { "objectId": contact_id, "objectType": "CONTACT", "properties": {} },
        "inputFields": input_fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_execution_names_its_callback_contact_and_inputs() {
        let body = execution_request("ap-1", 501, json!({ "account": "tokyo" }));
        assert_eq!(body["callbackId"], "ap-1");
        assert_eq!(body["object"]["objectId"], 501);
        assert_eq!(body["object"]["objectType"], "CONTACT");
        assert_eq!(body["inputFields"]["account"], "tokyo");
        assert_eq!(body["origin"]["portalId"], PORTAL_ID);
    }
}
