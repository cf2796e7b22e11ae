//! Path, query and header parameters: strings on the wire, typed values in the schema.
//!
//! A parameter's schema says `integer` or `boolean`, but the request carries text. This module
//! turns the text into the JSON value the schema describes (or says why it can't), so the schema
//! checker can apply `minimum`, `enum`, `pattern` and the rest unchanged.

use serde_json::Value;

/// Converts one textual parameter value into the JSON type its schema declares.
pub(crate) fn coerce(schema_type: Option<&str>, text: &str) -> Result<Value, String> {
    match schema_type {
        Some("integer") => {
            text.parse::<i64>().map(Value::from).map_err(|_| format!("expected an integer, got {text:?}"))
        }
        Some("number") => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("expected a number, got {text:?}")),
        Some("boolean") => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("expected true or false, got {text:?}")),
        },
        _ => Ok(Value::String(text.to_string())),
    }
}

/// Where a parameter lives, as OpenAPI's `in` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    Path,
    Query,
    Header,
    Cookie,
}

impl Location {
    pub(crate) fn parse(s: &str) -> Option<Location> {
        match s {
            "path" => Some(Location::Path),
            "query" => Some(Location::Query),
            "header" => Some(Location::Header),
            "cookie" => Some(Location::Cookie),
            _ => None,
        }
    }

    /// The prefix used in violation details (`query:limit`).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Location::Path => "path",
            Location::Query => "query",
            Location::Header => "header",
            Location::Cookie => "cookie",
        }
    }
}

/// A declared parameter with its `$ref`s already resolved.
#[derive(Debug, Clone)]
pub(crate) struct Param<'a> {
    pub(crate) name: &'a str,
    pub(crate) location: Location,
    pub(crate) required: bool,
    pub(crate) schema: Option<&'a Value>,
    /// OpenAPI `explode`; form-style query arrays explode by default.
    pub(crate) explode: bool,
}

impl<'a> Param<'a> {
    /// Reads a parameter object; `None` when it lacks `name` or a known `in`.
    pub(crate) fn from_value(v: &'a Value) -> Option<Param<'a>> {
        let location = Location::parse(v.get("in")?.as_str()?)?;
        Some(Param {
            name: v.get("name")?.as_str()?,
            location,
            // Path parameters are always required, whatever the document says.
            required: location == Location::Path || v.get("required").and_then(Value::as_bool) == Some(true),
            schema: v.get("schema"),
            explode: v.get("explode").and_then(Value::as_bool).unwrap_or(true),
        })
    }

    /// The label used for this parameter in violation details.
    pub(crate) fn label(&self) -> String {
        format!("{}:{}", self.location.label(), self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_coerced_to_the_declared_type_or_explained() {
        assert_eq!(coerce(Some("integer"), "300"), Ok(Value::from(300)));
        assert!(coerce(Some("integer"), "3.5").is_err());
        assert_eq!(coerce(Some("boolean"), "true"), Ok(Value::Bool(true)));
        assert_eq!(coerce(None, "x"), Ok(Value::from("x")));
    }
}
