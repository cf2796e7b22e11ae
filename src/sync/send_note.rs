//! How a timeline note names the LINE send it records.
//!
//! HubSpot offers no idempotency key for notes, so each note carries its send's id in its text
//! (`linehub send #N`). After an answer that never came, linehub reads the contact's notes and
//! adopts the one that names the send instead of writing a second one.
//!
//! The marker is the first text of the note, before anything that came from outside (the
//! messages, filled-in contact properties, the account's name), and only markup may precede it.
//! Outside text is escaped and comes after it, so however it reads (`linehub send #99`), it can
//! never be taken for the marker; and a long note is shortened in its messages, never in the
//! marker.

/// The words before a send's id in a note.
const PREFIX: &str = "linehub send #";

/// How a note names its send; also how linehub recognises its own notes. It must be the first
/// text of the note's body.
pub fn note_marker(send_id: i64) -> String {
    format!("{PREFIX}{send_id}")
}

/// The send id named by a note's body, if it is one of linehub's: its first text, after any
/// leading markup, is the marker.
pub fn marked_send(body: &str) -> Option<i64> {
    let mut rest = body.trim_start();
    while let Some(tag) = rest.strip_prefix('<') {
        rest = tag[tag.find('>')? + 1..].trim_start();
    }
    let rest = rest.strip_prefix(PREFIX)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_name_their_send() {
        let body = format!("<p>{}</p><p>LINE message sent</p>", note_marker(42));
        assert_eq!(marked_send(&body), Some(42));
        assert_eq!(marked_send(&note_marker(7)), Some(7));
        assert_eq!(marked_send("linehub send #"), None);
        assert_eq!(marked_send("a note by hand"), None);
        assert_ne!(marked_send(&note_marker(4)), marked_send(&note_marker(42)));
    }

    #[test]
    fn only_the_leading_marker_counts_never_text_after_it_or_before_it() {
        let body = format!("<p>{}</p><ol><li>about linehub send #99</li></ol>", note_marker(3));
        assert_eq!(marked_send(&body), Some(3));
        assert_eq!(marked_send("<p>Call notes: linehub send #99</p>"), None, "text before it: not ours");
        assert_eq!(marked_send("<p>LINE message</p><p>linehub send #5</p>"), None);
        assert_eq!(marked_send("<p unclosed linehub send #5"), None);
    }
}
