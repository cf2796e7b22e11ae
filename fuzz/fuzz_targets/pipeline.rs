//! Pipeline files: loading must never panic, and every error must carry the file it is about.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use linehub::config::Account;

/// Two accounts for `accounts:` to name, from a small valid config.
fn accounts() -> &'static [Account] {
    static ACCOUNTS: OnceLock<Vec<Account>> = OnceLock::new();
    ACCOUNTS.get_or_init(|| {
        let text = "server:\n  listen: \"127.0.0.1:0\"\n  public_base_url: \"https://x.test\"\nstore:\n  path: s.db\nplan: trial\nhubspot:\n  token: t\naccounts:\n  - id: tokyo\n    channel_secret: s\n    channel_access_token: t\n  - id: osaka\n    channel_secret: s\n    channel_access_token: t\n";
        match linehub::config::load_str(Path::new("/fuzz/config.yaml"), text) {
            Ok(c) => c.accounts,
            Err(e) => panic!("the fuzz target's own config is invalid: {e}"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("/fuzz/pipelines/nightly.yaml");
    if let Err(errors) = linehub::pipelines::spec::load_str(path, text, accounts()) {
        assert!(!errors.0.is_empty());
        for e in errors.0 {
            assert_eq!(e.file, path);
        }
    }
});
