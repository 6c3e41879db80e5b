//! One YAML document to a value: aliases expanded within a bound, merge keys (`<<`) applied.
//!
//! The parser expands an alias by copying the anchored node, so a few kilobytes of anchors to
//! anchors can stand for billions of nodes (a "billion laughs"). The value is therefore built
//! here, node by node, and refused as soon as it outgrows what its text could hold without
//! aliases by more than [`MAX_ALIAS_NODES`] nodes or [`MAX_ALIAS_BYTES`] bytes of text: time and
//! memory stay proportional to the text.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde_yaml::value::{Tag, TaggedValue};
use serde_yaml::{Mapping, Value};

/// Nodes aliases may add to a document beyond one per byte of its text (a document without
/// aliases has fewer nodes than bytes).
pub const MAX_ALIAS_NODES: usize = 1 << 16;

/// Bytes of scalar text aliases may add to a document beyond twice its text (escapes such as
/// `\L` can make a scalar up to 1.5 times as long as it is written).
pub const MAX_ALIAS_BYTES: usize = 1 << 20;

/// Why a document was not read: the whole message, and where.
#[derive(Debug)]
pub(crate) struct YamlError {
    /// 1-based line in the document, when known.
    pub(crate) line: Option<usize>,
    pub(crate) message: String,
}

/// Parses one document (`text` holds one, without `---` lines between documents).
pub(crate) fn parse(text: &str) -> Result<Value, YamlError> {
    let budget = Budget {
        nodes: Cell::new(text.len() + MAX_ALIAS_NODES),
        bytes: Cell::new(2 * text.len() + MAX_ALIAS_BYTES),
        exhausted: Cell::new(false),
        merge_keys: Cell::new(false),
    };
    let result = Build(&budget).deserialize(serde_yaml::Deserializer::from_str(text));
    let mut value = match result {
        Ok(v) => v,
        Err(e) if budget.exhausted.get() => {
            return Err(YamlError {
                line: e.location().map(|l| l.line()),
                message: format!(
                    "not read: aliases expand this document beyond {} nodes or {} bytes of text (its text is {} bytes; aliases may add at most {MAX_ALIAS_NODES} nodes and {} KiB): write the repeated parts out instead of aliasing them, or split the document",
                    text.len() + MAX_ALIAS_NODES,
                    2 * text.len() + MAX_ALIAS_BYTES,
                    text.len(),
                    MAX_ALIAS_BYTES >> 10,
                ),
            })
        }
        Err(e) => {
            let msg = e.to_string();
            return Err(YamlError {
                line: e.location().map(|l| l.line()),
                message: format!(
                    "not valid YAML: {}",
                    msg.split(" at line ").next().unwrap_or(&msg)
                ),
            });
        }
    };
    if budget.merge_keys.get() {
        apply_merge_keys(&mut value).map_err(|message| YamlError {
            line: None,
            message,
        })?;
    }
    Ok(value)
}

/// What is left to build.
#[derive(Debug)]
struct Budget {
    nodes: Cell<usize>,
    bytes: Cell<usize>,
    exhausted: Cell<bool>,
    /// Whether a `<<` key was seen (merge keys are applied only then).
    merge_keys: Cell<bool>,
}

impl Budget {
    fn take<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        match (
            self.nodes.get().checked_sub(1),
            self.bytes.get().checked_sub(bytes),
        ) {
            (Some(n), Some(b)) => {
                self.nodes.set(n);
                self.bytes.set(b);
                Ok(())
            }
            _ => {
                self.exhausted.set(true);
                Err(E::custom("alias expansion limit"))
            }
        }
    }
}

/// Builds a [`Value`] as `serde_yaml`'s own `Deserialize` does, charging each node to the budget.
#[derive(Clone, Copy)]
struct Build<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for Build<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Build<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        self.0.take(0)?;
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        self.0.take(0)?;
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        self.0.take(0)?;
        Ok(Value::Number(u.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        self.0.take(0)?;
        Ok(Value::Number(f.into()))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        self.0.take(s.len())?;
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        self.0.take(s.len())?;
        Ok(Value::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.0.take(0)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.take(0)?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Sequence(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.take(0)?;
        let mut out = Mapping::new();
        while let Some(k) = map.next_key_seed(self)? {
            if k.as_str() == Some("<<") {
                self.0.merge_keys.set(true);
            }
            if out.contains_key(&k) {
                return Err(de::Error::custom(format_args!(
                    "duplicate entry {}",
                    DuplicateKey(&k)
                )));
            }
            let v = map.next_value_seed(self)?;
            out.insert(k, v);
        }
        Ok(Value::Mapping(out))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        use de::VariantAccess;
        self.0.take(0)?;
        let (tag, contents) = data.variant_seed(TagName)?;
        let value = contents.newtype_variant_seed(self)?;
        Ok(Value::Tagged(Box::new(TaggedValue { tag, value })))
    }
}

/// A tag (`!name`), which `serde_yaml` hands over as an enum variant.
struct TagName;

impl<'de> DeserializeSeed<'de> for TagName {
    type Value = Tag;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Tag, D::Error> {
        d.deserialize_string(self)
    }
}

impl Visitor<'_> for TagName {
    type Value = Tag;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML tag string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Tag, E> {
        if s.is_empty() {
            return Err(E::custom("empty YAML tag is not allowed"));
        }
        Ok(Tag::new(s))
    }
}

/// `serde_yaml`'s wording for a key written twice.
struct DuplicateKey<'a>(&'a Value);

