//! Contact tokens: `{{contact.firstname}}` in a message becomes the contact's `firstname`.
//!
//! Any contact property's internal name may be used, with or without spaces inside the braces
//! (`{{ contact.company }}`). A property the contact has no value for becomes empty text, as in
//! HubSpot's own emails without a default. Anything else in braces is left as written.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The property names the tokens of `text` refer to.
pub fn names(text: &str, into: &mut BTreeSet<String>) {
    scan(text, |name| {
        into.insert(name.to_string());
        None
    });
}

/// The property names used anywhere in `value` (every string in a message object).
pub fn names_in(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => names(s, into),
        Value::Array(items) => items.iter().for_each(|v| names_in(v, into)),
        Value::Object(map) => map.values().for_each(|v| names_in(v, into)),
        _ => {}
    }
}

/// `text` with every token replaced by the property's value (empty when it has none).
pub fn render(text: &str, properties: &BTreeMap<String, String>) -> String {
    scan(text, |name| Some(properties.get(name).map(String::as_str).unwrap_or("")))
}

/// `value` with the tokens of every string in it replaced.
pub fn render_in(value: &Value, properties: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(s) => Value::String(render(s, properties)),
        Value::Array(items) => Value::Array(items.iter().map(|v| render_in(v, properties)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), render_in(v, properties))).collect()),
        other => other.clone(),
    }
}

/// Walks `text`, handing each token's property name to `f`; where `f` answers, the token is
/// replaced by the answer. Returns the resulting text.
fn scan<'a>(text: &'a str, mut f: impl FnMut(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = after[..end].trim();
        let name = inner.strip_prefix("contact.").filter(|n| is_property_name(n));
        match name.and_then(&mut f) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// HubSpot internal property names: lowercase letters, digits and underscores.
fn is_property_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props() -> BTreeMap<String, String> {
        [("firstname", "花子"), ("company", "ACME")].into_iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn tokens_are_found_and_replaced() {
        let text = "こんにちは {{contact.firstname}}さん ({{ contact.company }}) {{contact.lastname}}!";
        let mut found = BTreeSet::new();
        names(text, &mut found);
        assert_eq!(found.into_iter().collect::<Vec<_>>(), ["company", "firstname", "lastname"]);
        assert_eq!(render(text, &props()), "こんにちは 花子さん (ACME) !");
    }

    #[test]
    fn other_braces_are_left_alone() {
        for text in ["{{deal.amount}}", "{{contact.First Name}}", "{{contact.}}", "{{ unclosed", "{{}}", "}}{{"] {
            assert_eq!(render(text, &props()), text);
            let mut found = BTreeSet::new();
            names(text, &mut found);
            assert!(found.is_empty(), "{text}");
        }
        assert_eq!(render("a {{contact.firstname", &props()), "a {{contact.firstname");
    }

    #[test]
    fn tokens_inside_message_objects() {
        let msg = serde_json::json!({"type": "text", "text": "{{contact.firstname}}", "emojis": [{"index": 0}]});
        let mut found = BTreeSet::new();
        names_in(&msg, &mut found);
        assert!(found.contains("firstname"));
        assert_eq!(render_in(&msg, &props())["text"], "花子");
        assert_eq!(render_in(&msg, &props())["emojis"][0]["index"], 0);
    }
}
