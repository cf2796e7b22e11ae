//! The records of one object type (contacts, tasks or notes), kept the way HubSpot keeps them.
//!
//! - ids are numeric strings, counted per object type (ids repeat across types, as in HubSpot);
//! - every record carries `hs_object_id` and its create/modify dates as properties;
//! - contact emails are unique among live records, compared and stored lower-case; so is every
//!   property with `hasUniqueValue`;
//! - archiving hides a record from reads, writes and search (HubSpot keeps it 90 days);
//! - merging two contacts keeps the primary; the merged id then stands for the survivor in every
//!   lookup, and the merged contact's emails stay taken, by the survivor;
//! - the search index lags: each write becomes visible to search `search_lag` after it happened,
//!   earlier versions stay visible until then.
//!
//! The HTTP operations on top of this are in `objects`; search is in `search`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::properties::{PropertyProblem, PropertyRegistry};
use crate::time;

/// The object types the sandbox keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectKind {
    Contacts,
    Tasks,
    Notes,
}

impl ObjectKind {
    /// The name used in paths (`contacts`).
    pub(crate) fn path_name(self) -> &'static str {
        match self {
            ObjectKind::Contacts => "contacts",
            ObjectKind::Tasks => "tasks",
            ObjectKind::Notes => "notes",
        }
    }

    /// The name used in error messages (`CONTACT`).
    pub(crate) fn upper(self) -> &'static str {
        match self {
            ObjectKind::Contacts => "CONTACT",
            ObjectKind::Tasks => "TASK",
            ObjectKind::Notes => "NOTE",
        }
    }

    pub(crate) fn from_path(s: &str) -> Option<ObjectKind> {
        match s {
            "contacts" => Some(ObjectKind::Contacts),
            "tasks" => Some(ObjectKind::Tasks),
            "notes" => Some(ObjectKind::Notes),
            _ => None,
        }
    }

    /// System properties holding the create and modify dates.
    fn date_properties(self) -> (&'static str, &'static str) {
        match self {
            ObjectKind::Contacts => ("createdate", "lastmodifieddate"),
            ObjectKind::Tasks | ObjectKind::Notes => ("hs_createdate", "hs_lastmodifieddate"),
        }
    }

    /// Properties returned when a read names none.
    fn default_properties(self) -> &'static [&'static str] {
        match self {
            ObjectKind::Contacts => {
                &["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"]
            }
            ObjectKind::Tasks => &[
                "hs_createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
                "hs_task_subject",
                "hs_task_status",
                "hs_timestamp",
            ],
            ObjectKind::Notes => {
                &["hs_createdate", "hs_lastmodifieddate", "hs_object_id", "hs_note_body", "hs_timestamp"]
            }
        }
    }
}

/// A link from a record to a contact, made inline when the record was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Association {
    /// The object type linked to (`contacts`).
    pub to_object: String,
    /// The linked record's id.
    pub to_id: String,
    /// HubSpot's association type id (204 task→contact, 202 note→contact).
    pub type_id: u32,
}

/// What search sees of a record at some moment.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) values: BTreeMap<String, String>,
    pub(crate) archived: bool,
    pub(crate) created_ms: i64,
    pub(crate) updated_ms: i64,
}

/// One record.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) id: u64,
    pub(crate) values: BTreeMap<String, String>,
    pub(crate) created_ms: i64,
    pub(crate) updated_ms: i64,
    pub(crate) archived: bool,
    pub(crate) associations: Vec<Association>,
    /// The version search currently returns (`None`: not indexed yet).
    indexed: Option<Snapshot>,
    /// Versions written but not yet visible to search, with the instant they become visible.
    pending: VecDeque<(Instant, Snapshot)>,
}

impl Record {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            values: self.values.clone(),
            archived: self.archived,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
        }
    }

    /// The version search returns at `now`.
    pub(crate) fn indexed(&mut self, now: Instant) -> Option<&Snapshot> {
        while self.pending.front().is_some_and(|(t, _)| *t <= now) {
            self.indexed = self.pending.pop_front().map(|(_, s)| s);
        }
        self.indexed.as_ref()
    }
}

