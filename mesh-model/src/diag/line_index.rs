//! Finding the line of a field path in a YAML document, for diagnostics.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

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

/// The lines of one YAML document, pre-scanned once so that finding the line of a field path
/// costs little per diagnostic. What a step finds is memoised (the keys of a range, the items of
/// a list, the extent of a key's children), so any number of diagnostics costs time linear in
/// the document plus the length of their paths.
#[derive(Debug)]
pub(crate) struct LineIndex<'t> {
    lines: Vec<&'t str>,
    info: Vec<Option<LineInfo>>,
    cache: RefCell<Cache<'t>>,
}

#[derive(Debug, Default)]
struct Cache<'t> {
    /// For a range of lines: the keys at its outermost column, each with its first line.
    keys: HashMap<(usize, usize), Rc<HashMap<&'t str, usize>>>,
    /// For a range of lines: the lines of the sequence items at its outermost indentation.
    items: HashMap<(usize, usize), Rc<[usize]>>,
    /// For a key line and the end of its range: where its children end.
    children: HashMap<(usize, usize), usize>,
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
            cache: RefCell::default(),
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
        let keys = self.keys(start, end);
        let i = *keys.get(k)?;
        let c = self.info[i]?.col;
        let j = *self
            .cache
            .borrow_mut()
            .children
            .entry((i, end))
            .or_insert_with(|| {
                let mut j = i + 1;
                while j < end {
                    if let Some(x) = self.info[j] {
                        if x.indent < c || (x.indent == c && !x.item) {
                            break;
                        }
                    }
                    j += 1;
                }
                j
            });
        // A scalar or flow value on the same line: nothing deeper to find.
        if j == i + 1 {
            return Some((i, i, i + 1));
        }
        Some((i, i + 1, j))
    }

    /// The keys at the outermost column of a range, each with the first line it is on.
    fn keys(&self, start: usize, end: usize) -> Rc<HashMap<&'t str, usize>> {
        if let Some(k) = self.cache.borrow().keys.get(&(start, end)) {
            return k.clone();
        }
        let infos = || (start..end).filter_map(|i| self.info[i].map(|x| (i, x)));
        let mut map = HashMap::new();
        if let Some(c) = infos().map(|(_, x)| x.col).min() {
            for (i, x) in infos().filter(|(_, x)| x.col == c) {
                if let Some(k) = key_of(&self.lines[i][x.rest..]) {
                    map.entry(k).or_insert(i);
                }
            }
        }
        let map = Rc::new(map);
        self.cache
            .borrow_mut()
            .keys
            .insert((start, end), map.clone());
        map
    }

    /// The lines of the items at the outermost indentation of a range.
    fn items(&self, start: usize, end: usize) -> Rc<[usize]> {
        if let Some(v) = self.cache.borrow().items.get(&(start, end)) {
            return v.clone();
        }
        let all: Vec<(usize, usize)> = (start..end)
            .filter_map(|i| {
                let x = self.info[i]?;
                x.item.then_some((i, x.indent))
            })
            .collect();
        let v: Rc<[usize]> = match all.iter().map(|t| t.1).min() {
            Some(min) => all
                .into_iter()
                .filter(|t| t.1 == min)
                .map(|t| t.0)
                .collect(),
            None => Rc::from(Vec::new()),
        };
        self.cache
            .borrow_mut()
            .items
            .insert((start, end), v.clone());
        v
    }
}

/// The key a block-mapping line starts with: `key:`, `"key":` or `'key':`.
fn key_of(rest: &str) -> Option<&str> {
    for quote in ['"', '\''] {
        if let Some(r) = rest.strip_prefix(quote) {
            let close = r.find(quote)?;
            return r[close + 1..].starts_with(':').then(|| &r[..close]);
        }
    }
    // A plain key ends at the first `:` followed by a space or the end of the line.
    let mut from = 0;
    while let Some(at) = rest[from..].find(':') {
        let at = from + at;
        if rest[at + 1..].is_empty() || rest[at + 1..].starts_with([' ', '\t']) {
            return Some(rest[..at].trim_end());
        }
        from = at + 1;
    }
    None
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
