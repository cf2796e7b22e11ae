//! Property definitions: what may be written to a record, and in which form.
//!
//! Each object type (contacts, tasks, notes) has its own properties and groups, seeded with the
//! HubSpot defaults linehub touches. Values are checked the way HubSpot documents:
//! - writing a property that is not defined → `PROPERTY_DOESNT_EXIST`;
//! - `enumeration` values must be option values (case-sensitive); `checkbox` takes `;`-joined
//!   values, and a leading `;` appends to the current ones; `hubspot_owner_id` takes owner ids;
//! - `date` takes `YYYY-MM-DD` or epoch ms at midnight UTC (stored as `YYYY-MM-DD`);
//!   `datetime` takes ISO 8601 or epoch ms (stored as ISO);
//! - `number` must parse as a number, `bool` is `true`/`false`, contact `email` must look like
//!   an address and is stored lower-case;
//! - read-only values (`hs_object_id`, `lastmodifieddate`, …) cannot be written;
//! - `""` (or null where allowed) clears a property.
//!
//! The properties API (`/crm/v3/properties/{objectType}[/groups]`) lists, reads and creates
//! definitions, checking the type/fieldType pairing documented for HubSpot.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error;
use super::store::ObjectKind;
use super::{Ctx, HubSpotState};
use crate::contract::Violation;
use crate::reply::Reply;
use crate::time;

/// Most properties with `hasUniqueValue` one object type may have.
const MAX_UNIQUE_PROPERTIES: usize = 10;

/// One option of an enumeration property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyOption {
    /// Shown in HubSpot's UI.
    pub label: String,
    /// What the API reads and writes.
    pub value: String,
}

/// A property definition, as the properties API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyInfo {
    /// Internal name used in API calls.
    pub name: String,
    /// Display label.
    pub label: String,
    /// `string`, `number`, `bool`, `enumeration`, `date` or `datetime`.
    #[serde(rename = "type")]
    pub kind: String,
    /// How HubSpot's UI edits it (`text`, `select`, `date`, …).
    pub field_type: String,
    /// The property group it is shown in.
    pub group_name: String,
    /// Options of an enumeration.
    pub options: Vec<PropertyOption>,
    /// Values must be unique across records; usable as `idProperty`.
    pub has_unique_value: bool,
    /// Defined by HubSpot rather than by an integration.
    pub hubspot_defined: bool,
    /// The value is maintained by HubSpot and cannot be written.
    pub read_only_value: bool,
}

/// A property group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PropertyGroup {
    pub(crate) name: String,
    pub(crate) label: String,
    pub(crate) display_order: i64,
}

/// One value HubSpot would refuse, with its documented error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PropertyProblem {
    pub(crate) name: String,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl PropertyProblem {
    fn new(name: &str, code: &'static str, message: String) -> PropertyProblem {
        PropertyProblem { name: name.to_string(), code, message }
    }
}

/// Definitions and groups of one object type.
#[derive(Debug)]
pub(crate) struct PropertyRegistry {
    pub(crate) defs: BTreeMap<String, PropertyInfo>,
    pub(crate) groups: Vec<PropertyGroup>,
    /// Wall-clock creation time of each definition, for `createdAt`.
    created_ms: BTreeMap<String, i64>,
}

fn def(name: &str, label: &str, kind: &str, field_type: &str, group: &str) -> PropertyInfo {
    PropertyInfo {
        name: name.to_string(),
        label: label.to_string(),
        kind: kind.to_string(),
        field_type: field_type.to_string(),
        group_name: group.to_string(),
        options: Vec::new(),
        has_unique_value: false,
        hubspot_defined: true,
        read_only_value: false,
    }
}

fn options(values: &[&str]) -> Vec<PropertyOption> {
    values.iter().map(|v| PropertyOption { label: v.to_string(), value: v.to_string() }).collect()
}

fn read_only(mut d: PropertyInfo) -> PropertyInfo {
    d.read_only_value = true;
    d
}

