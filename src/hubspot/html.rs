//! Text from outside (a LINE user's message, a contact's property, an account name) made safe for
//! the bodies of notes and tasks, which HubSpot shows as rich text (HTML).
//!
//! Every piece of such text passes through here before it is put into a body, so markup a user
//! typed is shown as the characters they typed and never rendered for a rep. Shortening happens
//! here too, on the escaped form, so a cut never leaves half an entity (`&am`) behind.

/// `text` safe inside HTML: `<`, `>`, `&`, `"` and `'` become entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        push_escaped(&mut out, ch);
    }
    out
}

/// `text` escaped, with its line breaks as `<br>`, at most `max_chars` characters long: when it
/// does not fit, it is cut at a character boundary of the original and ends with `…`.
pub fn text_to_html(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars));
    let mut used = 0;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        let mut piece = String::new();
        if ch == '\n' {
            piece.push_str("<br>");
        } else {
            push_escaped(&mut piece, ch);
        }
        let len = piece.chars().count();
        // Room for the ellipsis must remain unless this is the last character.
        let reserve = usize::from(chars.peek().is_some());
        if used + len + reserve > max_chars {
            if used < max_chars {
                out.push('…');
            }
            return out;
        }
        out.push_str(&piece);
        used += len;
    }
    out
}

fn push_escaped(out: &mut String, ch: char) {
    match ch {
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '&' => out.push_str("&amp;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_becomes_text() {
        assert_eq!(escape("<b>Hi</b> & \"you\" 'x'"), "&lt;b&gt;Hi&lt;/b&gt; &amp; &quot;you&quot; &#39;x&#39;");
        assert_eq!(text_to_html("a<b\nc", 100), "a&lt;b<br>c");
    }

    #[test]
    fn a_cut_never_splits_an_entity_and_stays_within_the_limit() {
        let text = "\"".repeat(50);
        for max in 1..40 {
            let html = text_to_html(&text, max);
            assert!(html.chars().count() <= max, "{max}: {html}");
            let body = html.trim_end_matches('…');
            assert_eq!(body.len() % "&quot;".len(), 0, "{max}: {html}");
        }
        assert_eq!(text_to_html("abc", 3), "abc", "what fits is not cut");
        assert_eq!(text_to_html("abcd", 3), "ab…");
    }
}
