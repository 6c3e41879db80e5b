//! The nesting guard (`MAX_FLOW_NESTING`) against the YAML parser itself: documents made of
//! scalars of every style full of brackets, quotes, `#` and block-scalar indicators, plus one
//! real flow sequence (the probe) nested `depth` levels. The guard must refuse the document
//! exactly when the probe nests deeper than the limit: a bracket inside a scalar or comment never
//! counts, and no quote or block scalar hides the probe from it.
//!
//! Whether the probe is a real flow sequence is asked of the parser: the same document with a
//! one-level probe must parse, with the probe as a list.

use mesh_model::{load_str, MAX_FLOW_NESTING};
use proptest::prelude::*;

/// Characters that confuse a naive bracket counter.
const JUNK: &[char] = &[
    '[', ']', '{', '}', '\'', '"', '#', ',', ':', '|', '>', '&', '*', '!', '%', '@', '`', '-', '?',
    ' ', 'x', 'y', '\\',
];

fn junk(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(JUNK), 0..max)
        .prop_map(|v| v.into_iter().collect())
}

/// A scalar value, rendered for a key at `indent`.
#[derive(Debug, Clone)]
enum Scalar {
    /// A plain scalar (first character a letter) with continuation lines.
    Plain(String, Vec<String>),
    Single(String, Vec<String>),
    Double(String),
    /// `|` or `>` with a header (`|`, `>-`, `|2`...) and content lines (each with extra spaces).
    Block(String, Vec<(usize, String)>),
    /// A small flow collection: items in quotes, nested once.
    Flow(Vec<String>),
}

#[derive(Debug, Clone)]
enum Value {
    Scalar(Scalar),
    Map(Vec<(String, Value)>),
    /// A block sequence of one-key mappings.
    Seq(Vec<(String, Value)>),
}

fn plain_text(s: &str) -> String {
    // No `: `, ` #` or leading indicator in a plain scalar: drop `:` and `#`.
    s.chars().filter(|c| !matches!(c, ':' | '#')).collect()
}

fn scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        (junk(30), proptest::collection::vec(junk(20), 0..3)).prop_map(|(a, more)| Scalar::Plain(
            plain_text(&a),
            more.iter().map(|m| plain_text(m)).collect()
        )),
        (junk(30), proptest::collection::vec(junk(20), 0..3))
            .prop_map(|(a, more)| Scalar::Single(a, more)),
        junk(40).prop_map(Scalar::Double),
        (
            proptest::sample::select(&["|", ">", "|-", ">+", "|2", ">2-"][..]),
            proptest::collection::vec((0usize..3, junk(30)), 1..5)
        )
            .prop_map(|(h, lines)| Scalar::Block(h.to_owned(), lines)),
        proptest::collection::vec(junk(10), 0..4).prop_map(Scalar::Flow),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = scalar().prop_map(Value::Scalar);
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(("[a-z]{1,3}", inner.clone()), 1..4).prop_map(Value::Map),
            proptest::collection::vec(("[a-z]{1,3}", inner), 1..4).prop_map(Value::Seq),
        ]
    })
}

fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Writes `key: value` with the key at column `indent` (the first line's indentation already
/// written by the caller when `inline`).
fn render(out: &mut String, indent: usize, key: &str, v: &Value, inline: bool) {
    if !inline {
        out.push_str(&" ".repeat(indent));
    }
    out.push_str(key);
    out.push(':');
    let pad = " ".repeat(indent + 2);
    match v {
        Value::Scalar(Scalar::Plain(first, more)) => {
            out.push_str(" p");
            out.push_str(first.trim_end());
            for m in more {
                let m = m.trim();
                if !m.is_empty() {
                    out.push('\n');
                    out.push_str(&pad);
                    out.push_str(m);
                }
            }
            out.push('\n');
        }
        Value::Scalar(Scalar::Single(first, more)) => {
            let mut s = single_quoted(first);
            for m in more {
                s.pop();
                s.push('\n');
                s.push_str(&pad);
                s.push_str(&single_quoted(m.trim())[1..]);
            }
            out.push(' ');
            out.push_str(&s);
            out.push('\n');
        }
        Value::Scalar(Scalar::Double(s)) => {
            out.push(' ');
            out.push_str(&double_quoted(s));
            out.push('\n');
        }
        Value::Scalar(Scalar::Block(header, lines)) => {
            out.push(' ');
            out.push_str(header);
            out.push('\n');
            for (i, (extra, text)) in lines.iter().enumerate() {
                // The first line sets the indentation (unless the header gives it): no extra
                // spaces there, and no line may start with a tab or be blank-only.
                let extra = if i == 0 { 0 } else { *extra };
                out.push_str(&pad);
                out.push_str(&" ".repeat(extra));
                out.push('x');
                out.push_str(text.trim_end());
                out.push('\n');
            }
        }
        Value::Scalar(Scalar::Flow(items)) => {
            out.push_str(" [");
            let items: Vec<String> = items
                .iter()
                .enumerate()
                .map(|(i, s)| match i % 3 {
                    0 => single_quoted(s),
                    1 => double_quoted(s),
                    _ => format!("[{}]", single_quoted(s)),
                })
                .collect();
            out.push_str(&items.join(", "));
            out.push_str("]\n");
        }
        Value::Map(entries) => {
            out.push('\n');
            for (k, v) in entries {
                render(out, indent + 2, k, v, false);
            }
        }
        Value::Seq(entries) => {
            out.push('\n');
            for (k, v) in entries {
                out.push_str(&pad);
                out.push_str("- ");
                render(out, indent + 4, k, v, true);
            }
        }
    }
}

/// The deepest real flow nesting of a value (the probe excluded).
fn flow_depth(v: &Value) -> usize {
    match v {
        Value::Scalar(Scalar::Flow(items)) => 1 + usize::from(items.len() > 2),
        Value::Scalar(_) => 0,
        Value::Map(e) | Value::Seq(e) => e.iter().map(|(_, v)| flow_depth(v)).max().unwrap_or(0),
    }
}

/// The document with the probe (`zz: [[[x]]]`, `depth` levels) after entry `at`.
fn document(entries: &[(String, Value)], at: usize, depth: usize) -> String {
    let mut out = String::new();
    for (i, (k, v)) in entries.iter().enumerate() {
        if i == at {
            out.push_str("zz: ");
            out.push_str(&"[".repeat(depth));
            out.push('x');
            out.push_str(&"]".repeat(depth));
            out.push('\n');
        }
        render(&mut out, 0, &format!("k{i}{k}"), v, false);
    }
    out
}

fn refused_for_nesting(text: &str) -> bool {
    load_str("nesting.yaml", text)
        .errors()
        .any(|d| d.message().contains("nest deeper than"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    /// Refused exactly when the probe (a real flow sequence) nests deeper than the limit,
    /// whatever brackets and quotes the scalars around it hold.
    #[test]
    fn refused_exactly_when_the_parser_would_nest_too_deep(
        entries in proptest::collection::vec(("[a-z]{0,3}", value()), 1..6),
        at in 0usize..6,
        depth in proptest::sample::select(&[1usize, 2, 127, 128, 129, 130, 400][..]),
    ) {
        let at = at.min(entries.len());
        let shallow = document(&entries, at, 1);
        let parsed: Result<serde_yaml::Value, _> = serde_yaml::from_str(&shallow);
        // Only documents the parser reads, with the probe read as a list, say anything.
        prop_assume!(parsed.is_ok(), "{:?}", parsed);
        let parsed = parsed.unwrap();
        prop_assume!(parsed.get("zz").is_some_and(|v| v.is_sequence()));
        let others = entries.iter().map(|(_, v)| flow_depth(v)).max().unwrap_or(0);
        let deep = document(&entries, at, depth);
        let expected = depth.max(others) > MAX_FLOW_NESTING;
        prop_assert_eq!(refused_for_nesting(&deep), expected, "depth {}:\n{}", depth, deep);
    }

    /// Text that only looks nested (brackets in every kind of scalar and in comments, far
    /// deeper than the limit) is never refused for nesting.
    #[test]
    fn brackets_in_scalars_are_never_counted(
        entries in proptest::collection::vec(("[a-z]{0,3}", value()), 1..5),
        opener in proptest::sample::select(&["[", "{", "[{"][..]),
    ) {
        let deep = opener.repeat(200);
        let mut text = format!("# {deep}\nzplain: x{deep}\nzsingle: '{deep}'\nzdouble: \"{deep}\"\nzblock: |\n  {deep}\n  it's \"\nzfolded: >-\n  x\n  {deep}\n");
        for (i, (k, v)) in entries.iter().enumerate() {
            render(&mut text, 0, &format!("k{i}{k}"), v, false);
        }
        prop_assume!(serde_yaml::from_str::<serde_yaml::Value>(&text).is_ok());
        prop_assert!(!refused_for_nesting(&text), "{}", text);
    }

    /// Any text: the guard ends, never panics, and counts no more levels than there are
    /// opening brackets.
    #[test]
    fn any_text_is_scanned(
        lines in proptest::collection::vec((0usize..6, junk(20)), 0..30),
    ) {
        let text: String = lines
            .iter()
            .map(|(indent, s)| format!("{}{s}\n", " ".repeat(*indent)))
            .collect();
        let openers = text.matches(['[', '{']).count();
        let refused = refused_for_nesting(&text);
        prop_assert!(!refused || openers > MAX_FLOW_NESTING);
    }
}

/// The cases the old guard got wrong: a quote in a block scalar or in the middle of a plain
/// scalar hid everything after it; an unbalanced `[` in a plain scalar counted.
#[test]
fn the_old_guard_s_bypasses_and_false_refusals() {
    let deep = format!("{}x{}", "[".repeat(1_000), "]".repeat(1_000));
    for before in [
        "a: |\n  it's \"quoted\n",
        "a: x \"\n",
        "a: don't\n",
        "a: 'it''s'\nb: \"say \\\"hi\"\n",
    ] {
        let text = format!("{before}zz: {deep}\n");
        assert!(refused_for_nesting(&text), "{before:?}");
    }
    let unbalanced = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r}}\nspec:\n  hosts: [r]\n  http:\n  - name: a{}\n    route: [{{destination: {{host: r}}}}]\n",
        "[".repeat(1_000)
    );
    let loaded = load_str("unbalanced.yaml", &unbalanced);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
}
