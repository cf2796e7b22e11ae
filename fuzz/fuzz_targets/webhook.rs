//! Webhook input: signature check, envelope and event classification must never panic, and only
//! a correct signature may pass.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linehub::line::{signature, webhook};

const SECRET: &[u8] = b"fuzz-channel-secret";

fuzz_target!(|data: &[u8]| {
    // The first byte picks how the request is signed; the rest is the body.
    let Some((&mode, body)) = data.split_first() else { return };
    let header = match mode % 3 {
        0 => None,
        1 => Some(body.get(..body.len().min(44)).unwrap_or_default().to_vec()),
        _ => Some(signature::sign(SECRET, body).into_bytes()),
    };
    let verified = signature::verify(SECRET, body, header.as_deref());
    if mode % 3 != 2 {
        // Anything not signed with the secret must be refused (a 44-byte prefix of random data
        // being the right MAC is not a case worth hoping for).
        assert!(verified.is_err());
        return;
    }
    assert!(verified.is_ok());
    if let Ok(events) = webhook::parse(body) {
        for e in events {
            let _ = linehub::sync::classify(&e.body);
        }
    }
});