/// Changes to apply: property → new value (`None` clears).
pub(crate) type Changes = BTreeMap<String, Option<String>>;

/// Another live record already holds a unique value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub(crate) existing: u64,
    pub(crate) property: String,
    pub(crate) value: String,
}

impl Conflict {
    /// HubSpot's 409 message for this conflict.
    pub(crate) fn message(&self, kind: ObjectKind) -> String {
        if kind == ObjectKind::Contacts && self.property == "email" {
            format!("Contact already exists. Existing ID: {}", self.existing)
        } else {
            format!(
                "A {} with {} {:?} already exists. Existing ID: {}",
                kind.upper().to_lowercase(),
                self.property,
                self.value,
                self.existing
            )
        }
    }
}

/// Records and property definitions of one object type.
#[derive(Debug)]
pub(crate) struct ObjectStore {
    pub(crate) kind: ObjectKind,
    pub(crate) props: PropertyRegistry,
    pub(crate) records: BTreeMap<u64, Record>,
    /// Live contacts by email (lower-case): HubSpot's unique index, so lookups by email stay
    /// cheap with a million contacts. Additional emails of merged contacts are in it too.
    emails: HashMap<String, u64>,
    /// Merged record id → the id of the record it was merged into (always a surviving record).
    merged: HashMap<u64, u64>,
    next_id: u64,
}

/// Why two records cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MergeRefusal {
    /// Both ids name the same record.
    SameRecord,
    /// No live record with this id.
    Unknown(String),
}

/// Properties a merge never copies from the merged record: identity, dates, merge bookkeeping.
const NOT_MERGED: [&str; 6] =
    ["hs_object_id", "createdate", "lastmodifieddate", "email", "hs_additional_emails", "hs_merged_object_ids"];

/// Adds `items` to a `;`-joined list value, keeping order and skipping repeats.
fn join_list(current: Option<&String>, items: &[String]) -> String {
    let mut all: Vec<String> = current.map(|c| c.split(';').map(str::to_string).collect()).unwrap_or_default();
    all.retain(|x| !x.is_empty());
    for item in items {
        if !item.is_empty() && !all.contains(item) {
            all.push(item.clone());
        }
    }
    all.join(";")
}

impl ObjectStore {
    pub(crate) fn new(kind: ObjectKind, first_id: u64) -> ObjectStore {
        ObjectStore {
            kind,
            props: PropertyRegistry::seeded(kind),
            records: BTreeMap::new(),
            emails: HashMap::new(),
            merged: HashMap::new(),
            next_id: first_id,
        }
    }

    /// A live (not archived) record by id.
    pub(crate) fn live(&self, id: u64) -> Option<&Record> {
        self.records.get(&id).filter(|r| !r.archived)
    }

    /// Whether `name` identifies records (`hs_object_id`, contact `email`, `hasUniqueValue`).
    pub(crate) fn is_id_property(&self, name: &str) -> bool {
        name == "hs_object_id"
            || (self.kind == ObjectKind::Contacts && name == "email")
            || self.props.defs.get(name).is_some_and(|d| d.has_unique_value)
    }

    fn normalise(&self, property: &str, value: &str) -> String {
        if self.kind == ObjectKind::Contacts && property == "email" {
            value.trim().to_lowercase()
        } else {
            value.to_string()
        }
    }

    /// Finds a record by id or by an identifying property; `archived` picks archived records
    /// instead of live ones. `Err` names a property that does not identify records.
    pub(crate) fn find(&self, key: &str, id_property: Option<&str>, archived: bool) -> Result<Option<u64>, String> {
        let prop = id_property.unwrap_or("hs_object_id");
        if !self.is_id_property(prop) {
            return Err(format!("{prop} is not a unique identifier property for {}", self.kind.path_name()));
        }
        if prop == "hs_object_id" {
            return Ok(key
                .parse::<u64>()
                .ok()
                .map(|id| self.survivor(id))
                .filter(|id| self.records.get(id).is_some_and(|r| r.archived == archived)));
        }
        let wanted = self.normalise(prop, key);
        if self.kind == ObjectKind::Contacts && prop == "email" && !archived {
            return Ok(self.emails.get(&wanted).copied());
        }
        Ok(self.records.values().find(|r| r.archived == archived && r.values.get(prop) == Some(&wanted)).map(|r| r.id))
    }

