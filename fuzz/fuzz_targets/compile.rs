//! Load arbitrary text, then compile whatever loaded into a route table for a default client:
//! neither step panics, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_routing::{ClientContext, RouteTable};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let loaded = mesh_model::load_str("fuzz.yaml", &text);
    let config = loaded.into_config();
    let _ = RouteTable::compile(&config, &ClientContext::new("default"));
});
