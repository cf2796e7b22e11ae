//! A small OpenAPI 3.0 request checker: the reason the simulators can be trusted.
//!
//! A [`Contract`] is one or more OpenAPI 3.0 documents (LINE's `messaging-api.yml`, linehub's own
//! `hubspot.yaml`). [`Contract::check`] finds the operation a request is aimed at (method plus
//! path template, literal segments beating templated ones), then checks the path, query and header
//! parameters it declares and the request body (JSON, or a form decoded into an object) against
//! the operation's schema. Anything the documents do not describe is a [`Violation`]: an unknown
//! path or method, a missing or extra body, a body of the wrong shape. [`Contract::validate_schema`] checks any JSON value against a
//! named schema (the sandbox uses it on the webhook bodies it builds).
//!
//! What is not checked: security schemes (the simulators answer 401 themselves), cookies,
//! response bodies, bodies other than JSON and `application/x-www-form-urlencoded` forms beyond
//! their media type.

mod params;
mod paths;
mod schema;

use std::collections::BTreeMap;
use std::fmt;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use params::{Location, Param};
use paths::PathTemplate;
pub use schema::SchemaError;
use schema::{Patterns, Validator};

pub(crate) use paths::parse_query;
#[cfg(test)]
pub(crate) use schema::is_uuid;

/// Why a document could not be loaded as a contract.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The text is not YAML (or JSON).
    #[error("{name}: not valid YAML: {message}")]
    Yaml {
        /// The document's name.
        name: String,
        /// The parser's complaint.
        message: String,
    },
    /// The document does not declare `openapi: 3.x`.
    #[error("{name}: not an OpenAPI 3 document (openapi: {found})")]
    NotOpenApi3 {
        /// The document's name.
        name: String,
        /// The `openapi` value found.
        found: String,
    },
    /// The document has no `paths` object.
    #[error("{name}: has no paths object")]
    NoPaths {
        /// The document's name.
        name: String,
    },
    /// A `$ref` points at nothing in the document.
    #[error("{name}: $ref {reference} does not resolve")]
    DanglingRef {
        /// The document's name.
        name: String,
        /// The `$ref` that resolves to nothing.
        reference: String,
    },
}

/// What kind of problem a [`Violation`] is; the simulators answer each kind the way the real
/// service does (unknown path 404, wrong method 405, everything else 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// No path template of the contract matches the request path.
    NoSuchPath,
    /// The path exists, the method does not.
    NoSuchMethod,
    /// Parameters or body do not match the operation's schemas.
    OffContract,
    /// A documented rule the schemas cannot express (checked by a simulator).
    Rule,
    /// A documented operation the sandbox does not simulate.
    NotSimulated,
}

/// A request the contract does not allow, with every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// What kind of problem this is.
    pub kind: ViolationKind,
    /// `METHOD /path` of the offending request (or the schema checked, for value checks).
    pub request: String,
    /// The `operationId` the request matched, when it matched one.
    pub operation: Option<String>,
    /// The summary: what kind of problem this is.
    pub message: String,
    /// `(location, problem)` pairs. Body locations are JSON pointers (`/messages/0/text`);
    /// parameters are written `query:limit`, `path:userId`, `header:X-Line-Retry-Key`.
    pub details: Vec<(String, String)>,
}

impl Violation {
    /// A violation with no details.
    pub fn new(
        kind: ViolationKind,
        request: impl Into<String>,
        operation: Option<String>,
        message: impl Into<String>,
    ) -> Violation {
        Violation { kind, request: request.into(), operation, message: message.into(), details: Vec::new() }
    }
}

