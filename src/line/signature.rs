//! `X-Line-Signature` verification.
//!
//! LINE signs the raw request body with HMAC-SHA256 keyed by the Messaging API channel secret and
//! sends the digest base64-encoded. We decode the header and compare MACs in constant time over
//! the exact bytes received: never over a re-serialised body, never as base64 strings.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Line-Signature` header.
    #[error("missing X-Line-Signature header")]
    Missing,
    /// The header is not base64 of a 32-byte digest.
    #[error("X-Line-Signature is not a base64 HMAC-SHA256 digest")]
    Malformed,
    /// The digest does not match the body and the channel secret.
    #[error("X-Line-Signature does not match the body")]
    Mismatch,
}

/// Checks `header` (the `X-Line-Signature` value, if any) against `body` and `channel_secret`.
pub fn verify(channel_secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let expected = STANDARD.decode(header.trim_ascii()).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = HmacSha256::new_from_slice(channel_secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

/// Signs `body` the way LINE does; used by the demo and tests to play LINE's side.
pub fn sign(channel_secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        HmacSha256::new_from_slice(channel_secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"8c570fa6dd201bb328f1c1eac23a96d8";

    #[test]
    fn known_vectors_verify() {
        // Computed with Python's hmac module, independently of this code.
        let empty = br#"{"events":[]}"#;
        assert_eq!(sign(SECRET, empty), "RIZv+ghLA0VnBQ9V4IKZeQBgYqUhjr9LL05tE4VSkWo=");
        let emoji_with_newline = "{\"destination\":\"U0123\",\"events\":[{\"type\":\"message\",\"message\":{\"type\":\"text\",\"text\":\"こんにちは 👋\"}}]}\n";
        assert_eq!(sign(SECRET, emoji_with_newline.as_bytes()), "9pqc8KQ2j3u3oS9hE0mArrwM8cEMp5dXqIFaIAxZJ/o=");
        assert_eq!(verify(SECRET, empty, Some(b"RIZv+ghLA0VnBQ9V4IKZeQBgYqUhjr9LL05tE4VSkWo=")), Ok(()));
    }

    #[test]
    fn every_changed_input_is_refused() {
        let body = "{\"events\":[{\"text\":\"こんにちは 👋\"}]}\n".as_bytes();
        let sig = sign(SECRET, body);
        let mut tampered = body.to_vec();
        tampered[12] ^= 1;
        assert_eq!(verify(SECRET, &tampered, Some(sig.as_bytes())), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"another secret", body, Some(sig.as_bytes())), Err(SignatureError::Mismatch));
        assert_eq!(verify(SECRET, &body[..body.len() - 1], Some(sig.as_bytes())), Err(SignatureError::Mismatch));
        assert_eq!(verify(SECRET, body, None), Err(SignatureError::Missing));
        assert_eq!(verify(SECRET, body, Some(b"not base64!")), Err(SignatureError::Malformed));
        assert_eq!(verify(SECRET, body, Some(b"AAAA")), Err(SignatureError::Malformed));
    }
}
