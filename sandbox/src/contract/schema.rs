//! JSON values checked against OpenAPI 3.0 schema objects.
//!
//! This is the part of the contract that says whether a request body (or a parameter, or a
//! webhook body the sandbox builds) has the shape the API documents. It handles the keywords the
//! LINE specs and linehub's HubSpot contract use: `$ref` (local), `type`, `nullable`, `enum`,
//! `required`, `properties`, `additionalProperties`, `items`, `minItems`/`maxItems`,
//! `uniqueItems`, `minLength`/`maxLength` (in UTF-16 code units, as LINE counts), `pattern`,
//! `minimum`/`maximum` (and their exclusive forms), `multipleOf`, `minProperties`/
//! `maxProperties`, cheap `format`s (`uri`, `uuid`, `date`, `date-time`, `email`, `int32`,
//! `int64`), `allOf`, `anyOf`, `oneOf`, `not` and `discriminator`.
//!
//! Discriminators: a schema with a `discriminator` that is validated directly dispatches on the
//! tag property to the mapped (or same-named) schema. The subtype usually reaches back to the base
//! through `allOf`; the base has then already been checked at that location, so it is skipped
//! rather than dispatched again. An unknown tag is an error.
//!
//! Not handled: remote `$ref`s, `readOnly`/`writeOnly`, `default` (never applied), formats beyond
//! the cheap ones above.

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

/// Deepest schema nesting followed before giving up; real documents stay far below it, a `$ref`
/// cycle that consumes no input would not.
const MAX_DEPTH: usize = 128;

/// One thing wrong with a JSON value, located by a JSON pointer into the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// JSON pointer into the checked value (`/messages/0/text`); empty for the value itself.
    pub pointer: String,
    /// What is wrong, in words a developer can act on.
    pub message: String,
}

/// Every `pattern` found in a document, compiled once at load. ECMA patterns the `regex` crate
/// cannot compile (look-around, back-references) are listed and their checks skipped.
#[derive(Debug, Default)]
pub(crate) struct Patterns {
    compiled: HashMap<String, Regex>,
    /// `(pattern, compile error)` for every pattern that is not checked.
    pub(crate) skipped: Vec<(String, String)>,
}

impl Patterns {
    /// Walks a whole document and compiles each distinct `pattern` string.
    pub(crate) fn collect(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(p)) = map.get("pattern")
                    && !self.compiled.contains_key(p)
                    && !self.skipped.iter().any(|(s, _)| s == p)
                {
                    match Regex::new(p) {
                        Ok(re) => {
                            self.compiled.insert(p.clone(), re);
                        }
                        Err(e) => self.skipped.push((p.clone(), e.to_string())),
                    }
                }
                map.values().for_each(|v| self.collect(v));
            }
            Value::Array(items) => items.iter().for_each(|v| self.collect(v)),
            _ => {}
        }
    }

    fn get(&self, pattern: &str) -> Option<&Regex> {
        self.compiled.get(pattern)
    }
}

/// Checks values against schemas of one document (its `$ref`s resolve inside it).
pub(crate) struct Validator<'a> {
    root: &'a Value,
    patterns: &'a Patterns,
    errors: Vec<SchemaError>,
    /// `(schema $ref, instance pointer)` of discriminated bases already checked at that location
    /// while one of their subtypes is being checked; reaching them again is not a new dispatch.
    dispatched: Vec<(String, String)>,
    depth: usize,
}

