//! The configuration parser and checker on arbitrary text (what `vigil serve --config` and
//! `vigil rules check` read): never panics, and every diagnostic names a line of the file
//! and says something.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(diagnostics) = vigil::config::load_str(text) {
        assert!(!diagnostics.is_empty());
        let lines = text.lines().count().max(1) + 1;
        for d in diagnostics {
            assert!(d.line >= 1 && d.line <= lines, "line {} of {lines}", d.line);
            assert!(!d.message.is_empty());
        }
    }
});
