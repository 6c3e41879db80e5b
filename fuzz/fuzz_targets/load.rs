//! `mesh_model::load_str` on arbitrary bytes (as UTF-8-lossy text): never panics, and every
//! diagnostic it reports can be displayed and repeats no value at length.
//!
//! Each input is loaded twice: as it is, and after a line of anchors (`&s` a scalar, `&l` a
//! list, `&m` a mapping of route fields, `&r` a route), so that the aliases (`*m`) and merge
//! keys (`<<: *m`) the fuzzer writes, with the help of `fuzz/load.dict`, resolve and expand.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Anchors for the input to refer to; an unknown top-level field of the document otherwise.
const ANCHORS: &str = "x-anchors: {s: &s reviews, l: &l [a, b, *s], m: &m {timeout: 5s, retries: {attempts: 3}}, r: &r {route: [{destination: {host: *s}}]}}\n";

fn check(text: &str) {
    let loaded = mesh_model::load_str("fuzz.yaml", text);
    for d in loaded.diagnostics() {
        let shown = d.to_string();
        // Values are cut to 200 characters: no line is much longer than its fixed wording.
        assert!(
            shown.chars().count() < 8 * 1024,
            "{} characters",
            shown.chars().count()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check(&text);
    check(&format!("{ANCHORS}{text}"));
});
