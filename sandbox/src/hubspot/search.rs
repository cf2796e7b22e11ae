//! `POST /crm/v3/objects/contacts/search`, with the limits and quirks HubSpot documents.
//!
//! - filter groups are ORed, filters in a group ANDed; at most 5 groups of 6 filters and 18
//!   filters in all; the body at most 3,000 characters; at most 200 results a page and 10,000 in
//!   all (`after` is an offset written as a string);
//! - operators EQ, NEQ, LT, LTE, GT, GTE, BETWEEN (`value`, `highValue`), IN, NOT_IN (`values`),
//!   HAS_PROPERTY, NOT_HAS_PROPERTY, CONTAINS_TOKEN, NOT_CONTAINS_TOKEN (`*` wildcard);
//! - values compare without case, except enumerations (case-sensitive); IN/NOT_IN on text
//!   properties compare the stored lower-case value with the given values as they are, so
//!   upper-case values never match (HubSpot asks for lower-case values there);
//! - numbers compare as numbers, `date`/`datetime` as instants (ms or ISO values);
//! - records appear only once indexed (`search_lag` after a write) and archived ones never;
//! - NEQ and NOT_IN also match records without the property.
//!
//! The operator arity and the size limits are documented request rules, so breaking them is
//! recorded as a violation; unknown properties and the 10,000 cap are answered 400 only.

use std::cmp::Ordering;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error;
use super::properties::{PropertyInfo, PropertyProblem};
use super::store::snapshot_json;
use super::{Ctx, HubSpotState, Refusal};
use crate::reply::Reply;
use crate::time;

const MAX_FILTERS: usize = 18;
const MAX_BODY_CHARS: usize = 3000;
const MAX_RESULTS: usize = 10_000;

/// A comparable form of a property value.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Key {
    Num(f64),
    Text(String),
}

/// Turns a stored or filter value into a comparable key, by the property's type.
fn key(def: &PropertyInfo, raw: &str) -> Option<Key> {
    match def.kind.as_str() {
        "number" => raw.trim().parse().ok().map(Key::Num),
        "date" => raw.parse::<i64>().ok().or_else(|| time::parse_iso_date_ms(raw)).map(|ms| Key::Num(ms as f64)),
        "datetime" => raw
            .parse::<i64>()
            .ok()
            .or_else(|| time::parse_iso_datetime_ms(raw))
            .or_else(|| time::parse_iso_date_ms(raw))
            .map(|ms| Key::Num(ms as f64)),
        _ => Some(Key::Text(raw.to_lowercase())),
    }
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// One checked filter.
struct Cond<'a> {
    def: &'a PropertyInfo,
    op: &'a str,
    value: Option<&'a str>,
    high: Option<&'a str>,
    values: Vec<&'a str>,
}

