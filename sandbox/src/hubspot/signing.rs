//! HubSpot's side of request signing: the headers HubSpot puts on the requests it sends to an app.
//!
//! When a workflow runs linehub's custom action (or delivers a webhook), HubSpot calls linehub's
//! URL and signs the call with the app's client secret. Tests that play HubSpot need those
//! signatures, and must not borrow linehub's own verification code to make them (a shared mistake
//! would then pass unnoticed), so this module computes them from HubSpot's public description of
//! "Validating requests":
//!
//! - v3: `X-HubSpot-Signature-v3` = base64 (standard alphabet, padded) of
//!   HMAC-SHA256(client secret, method + URI + body + timestamp), with the timestamp (epoch
//!   milliseconds, in decimal) sent as `X-HubSpot-Request-Timestamp`. HubSpot signs the URI with
//!   the percent-escapes of `: / ? @ ! $ ' ( ) * , ;` decoded (see [`v3_uri`]).
//! - v2: `X-HubSpot-Signature` = lower-case hex of SHA-256(client secret + method + URI + body),
//!   with `X-HubSpot-Signature-Version: v2`; the URI exactly as called.
//!
//! The URI is the full URL HubSpot called: scheme, host, path and query
//! (`https://linehub.test/hubspot/actions/push-line-message`). The method is upper-case, as
//! HubSpot sends it; the body is the raw bytes sent (empty for a GET).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Header carrying the v3 signature.
pub const SIGNATURE_V3_HEADER: &str = "X-HubSpot-Signature-v3";
/// Header carrying the v3 timestamp (epoch milliseconds).
pub const TIMESTAMP_HEADER: &str = "X-HubSpot-Request-Timestamp";
/// Header carrying the v1/v2 signature.
pub const SIGNATURE_HEADER: &str = "X-HubSpot-Signature";
/// Header naming the version of [`SIGNATURE_HEADER`] (`v2`).
pub const SIGNATURE_VERSION_HEADER: &str = "X-HubSpot-Signature-Version";

/// The escapes HubSpot decodes in the URI before computing a v3 signature.
const V3_DECODED: [(&str, char); 12] = [
    ("3A", ':'),
    ("2F", '/'),
    ("3F", '?'),
    ("40", '@'),
    ("21", '!'),
    ("24", '$'),
    ("27", '\''),
    ("28", '('),
    ("29", ')'),
    ("2A", '*'),
    ("2C", ','),
    ("3B", ';'),
];

/// The URI as HubSpot signs it in v3: `%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B` (either
/// case of hex digit) become the characters they stand for; every other escape stays as sent.
pub fn v3_uri(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let decoded = tail
            .get(..2)
            .and_then(|hex| V3_DECODED.iter().find(|(code, _)| code.eq_ignore_ascii_case(hex)))
            .map(|(_, c)| *c);
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[2..];
            }
            None => {
                out.push('%');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The v3 signature HubSpot sends in `X-HubSpot-Signature-v3`:
/// base64(HMAC-SHA256(client_secret, method + v3_uri(uri) + body + timestamp_ms)).
pub fn sign_v3(client_secret: &str, method: &str, uri: &str, body: &[u8], timestamp_ms: i64) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(client_secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(method.as_bytes());
    mac.update(v3_uri(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp_ms.to_string().as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The v2 signature HubSpot sends in `X-HubSpot-Signature`:
/// lower-case hex of SHA-256(client_secret + method + uri + body).
pub fn sign_v2(client_secret: &str, method: &str, uri: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(client_secret.as_bytes());
    hash.update(method.as_bytes());
    hash.update(uri.as_bytes());
    hash.update(body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The v3 headers of a signed request: `X-HubSpot-Signature-v3` and
/// `X-HubSpot-Request-Timestamp`.
pub fn headers_v3(
    client_secret: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp_ms: i64,
) -> Vec<(&'static str, String)> {
    vec![
        (SIGNATURE_V3_HEADER, sign_v3(client_secret, method, uri, body, timestamp_ms)),
        (TIMESTAMP_HEADER, timestamp_ms.to_string()),
    ]
}

/// The v2 headers of a signed request: `X-HubSpot-Signature` and
/// `X-HubSpot-Signature-Version: v2`.
pub fn headers_v2(client_secret: &str, method: &str, uri: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![(SIGNATURE_HEADER, sign_v2(client_secret, method, uri, body)), (SIGNATURE_VERSION_HEADER, "v2".to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "linehub-client-secret";
    const ACTION_URL: &str = "https://linehub.test/hubspot/actions/push-line-message";
    const BODY: &str = r#"{"callbackId":"ap-102670506-56777914962-11-0","inputFields":{"message":"こんにちは"}}"#;
    const TS: i64 = 1_767_225_600_000;

    // Every expected value below was computed independently with Python's hmac, hashlib and
    // base64 modules over the UTF-8 bytes of the concatenated strings.

    #[test]
    fn v3_matches_an_independent_hmac_sha256() {
        assert_eq!(
            sign_v3(SECRET, "POST", ACTION_URL, BODY.as_bytes(), TS),
            "XSVxbCgbTK8YTdhthez8vbTXNV0jKCBG5brkNUmiyR0="
        );
    }

    #[test]
    fn v3_signs_the_uri_with_hubspots_escapes_decoded() {
        let uri = "https://linehub.test/hubspot/actions/push-line-message?portal=%40team%3Ajp&x=%2Fa%20b";
        assert_eq!(v3_uri(uri), "https://linehub.test/hubspot/actions/push-line-message?portal=@team:jp&x=/a%20b");
        assert_eq!(sign_v3(SECRET, "GET", uri, b"", TS), "wN0YNk0y/puoFdX05AmboCbW+PhLTDbv5tpd1E4HfDQ=");
        assert_eq!(v3_uri("a%3ab%2"), "a:b%2");
        assert_eq!(v3_uri("%"), "%");
    }

    #[test]
    fn v2_matches_hubspots_documented_examples() {
        // HubSpot's "Validating requests" page: secret yyyyyyyy-…, GET and POST examples.
        let secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
        let uri = "https://www.example.com/webhook_uri";
        assert_eq!(
            sign_v2(secret, "GET", uri, b""),
            "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
        );
        assert_eq!(
            sign_v2(secret, "POST", uri, br#"{"example_field":"example_value"}"#),
            "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
        );
        assert_eq!(
            sign_v2(SECRET, "POST", ACTION_URL, BODY.as_bytes()),
            "d70c1e7c17cca9dbbaf7100309880862dc71742189280b8b20d7961861392233"
        );
    }

    #[test]
    fn headers_carry_the_signature_and_its_companions() {
        let v3 = headers_v3(SECRET, "POST", ACTION_URL, BODY.as_bytes(), TS);
        assert_eq!(
            v3,
            vec![
                ("X-HubSpot-Signature-v3", "XSVxbCgbTK8YTdhthez8vbTXNV0jKCBG5brkNUmiyR0=".to_string()),
                ("X-HubSpot-Request-Timestamp", "1767225600000".to_string()),
            ]
        );
        let v2 = headers_v2(SECRET, "POST", ACTION_URL, BODY.as_bytes());
        assert_eq!(v2[0].1, "d70c1e7c17cca9dbbaf7100309880862dc71742189280b8b20d7961861392233");
        assert_eq!(v2[1], ("X-HubSpot-Signature-Version", "v2".to_string()));
    }
}
