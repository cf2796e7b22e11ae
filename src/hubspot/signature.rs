//! Verifying that a request really comes from HubSpot: workflow actions, cards and webhooks.
//!
//! HubSpot signs what it sends to an app's URLs with the app's client secret:
//! - **v3** (`X-HubSpot-Signature-v3` + `X-HubSpot-Request-Timestamp`, ms): base64 of
//!   HMAC-SHA256 over `method + uri + body + timestamp`. The timestamp must be within five
//!   minutes of now, so a captured request cannot be replayed later.
//! - **v2** (`X-HubSpot-Signature` with `X-HubSpot-Signature-Version: v2`): lowercase hex of
//!   SHA-256 over `client_secret + method + uri + body`. It has no timestamp, so a captured
//!   request stays valid forever: it is refused unless the operator allows it
//!   (`hubspot.accept_v2_signatures`), and callers that accept it must make a replay harmless
//!   (the push action is keyed by its callback id).
//!
//! v3 is checked when its header is present; without it, v2 only where allowed. v1 (`secret +
//! body` only, no method or URL) is always refused: it would let a signed body be replayed
//! against any route.
//!
//! `uri` is the full URL HubSpot called. Behind a reverse proxy the daemon cannot see it, so the
//! caller rebuilds it from `server.public_base_url` and the request's path and query. Digests are
//! compared in constant time over the decoded bytes, never as strings.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = hmac::Hmac<Sha256>;

/// How far a v3 timestamp may be from now, either way.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

/// The signature headers of one request, as received (any may be missing).
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    /// `X-HubSpot-Signature-v3`.
    pub v3: Option<&'a [u8]>,
    /// `X-HubSpot-Request-Timestamp`.
    pub timestamp: Option<&'a [u8]>,
    /// `X-HubSpot-Signature`.
    pub legacy: Option<&'a [u8]>,
    /// `X-HubSpot-Signature-Version`.
    pub version: Option<&'a [u8]>,
}

/// The request that was signed.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `POST`, `GET`, … as sent.
    pub method: &'a str,
    /// The full URL HubSpot called.
    pub uri: &'a str,
    /// The raw body bytes.
    pub body: &'a [u8],
}

/// Which signature a request passed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// v3, with a fresh timestamp.
    V3,
    /// v2 (no timestamp).
    V2,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Neither a v3 nor a v2 signature.
    #[error("missing HubSpot signature (X-HubSpot-Signature-v3, or X-HubSpot-Signature with version v2)")]
    Missing,
    /// A v1 signature, or an unknown version.
    #[error("HubSpot signature version is not accepted (only v3 and v2 are)")]
    UnsupportedVersion,
    /// A v2 signature where only v3 is accepted.
    #[error(
        "HubSpot v2 signatures are not accepted (no timestamp, so they can be replayed); sign with v3, or set hubspot.accept_v2_signatures: true"
    )]
    V2NotAccepted,
    /// v3 without a usable timestamp.
    #[error("X-HubSpot-Request-Timestamp is missing or not a number of milliseconds")]
    BadTimestamp,
    /// v3 timestamp more than five minutes away from now.
    #[error("X-HubSpot-Request-Timestamp is more than 5 minutes from now")]
    Stale,
    /// The header is not an encoded SHA-256 digest.
    #[error("HubSpot signature is not an encoded SHA-256 digest")]
    Malformed,
    /// The digest does not match the request and the client secret.
    #[error("HubSpot signature does not match the request")]
    Mismatch,
}

/// Checks `headers` against `request`, signed with `client_secret`, at `now_ms`. A v2 signature
/// passes only when `accept_v2` (`hubspot.accept_v2_signatures`) says so.
pub fn verify(
    client_secret: &[u8],
    request: &SignedRequest<'_>,
    headers: &SignatureHeaders<'_>,
    now_ms: i64,
    accept_v2: bool,
) -> Result<Verified, SignatureError> {
    if let Some(v3) = headers.v3 {
        let timestamp = headers.timestamp.ok_or(SignatureError::BadTimestamp)?;
        let ms = std::str::from_utf8(timestamp.trim_ascii())
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or(SignatureError::BadTimestamp)?;
        if now_ms.abs_diff(ms) > MAX_CLOCK_SKEW_MS.unsigned_abs() {
            return Err(SignatureError::Stale);
        }
        let expected = STANDARD.decode(v3.trim_ascii()).map_err(|_| SignatureError::Malformed)?;
        if expected.len() != 32 {
            return Err(SignatureError::Malformed);
        }
        let mut mac = v3_mac(client_secret, request);
        mac.update(timestamp.trim_ascii());
        return mac.verify_slice(&expected).map(|()| Verified::V3).map_err(|_| SignatureError::Mismatch);
    }
    let Some(legacy) = headers.legacy else { return Err(SignatureError::Missing) };
    match headers.version.map(<[u8]>::trim_ascii) {
        Some(v) if v.eq_ignore_ascii_case(b"v2") => {}
        _ => return Err(SignatureError::UnsupportedVersion),
    }
    if !accept_v2 {
        return Err(SignatureError::V2NotAccepted);
    }
    let given = decode_hex(legacy.trim_ascii()).ok_or(SignatureError::Malformed)?;
    let actual = v2_digest(client_secret, request);
    // Constant time: every byte is looked at whatever the first difference.
    if bool::from(given.ct_eq(&actual)) { Ok(Verified::V2) } else { Err(SignatureError::Mismatch) }
}

