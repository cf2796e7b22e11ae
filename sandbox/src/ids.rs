//! Identifiers in the shapes the real services hand out: LINE user ids, ULIDs, UUIDs.
//!
//! Nothing here is secret or cryptographic; the ids only need to look right and not collide.

use rand::Rng;

const HEX: &[u8; 16] = b"0123456789abcdef";
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// `n` random lower-case hex digits.
pub(crate) fn hex(rng: &mut impl Rng, n: usize) -> String {
    (0..n).map(|_| HEX[rng.random_range(0..16)] as char).collect()
}

/// A LINE user id: `U` and 32 lower-case hex digits.
pub(crate) fn line_user_id(rng: &mut impl Rng) -> String {
    format!("U{}", hex(rng, 32))
}

/// A random (version 4) UUID, the shape of LINE request ids and HubSpot correlation ids.
pub(crate) fn uuid_v4() -> String {
    let mut rng = rand::rng();
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{:02x}", x)).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A ULID (26 Crockford base-32 characters: 48-bit millisecond time, 80 random bits), the
/// format of LINE's `webhookEventId`.
pub(crate) fn ulid(ts_ms: i64, rng: &mut impl Rng) -> String {
    let time = (ts_ms.max(0) as u128) & ((1u128 << 48) - 1);
    let random: u128 = rng.random::<u128>() & ((1u128 << 80) - 1);
    let value = (time << 80) | random;
    (0..26).rev().map(|i| CROCKFORD[((value >> (i * 5)) & 0x1f) as usize] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_are_26_characters_and_sort_by_time() {
        let mut rng = rand::rng();
        let a = ulid(1_700_000_000_000, &mut rng);
        let b = ulid(1_700_000_000_001, &mut rng);
        assert_eq!(a.len(), 26);
        assert!(a < b);
        assert!(a.chars().all(|c| CROCKFORD.contains(&(c as u8))));
    }

    #[test]
    fn uuids_have_the_8_4_4_4_12_shape() {
        assert!(crate::contract::is_uuid(&uuid_v4()));
    }

    #[test]
    fn line_user_ids_are_u_and_32_hex_digits() {
        let id = line_user_id(&mut rand::rng());
        assert_eq!(id.len(), 33);
        assert!(id.starts_with('U'));
        assert!(id[1..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
