//! `mesh_model::load_str` on arbitrary bytes (as UTF-8-lossy text): never panics, and every
//! diagnostic it reports can be displayed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let loaded = mesh_model::load_str("fuzz.yaml", &text);
    for d in loaded.diagnostics() {
        let _ = d.to_string();
    }
});