fn with_options(mut d: PropertyInfo, values: &[&str]) -> PropertyInfo {
    d.options = options(values);
    d
}

/// The default properties of an object type, as a fresh HubSpot portal has them (the subset
/// linehub reads or writes, plus the system ones every record carries).
fn seed(kind: ObjectKind) -> (Vec<PropertyInfo>, Vec<PropertyGroup>) {
    let group =
        |name: &str, label: &str| PropertyGroup { name: name.to_string(), label: label.to_string(), display_order: -1 };
    match kind {
        ObjectKind::Contacts => {
            let g = "contactinformation";
            let text = |n: &str, l: &str| def(n, l, "string", "text", g);
            let defs = vec![
                text("email", "Email"),
                text("firstname", "First Name"),
                text("lastname", "Last Name"),
                def("phone", "Phone Number", "string", "phonenumber", g),
                def("mobilephone", "Mobile Phone Number", "string", "phonenumber", g),
                text("company", "Company Name"),
                text("jobtitle", "Job Title"),
                text("address", "Street Address"),
                text("city", "City"),
                text("state", "State/Region"),
                text("zip", "Postal Code"),
                text("country", "Country/Region"),
                text("website", "Website URL"),
                def("hubspot_owner_id", "Contact owner", "enumeration", "select", g),
                with_options(
                    def("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", g),
                    &[
                        "subscriber",
                        "lead",
                        "marketingqualifiedlead",
                        "salesqualifiedlead",
                        "opportunity",
                        "customer",
                        "evangelist",
                        "other",
                    ],
                ),
                with_options(
                    def("hs_lead_status", "Lead Status", "enumeration", "radio", g),
                    &[
                        "NEW",
                        "OPEN",
                        "IN_PROGRESS",
                        "OPEN_DEAL",
                        "UNQUALIFIED",
                        "ATTEMPTED_TO_CONTACT",
                        "CONNECTED",
                        "BAD_TIMING",
                    ],
                ),
                def("createdate", "Create Date", "datetime", "date", g),
                read_only(def("lastmodifieddate", "Last Modified Date", "datetime", "date", g)),
                read_only(def("hs_object_id", "Record ID", "number", "number", g)),
                read_only(def("hs_additional_emails", "Additional email addresses", "enumeration", "checkbox", g)),
                read_only(def("hs_merged_object_ids", "Merged record IDs", "enumeration", "checkbox", g)),
            ];
            (defs, vec![group(g, "Contact information")])
        }
        ObjectKind::Tasks => {
            let g = "taskinformation";
            let defs = vec![
                def("hs_timestamp", "Due date", "datetime", "date", g),
                def("hs_task_subject", "Task Title", "string", "text", g),
                def("hs_task_body", "Notes", "string", "html", g),
                def("hubspot_owner_id", "Assigned to", "enumeration", "select", g),
                with_options(
                    def("hs_task_status", "Task Status", "enumeration", "select", g),
                    &["NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"],
                ),
                with_options(
                    def("hs_task_priority", "Priority", "enumeration", "select", g),
                    &["NONE", "LOW", "MEDIUM", "HIGH"],
                ),
                with_options(def("hs_task_type", "Task Type", "enumeration", "select", g), &["EMAIL", "CALL", "TODO"]),
                read_only(def("hs_createdate", "Create date", "datetime", "date", g)),
                read_only(def("hs_lastmodifieddate", "Last modified date", "datetime", "date", g)),
                read_only(def("hs_object_id", "Record ID", "number", "number", g)),
            ];
            (defs, vec![group(g, "Task information")])
        }
        ObjectKind::Notes => {
            let g = "noteinformation";
            let defs = vec![
                def("hs_timestamp", "Activity date", "datetime", "date", g),
                def("hs_note_body", "Note body", "string", "html", g),
                def("hubspot_owner_id", "Activity assigned to", "enumeration", "select", g),
                def("hs_attachment_ids", "Attached file IDs", "enumeration", "checkbox", g),
                read_only(def("hs_createdate", "Create date", "datetime", "date", g)),
                read_only(def("hs_lastmodifieddate", "Last modified date", "datetime", "date", g)),
                read_only(def("hs_object_id", "Record ID", "number", "number", g)),
            ];
            (defs, vec![group(g, "Note information")])
        }
    }
}