impl Violation {
    /// Adds one `(location, problem)` detail.
    pub fn with_detail(mut self, at: impl Into<String>, problem: impl Into<String>) -> Violation {
        self.details.push((at.into(), problem.into()));
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CONTRACT VIOLATION: {}", self.request)?;
        if let Some(op) = &self.operation {
            write!(f, " ({op})")?;
        }
        write!(f, ": {}", self.message)?;
        for (at, problem) in &self.details {
            let at = if at.is_empty() { "(body)" } else { at };
            write!(f, "\n    at {at}: {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

/// The parts of an HTTP request the contract looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// HTTP method, any case (`POST`).
    pub method: &'a str,
    /// The path without the query (`/v2/bot/message/push`).
    pub path: &'a str,
    /// The raw query string without `?`, if any.
    pub query: Option<&'a str>,
    /// All request headers.
    pub headers: &'a HeaderMap,
    /// The raw body; empty when there is none.
    pub body: &'a [u8],
}

/// The operation a request matched, with its parameters and parsed body, for the handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched {
    /// The operation's `operationId`, if it has one.
    pub operation_id: Option<String>,
    /// Upper-case method (`POST`).
    pub method: String,
    /// The path template as written in the document.
    pub template: String,
    /// Percent-decoded path parameters by name.
    pub path_params: BTreeMap<String, String>,
    /// Decoded query pairs, in request order.
    pub query: Vec<(String, String)>,
    /// The JSON body, when the operation takes one and it was sent.
    pub body: Option<Value>,
}

impl Matched {
    /// A path parameter by name.
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.path_params.get(name).map(String::as_str)
    }

    /// The first query value with this name.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `METHOD template`, the key used in per-endpoint statistics.
    pub fn endpoint(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

#[derive(Debug)]
struct Operation {
    method: &'static str,
    template: PathTemplate,
    /// JSON pointer to the path item holding the operation.
    item_pointer: String,
    operation_id: Option<String>,
}

#[derive(Debug)]
struct Document {
    name: String,
    root: Value,
    operations: Vec<Operation>,
}

/// One or more OpenAPI 3.0 documents that requests are checked against.
#[derive(Debug)]
pub struct Contract {
    docs: Vec<Document>,
    patterns: Patterns,
    /// Lower-case header names that are a violation on operations that do not declare them.
    guarded_headers: Vec<String>,
}

impl Contract {
    /// Loads one OpenAPI 3.0 document (YAML or JSON text); `name` appears in errors.
    pub fn from_yaml(name: &str, text: &str) -> Result<Contract, ContractError> {
        let mut contract = Contract { docs: Vec::new(), patterns: Patterns::default(), guarded_headers: Vec::new() };
        contract.merge_yaml(name, text)?;
        Ok(contract)
    }

    /// Adds another document; its operations join the others, its `$ref`s resolve inside itself.
    pub fn merge_yaml(&mut self, name: &str, text: &str) -> Result<(), ContractError> {
        let root: Value = serde_saphyr::from_str(text)
            .map_err(|e| ContractError::Yaml { name: name.to_string(), message: e.to_string() })?;
        let version = match root.get("openapi") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "missing".to_string(),
        };
        if !version.starts_with("3.") {
            return Err(ContractError::NotOpenApi3 { name: name.to_string(), found: version });
        }
        let Some(paths) = root.get("paths").and_then(Value::as_object) else {
            return Err(ContractError::NoPaths { name: name.to_string() });
        };
        let mut refs = Vec::new();
        collect_refs(&root, &mut refs);
        if let Some(bad) =
            refs.into_iter().find(|r| r.strip_prefix('#').is_none_or(|pointer| root.pointer(pointer).is_none()))
        {
            return Err(ContractError::DanglingRef { name: name.to_string(), reference: bad });
        }
        let mut operations = Vec::new();
        for (template, item) in paths {
            let item_pointer = format!("/paths/{}", template.replace('~', "~0").replace('/', "~1"));
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    operations.push(Operation {
                        method,
                        template: PathTemplate::parse(template),
                        item_pointer: item_pointer.clone(),
                        operation_id: op.get("operationId").and_then(Value::as_str).map(str::to_string),
                    });
                }
            }
        }
        self.patterns.collect(&root);
        self.docs.push(Document { name: name.to_string(), root, operations });
        Ok(())
    }

    /// Makes `header` a violation on every operation that does not declare it as a parameter
    /// (LINE answers 400 to `X-Line-Retry-Key` outside push, multicast, narrowcast, broadcast).
    pub fn guard_undeclared_header(mut self, header: &str) -> Contract {
        self.guarded_headers.push(header.to_ascii_lowercase());
        self
    }