impl<'a> Validator<'a> {
    pub(crate) fn new(root: &'a Value, patterns: &'a Patterns) -> Validator<'a> {
        Validator { root, patterns, errors: Vec::new(), dispatched: Vec::new(), depth: 0 }
    }

    /// Resolves a local `$ref` (`#/components/schemas/X`) inside the document.
    pub(crate) fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    /// Checks `value` (found at `at`) against `schema`, and returns every error found.
    pub(crate) fn check(mut self, schema: &Value, value: &Value, at: &str) -> Vec<SchemaError> {
        self.validate(schema, None, value, at);
        self.errors
    }

    fn error(&mut self, pointer: &str, message: String) {
        self.errors.push(SchemaError { pointer: pointer.to_string(), message });
    }

    /// `name` is the `$ref` the schema was reached through, if any (for discriminator bookkeeping).
    fn validate(&mut self, schema: &Value, name: Option<&str>, value: &Value, at: &str) {
        if self.depth > MAX_DEPTH {
            self.error(at, "schema nesting too deep (a $ref cycle?)".to_string());
            return;
        }
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            match self.resolve(reference) {
                Some(target) => {
                    self.depth += 1;
                    self.validate(target, Some(reference), value, at);
                    self.depth -= 1;
                }
                None => self.error(at, format!("the contract has no schema at {reference}")),
            }
            return;
        }
        if let (Some(disc), Some(obj)) = (schema.get("discriminator"), value.as_object()) {
            let key = (name.unwrap_or("").to_string(), at.to_string());
            if self.dispatched.contains(&key) {
                return;
            }
            let prop = disc.get("propertyName").and_then(Value::as_str);
            if let Some((prop, Some(tag))) = prop.map(|p| (p, obj.get(p).and_then(Value::as_str))) {
                let mapped = disc.get("mapping").and_then(|m| m.get(tag)).and_then(Value::as_str).map(str::to_string);
                let target = mapped.or_else(|| {
                    let implicit = format!("#/components/schemas/{tag}");
                    self.resolve(&implicit).map(|_| implicit)
                });
                self.keywords(schema, value, at, true);
                match target.as_deref().and_then(|t| self.resolve(t).map(|s| (t, s))) {
                    Some((target_name, target)) => {
                        self.dispatched.push(key);
                        self.depth += 1;
                        self.validate(target, Some(target_name), value, at);
                        self.depth -= 1;
                        self.dispatched.pop();
                    }
                    None => {
                        let known: Vec<&str> = disc
                            .get("mapping")
                            .and_then(Value::as_object)
                            .map(|m| m.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        self.error(
                            &child(at, prop),
                            format!(
                                "unknown {prop} {tag:?}; the contract knows {}",
                                if known.is_empty() { "no mapping".to_string() } else { known.join(", ") }
                            ),
                        );
                    }
                }
                return;
            }
        }
        self.keywords(schema, value, at, false);
    }

    /// Applies every keyword of `schema` except `$ref`/`discriminator`; `dispatched` skips
    /// `oneOf`/`anyOf`, which a discriminator has already resolved.
    fn keywords(&mut self, schema: &Value, value: &Value, at: &str, dispatched: bool) {
        let Some(schema) = schema.as_object() else {
            return;
        };
        let ty = schema.get("type").and_then(Value::as_str);
        if value.is_null() {
            if schema.get("nullable").and_then(Value::as_bool) == Some(true) {
                return;
            }
            if let Some(ty) = ty {
                self.error(at, format!("is null, expected {ty}"));
                return;
            }
        } else if let Some(ty) = ty
            && !type_matches(ty, value)
        {
            self.error(at, format!("expected {ty}, found {}", kind(value)));
            return;
        }
        if let Some(Value::Array(allowed)) = schema.get("enum")
            && !allowed.iter().any(|a| json_eq(a, value))
        {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            self.error(at, format!("{value} is not one of [{}]", list.join(", ")));
        }
        match value {
            Value::String(s) => self.string(schema, s, at),
            Value::Number(_) => self.number(schema, value, at),
            Value::Array(items) => self.array(schema, items, at),
            Value::Object(map) => self.object(schema, map, at),
            _ => {}
        }
        if let Some(Value::Array(all)) = schema.get("allOf") {
            for sub in all {
                self.depth += 1;
                self.validate(sub, None, value, at);
                self.depth -= 1;
            }
        }
        if !dispatched {
            if let Some(Value::Array(any)) = schema.get("anyOf") {
                let results: Vec<Vec<SchemaError>> = any.iter().map(|s| self.trial(s, value, at)).collect();
                if !results.iter().any(Vec::is_empty) {
                    self.none_matched("anyOf", results, at);
                }
            }
            if let Some(Value::Array(one)) = schema.get("oneOf") {
                let results: Vec<Vec<SchemaError>> = one.iter().map(|s| self.trial(s, value, at)).collect();
                let passing = results.iter().filter(|r| r.is_empty()).count();
                if passing == 0 {
                    self.none_matched("oneOf", results, at);
                } else if passing > 1 {
                    self.error(at, format!("matches {passing} oneOf alternatives, exactly one allowed"));
                }
            }
        }
        if let Some(not) = schema.get("not")
            && self.trial(not, value, at).is_empty()
        {
            self.error(at, "matches a schema it must not match (not)".to_string());
        }
    }

    /// Runs a sub-check whose errors are returned instead of recorded.
    fn trial(&mut self, schema: &Value, value: &Value, at: &str) -> Vec<SchemaError> {
        let saved = std::mem::take(&mut self.errors);
        self.depth += 1;
        self.validate(schema, None, value, at);
        self.depth -= 1;
        std::mem::replace(&mut self.errors, saved)
    }

    /// Reports a failed `anyOf`/`oneOf` with the errors of the closest alternative.
    fn none_matched(&mut self, keyword: &str, results: Vec<Vec<SchemaError>>, at: &str) {
        self.error(at, format!("matches none of the {} {keyword} alternatives", results.len()));
        if let Some(best) = results.into_iter().min_by_key(Vec::len) {
            self.errors.extend(best);
        }
    }

    fn string(&mut self, schema: &serde_json::Map<String, Value>, s: &str, at: &str) {
        let len = s.encode_utf16().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            self.error(at, format!("is {len} UTF-16 units long, minLength is {min}"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            self.error(at, format!("is {len} UTF-16 units long, maxLength is {max}"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && let Some(re) = self.patterns.get(pattern)
            && !re.is_match(s)
        {
            self.error(at, format!("{s:?} does not match pattern {pattern}"));
        }
        if let Some(format) = schema.get("format").and_then(Value::as_str)
            && let Some(problem) = string_format_problem(format, s)
        {
            self.error(at, format!("{s:?} is not a valid {format}: {problem}"));
        }
    }

    fn number(&mut self, schema: &serde_json::Map<String, Value>, value: &Value, at: &str) {
        let Some(n) = value.as_f64() else {
            return;
        };
        let exclusive = |key: &str| schema.get(key).and_then(Value::as_bool) == Some(true);
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if exclusive("exclusiveMinimum") && n <= min {
                self.error(at, format!("{value} must be greater than {min}"));
            } else if n < min {
                self.error(at, format!("{value} is less than minimum {min}"));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if exclusive("exclusiveMaximum") && n >= max {
                self.error(at, format!("{value} must be less than {max}"));
            } else if n > max {
                self.error(at, format!("{value} is greater than maximum {max}"));
            }
        }
        // OpenAPI 3.1 spells the exclusive bounds as numbers.
        if let Some(min) = schema.get("exclusiveMinimum").and_then(Value::as_f64)
            && n <= min
        {
            self.error(at, format!("{value} must be greater than {min}"));
        }
        if let Some(max) = schema.get("exclusiveMaximum").and_then(Value::as_f64)
            && n >= max
        {
            self.error(at, format!("{value} must be less than {max}"));
        }
        if let Some(m) = schema.get("multipleOf").and_then(Value::as_f64)
            && m > 0.0
            && ((n / m) - (n / m).round()).abs() > 1e-9
        {
            self.error(at, format!("{value} is not a multiple of {m}"));
        }
        let range = match schema.get("format").and_then(Value::as_str) {
            Some("int32") => Some((i32::MIN as f64, i32::MAX as f64, "int32")),
            Some("int64") => Some((i64::MIN as f64, i64::MAX as f64, "int64")),
            _ => None,
        };
        if let Some((lo, hi, name)) = range
            && (n < lo || n > hi)
        {
            self.error(at, format!("{value} does not fit in {name}"));
        }
    }

    fn array(&mut self, schema: &serde_json::Map<String, Value>, items: &[Value], at: &str) {
        let len = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && len < min
        {
            self.error(at, format!("has {len} items, minItems is {min}"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && len > max
        {
            self.error(at, format!("has {len} items, maxItems is {max}"));
        }
        if schema.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
            for (i, a) in items.iter().enumerate() {
                if items[..i].iter().any(|b| json_eq(a, b)) {
                    self.error(&child(at, &i.to_string()), format!("{a} is repeated"));
                }
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.depth += 1;
                self.validate(item_schema, None, item, &child(at, &i.to_string()));
                self.depth -= 1;
            }
        }
    }

    fn object(&mut self, schema: &serde_json::Map<String, Value>, map: &serde_json::Map<String, Value>, at: &str) {
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    self.error(&child(at, name), "is required but missing".to_string());
                }
            }
        }
        let len = map.len() as u64;
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
            && len < min
        {
            self.error(at, format!("has {len} properties, minProperties is {min}"));
        }
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
            && len > max
        {
            self.error(at, format!("has {len} properties, maxProperties is {max}"));
        }
        let declared = schema.get("properties").and_then(Value::as_object);
        for (name, v) in map {
            let path = child(at, name);
            match declared.and_then(|d| d.get(name)) {
                Some(prop_schema) => {
                    self.depth += 1;
                    self.validate(prop_schema, None, v, &path);
                    self.depth -= 1;
                }
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        let allowed: Vec<&str> =
                            declared.map(|d| d.keys().map(String::as_str).collect()).unwrap_or_default();
                        self.error(&path, format!("is not an allowed property here (allowed: {})", allowed.join(", ")));
                    }
                    Some(extra @ Value::Object(_)) => {
                        self.depth += 1;
                        self.validate(extra, None, v, &path);
                        self.depth -= 1;
                    }
                    _ => {}
                },
            }
        }
    }
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/`.
pub(crate) fn child(at: &str, token: &str) -> String {
    format!("{at}/{}", token.replace('~', "~0").replace('/', "~1"))
}

/// The JSON type name of a value, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match (ty, value) {
        ("string", Value::String(_))
        | ("boolean", Value::Bool(_))
        | ("array", Value::Array(_))
        | ("object", Value::Object(_))
        | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => is_integer(n),
        // An unknown type word constrains nothing rather than rejecting everything.
        (other, _) => !matches!(other, "string" | "boolean" | "array" | "object" | "number" | "integer"),
    }
}

/// Equality where `1` and `1.0` are the same number.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Cheap checks of string formats; `None` means fine (or a format not checked).
fn string_format_problem(format: &str, s: &str) -> Option<&'static str> {
    match format {
        "uri" => {
            let scheme = s.split_once(':').map_or("", |(scheme, _)| scheme);
            let ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
            (!ok).then_some("expected a scheme such as https:")
        }
        "uuid" => (!is_uuid(s)).then_some("expected 8-4-4-4-12 hexadecimal digits"),
        "date" => (!crate::time::is_iso_date(s)).then_some("expected YYYY-MM-DD"),
        "date-time" => (crate::time::parse_iso_datetime_ms(s).is_none()).then_some("expected an RFC 3339 date-time"),
        "email" => {
            let ok = s.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !s.contains(' '));
            (!ok).then_some("expected local@domain")
        }
        _ => None,
    }
}

/// True for the 8-4-4-4-12 hexadecimal form LINE asks of retry keys.
pub(crate) fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(doc: &Value, schema: &Value, value: &Value) -> Vec<SchemaError> {
        let mut patterns = Patterns::default();
        patterns.collect(doc);
        patterns.collect(schema);
        Validator::new(doc, &patterns).check(schema, value, "")
    }

    #[test]
    fn lengths_are_counted_in_utf16_units() {
        let schema = json!({"type": "string", "maxLength": 2});
        // One emoji outside the BMP is two UTF-16 units: fits. Two emoji: four units.
        assert!(check(&json!({}), &schema, &json!("😀")).is_empty());
        let errors = check(&json!({}), &schema, &json!("😀😀"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("4 UTF-16 units"));
    }

    #[test]
    fn additional_properties_false_names_the_stray_field() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}},
                            "additionalProperties": false});
        let errors = check(&json!({}), &schema, &json!({"a": "x", "b/c": 1}));
        assert_eq!(errors[0].pointer, "/b~1c");
    }

    #[test]
    fn a_pattern_the_regex_crate_cannot_compile_is_skipped_and_recorded() {
        let schema = json!({"type": "string", "pattern": "^(?=a)a$"});
        let mut patterns = Patterns::default();
        patterns.collect(&schema);
        assert_eq!(patterns.skipped.len(), 1);
        let root = json!({});
        assert!(Validator::new(&root, &patterns).check(&schema, &json!("b"), "").is_empty());
    }

    #[test]
    fn one_of_rejects_values_matching_two_alternatives() {
        let schema = json!({"oneOf": [{"type": "integer"}, {"type": "number"}]});
        assert!(check(&json!({}), &schema, &json!(1.5)).is_empty());
        assert_eq!(check(&json!({}), &schema, &json!(2)).len(), 1);
    }

    #[test]
    fn nullable_allows_null_only_when_declared() {
        assert!(check(&json!({}), &json!({"type": "string", "nullable": true}), &Value::Null).is_empty());
        assert_eq!(check(&json!({}), &json!({"type": "string"}), &Value::Null).len(), 1);
    }

    #[test]
    fn a_discriminator_reached_back_through_all_of_is_not_dispatched_again() {
        let doc = json!({"components": {"schemas": {
            "Pet": {"type": "object", "required": ["kind"],
                    "properties": {"kind": {"type": "string"}},
                    "discriminator": {"propertyName": "kind"}},
            "Cat": {"allOf": [{"$ref": "#/components/schemas/Pet"},
                              {"type": "object", "required": ["meow"]}]}
        }}});
        let pet = json!({"$ref": "#/components/schemas/Pet"});
        assert!(check(&doc, &pet, &json!({"kind": "Cat", "meow": true})).is_empty());
        let missing = check(&doc, &pet, &json!({"kind": "Cat"}));
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(missing[0].pointer, "/meow");
        let unknown = check(&doc, &pet, &json!({"kind": "Dog"}));
        assert_eq!(unknown[0].pointer, "/kind");
    }
}