impl PropertyRegistry {
    /// The seeded registry of an object type.
    pub(crate) fn seeded(kind: ObjectKind) -> PropertyRegistry {
        let (defs, groups) = seed(kind);
        let now = time::now_ms();
        PropertyRegistry {
            created_ms: defs.iter().map(|d| (d.name.clone(), now)).collect(),
            defs: defs.into_iter().map(|d| (d.name.clone(), d)).collect(),
            groups,
        }
    }

    /// Checks one written value; `Ok(None)` clears the property, `Ok(Some(v))` stores `v`.
    /// `current` is the stored value (for checkbox appends), `owner_ids` the portal's owners.
    pub(crate) fn check_value(
        &self,
        kind: ObjectKind,
        name: &str,
        raw: Option<&str>,
        current: Option<&str>,
        owner_ids: &[String],
    ) -> Result<Option<String>, PropertyProblem> {
        let Some(d) = self.defs.get(name) else {
            return Err(PropertyProblem::new(
                name,
                "PROPERTY_DOESNT_EXIST",
                format!("Property \"{name}\" does not exist"),
            ));
        };
        if d.read_only_value {
            return Err(PropertyProblem::new(
                name,
                "READ_ONLY_VALUE",
                format!("{name} is a read only property; its value cannot be set."),
            ));
        }
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        let problem = |code, message: String| Err(PropertyProblem::new(name, code, message));
        match d.kind.as_str() {
            "string" if kind == ObjectKind::Contacts && name == "email" => {
                let v = raw.trim();
                let ok = v.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty()
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains('@')
                }) && !v.chars().any(char::is_whitespace);
                if ok {
                    Ok(Some(v.to_lowercase()))
                } else {
                    problem("INVALID_EMAIL", format!("Email address {raw} is invalid"))
                }
            }
            "number" => match raw.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Some(raw.trim().to_string())),
                _ => problem("INVALID_INTEGER", format!("{raw} was not a valid number.")),
            },
            "bool" => match raw {
                "true" | "false" => Ok(Some(raw.to_string())),
                _ => problem("INVALID_BOOLEAN", format!("{raw} was not a valid boolean (true or false).")),
            },
            "date" => {
                if time::is_iso_date(raw) {
                    return Ok(Some(raw.to_string()));
                }
                match raw.parse::<i64>() {
                    Ok(ms) if ms.rem_euclid(86_400_000) == 0 => Ok(Some(time::format_iso(ms)[..10].to_string())),
                    Ok(_) => {
                        problem("INVALID_DATE", format!("{raw} is not at midnight UTC; date values are whole days."))
                    }
                    Err(_) => problem(
                        "INVALID_DATE",
                        format!("{raw} is not a valid date (YYYY-MM-DD or epoch milliseconds at midnight UTC)."),
                    ),
                }
            }
            "datetime" => {
                let ms = raw.parse::<i64>().ok().or_else(|| time::parse_iso_datetime_ms(raw));
                match ms {
                    Some(ms) => Ok(Some(time::format_iso(ms))),
                    None => problem(
                        "INVALID_DATETIME",
                        format!("{raw} is not a valid datetime (ISO 8601 or epoch milliseconds)."),
                    ),
                }
            }
            "enumeration" => {
                let allowed: Vec<String> = if name == "hubspot_owner_id" {
                    owner_ids.to_vec()
                } else {
                    d.options.iter().map(|o| o.value.clone()).collect()
                };
                let multi = d.field_type == "checkbox";
                let (append, list) = match raw.strip_prefix(';') {
                    Some(rest) if multi => (true, rest),
                    _ => (false, raw),
                };
                let values: Vec<&str> =
                    if multi { list.split(';').filter(|v| !v.is_empty()).collect() } else { vec![list] };
                // Attachment ids and similar free-valued checkboxes have no options to check.
                let free = allowed.is_empty() && name != "hubspot_owner_id";
                if let Some(bad) = values.iter().find(|v| !free && !allowed.iter().any(|a| a == *v)) {
                    return problem(
                        "INVALID_OPTION",
                        format!("{bad} was not one of the allowed options: [{}]", allowed.join(", ")),
                    );
                }
                let mut out: Vec<String> = Vec::new();
                if append {
                    out.extend(current.unwrap_or("").split(';').filter(|v| !v.is_empty()).map(str::to_string));
                }
                for v in values {
                    if !out.iter().any(|o| o == v) {
                        out.push(v.to_string());
                    }
                }
                Ok(Some(out.join(";")))
            }
            _ => Ok(Some(raw.to_string())),
        }
    }

    /// The JSON the properties API returns for one definition.
    fn to_json(&self, d: &PropertyInfo) -> Value {
        let created = time::format_iso(self.created_ms.get(&d.name).copied().unwrap_or(0));
        let options: Vec<Value> = d
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| json!({"label": o.label, "value": o.value, "displayOrder": i, "hidden": false}))
            .collect();
        json!({
            "name": d.name,
            "label": d.label,
            "type": d.kind,
            "fieldType": d.field_type,
            "description": "",
            "groupName": d.group_name,
            "options": options,
            "displayOrder": -1,
            "calculated": false,
            "externalOptions": d.name == "hubspot_owner_id",
            "hasUniqueValue": d.has_unique_value,
            "hidden": false,
            "hubspotDefined": d.hubspot_defined,
            "modificationMetadata": {
                "archivable": !d.hubspot_defined,
                "readOnlyDefinition": d.hubspot_defined,
                "readOnlyValue": d.read_only_value,
            },
            "formField": !d.read_only_value,
            "createdAt": created,
            "updatedAt": created,
            "archived": false,
        })
    }
}

