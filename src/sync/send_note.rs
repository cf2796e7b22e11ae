//! How a timeline note names the LINE send it records.
//!
//! HubSpot offers no idempotency key for notes, so each note carries its send's id in its text
//! (`linehub send #N`). After an answer that never came, linehub reads the contact's notes and
//! adopts the one that names the send instead of writing a second one.

/// The words before a send's id in a note.
const PREFIX: &str = "linehub send #";

/// How a note names its send; also how linehub recognises its own notes.
pub fn note_marker(send_id: i64) -> String {
    format!("{PREFIX}{send_id}")
}

/// The send id named in a note's text, if it is one of linehub's.
pub fn marked_send(body: &str) -> Option<i64> {
    let rest = &body[body.find(PREFIX)? + PREFIX.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_name_their_send() {
        let body = format!("LINE message sent\n\n— {}", note_marker(42));
        assert_eq!(marked_send(&body), Some(42));
        assert_eq!(marked_send("linehub send #"), None);
        assert_eq!(marked_send("a note by hand"), None);
        assert_ne!(marked_send(&note_marker(4)), marked_send(&note_marker(42)));
    }
}