impl fmt::Display for DuplicateKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Null => f.write_str("with null key"),
            Value::Bool(b) => write!(f, "with key `{b}`"),
            Value::Number(n) => write!(f, "with key {n}"),
            Value::String(s) => write!(f, "with key {s:?}"),
            _ => f.write_str("in YAML map"),
        }
    }
}

/// Applies YAML merge keys as `kubectl` (go-yaml) does: `<<: *base` or `<<: [*a, *b]` copies
/// the entries of the merged mappings that the mapping does not set itself, earlier mappings of
/// a list first. Merged mappings have their own merge keys applied first, so merges chain.
fn apply_merge_keys(value: &mut Value) -> Result<(), String> {
    match value {
        Value::Mapping(map) => {
            for v in map.values_mut() {
                apply_merge_keys(v)?;
            }
            let Some(merge) = map.remove("<<") else {
                return Ok(());
            };
            let sources = match merge {
                Value::Mapping(m) => vec![m],
                Value::Sequence(list) => list
                    .into_iter()
                    .map(|v| match v {
                        Value::Mapping(m) => Ok(m),
                        _ => Err(()),
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|()| {
                        "not valid YAML: a merge key `<<` lists something other than a mapping: write `<<: *anchor` or `<<: [*a, *b]` with anchors of mappings".to_owned()
                    })?,
                _ => {
                    return Err("not valid YAML: a merge key `<<` must be a mapping or a list of mappings (`<<: *anchor`)".to_owned())
                }
            };
            for source in sources {
                for (k, v) in source {
                    if !map.contains_key(&k) {
                        map.insert(k, v);
                    }
                }
            }
            Ok(())
        }
        Value::Sequence(list) => list.iter_mut().try_for_each(apply_merge_keys),
        Value::Tagged(t) => apply_merge_keys(&mut t.value),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_built_as_serde_yaml_builds_them() {
        for text in [
            "a: [1, -2, 3.5, true, ~, 'x', !t {b: c}]\n",
            "? [a, b]\n: {c: d}\n",
            "a: &x {b: 1}\nc: *x\n",
            "a: !!binary aGk=\n",
            "- |\n  text\n- >-\n  folded\n",
        ] {
            let ours = parse(text).unwrap();
            let theirs: Value = serde_yaml::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
        let dup = parse("a: 1\na: 2\n").unwrap_err();
        assert!(
            dup.message.contains("duplicate entry with key \"a\""),
            "{dup:?}"
        );
        let theirs = serde_yaml::from_str::<Value>("a: 1\na: 2\n").unwrap_err();
        assert_eq!(dup.line, theirs.location().map(|l| l.line()));
    }

    #[test]
    fn aliases_expand_within_the_budget() {
        // Three levels of 20 aliases: 8,000 nodes from 200 bytes, well within the allowance.
        let list = |x: &str| vec![x; 20].join(",");
        let small = format!(
            "a: &a [{}]\nb: &b [{}]\nc: [{}]\n",
            list("x"),
            list("*a"),
            list("*b")
        );
        assert!(parse(&small).is_ok());
        // Three levels of 270: about 20 million nodes from 2.3 KB.
        let bomb = format!(
            "a: &a [{}]\nb: &b [{}]\nc: [{}]\n",
            vec!["x"; 270].join(","),
            vec!["*a"; 270].join(","),
            vec!["*b"; 270].join(",")
        );
        let e = parse(&bomb).unwrap_err();
        assert!(e.message.contains("aliases expand this document"), "{e:?}");
        // One long string aliased many times: bounded in bytes, not only in nodes.
        let long = format!(
            "a: &a {}\nb: &b [{}]\nc: [{}]\n",
            "y".repeat(10_000),
            list("*a"),
            list("*b")
        );
        assert!(parse(&long).unwrap_err().message.contains("aliases expand"));
    }

    #[test]
    fn merge_keys_apply_like_kubectl() {
        let v = parse("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n").unwrap();
        assert_eq!(v["m"]["x"], Value::from(1));
        assert_eq!(v["m"]["y"], Value::from(3), "the mapping's own key wins");
        assert!(v["m"].get("<<").is_none());
        let v = parse("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nm: {<<: [*a, *b]}\n").unwrap();
        assert_eq!(
            v["m"]["x"],
            Value::from(1),
            "earlier mappings of the list win"
        );
        assert_eq!(v["m"]["y"], Value::from(2));
        let v = parse("a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nm: {<<: *b}\n").unwrap();
        assert_eq!(v["m"]["x"], Value::from(1), "merges chain");
        assert!(parse("m: {<<: 1}\n")
            .unwrap_err()
            .message
            .contains("merge key"));
        assert!(parse("m: {<<: [1]}\n")
            .unwrap_err()
            .message
            .contains("merge key"));
    }
}