fn group_json(g: &PropertyGroup) -> Value {
    json!({ "name": g.name, "label": g.label, "displayOrder": g.display_order, "archived": false })
}

/// The object type named in the path (`contacts`, `tasks`, `notes`; the contract allows no other).
fn kind_of(ctx: &Ctx<'_>) -> ObjectKind {
    ctx.matched.path_param("objectType").and_then(ObjectKind::from_path).unwrap_or(ObjectKind::Contacts)
}

/// `GET /crm/v3/properties/{objectType}`.
pub(crate) fn list(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Reply {
    let reg = &state.store(kind_of(ctx)).props;
    let results: Vec<Value> =
        if ctx.flag("archived") { Vec::new() } else { reg.defs.values().map(|d| reg.to_json(d)).collect() };
    Reply::json(StatusCode::OK, json!({ "results": results }))
}

/// `GET /crm/v3/properties/{objectType}/{propertyName}`.
pub(crate) fn get(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Reply {
    let kind = kind_of(ctx);
    let name = ctx.matched.path_param("propertyName").unwrap_or_default();
    let reg = &state.store(kind).props;
    match reg.defs.get(name) {
        Some(d) if !ctx.flag("archived") => Reply::json(StatusCode::OK, reg.to_json(d)),
        _ => error::not_found(&format!("Unable to find property {name} for object type {}", kind.path_name())),
    }
}

/// The documented type/fieldType pairs.
fn pairing_allowed(kind: &str, field_type: &str) -> bool {
    match kind {
        "string" => matches!(field_type, "text" | "textarea" | "html" | "phonenumber" | "file"),
        "number" => field_type == "number",
        "bool" => field_type == "booleancheckbox",
        "enumeration" => matches!(field_type, "select" | "radio" | "checkbox" | "booleancheckbox"),
        "date" | "datetime" => field_type == "date",
        _ => false,
    }
}

/// `POST /crm/v3/properties/{objectType}`.
pub(crate) fn create(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Violation> {
    let kind = kind_of(ctx);
    let b = ctx.body();
    let text = |k: &str| b[k].as_str().unwrap_or_default().to_string();
    let (name, ty, field_type, group) = (text("name"), text("type"), text("fieldType"), text("groupName"));
    if !pairing_allowed(&ty, &field_type) {
        return Err(ctx.rule(
            "type and fieldType do not go together",
            vec![("/fieldType".to_string(), format!("a {ty} property cannot use fieldType {field_type}"))],
        ));
    }
    let mut opts: Vec<PropertyOption> = b["options"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| PropertyOption {
                    label: o["label"].as_str().unwrap_or_default().to_string(),
                    value: o["value"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if ty == "bool" && opts.is_empty() {
        opts = vec![
            PropertyOption { label: "Yes".into(), value: "true".into() },
            PropertyOption { label: "No".into(), value: "false".into() },
        ];
    }
    if ty == "enumeration" && opts.is_empty() {
        return Err(ctx.rule(
            "an enumeration property needs options",
            vec![("/options".to_string(), "is required for type enumeration".to_string())],
        ));
    }
    if ty != "enumeration" && ty != "bool" && !opts.is_empty() {
        return Err(ctx.rule(
            "only enumeration properties take options",
            vec![("/options".to_string(), format!("a {ty} property has no options"))],
        ));
    }
    let unique = b["hasUniqueValue"].as_bool() == Some(true);
    let reg = &mut state.store_mut(kind).props;
    if reg.defs.contains_key(&name) {
        return Ok(error::error(
            StatusCode::CONFLICT,
            "OBJECT_ALREADY_EXISTS",
            &format!("Property named '{name}' already exists."),
        ));
    }
    if !reg.groups.iter().any(|g| g.name == group) {
        return Ok(error::validation(&format!(
            "Property group {group} does not exist for object type {}.",
            kind.path_name()
        )));
    }
    if unique && reg.defs.values().filter(|d| d.has_unique_value).count() >= MAX_UNIQUE_PROPERTIES {
        return Ok(error::validation(&format!(
            "An object type can have at most {MAX_UNIQUE_PROPERTIES} properties with unique values."
        )));
    }
    let info = PropertyInfo {
        name: name.clone(),
        label: text("label"),
        kind: ty,
        field_type,
        group_name: group,
        options: opts,
        has_unique_value: unique,
        hubspot_defined: false,
        read_only_value: false,
    };
    reg.created_ms.insert(name.clone(), ctx.now_ms);
    let body = reg.to_json(&info);
    reg.defs.insert(name, info);
    Ok(Reply::json(StatusCode::CREATED, body))
}

/// `GET /crm/v3/properties/{objectType}/groups`.
pub(crate) fn list_groups(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Reply {
    let groups: Vec<Value> = state.store(kind_of(ctx)).props.groups.iter().map(group_json).collect();
    Reply::json(StatusCode::OK, json!({ "results": groups }))
}

/// `GET /crm/v3/properties/{objectType}/groups/{groupName}`.
pub(crate) fn get_group(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Reply {
    let name = ctx.matched.path_param("groupName").unwrap_or_default();
    match state.store(kind_of(ctx)).props.groups.iter().find(|g| g.name == name) {
        Some(g) => Reply::json(StatusCode::OK, group_json(g)),
        None => error::not_found(&format!("Unable to find property group {name}")),
    }
}

/// `POST /crm/v3/properties/{objectType}/groups`.
pub(crate) fn create_group(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Reply {
    let b = ctx.body();
    let name = b["name"].as_str().unwrap_or_default().to_string();
    let reg = &mut state.store_mut(kind_of(ctx)).props;
    if reg.groups.iter().any(|g| g.name == name) {
        return error::error(
            StatusCode::CONFLICT,
            "OBJECT_ALREADY_EXISTS",
            &format!("Property group named '{name}' already exists."),
        );
    }
    let group = PropertyGroup {
        name,
        label: b["label"].as_str().unwrap_or_default().to_string(),
        display_order: b["displayOrder"].as_i64().unwrap_or(-1),
    };
    let body = group_json(&group);
    reg.groups.push(group);
    Reply::json(StatusCode::CREATED, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contacts() -> PropertyRegistry {
        PropertyRegistry::seeded(ObjectKind::Contacts)
    }

    fn check(name: &str, raw: &str) -> Result<Option<String>, PropertyProblem> {
        contacts().check_value(ObjectKind::Contacts, name, Some(raw), None, &["7".to_string()])
    }

    #[test]
    fn dates_must_be_whole_days_in_either_form() {
        assert_eq!(check("createdate", "1430438400000").map(|v| v.is_some()), Ok(true));
        let mut reg = contacts();
        reg.defs.insert("birthday".into(), def("birthday", "Birthday", "date", "date", "contactinformation"));
        let ok = reg.check_value(ObjectKind::Contacts, "birthday", Some("1430438400000"), None, &[]);
        assert_eq!(ok, Ok(Some("2015-05-01".to_string())));
        let noon = reg.check_value(ObjectKind::Contacts, "birthday", Some("1430481600000"), None, &[]);
        assert_eq!(noon.unwrap_err().code, "INVALID_DATE");
        assert_eq!(
            reg.check_value(ObjectKind::Contacts, "birthday", Some("2015-05-01"), None, &[]),
            Ok(Some("2015-05-01".into()))
        );
    }

    #[test]
    fn enumerations_take_only_their_options_and_owners_take_owner_ids() {
        assert!(check("lifecyclestage", "lead").is_ok());
        assert_eq!(check("lifecyclestage", "Lead").unwrap_err().code, "INVALID_OPTION");
        assert!(check("hubspot_owner_id", "7").is_ok());
        assert_eq!(check("hubspot_owner_id", "8").unwrap_err().code, "INVALID_OPTION");
    }

    #[test]
    fn checkbox_values_append_with_a_leading_semicolon() {
        let mut reg = contacts();
        reg.defs.insert(
            "tags".into(),
            with_options(def("tags", "Tags", "enumeration", "checkbox", "contactinformation"), &["a", "b", "c"]),
        );
        let v = reg.check_value(ObjectKind::Contacts, "tags", Some(";c"), Some("a;b"), &[]);
        assert_eq!(v, Ok(Some("a;b;c".into())));
        let v = reg.check_value(ObjectKind::Contacts, "tags", Some("c"), Some("a;b"), &[]);
        assert_eq!(v, Ok(Some("c".into())));
    }

    #[test]
    fn unknown_and_read_only_properties_are_refused_with_their_codes() {
        assert_eq!(check("line_user_id", "U1").unwrap_err().code, "PROPERTY_DOESNT_EXIST");
        assert_eq!(check("hs_object_id", "1").unwrap_err().code, "READ_ONLY_VALUE");
        assert_eq!(check("email", "Not An Email").unwrap_err().code, "INVALID_EMAIL");
        assert_eq!(check("email", "Ann@Example.COM"), Ok(Some("ann@example.com".into())));
        assert_eq!(check("firstname", ""), Ok(None));
    }

    #[test]
    fn only_documented_type_and_field_type_pairs_are_allowed() {
        assert!(pairing_allowed("string", "text"));
        assert!(pairing_allowed("enumeration", "booleancheckbox"));
        assert!(pairing_allowed("datetime", "date"));
        assert!(!pairing_allowed("string", "select"));
        assert!(!pairing_allowed("number", "text"));
    }
}