    /// The record an id stands for: itself, or the survivor of the merge that took it.
    pub(crate) fn survivor(&self, id: u64) -> u64 {
        self.merged.get(&id).copied().unwrap_or(id)
    }

    /// Merges live record `other` into live record `primary`: values `primary` lacks are taken
    /// from `other`, `other`'s emails become `primary`'s additional emails (and stay taken),
    /// `hs_merged_object_ids` lists it, and `other`'s id stands for `primary` from then on.
    pub(crate) fn merge(
        &mut self,
        primary: u64,
        other: u64,
        now: Instant,
        now_ms: i64,
        lag: Duration,
    ) -> Result<(), MergeRefusal> {
        let (primary, other) = (self.survivor(primary), self.survivor(other));
        if primary == other {
            return Err(MergeRefusal::SameRecord);
        }
        for id in [primary, other] {
            if self.live(id).is_none() {
                return Err(MergeRefusal::Unknown(id.to_string()));
            }
        }
        let Some(gone) = self.records.remove(&other) else {
            return Err(MergeRefusal::Unknown(other.to_string()));
        };
        let mut emails: Vec<String> = gone.values.get("email").into_iter().cloned().collect();
        emails
            .extend(gone.values.get("hs_additional_emails").into_iter().flat_map(|e| e.split(';')).map(str::to_string));
        let mut merged_ids = vec![other.to_string()];
        merged_ids
            .extend(gone.values.get("hs_merged_object_ids").into_iter().flat_map(|m| m.split(';')).map(str::to_string));
        let mut taken = Vec::new();
        if let Some(r) = self.records.get_mut(&primary) {
            for (name, value) in &gone.values {
                let lacks = r.values.get(name).is_none_or(String::is_empty);
                if lacks && !NOT_MERGED.contains(&name.as_str()) {
                    r.values.insert(name.clone(), value.clone());
                }
            }
            if r.values.get("email").is_none_or(String::is_empty) && !emails.is_empty() {
                let email = emails.remove(0);
                taken.push(email.clone());
                r.values.insert("email".to_string(), email);
            }
            let additional = join_list(r.values.get("hs_additional_emails"), &emails);
            if !additional.is_empty() {
                r.values.insert("hs_additional_emails".to_string(), additional);
            }
            let ids = join_list(r.values.get("hs_merged_object_ids"), &merged_ids);
            r.values.insert("hs_merged_object_ids".to_string(), ids);
        }
        for email in taken.into_iter().chain(emails) {
            self.emails.insert(email, primary);
        }
        for target in self.merged.values_mut() {
            if *target == other {
                *target = primary;
            }
        }
        self.merged.insert(other, primary);
        self.stamp(primary, now, now_ms, lag);
        Ok(())
    }

    /// Checks raw JSON values (strings, or null to clear) into changes, collecting every problem.
    pub(crate) fn prepare(
        &self,
        raw: &Map<String, Value>,
        existing: Option<&Record>,
        owner_ids: &[String],
    ) -> Result<Changes, Vec<PropertyProblem>> {
        let mut changes = Changes::new();
        let mut problems = Vec::new();
        for (name, value) in raw {
            let current = existing.and_then(|r| r.values.get(name)).map(String::as_str);
            match self.props.check_value(self.kind, name, value.as_str(), current, owner_ids) {
                Ok(v) => {
                    changes.insert(name.clone(), v);
                }
                Err(p) => problems.push(p),
            }
        }
        if problems.is_empty() { Ok(changes) } else { Err(problems) }
    }

