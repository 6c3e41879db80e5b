//! Field paths of diagnostics: rendering, re-parsing and re-locating them (list items are
//! validated on their own, then their paths are prefixed with `items[i]`).

use crate::diag::{Cx, Diagnostic, Path, Seg, Severity};

/// Runs `f` on a list item (`prefix` is its path in the list document, like `items[2]`) and
/// prefixes the paths of what it emitted, re-locating their lines.
pub(super) fn with_prefix<R>(
    cx: &mut Cx<'_>,
    prefix: &[String],
    f: impl FnOnce(&mut Cx<'_>, &Path<'_>) -> R,
) -> R {
    if prefix.is_empty() {
        return f(cx, &Path::ROOT);
    }
    // List items: validate into a scratch context, then prefix the paths of what it emitted.
    let before = cx.out.len();
    let r = f(cx, &Path::ROOT);
    let pre: String = {
        let mut s = String::new();
        for p in prefix {
            if p.starts_with('[') || s.is_empty() {
                s.push_str(p);
            } else {
                s.push('.');
                s.push_str(p);
            }
        }
        s
    };
    let first = cx.first_line;
    let index = &cx.index;
    for d in &mut cx.out[before..] {
        let rel = d.path.clone();
        d.path = if rel.is_empty() {
            pre.clone()
        } else if rel.starts_with('[') {
            format!("{pre}{rel}")
        } else {
            format!("{pre}.{rel}")
        };
        let segs = parse_rendered(&d.path);
        d.line = index
            .locate(&to_segs(&segs))
            .map(|i| (i + first + 1) as u32)
            .or(d.line);
    }
    r
}

/// Splits a rendered path back into segments (keys and `[i]`).
pub(super) fn parse_rendered(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                let mut inner = String::new();
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    inner.push(d);
                }
                if inner.starts_with('"') {
                    out.push(inner.trim_matches('"').to_owned());
                } else {
                    out.push(format!("[{inner}]"));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Path segments from rendered parts (`[3]` becomes an index).
pub(crate) fn to_segs(parts: &[String]) -> Vec<Seg<'_>> {
    parts
        .iter()
        .map(|p| {
            match p
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse().ok())
            {
                Some(i) => Seg::Index(i),
                None => Seg::Key(p.as_str()),
            }
        })
        .collect()
}

/// Emits a diagnostic at a path given as segments.
pub(super) fn emit_at(cx: &mut Cx<'_>, severity: Severity, segs: &[Seg<'_>], message: String) {
    let mut rendered = String::new();
    let _ = crate::diag::write_segments(&mut rendered, segs);
    let line = cx
        .index
        .locate(segs)
        .map(|i| (i + cx.first_line + 1) as u32)
        .or(Some(cx.first_line as u32 + 1));
    cx.push(Diagnostic {
        severity,
        source: cx.source.clone(),
        document: cx.document,
        resource: cx.resource.clone(),
        path: rendered,
        line,
        analysis: false,
        message,
    });
}

/// The parts of a path `serde_ignored` reports.
pub(super) fn ignored_segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(p: &serde_ignored::Path<'_>, out: &mut Vec<String>) {
        match p {
            serde_ignored::Path::Root => {}
            serde_ignored::Path::Seq { parent, index } => {
                walk(parent, out);
                out.push(format!("[{index}]"));
            }
            serde_ignored::Path::Map { parent, key } => {
                walk(parent, out);
                out.push(key.clone());
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    walk(path, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_paths_round_trip() {
        assert_eq!(
            parse_rendered("items[2].spec.http[0].x"),
            vec!["items", "[2]", "spec", "http", "[0]", "x"]
        );
        assert_eq!(parse_rendered("labels[\"a.b/c\"]"), vec!["labels", "a.b/c"]);
    }
}
