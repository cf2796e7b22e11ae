//! Retry keys: the `X-Line-Retry-Key` of a LINE send, chosen when the send is stored so that
//! every attempt carries the same one and LINE never delivers it twice.

/// A random UUID (version 4) in LINE's hex form, e.g. `123e4567-e89b-42d3-a456-426614174000`.
pub(crate) fn retry_key() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_keys_are_version_4_uuids() {
        let k = retry_key();
        assert_eq!(k.len(), 36);
        assert_eq!(&k[14..15], "4");
        assert!(matches!(&k[19..20], "8" | "9" | "a" | "b"));
        assert!(k.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_ne!(k, retry_key());
    }
}
