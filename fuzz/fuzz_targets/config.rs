//! Config text: loading must never panic, and every error must carry the file it is about.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("/fuzz/config.yaml");
    if let Err(errors) = linehub::config::load_str(path, text) {
        assert!(!errors.0.is_empty());
        for e in errors.0 {
            assert_eq!(e.file, path);
        }
    }
});