    /// `(pattern, why)` for every `pattern` that could not be compiled and is therefore not checked.
    pub fn skipped_patterns(&self) -> &[(String, String)] {
        &self.patterns.skipped
    }

    /// `(METHOD, template, operationId)` of every operation, in document order.
    pub fn operations(&self) -> Vec<(String, String, Option<String>)> {
        self.docs
            .iter()
            .flat_map(|d| &d.operations)
            .map(|op| (op.method.to_ascii_uppercase(), op.template.text.clone(), op.operation_id.clone()))
            .collect()
    }

    /// Checks a value against a named schema: `#/components/schemas/X` (first document that has
    /// it) or `docname#/components/schemas/X`.
    pub fn validate_schema(&self, reference: &str, value: &Value) -> Result<(), Violation> {
        let (doc_name, pointer) = match reference.split_once('#') {
            Some(("", p)) => (None, p),
            Some((d, p)) => (Some(d), p),
            None => (None, reference),
        };
        let found = self
            .docs
            .iter()
            .filter(|d| doc_name.is_none_or(|n| n == d.name))
            .find(|d| d.root.pointer(pointer).is_some());
        let Some(doc) = found else {
            return Err(Violation::new(ViolationKind::NoSuchPath, reference, None, "the contract has no such schema"));
        };
        // Checked through a $ref so a discriminated schema knows its own name.
        let named = serde_json::json!({ "$ref": format!("#{pointer}") });
        let errors = Validator::new(&doc.root, &self.patterns).check(&named, value, "");
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Violation {
                kind: ViolationKind::OffContract,
                request: reference.to_string(),
                operation: None,
                message: format!("value does not match {reference}"),
                details: errors.into_iter().map(|e| (e.pointer, e.message)).collect(),
            })
        }
    }

    /// Finds the operation a request is aimed at and checks everything the contract says about it.
    pub fn check(&self, req: &RequestParts<'_>) -> Result<Matched, Violation> {
        let method = req.method.to_ascii_lowercase();
        let request = format!("{} {}", req.method.to_ascii_uppercase(), req.path);
        let mut matches = Vec::new();
        for doc in &self.docs {
            for op in &doc.operations {
                if let Some((params, key)) = op.template.matches(req.path) {
                    matches.push((doc, op, params, key));
                }
            }
        }
        let Some(best_key) = matches.iter().map(|m| m.3.clone()).max() else {
            return Err(Violation::new(
                ViolationKind::NoSuchPath,
                request,
                None,
                "the contract has no path matching this request",
            ));
        };
        matches.retain(|m| m.3 == best_key);
        let Some(pos) = matches.iter().position(|m| m.1.method == method) else {
            let allowed: Vec<String> = matches.iter().map(|m| m.1.method.to_ascii_uppercase()).collect();
            return Err(Violation::new(
                ViolationKind::NoSuchMethod,
                request,
                None,
                format!(
                    "the contract has no {} on {} (it has {})",
                    req.method.to_ascii_uppercase(),
                    matches[0].1.template.text,
                    allowed.join(", ")
                ),
            ));
        };
        let (doc, op, path_params, _) = matches.swap_remove(pos);
        let mut details = Vec::new();
        let query = parse_query(req.query);
        let body = self.check_operation(doc, op, req, &path_params, &query, &mut details);
        if !details.is_empty() {
            return Err(Violation {
                kind: ViolationKind::OffContract,
                request,
                operation: op.operation_id.clone(),
                message: format!("request is off-contract ({} problem(s))", details.len()),
                details,
            });
        }
        Ok(Matched {
            operation_id: op.operation_id.clone(),
            method: op.method.to_ascii_uppercase(),
            template: op.template.text.clone(),
            path_params: path_params.into_iter().collect(),
            query,
            body,
        })
    }

    /// Checks parameters and body of a matched operation, pushing problems into `details`;
    /// returns the parsed JSON body.
    fn check_operation(
        &self,
        doc: &Document,
        op: &Operation,
        req: &RequestParts<'_>,
        path_params: &[(String, String)],
        query: &[(String, String)],
        details: &mut Vec<(String, String)>,
    ) -> Option<Value> {
        let validator = || Validator::new(&doc.root, &self.patterns);
        let resolve = |v: &Value| self.resolve(doc, v);
        let item = doc.root.pointer(&op.item_pointer)?;
        let operation = item.get(op.method)?;

        // Path-item parameters first, overridden by operation parameters with the same name and place.
        let mut raw: Vec<Value> = Vec::new();
        for list in [item.get("parameters"), operation.get("parameters")] {
            for p in list.and_then(Value::as_array).into_iter().flatten() {
                raw.extend(resolve(p));
            }
        }
        let mut declared: Vec<Param<'_>> = Vec::new();
        for p in raw.iter().filter_map(Param::from_value) {
            declared.retain(|d| !(d.name == p.name && d.location == p.location));
            declared.push(p);
        }

        for p in &declared {
            let schema = p.schema.and_then(resolve);
            let ty = schema.as_ref().and_then(|s| s.get("type")).and_then(Value::as_str).map(str::to_string);
            let texts: Vec<String> = match p.location {
                Location::Path => path_params.iter().filter(|(k, _)| k == p.name).map(|(_, v)| v.clone()).collect(),
                Location::Query => query.iter().filter(|(k, _)| k == p.name).map(|(_, v)| v.clone()).collect(),
                Location::Header => {
                    let mut out = Vec::new();
                    for v in req.headers.get_all(p.name) {
                        match v.to_str() {
                            Ok(s) => out.push(s.to_string()),
                            Err(_) => details.push((p.label(), "is not visible ASCII".to_string())),
                        }
                    }
                    out
                }
                Location::Cookie => continue,
            };
            if texts.is_empty() {
                if p.required {
                    details.push((p.label(), "is required but missing".to_string()));
                }
                continue;
            }
            let Some(schema) = schema else { continue };
            let value = if ty.as_deref() == Some("array") {
                let item_ty = schema
                    .get("items")
                    .and_then(&resolve)
                    .and_then(|i| i.get("type").and_then(Value::as_str).map(str::to_string));
                let pieces: Vec<&str> = if !p.explode && texts.len() == 1 {
                    texts[0].split(',').collect()
                } else {
                    texts.iter().map(String::as_str).collect()
                };
                let mut items = Vec::new();
                for piece in pieces {
                    match params::coerce(item_ty.as_deref(), piece) {
                        Ok(v) => items.push(v),
                        Err(e) => details.push((p.label(), e)),
                    }
                }
                Value::Array(items)
            } else {
                if texts.len() > 1 {
                    details.push((p.label(), format!("given {} times, expected once", texts.len())));
                }
                match params::coerce(ty.as_deref(), &texts[0]) {
                    Ok(v) => v,
                    Err(e) => {
                        details.push((p.label(), e));
                        continue;
                    }
                }
            };
            for e in validator().check(&schema, &value, "") {
                let at = format!("{}{}", p.label(), e.pointer);
                details.push((at, e.message));
            }
        }

        for guarded in &self.guarded_headers {
            let declared_here =
                declared.iter().any(|p| p.location == Location::Header && p.name.eq_ignore_ascii_case(guarded));
            if !declared_here && let Some(name) = req.headers.keys().find(|k| k.as_str().eq_ignore_ascii_case(guarded))
            {
                details.push((format!("header:{name}"), "this operation does not accept this header".to_string()));
            }
        }

        self.check_body(doc, operation, req, details)
    }

    /// Follows a `$ref` (parameters, request bodies, schemas) inside `doc`.
    fn resolve(&self, doc: &Document, v: &Value) -> Option<Value> {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => Validator::new(&doc.root, &self.patterns).resolve(r).cloned(),
            None => Some(v.clone()),
        }
    }

    fn check_body(
        &self,
        doc: &Document,
        operation: &Value,
        req: &RequestParts<'_>,
        details: &mut Vec<(String, String)>,
    ) -> Option<Value> {
        let Some(spec) = operation.get("requestBody").and_then(|b| self.resolve(doc, b)) else {
            if !req.body.is_empty() {
                details.push((
                    "body".to_string(),
                    format!("this operation takes no request body, got {} bytes", req.body.len()),
                ));
            }
            return None;
        };
        if req.body.is_empty() {
            if spec.get("required").and_then(Value::as_bool) == Some(true) {
                details.push(("body".to_string(), "a request body is required".to_string()));
            }
            return None;
        }
        let content = spec.get("content").and_then(Value::as_object)?;
        let content_type = req.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if media == FORM_MEDIA
            && let Some(form) = content.iter().find(|(k, _)| k.eq_ignore_ascii_case(FORM_MEDIA)).map(|(_, v)| v)
        {
            return Some(self.check_form(doc, form.get("schema"), req.body, details));
        }
        let json_schema = content.iter().find(|(k, _)| is_json_media(k)).map(|(_, v)| v.get("schema"));
        let Some(json_schema) = json_schema else {
            let accepted = content.keys().any(|k| media_matches(k, &media));
            if !accepted {
                details.push((
                    "header:Content-Type".to_string(),
                    format!(
                        "{content_type:?} is not one of {}",
                        content.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            return None;
        };
        if !is_json_media(&media) {
            details
                .push(("header:Content-Type".to_string(), format!("expected application/json, got {content_type:?}")));
        }
        let value: Value = match serde_json::from_slice(req.body) {
            Ok(v) => v,
            Err(e) => {
                details.push(("body".to_string(), format!("not valid JSON: {e}")));
                return None;
            }
        };
        if let Some(schema) = json_schema {
            for e in Validator::new(&doc.root, &self.patterns).check(schema, &value, "") {
                details.push((e.pointer, e.message));
            }
        }
        Some(value)
    }

    /// Decodes an `application/x-www-form-urlencoded` body into an object (each field typed as
    /// its schema property declares) and checks it against `schema`; problems are located by
    /// JSON pointers naming the field (`/code_verifier`).
    fn check_form(
        &self,
        doc: &Document,
        schema: Option<&Value>,
        body: &[u8],
        details: &mut Vec<(String, String)>,
    ) -> Value {
        let text = String::from_utf8_lossy(body);
        let resolved = schema.and_then(|s| self.resolve(doc, s));
        let mut fields = serde_json::Map::new();
        for (name, raw) in parse_query(Some(&text)) {
            let at = schema::child("", &name);
            if fields.contains_key(&name) {
                details.push((at, "is given more than once".to_string()));
                continue;
            }
            let ty = resolved.as_ref().and_then(|s| self.form_field_type(doc, s, &name, 0));
            match params::coerce(ty.as_deref(), &raw) {
                Ok(v) => {
                    fields.insert(name, v);
                }
                Err(e) => details.push((at, e)),
            }
        }
        let value = Value::Object(fields);
        if let Some(schema) = schema {
            for e in Validator::new(&doc.root, &self.patterns).check(schema, &value, "") {
                if !details.iter().any(|(at, _)| *at == e.pointer) {
                    details.push((e.pointer, e.message));
                }
            }
        }
        value
    }

    /// The `type` a form schema declares for field `name`, looking through `allOf`/`oneOf`/
    /// `anyOf` alternatives (a token request is often a `oneOf` by grant type).
    fn form_field_type(&self, doc: &Document, schema: &Value, name: &str, depth: usize) -> Option<String> {
        if depth > 8 {
            return None;
        }
        let schema = self.resolve(doc, schema)?;
        if let Some(prop) = schema.get("properties").and_then(|p| p.get(name)) {
            return self.resolve(doc, prop)?.get("type").and_then(Value::as_str).map(str::to_string);
        }
        ["allOf", "oneOf", "anyOf"]
            .iter()
            .filter_map(|k| schema.get(*k).and_then(Value::as_array))
            .flatten()
            .find_map(|alt| self.form_field_type(doc, alt, name, depth + 1))
    }
}

/// The media type of HTML forms and OAuth 2.0 token requests.
const FORM_MEDIA: &str = "application/x-www-form-urlencoded";

fn is_json_media(media: &str) -> bool {
    let media = media.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json") || media.ends_with("+json")
}

/// `image/*`-style wildcards in a declared media type.
fn media_matches(declared: &str, actual: &str) -> bool {
    let declared = declared.to_ascii_lowercase();
    match declared.strip_suffix("/*") {
        Some(prefix) => actual.starts_with(&format!("{prefix}/")),
        None => declared == "*/*" || declared == actual,
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
