//! The wire layer: serde structs that mirror the Istio API field for field.
//!
//! Raw types carry **no invariants**. Every field is optional (lists and maps default to empty),
//! integers are wide enough to hold out-of-range input so that validation can report it with its
//! path instead of failing the whole document, and durations stay strings until validation parses
//! them in Istio's language. Field names follow proto3 JSON naming (`camelCase`).
//!
//! Turn raw resources into validated ones with [`crate::load_str`]; build raw resources back from
//! validated ones with the `to_raw` methods, for example to write a config out as YAML.
//!
//! ```
//! let spec = mesh_model::raw::VirtualServiceSpec {
//!     hosts: vec!["reviews".into()],
//!     ..Default::default()
//! };
//! assert!(spec.http.is_empty());
//! ```

mod destination_rule;
mod meta;
mod service_entry;
mod virtual_service;

pub use destination_rule::*;
pub use meta::*;
pub use service_entry::*;
pub use virtual_service::*;