impl Cond<'_> {
    fn eq(&self, stored: &str, wanted: &str) -> bool {
        if self.def.kind == "enumeration" {
            return stored.split(';').any(|v| v == wanted);
        }
        match (key(self.def, stored), key(self.def, wanted)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }

    fn is_in(&self, stored: &str) -> bool {
        self.values.iter().any(|v| match self.def.kind.as_str() {
            "enumeration" => stored.split(';').any(|s| s == *v),
            "string" => stored.to_lowercase() == *v,
            _ => self.eq(stored, v),
        })
    }

    fn cmp(&self, stored: &str, wanted: Option<&str>) -> Option<Ordering> {
        key(self.def, stored)?.partial_cmp(&key(self.def, wanted?)?)
    }

    fn contains_token(&self, stored: &str) -> bool {
        let wanted = self.value.unwrap_or_default().to_lowercase();
        let stored = stored.to_lowercase();
        if wanted.contains('*') {
            return glob(&wanted, &stored);
        }
        stored == wanted || stored.split_whitespace().any(|t| t == wanted)
    }

    fn matches(&self, stored: Option<&str>) -> bool {
        let present = stored.filter(|s| !s.is_empty());
        match (self.op, present) {
            ("HAS_PROPERTY", p) => p.is_some(),
            ("NOT_HAS_PROPERTY", p) => p.is_none(),
            ("NEQ", None) | ("NOT_IN", None) | ("NOT_CONTAINS_TOKEN", None) => true,
            (_, None) => false,
            ("EQ", Some(s)) => self.eq(s, self.value.unwrap_or_default()),
            ("NEQ", Some(s)) => !self.eq(s, self.value.unwrap_or_default()),
            ("IN", Some(s)) => self.is_in(s),
            ("NOT_IN", Some(s)) => !self.is_in(s),
            ("LT", Some(s)) => self.cmp(s, self.value) == Some(Ordering::Less),
            ("LTE", Some(s)) => matches!(self.cmp(s, self.value), Some(Ordering::Less | Ordering::Equal)),
            ("GT", Some(s)) => self.cmp(s, self.value) == Some(Ordering::Greater),
            ("GTE", Some(s)) => matches!(self.cmp(s, self.value), Some(Ordering::Greater | Ordering::Equal)),
            ("BETWEEN", Some(s)) => {
                matches!(self.cmp(s, self.value), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(self.cmp(s, self.high), Some(Ordering::Less | Ordering::Equal))
            }
            ("CONTAINS_TOKEN", Some(s)) => self.contains_token(s),
            ("NOT_CONTAINS_TOKEN", Some(s)) => !self.contains_token(s),
            _ => false,
        }
    }
}

fn unknown_property(name: &str) -> Refusal {
    Refusal::Answer(error::invalid_properties(&[PropertyProblem {
        name: name.to_string(),
        code: "PROPERTY_DOESNT_EXIST",
        message: format!("Property \"{name}\" does not exist"),
    }]))
}

/// Checks operator arity and the documented size limits; these are request rules.
fn check_shape(ctx: &Ctx<'_>, groups: &[Value]) -> Result<(), Refusal> {
    let mut details = Vec::new();
    if ctx.body_len > MAX_BODY_CHARS {
        details.push((
            String::new(),
            format!("the body is {} characters, at most {MAX_BODY_CHARS} allowed", ctx.body_len),
        ));
    }
    let total: usize = groups.iter().map(|g| g["filters"].as_array().map_or(0, Vec::len)).sum();
    if total > MAX_FILTERS {
        details.push(("/filterGroups".to_string(), format!("{total} filters in all, at most {MAX_FILTERS} allowed")));
    }
    for (gi, g) in groups.iter().enumerate() {
        for (fi, f) in g["filters"].as_array().into_iter().flatten().enumerate() {
            let at = format!("/filterGroups/{gi}/filters/{fi}");
            let op = f["operator"].as_str().unwrap_or_default();
            let has = |k: &str| f.get(k).is_some();
            let needs: &[&str] = match op {
                "BETWEEN" => &["value", "highValue"],
                "IN" | "NOT_IN" => &["values"],
                "HAS_PROPERTY" | "NOT_HAS_PROPERTY" => &[],
                _ => &["value"],
            };
            for k in needs {
                if !has(k) {
                    details.push((format!("{at}/{k}"), format!("is required by operator {op}")));
                }
            }
        }
    }
    if details.is_empty() {
        Ok(())
    } else {
        Err(ctx.rule("search request breaks HubSpot's documented limits", details).into())
    }
}

/// `POST /crm/v3/objects/contacts/search`.
pub(crate) fn search(state: &mut HubSpotState, ctx: &Ctx<'_>) -> Result<Reply, Refusal> {
    let body = ctx.body();
    let groups = body["filterGroups"].as_array().cloned().unwrap_or_default();
    check_shape(ctx, &groups)?;
    let limit = body["limit"].as_u64().unwrap_or(10) as usize;
    let after: usize = body["after"].as_str().and_then(|a| a.parse().ok()).unwrap_or(0);
    if after + limit > MAX_RESULTS {
        return Err(Refusal::Answer(error::validation(&format!(
            "Search can page through at most {MAX_RESULTS} results; after {after} with limit {limit} goes beyond."
        ))));
    }
    let store = state.store_mut(ctx.kind());
    let props = &store.props;
    let mut or_groups: Vec<Vec<Cond<'_>>> = Vec::new();
    for g in &groups {
        let mut conds = Vec::new();
        for f in g["filters"].as_array().into_iter().flatten() {
            let name = f["propertyName"].as_str().unwrap_or_default();
            let def = props.defs.get(name).ok_or_else(|| unknown_property(name))?;
            conds.push(Cond {
                def,
                op: f["operator"].as_str().unwrap_or_default(),
                value: f["value"].as_str(),
                high: f["highValue"].as_str(),
                values: f["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect(),
            });
        }
        or_groups.push(conds);
    }
    let sort = body["sorts"].as_array().and_then(|s| s.first()).map(|s| match s {
        Value::String(name) => match name.strip_prefix('-') {
            Some(n) => (n.to_string(), true),
            None => (name.clone(), false),
        },
        other => (
            other["propertyName"].as_str().unwrap_or_default().to_string(),
            other["direction"].as_str() == Some("DESCENDING"),
        ),
    });
    let sort_def = match &sort {
        Some((name, _)) => Some(props.defs.get(name).ok_or_else(|| unknown_property(name))?.clone()),
        None => None,
    };
    let query = body["query"].as_str().map(str::to_lowercase);
    let requested: Option<Vec<String>> =
        body["properties"].as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect());

    let ids: Vec<u64> = store.records.keys().copied().collect();
    let mut hits = Vec::new();
    for id in ids {
        let Some(record) = store.records.get_mut(&id) else { continue };
        let Some(snap) = record.indexed(ctx.now) else { continue };
        if snap.archived {
            continue;
        }
        let value = |name: &str| snap.values.get(name).map(String::as_str);
        let by_filters =
            or_groups.is_empty() || or_groups.iter().any(|conds| conds.iter().all(|c| c.matches(value(&c.def.name))));
        let by_query = query.as_ref().is_none_or(|q| {
            ["firstname", "lastname", "email", "phone", "company"]
                .iter()
                .any(|p| value(p).is_some_and(|v| v.to_lowercase().contains(q.as_str())))
        });
        if by_filters && by_query {
            hits.push((id, snap.clone()));
        }
    }
    if let (Some((name, descending)), Some(def)) = (&sort, &sort_def) {
        hits.sort_by(|(ia, a), (ib, b)| {
            let ka = a.values.get(name).and_then(|v| key(def, v));
            let kb = b.values.get(name).and_then(|v| key(def, v));
            let ord = match (ka, kb) {
                (Some(x), Some(y)) => {
                    let o = x.partial_cmp(&y).unwrap_or(Ordering::Equal);
                    if *descending { o.reverse() } else { o }
                }
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            ord.then(ia.cmp(ib))
        });
    }
    let total = hits.len();
    let results: Vec<Value> = hits
        .iter()
        .skip(after)
        .take(limit)
        .map(|(id, snap)| snapshot_json(store, snap, *id, requested.as_deref()))
        .collect();
    let mut out = json!({ "total": total, "results": results });
    if after + limit < total.min(MAX_RESULTS) {
        out["paging"] = json!({ "next": { "after": (after + limit).to_string() } });
    }
    Ok(Reply::json(StatusCode::OK, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_runs_of_characters() {
        assert!(glob("*@example.com", "ann@example.com"));
        assert!(glob("a*n*", "ann"));
        assert!(!glob("*@example.com", "ann@example.org"));
        assert!(glob("ann", "ann"));
    }
}
