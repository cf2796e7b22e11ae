//! HubSpot workflow action requests: signature verification, request parsing and token
//! rendering must never panic, and only a correct, fresh signature may pass.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use linehub::hubspot::signature::{self, SignatureHeaders, SignedRequest, Verified};
use linehub::sends::ActionRequest;

const SECRET: &[u8] = b"fuzz-hubspot-client-secret";
const URI: &str = "https://linehub.test/hubspot/actions/push-line-message";
const NOW: i64 = 1_764_000_000_000;

fn config() -> &'static linehub::config::Config {
    static CONFIG: OnceLock<linehub::config::Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let yaml = "server: { listen: \"127.0.0.1:0\", public_base_url: \"https://linehub.test\" }\n\
                    store: { path: \"/tmp/linehub-fuzz.db\" }\nplan: starter\nhubspot: { token: \"t\" }\n\
                    accounts:\n  - { id: tokyo, channel_secret: \"s\", channel_access_token: \"t\" }\n";
        linehub::config::load_str(std::path::Path::new("/nonexistent/config.yaml"), yaml).expect("fuzz config")
    })
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks how the request is signed, the second how old its timestamp is.
    let Some((&mode, rest)) = data.split_first() else { return };
    let Some((&age, body)) = rest.split_first() else { return };
    let request = SignedRequest { method: "POST", uri: URI, body };
    let ts = NOW - i64::from(age) * 3_000; // 0 to 12.75 minutes old
    let ts_text = ts.to_string();
    let v3 = signature::sign_v3(SECRET, &request, ts);
    let junk = String::from_utf8_lossy(&body[..body.len().min(64)]).into_owned();
    let headers = match mode % 5 {
        0 => SignatureHeaders::default(),
        1 => SignatureHeaders { v3: Some(junk.as_bytes()), timestamp: Some(ts_text.as_bytes()), ..Default::default() },
        2 => SignatureHeaders { legacy: Some(junk.as_bytes()), version: Some(b"v2"), ..Default::default() },
        3 => SignatureHeaders { legacy: Some(junk.as_bytes()), version: Some(b"v1"), ..Default::default() },
        _ => SignatureHeaders { v3: Some(v3.as_bytes()), timestamp: Some(ts_text.as_bytes()), ..Default::default() },
    };
    // v2 accepted, so its parsing is fuzzed too; only a correct v3 may pass all the same.
    let verified = signature::verify(SECRET, &request, &headers, NOW, true);
    if mode % 5 != 4 {
        assert!(verified.is_err(), "an unsigned or badly signed request passed");
        return;
    }
    let fresh = NOW - ts <= signature::MAX_CLOCK_SKEW_MS;
    assert_eq!(verified.is_ok(), fresh, "{verified:?} for a request {age} × 3 s old");
    assert!(!matches!(verified, Ok(Verified::V2)));
    if let Ok(action) = ActionRequest::parse(body, config()) {
        assert!(!action.drafts.is_empty() && action.drafts.len() <= 5);
        let mut names = std::collections::BTreeSet::new();
        for d in &action.drafts {
            d.token_names(&mut names);
        }
        let props = names.into_iter().map(|n| (n.clone(), n)).collect();
        for d in &action.drafts {
            let _ = d.render(&props);
        }
    }
});