/// Signs `request` the v3 way at `timestamp_ms`; for the demo, which plays HubSpot's side.
pub fn sign_v3(client_secret: &[u8], request: &SignedRequest<'_>, timestamp_ms: i64) -> String {
    let mut mac = v3_mac(client_secret, request);
    mac.update(timestamp_ms.to_string().as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn v3_mac(client_secret: &[u8], request: &SignedRequest<'_>) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        HmacSha256::new_from_slice(client_secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(request.method.as_bytes());
    mac.update(v3_uri(request.uri).as_bytes());
    mac.update(request.body);
    mac
}

fn v2_digest(client_secret: &[u8], request: &SignedRequest<'_>) -> [u8; 32] {
    let mut sha = Sha256::new();
    sha.update(client_secret);
    sha.update(request.method.as_bytes());
    sha.update(request.uri.as_bytes());
    sha.update(request.body);
    sha.finalize().into()
}

/// The URI as v3 signs it: HubSpot decodes these escapes first (`:/?@!$'()*,;`) and leaves
/// every other one as sent.
fn v3_uri(uri: &str) -> std::borrow::Cow<'_, str> {
    if !uri.contains('%') {
        return std::borrow::Cow::Borrowed(uri);
    }
    let bytes = uri.as_bytes();
    let mut out = String::with_capacity(uri.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| uri.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|b| b":/?@!$'()*,;".contains(b));
        match decoded {
            Some(b) => {
                out.push(char::from(b));
                i += 3;
            }
            None => {
                let ch = uri[i..].chars().next().unwrap_or_default();
                out.push(ch);
                i += ch.len_utf8().max(1);
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// 64 hex digits (either case) → 32 bytes.
fn decode_hex(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"hubspot-client-secret-4c1e";
    const URI: &str = "https://linehub.test/hubspot/actions/push-line-message";
    const BODY: &[u8] =
        "{\"callbackId\":\"ap-1\",\"inputFields\":{\"message_1\":\"こんにちは {{contact.firstname}}\"}}".as_bytes();
    const TS: i64 = 1_764_000_000_000;
    // Computed with Python's hmac and hashlib modules, independently of this code.
    const V3: &str = "kK4h7rzvcO9qFlyMfUThQLEfc66Gs6B4MG7zrgh5hvA=";
    const V2: &str = "64748f564c04db45db333b013924f87e42ec54c76d39ddfc16cd4816ec962d34";

    fn request() -> SignedRequest<'static> {
        SignedRequest { method: "POST", uri: URI, body: BODY }
    }

    fn verify(
        secret: &[u8],
        request: &SignedRequest<'_>,
        headers: &SignatureHeaders<'_>,
        now: i64,
    ) -> Result<Verified, SignatureError> {
        super::verify(secret, request, headers, now, true)
    }

    fn v3_headers<'a>(sig: &'a str, ts: &'a str) -> SignatureHeaders<'a> {
        SignatureHeaders { v3: Some(sig.as_bytes()), timestamp: Some(ts.as_bytes()), ..Default::default() }
    }

    #[test]
    fn known_vectors() {
        assert_eq!(sign_v3(SECRET, &request(), TS), V3);
        let ts = TS.to_string();
        assert_eq!(verify(SECRET, &request(), &v3_headers(V3, &ts), TS + 1_000), Ok(Verified::V3));
        let v2 = SignatureHeaders { legacy: Some(V2.as_bytes()), version: Some(b"v2"), ..Default::default() };
        assert_eq!(verify(SECRET, &request(), &v2, 0), Ok(Verified::V2));
        let upper = V2.to_ascii_uppercase();
        let v2 = SignatureHeaders { legacy: Some(upper.as_bytes()), version: Some(b"V2"), ..Default::default() };
        assert_eq!(verify(SECRET, &request(), &v2, 0), Ok(Verified::V2));
    }

    #[test]
    fn v3_refusals() {
        let ts = TS.to_string();
        let at = |now| verify(SECRET, &request(), &v3_headers(V3, &ts), now);
        assert_eq!(at(TS + MAX_CLOCK_SKEW_MS), Ok(Verified::V3));
        assert_eq!(at(TS + MAX_CLOCK_SKEW_MS + 1), Err(SignatureError::Stale));
        assert_eq!(at(TS - MAX_CLOCK_SKEW_MS - 1), Err(SignatureError::Stale));
        let other_ts = (TS + 1).to_string();
        assert_eq!(verify(SECRET, &request(), &v3_headers(V3, &other_ts), TS), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"other", &request(), &v3_headers(V3, &ts), TS), Err(SignatureError::Mismatch));
        let get = SignedRequest { method: "GET", ..request() };
        assert_eq!(verify(SECRET, &get, &v3_headers(V3, &ts), TS), Err(SignatureError::Mismatch));
        let elsewhere = SignedRequest { uri: "https://linehub.test/other", ..request() };
        assert_eq!(verify(SECRET, &elsewhere, &v3_headers(V3, &ts), TS), Err(SignatureError::Mismatch));
        let mut body = BODY.to_vec();
        body[3] ^= 1;
        let tampered = SignedRequest { body: &body, ..request() };
        assert_eq!(verify(SECRET, &tampered, &v3_headers(V3, &ts), TS), Err(SignatureError::Mismatch));
        assert_eq!(verify(SECRET, &request(), &v3_headers("not base64!", &ts), TS), Err(SignatureError::Malformed));
        assert_eq!(verify(SECRET, &request(), &v3_headers("AAAA", &ts), TS), Err(SignatureError::Malformed));
        assert_eq!(verify(SECRET, &request(), &v3_headers(V3, "soon"), TS), Err(SignatureError::BadTimestamp));
        let no_ts = SignatureHeaders { v3: Some(V3.as_bytes()), ..Default::default() };
        assert_eq!(verify(SECRET, &request(), &no_ts, TS), Err(SignatureError::BadTimestamp));
    }

    #[test]
    fn v3_decodes_the_escapes_hubspot_decodes() {
        assert_eq!(v3_uri("https://h.test/a%3Ab%2fc?x=%40%20%7E"), "https://h.test/a:b/c?x=@%20%7E");
        assert_eq!(v3_uri("https://h.test/%"), "https://h.test/%");
        assert_eq!(v3_uri("https://h.test/%zz%3"), "https://h.test/%zz%3");
        assert_eq!(v3_uri("https://h.test/é%2C"), "https://h.test/é,");
    }

    #[test]
    fn v2_passes_only_where_it_is_accepted() {
        let v2 = SignatureHeaders { legacy: Some(V2.as_bytes()), version: Some(b"v2"), ..Default::default() };
        assert_eq!(super::verify(SECRET, &request(), &v2, 0, false), Err(SignatureError::V2NotAccepted));
        assert_eq!(super::verify(SECRET, &request(), &v2, 0, true), Ok(Verified::V2));
        let ts = TS.to_string();
        assert_eq!(super::verify(SECRET, &request(), &v3_headers(V3, &ts), TS, false), Ok(Verified::V3));
    }

    #[test]
    fn v2_and_v1_refusals() {
        assert_eq!(verify(SECRET, &request(), &SignatureHeaders::default(), 0), Err(SignatureError::Missing));
        let v1 = SignatureHeaders { legacy: Some(V2.as_bytes()), version: Some(b"v1"), ..Default::default() };
        assert_eq!(verify(SECRET, &request(), &v1, 0), Err(SignatureError::UnsupportedVersion));
        let unversioned = SignatureHeaders { legacy: Some(V2.as_bytes()), ..Default::default() };
        assert_eq!(verify(SECRET, &request(), &unversioned, 0), Err(SignatureError::UnsupportedVersion));
        let short = SignatureHeaders { legacy: Some(b"abcd"), version: Some(b"v2"), ..Default::default() };
        assert_eq!(verify(SECRET, &request(), &short, 0), Err(SignatureError::Malformed));
        let mut wrong = V2.as_bytes().to_vec();
        wrong[63] = if wrong[63] == b'0' { b'1' } else { b'0' };
        let wrong = SignatureHeaders { legacy: Some(&wrong), version: Some(b"v2"), ..Default::default() };
        assert_eq!(verify(SECRET, &request(), &wrong, 0), Err(SignatureError::Mismatch));
    }
}