    /// The first unique value in `changes` that another live record (not `except`) holds, or
    /// that `claimed` (values taken earlier in the same batch) already holds.
    pub(crate) fn conflict(
        &self,
        changes: &Changes,
        except: Option<u64>,
        claimed: &[(String, String, u64)],
    ) -> Option<Conflict> {
        for (prop, value) in changes {
            let Some(value) = value else { continue };
            if prop == "hs_object_id" || !self.is_id_property(prop) {
                continue;
            }
            let indexed = self.kind == ObjectKind::Contacts && prop == "email";
            let live = if indexed {
                self.emails.get(value).copied().filter(|id| Some(*id) != except)
            } else {
                self.records
                    .values()
                    .find(|r| !r.archived && Some(r.id) != except && r.values.get(prop) == Some(value))
                    .map(|r| r.id)
            };
            let holder = live.or_else(|| {
                claimed.iter().find(|(p, v, id)| p == prop && v == value && Some(*id) != except).map(|(_, _, id)| *id)
            });
            if let Some(existing) = holder {
                return Some(Conflict { existing, property: prop.clone(), value: value.clone() });
            }
        }
        None
    }

    /// The unique values `changes` would take, for in-batch conflict checks.
    pub(crate) fn claims(&self, changes: &Changes, id: u64) -> Vec<(String, String, u64)> {
        changes
            .iter()
            .filter(|(p, _)| *p != "hs_object_id" && self.is_id_property(p))
            .filter_map(|(p, v)| v.as_ref().map(|v| (p.clone(), v.clone(), id)))
            .collect()
    }

    /// The id the next created record will get.
    pub(crate) fn peek_next_id(&self) -> u64 {
        self.next_id
    }

    fn stamp(&mut self, id: u64, now: Instant, now_ms: i64, lag: Duration) {
        let kind = self.kind;
        if let Some(r) = self.records.get_mut(&id) {
            let (created, modified) = kind.date_properties();
            r.updated_ms = now_ms;
            r.values.insert("hs_object_id".into(), id.to_string());
            r.values.entry(created.to_string()).or_insert_with(|| time::format_iso(r.created_ms));
            r.values.insert(modified.to_string(), time::format_iso(now_ms));
            let snap = r.snapshot();
            if lag.is_zero() {
                // Visible at once: keep one indexed copy instead of a queue of versions.
                r.pending.clear();
                r.indexed = Some(snap);
            } else {
                r.indexed(now);
                r.pending.push_back((now + lag, snap));
            }
        }
    }

    /// Keeps the email index in step with a live record's email.
    fn index_email(&mut self, id: u64, old: Option<String>, new: Option<String>) {
        if self.kind != ObjectKind::Contacts || old == new {
            return;
        }
        if let Some(old) = old
            && self.emails.get(&old) == Some(&id)
        {
            self.emails.remove(&old);
        }
        if let Some(new) = new {
            self.emails.insert(new, id);
        }
    }

    /// Creates a record from checked changes; returns its id.
    pub(crate) fn create(
        &mut self,
        changes: Changes,
        associations: Vec<Association>,
        now: Instant,
        now_ms: i64,
        lag: Duration,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let values: BTreeMap<String, String> = changes.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
        self.index_email(id, None, values.get("email").cloned());
        self.records.insert(
            id,
            Record {
                id,
                values,
                created_ms: now_ms,
                updated_ms: now_ms,
                archived: false,
                associations,
                indexed: None,
                pending: VecDeque::new(),
            },
        );
        self.stamp(id, now, now_ms, lag);
        id
    }

    /// Applies checked changes to a live record.
    pub(crate) fn update(&mut self, id: u64, changes: Changes, now: Instant, now_ms: i64, lag: Duration) {
        let mut email = None;
        if let Some(r) = self.records.get_mut(&id) {
            let before = r.values.get("email").cloned();
            for (k, v) in changes {
                match v {
                    Some(v) => r.values.insert(k, v),
                    None => r.values.remove(&k),
                };
            }
            email = Some((before, r.values.get("email").cloned()));
        }
        if let Some((before, after)) = email {
            self.index_email(id, before, after);
        }
        self.stamp(id, now, now_ms, lag);
    }

