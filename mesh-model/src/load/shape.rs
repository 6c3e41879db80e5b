//! From a YAML value to a resource's wire form: unknown fields become warnings with a "did you
//! mean", shape errors name the field and say what was expected.

use serde::de::DeserializeOwned;

use crate::checks::duration_without_unit;
use crate::diag::{Cx, Kind, Severity};
use crate::unknown;

use super::paths::{emit_at, ignored_segments, to_segs};

/// Deserialises `value` into a resource's wire form, reporting unknown fields with the severity
/// `unknown_field` (a warning, or an error with `Strictness::Strict`) and the first shape error
/// at their paths.
pub(super) fn deserialize_resource<T: DeserializeOwned>(
    cx: &mut Cx<'_>,
    unknown_field: Severity,
    prefix: &[String],
    kind: Kind,
    value: serde_yaml::Value,
) -> Option<T> {
    let mut ignored: Vec<Vec<String>> = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result = {
        let de = serde_path_to_error::Deserializer::new(value, &mut track);
        serde_ignored::deserialize(de, |path| ignored.push(ignored_segments(&path)))
    };
    match result {
        Ok(r) => {
            // The same misspelled field in many list items gets its suggestion worked out once.
            let mut hints: std::collections::HashMap<(Vec<String>, String), String> =
                std::collections::HashMap::new();
            for segs in ignored {
                if segs
                    .first()
                    .is_some_and(|s| s == "metadata" || s == "status")
                {
                    continue;
                }
                let (field, parent) = segs
                    .split_last()
                    .map(|(f, p)| (f.clone(), p.to_vec()))
                    .unwrap_or_default();
                let shape: Vec<String> = parent
                    .iter()
                    .filter(|s| !s.starts_with('['))
                    .cloned()
                    .collect();
                let hint = hints
                    .entry((shape, field.clone()))
                    .or_insert_with(|| {
                        unknown::known_fields(kind, &to_segs(&parent))
                            .and_then(|known| unknown::suggest(&field, known))
                            .map(|s| format!("; did you mean `{s}`?"))
                            .unwrap_or_default()
                    })
                    .clone();
                let msg = format!("unknown field `{field}`{hint} (unknown fields are ignored by Istio's schema and do nothing)");
                let mut all = prefix.to_vec();
                all.extend(segs.iter().cloned());
                let severity = unknown_field;
                let segs = to_segs(&all);
                emit_at(cx, severity, &segs, msg);
            }
            Some(r)
        }
        Err(e) => {
            let mut all = prefix.to_vec();
            for seg in track.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Seq { index } => all.push(format!("[{index}]")),
                    serde_path_to_error::Segment::Map { key } => all.push(key.clone()),
                    serde_path_to_error::Segment::Enum { variant } => all.push(variant.clone()),
                    serde_path_to_error::Segment::Unknown => {}
                }
            }
            let field = all.last().map(String::as_str).unwrap_or("");
            let msg = friendly_shape_error(field, &e.to_string());
            emit_at(cx, Severity::Error, &to_segs(&all), msg);
            None
        }
    }
}

/// The fields that hold a duration (a string such as `5s`).
const DURATION_FIELDS: &[&str] = &[
    "timeout",
    "perTryTimeout",
    "backoff",
    "fixedDelay",
    "maxAge",
    "connectTimeout",
    "maxConnectionDuration",
    "idleTimeout",
    "time",
    "interval",
    "baseEjectionTime",
    "duration",
    "ttl",
    "budgetInterval",
];

fn friendly_shape_error(field: &str, msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    // `timeout: 5`: the number has no unit; say what to write, not how to quote it.
    if DURATION_FIELDS.contains(&field) {
        let number = ["invalid type: integer `", "invalid type: floating point `"]
            .iter()
            .find_map(|p| msg.strip_prefix(p))
            .and_then(|rest| rest.split_once('`'))
            .and_then(|(n, _)| duration_without_unit(field, n));
        if let Some(msg) = number {
            return msg;
        }
    }
    let msg = msg
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace(
            "expected a string",
            "expected a string (quote numbers and booleans to use them as text)",
        )
        .replace("expected struct ", "expected a mapping (")
        .replace("expected a sequence", "expected a list");
    let msg = if msg.contains("expected a mapping (") {
        format!("{msg})")
    } else {
        msg
    };
    format!("wrong shape: {msg}")
}
