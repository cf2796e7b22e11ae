//! Wall-clock dates as the APIs write them: epoch milliseconds and ISO 8601 / RFC 3339 strings.
//!
//! Durations and rate-limit windows use `tokio::time::Instant` (so tests can pause the clock);
//! this module is only for the timestamps that appear in bodies (`createdAt`, `createdate`,
//! `membershipTimestamp`) and for checking HubSpot `date`/`datetime` property values.

use std::time::{SystemTime, UNIX_EPOCH};

const MS_PER_DAY: i64 = 86_400_000;

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Formats epoch milliseconds as `2026-03-30T12:34:56.789Z`, HubSpot's timestamp form.
pub(crate) fn format_iso(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let rest = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `YYYY-MM-DD` into epoch milliseconds at midnight UTC, rejecting impossible dates.
pub(crate) fn parse_iso_date_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    if !(1..=12).contains(&m) || d < 1 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Round-trip to reject 2026-02-30 and friends.
    (civil_from_days(days) == (y, m, d)).then_some(days * MS_PER_DAY)
}

/// True for a valid `YYYY-MM-DD` date.
pub(crate) fn is_iso_date(s: &str) -> bool {
    parse_iso_date_ms(s).is_some()
}

/// Parses an RFC 3339 date-time (`2026-03-30T12:00:00Z`, fractions and `±HH:MM` offsets allowed)
/// into epoch milliseconds.
pub(crate) fn parse_iso_datetime_ms(s: &str) -> Option<i64> {
    if s.len() < 20 || !s.is_char_boundary(10) || !s.is_char_boundary(19) {
        return None;
    }
    let date = parse_iso_date_ms(&s[..10])?;
    let t = s.as_bytes();
    if !matches!(t[10], b'T' | b't') || t[13] != b':' || t[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (digits(&s[11..13])?, digits(&s[14..16])?, digits(&s[17..19])?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..n.min(3)]);
        millis = digits(&padded)?;
        rest = &frac[n..];
    }
    let offset_ms = match rest {
        "Z" | "z" => 0,
        _ => {
            let b = rest.as_bytes();
            if b.len() != 6 || !matches!(b[0], b'+' | b'-') || b[3] != b':' {
                return None;
            }
            let (oh, om) = (digits(&rest[1..3])?, digits(&rest[4..6])?);
            let sign = if b[0] == b'+' { 1 } else { -1 };
            sign * (oh * 3_600_000 + om * 60_000)
        }
    };
    Some(date + h * 3_600_000 + mi * 60_000 + sec * 1000 + millis - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hubspot_documented_midnight_example_round_trips() {
        // hubspot.md §6: 2015-05-01 is 1430438400000.
        assert_eq!(parse_iso_date_ms("2015-05-01"), Some(1_430_438_400_000));
        assert_eq!(format_iso(1_430_438_400_000), "2015-05-01T00:00:00.000Z");
    }

    #[test]
    fn impossible_dates_and_loose_times_are_rejected() {
        assert!(!is_iso_date("2026-02-30"));
        assert!(!is_iso_date("2026-2-3"));
        assert_eq!(parse_iso_datetime_ms("2026-03-30T12:00:00"), None);
        assert_eq!(
            parse_iso_datetime_ms("2026-03-30T21:00:00.5+09:00"),
            parse_iso_datetime_ms("2026-03-30T12:00:00.500Z")
        );
    }
}
