//! The writer's batch plumbing: coalescing outbox rows into one write per key, cutting writes
//! into HubSpot's batch size, and reading the parts of batch answers the writer acts on (ids
//! by email, member errors, associated records).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::hubspot::api;
use crate::store::{Op, OutboxRow};

/// One coalesced write: the rows it came from and what they add up to.
#[derive(Debug, Clone)]
pub(super) struct Group {
    /// The outbox rows merged into it.
    pub(super) ids: Vec<i64>,
    /// The most attempts any of them has had.
    pub(super) attempts: i64,
    /// What they add up to.
    pub(super) op: Op,
}

/// Merges every row of a key into one write, in row order (later values win).
pub(super) fn coalesce(rows: Vec<OutboxRow>) -> Vec<Group> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Group> = HashMap::new();
    for row in rows {
        match groups.get_mut(&row.key) {
            None => {
                order.push(row.key.clone());
                groups.insert(row.key, Group { ids: vec![row.id], attempts: row.attempts, op: row.op });
            }
            Some(g) => {
                g.ids.push(row.id);
                g.attempts = g.attempts.max(row.attempts);
                match (&mut g.op, row.op) {
                    (Op::Contact { properties, create, .. }, Op::Contact { properties: newer, create: c, .. }) => {
                        properties.extend(newer);
                        *create |= c;
                    }
                    (Op::ContactById { properties, .. }, Op::ContactById { properties: newer, .. }) => {
                        properties.extend(newer);
                    }
                    (Op::OwnerTask { summary, .. }, Op::OwnerTask { summary: newer, .. }) => *summary = newer,
                    _ => {}
                }
            }
        }
    }
    order.into_iter().filter_map(|k| groups.remove(&k)).collect()
}

/// The `{"id"}` inputs of the records of `kind` a contact read with `associations=kind` lists.
pub(super) fn associated_ids(contact: &Value, kind: &str) -> Vec<Value> {
    contact["associations"][kind]["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(|id| json!({ "id": id })))
        .collect()
}

/// Contact ids of a batch answer's results, by their (lowercased) email.
pub(super) fn ids_by_email(body: &Value) -> HashMap<String, String> {
    body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["properties"]["email"].as_str()?.to_ascii_lowercase(), r["id"].as_str()?.to_string())))
        .collect()
}

pub(super) fn user_of(op: &Op) -> &str {
    match op {
        Op::Contact { user_id, .. } | Op::OwnerTask { user_id, .. } | Op::LinkLogin { user_id, .. } => user_id,
        Op::ContactById { .. } | Op::SendNote { .. } | Op::CompleteAction { .. } => "",
    }
}

/// Writes by contact id paired with their contact, for `batch/update`.
pub(super) fn by_contact_id(groups: Vec<Group>) -> Vec<(String, Group)> {
    groups.into_iter().filter_map(|g| Some((contact_of(&g.op)?.to_string(), g))).collect()
}

/// The contact a write by contact id goes to.
pub(super) fn contact_of(op: &Op) -> Option<&str> {
    match op {
        Op::ContactById { contact_id, .. } => Some(contact_id),
        _ => None,
    }
}

pub(super) fn props(op: &Op) -> BTreeMap<String, String> {
    match op {
        Op::Contact { properties, .. } | Op::ContactById { properties, .. } => properties.clone(),
        Op::LinkLogin { properties, .. } => properties.clone(),
        Op::OwnerTask { .. } | Op::SendNote { .. } | Op::CompleteAction { .. } => BTreeMap::new(),
    }
}

pub(super) fn chunks<T>(items: Vec<T>) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(api::BATCH_LIMIT).collect());
    }
    out
}

/// One member error of a 207 answer.
pub(super) struct BatchError {
    pub(super) category: String,
    pub(super) message: String,
    /// `context.ids`: the records concerned (batch read/update).
    pub(super) ids: Vec<String>,
    /// `context.objectWriteTraceId`: the inputs concerned (batch create).
    pub(super) trace_ids: Vec<String>,
}

pub(super) fn batch_errors(body: &Value) -> Vec<BatchError> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
    };
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| BatchError {
            category: e["category"].as_str().unwrap_or_default().to_string(),
            message: e["message"].as_str().unwrap_or_default().to_string(),
            ids: strings(&e["context"]["ids"]),
            trace_ids: strings(&e["context"]["objectWriteTraceId"]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact_row(id: i64, user: &str, props: &[(&str, &str)], create: bool) -> OutboxRow {
        let op = Op::Contact {
            user_id: user.into(),
            properties: props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            create,
        };
        OutboxRow { id, key: op.key(), op, attempts: id % 2, next_attempt_at: 0, last_error: None, dead: false }
    }

    #[test]
    fn rows_of_one_contact_coalesce_with_later_values_winning() {
        let groups = coalesce(vec![
            contact_row(1, "U1", &[("line_follow_1", "Yes"), ("line_user_id_1", "U1")], true),
            contact_row(2, "U2", &[("line_follow_1", "Yes")], true),
            contact_row(3, "U1", &[("line_follow_1", "No")], false),
            contact_row(4, "U1", &[("line_follow_2", "Yes")], false),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].ids, [1, 3, 4]);
        assert_eq!(groups[0].attempts, 1);
        let Op::Contact { properties, create, .. } = &groups[0].op else { panic!() };
        assert_eq!(properties["line_follow_1"], "No");
        assert_eq!(properties["line_follow_2"], "Yes");
        assert_eq!(properties["line_user_id_1"], "U1");
        assert!(create);
    }

    #[test]
    fn writes_by_contact_id_coalesce_per_contact_apart_from_writes_by_user() {
        let by_id = |id: i64, contact: &str, value: &str| {
            let op = Op::ContactById {
                contact_id: contact.into(),
                properties: [("linehub_link_token".to_string(), value.to_string())].into(),
            };
            OutboxRow { id, key: op.key(), op, attempts: 0, next_attempt_at: 0, last_error: None, dead: false }
        };
        let groups = coalesce(vec![
            by_id(1, "7", "a"),
            contact_row(2, "7", &[("line_follow_1", "Yes")], false),
            by_id(3, "8", "b"),
            by_id(4, "7", "c"),
        ]);
        assert_eq!(groups.iter().map(|g| g.ids.clone()).collect::<Vec<_>>(), [vec![1, 4], vec![2], vec![3]]);
        assert_eq!(contact_of(&groups[0].op), Some("7"));
        assert_eq!(props(&groups[0].op)["linehub_link_token"], "c");
        assert_eq!(contact_of(&groups[1].op), None);
    }
}