    /// Archives a live record; false if there was none.
    pub(crate) fn archive(&mut self, id: u64, now: Instant, now_ms: i64, lag: Duration) -> bool {
        match self.records.get_mut(&id) {
            Some(r) if !r.archived => {
                r.archived = true;
                let email = r.values.get("email").cloned();
                let additional: Vec<String> = r
                    .values
                    .get("hs_additional_emails")
                    .map(|a| a.split(';').map(str::to_string).collect())
                    .unwrap_or_default();
                self.index_email(id, email, None);
                for other in additional {
                    self.index_email(id, Some(other), None);
                }
                self.stamp(id, now, now_ms, lag);
                true
            }
            _ => false,
        }
    }

    /// The API form of a record: `{id, properties, createdAt, updatedAt, archived}`.
    /// `requested` names the properties to return (defaults when `None`); requested properties
    /// without a value come back as null, unknown ones are left out, as HubSpot does.
    pub(crate) fn to_json(&self, r: &Record, requested: Option<&[String]>) -> Value {
        snapshot_json(self, &r.snapshot(), r.id, requested)
    }
}

/// The API form of a record version (live or as indexed for search).
pub(crate) fn snapshot_json(store: &ObjectStore, s: &Snapshot, id: u64, requested: Option<&[String]>) -> Value {
    let (created, modified) = store.kind.date_properties();
    let mut names: Vec<String> = match requested {
        Some(list) => list.iter().filter(|n| store.props.defs.contains_key(n.as_str())).cloned().collect(),
        None => store.kind.default_properties().iter().map(|s| s.to_string()).collect(),
    };
    for always in ["hs_object_id", created, modified] {
        if !names.iter().any(|n| n == always) {
            names.push(always.to_string());
        }
    }
    let properties: Map<String, Value> = names
        .into_iter()
        .map(|n| {
            let v = s.values.get(&n).map_or(Value::Null, |v| json!(v));
            (n, v)
        })
        .collect();
    let mut out = json!({
        "id": id.to_string(),
        "properties": properties,
        "createdAt": time::format_iso(s.created_ms),
        "updatedAt": time::format_iso(s.updated_ms),
        "archived": s.archived,
    });
    if s.archived {
        out["archivedAt"] = json!(time::format_iso(s.updated_ms));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(pairs: &[(&str, &str)]) -> Changes {
        pairs.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn search_sees_a_write_only_after_the_lag() {
        let mut store = ObjectStore::new(ObjectKind::Contacts, 100);
        let lag = Duration::from_secs(5);
        let t0 = Instant::now();
        let id = store.create(changes(&[("firstname", "A")]), vec![], t0, 0, lag);
        let r = store.records.get_mut(&id).expect("created");
        assert!(r.indexed(t0).is_none());
        assert!(r.indexed(t0 + lag).is_some());
        store.update(id, changes(&[("firstname", "B")]), t0 + lag, 1, lag);
        let r = store.records.get_mut(&id).expect("still there");
        assert_eq!(r.indexed(t0 + lag).map(|s| s.values["firstname"].clone()), Some("A".into()));
        assert_eq!(r.indexed(t0 + lag * 2).map(|s| s.values["firstname"].clone()), Some("B".into()));
    }

    #[test]
    fn emails_conflict_without_regard_to_case_and_not_with_archived_records() {
        let mut store = ObjectStore::new(ObjectKind::Contacts, 100);
        let now = Instant::now();
        let id = store.create(changes(&[("email", "ann@example.com")]), vec![], now, 0, Duration::ZERO);
        let found = store.find("ANN@example.com", Some("email"), false);
        assert_eq!(found, Ok(Some(id)));
        let c = store.conflict(&changes(&[("email", "ann@example.com")]), None, &[]);
        assert_eq!(
            c.map(|c| c.message(ObjectKind::Contacts)),
            Some(format!("Contact already exists. Existing ID: {id}"))
        );
        store.archive(id, now, 1, Duration::ZERO);
        assert_eq!(store.conflict(&changes(&[("email", "ann@example.com")]), None, &[]), None);
        assert!(store.find("x", Some("firstname"), false).is_err());
    }
}
