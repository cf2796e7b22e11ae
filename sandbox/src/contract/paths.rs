//! Path templates and query strings: the small amount of URL handling the contract needs.
//!
//! OpenAPI paths are templates (`/v2/bot/profile/{userId}`). A request path matches a template when
//! every literal segment is equal and every `{param}` segment is non-empty. When several templates
//! match, the one with literal segments earliest wins, so `/v2/bot/richmenu/list` beats
//! `/v2/bot/richmenu/{richMenuId}` as every OpenAPI router does.

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Must equal the request segment byte for byte.
    Literal(String),
    /// Captures the (percent-decoded) request segment under this name.
    Param(String),
}

/// What a match yields: the captured `(name, value)` parameters, and one flag per segment (true
/// for a literal) that orders more specific templates higher.
pub(crate) type PathMatch = (Vec<(String, String)>, Vec<bool>);

/// A parsed path template such as `/crm/v3/objects/contacts/{contactId}`.
#[derive(Debug, Clone)]
pub(crate) struct PathTemplate {
    /// The template as written in the document, used in messages and statistics.
    pub(crate) text: String,
    segments: Vec<Segment>,
}

impl PathTemplate {
    /// Parses a template; `{name}` segments become parameters.
    pub(crate) fn parse(text: &str) -> PathTemplate {
        let segments = split(text)
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(s.to_string()),
            })
            .collect();
        PathTemplate { text: text.to_string(), segments }
    }

    /// Matches a request path; returns the captured parameters and a specificity key
    /// (one flag per segment, true for a literal) that sorts more specific templates higher.
    pub(crate) fn matches(&self, path: &str) -> Option<PathMatch> {
        let parts: Vec<&str> = split(path).collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        let mut key = Vec::with_capacity(parts.len());
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg {
                Segment::Literal(lit) => {
                    if lit != part {
                        return None;
                    }
                    key.push(true);
                }
                Segment::Param(name) => {
                    if part.is_empty() {
                        return None;
                    }
                    params.push((name.clone(), percent_decode(part)));
                    key.push(false);
                }
            }
        }
        Some((params, key))
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`), keeping invalid escapes as they
/// are and replacing invalid UTF-8, so a malformed URL never panics the simulator.
fn decode(input: &str, plus_is_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes a path segment (`+` stays a plus).
pub(crate) fn percent_decode(segment: &str) -> String {
    decode(segment, false)
}

/// Splits a query string into decoded `(name, value)` pairs, in order, keeping repeats.
pub(crate) fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else {
        return Vec::new();
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k, true), decode(v, true)),
            None => (decode(pair, true), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_make_a_template_more_specific() {
        let list = PathTemplate::parse("/v2/bot/richmenu/list");
        let one = PathTemplate::parse("/v2/bot/richmenu/{richMenuId}");
        let (_, k1) = list.matches("/v2/bot/richmenu/list").expect("literal matches");
        let (p2, k2) = one.matches("/v2/bot/richmenu/list").expect("template matches");
        assert!(k1 > k2);
        assert_eq!(p2, vec![("richMenuId".to_string(), "list".to_string())]);
    }

    #[test]
    fn templates_do_not_match_paths_of_another_length_or_empty_params() {
        let t = PathTemplate::parse("/v2/bot/profile/{userId}");
        assert!(t.matches("/v2/bot/profile").is_none());
        assert!(t.matches("/v2/bot/profile/").is_none());
        assert!(t.matches("/v2/bot/profile/U1/x").is_none());
    }

    #[test]
    fn query_strings_are_decoded_and_keep_repeats() {
        let q = parse_query(Some("a=1&b=x%40y.z&a=2&c&d=a+b&bad=%zz%4"));
        assert_eq!(
            q,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x@y.z".into()),
                ("a".into(), "2".into()),
                ("c".into(), "".into()),
                ("d".into(), "a b".into()),
                ("bad".into(), "%zz%4".into()),
            ]
        );
    }
}
