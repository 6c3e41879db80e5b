//! Finding the line of a field path in a YAML document, for diagnostics.

use super::Seg;

/// What one line of block-style YAML looks like to [`LineIndex`].
#[derive(Debug, Clone, Copy)]
struct LineInfo {
    /// Leading spaces.
    indent: usize,
    /// Column of the first key after any `- ` item markers.
    col: usize,
    /// Byte offset of that key in the line.
    rest: usize,
    /// The line starts a sequence item.
    item: bool,
}

/// A cached step of [`LineIndex::locate`]: the range searched and the segment looked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum StepKey {
    Key(usize, usize, String),
    Items(usize, usize),
}

#[derive(Debug, Clone)]
enum StepValue {
    /// Found line, and the range of its children.
    Key(Option<(usize, usize, usize)>),
    /// Lines of the items at the outermost indentation.
    Items(Vec<usize>),
}

/// The lines of one YAML document, pre-scanned once so that finding the line of a field path
/// costs little per diagnostic: every step's result is memoised, so thousands of diagnostics
/// under one list do not rescan the document (hostile input stays linear).
#[derive(Debug)]
pub(crate) struct LineIndex<'t> {
    lines: Vec<&'t str>,
    info: Vec<Option<LineInfo>>,
    cache: std::cell::RefCell<std::collections::HashMap<StepKey, StepValue>>,
}

impl<'t> LineIndex<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        let lines: Vec<&str> = text.lines().collect();
        let info = lines
            .iter()
            .map(|line| {
                let trimmed = line.trim_start_matches(' ');
                if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
                    return None;
                }
                let indent = line.len() - trimmed.len();
                let mut rest = trimmed;
                let mut col = indent;
                while let Some(r) = rest.strip_prefix("- ") {
                    let r2 = r.trim_start_matches(' ');
                    col += 2 + (r.len() - r2.len());
                    rest = r2;
                }
                Some(LineInfo {
                    indent,
                    col,
                    rest: line.len() - rest.len(),
                    item: trimmed.starts_with('-'),
                })
            })
            .collect();
        LineIndex {
            lines,
            info,
            cache: Default::default(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Finds the line of a field path. Best effort: flow style and unusual layouts fall back to
    /// the deepest ancestor found. Returns a 0-based line index.
    pub(crate) fn locate(&self, segs: &[Seg<'_>]) -> Option<usize> {
        let mut found = None;
        let mut start = 0;
        let mut end = self.lines.len();
        for seg in segs {
            match seg {
                Seg::Key(k) => {
                    let Some((i, s, e)) = self.key_step(start, end, k) else {
                        break;
                    };
                    found = Some(i);
                    start = s;
                    end = e;
                }
                Seg::Index(n) => {
                    let items = self.items(start, end);
                    let Some(&i) = items.get(*n) else {
                        break;
                    };
                    found = Some(i);
                    end = items.get(n + 1).copied().unwrap_or(end);
                    start = i;
                }
            }
        }
        found
    }

    fn key_step(&self, start: usize, end: usize, k: &str) -> Option<(usize, usize, usize)> {
        let ck = StepKey::Key(start, end, k.to_owned());
        if let Some(StepValue::Key(v)) = self.cache.borrow().get(&ck) {
            return *v;
        }
        let v = self.key_step_uncached(start, end, k);
        self.cache.borrow_mut().insert(ck, StepValue::Key(v));
        v
    }

    fn key_step_uncached(
        &self,
        start: usize,
        end: usize,
        k: &str,
    ) -> Option<(usize, usize, usize)> {
        let infos = || (start..end).filter_map(|i| self.info[i].map(|x| (i, x)));
        let c = infos().map(|(_, x)| x.col).min()?;
        let (i, _) =
            infos().find(|(i, x)| x.col == c && key_matches(&self.lines[*i][x.rest..], k))?;
        let mut j = i + 1;
        while j < end {
            if let Some(x) = self.info[j] {
                if x.indent < c || (x.indent == c && !x.item) {
                    break;
                }
            }
            j += 1;
        }
        // A scalar or flow value on the same line: nothing deeper to find.
        if j == i + 1 {
            return Some((i, i, i + 1));
        }
        Some((i, i + 1, j))
    }

    fn items(&self, start: usize, end: usize) -> Vec<usize> {
        let ck = StepKey::Items(start, end);
        if let Some(StepValue::Items(v)) = self.cache.borrow().get(&ck) {
            return v.clone();
        }
        let all: Vec<(usize, usize)> = (start..end)
            .filter_map(|i| {
                let x = self.info[i]?;
                x.item.then_some((i, x.indent))
            })
            .collect();
        let v: Vec<usize> = match all.iter().map(|t| t.1).min() {
            Some(min) => all
                .into_iter()
                .filter(|t| t.1 == min)
                .map(|t| t.0)
                .collect(),
            None => Vec::new(),
        };
        self.cache
            .borrow_mut()
            .insert(ck, StepValue::Items(v.clone()));
        v
    }
}

fn key_matches(rest: &str, key: &str) -> bool {
    for quote in ["", "\"", "'"] {
        if let Some(r) = rest.strip_prefix(quote) {
            if let Some(r) = r.strip_prefix(key) {
                if let Some(r) = r.strip_prefix(quote) {
                    if r.starts_with(':') {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// Finds the line of a field path in block-style YAML lines (see [`LineIndex::locate`]).
#[cfg(test)]
fn locate(lines: &[&str], segs: &[Seg<'_>]) -> Option<usize> {
    let text = lines.join("\n");
    LineIndex::new(&text).locate(segs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Seg;

    #[test]
    fn locate_block_yaml() {
        let text = "apiVersion: v1\nspec:\n  hosts:\n  - a\n  http:\n  - match:\n    - uri: {prefix: /}\n    route:\n    - destination:\n        host: a\n      weight: 3\n    - destination:\n        host: b\n      weight: 0\n";
        let lines: Vec<&str> = text.lines().collect();
        let segs = [
            Seg::Key("spec"),
            Seg::Key("http"),
            Seg::Index(0),
            Seg::Key("route"),
            Seg::Index(1),
            Seg::Key("weight"),
        ];
        assert_eq!(locate(&lines, &segs), Some(13));
        let segs = [Seg::Key("spec"), Seg::Key("hosts"), Seg::Index(0)];
        assert_eq!(locate(&lines, &segs), Some(3));
        let segs = [
            Seg::Key("spec"),
            Seg::Key("http"),
            Seg::Index(0),
            Seg::Key("match"),
            Seg::Index(0),
            Seg::Key("uri"),
            Seg::Key("prefix"),
        ];
        assert_eq!(locate(&lines, &segs), Some(6));
        let segs = [Seg::Key("spec"), Seg::Key("nothere")];
        assert_eq!(
            locate(&lines, &segs),
            Some(1),
            "falls back to the deepest ancestor"
        );
        let segs = [Seg::Key("nothere")];
        assert_eq!(locate(&lines, &segs), None);
    }
}
