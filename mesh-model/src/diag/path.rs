//! Field paths, built on the stack while a resource is walked and rendered like
//! `kubectl explain` writes them.

use std::fmt;

/// One step of a field path.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// A field path built on the stack while walking a resource: `p.key("http").index(1)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Option<Seg<'a>>,
}

impl<'a> Path<'a> {
    pub(crate) const ROOT: Path<'static> = Path {
        parent: None,
        seg: None,
    };

    pub(crate) fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path {
            parent: Some(self),
            seg: Some(Seg::Key(key)),
        }
    }

    pub(crate) fn index(&self, index: usize) -> Path<'_> {
        Path {
            parent: Some(self),
            seg: Some(Seg::Index(index)),
        }
    }

    /// The last key of the path (`maxRetries` for `...http.maxRetries`), or "" at an index.
    pub(crate) fn last_key(&self) -> &'a str {
        match self.seg {
            Some(Seg::Key(k)) => k,
            _ => "",
        }
    }

    pub(crate) fn segments(&self) -> Vec<Seg<'a>> {
        let mut out = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            if let Some(s) = p.seg {
                out.push(s);
            }
            cur = p.parent;
        }
        out.reverse();
        out
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_segments(f, &self.segments())
    }
}

/// Writes segments as `spec.http[1].route[0]`, quoting keys that need it (`labels["a.b"]`).
pub(crate) fn write_segments(f: &mut impl fmt::Write, segs: &[Seg<'_>]) -> fmt::Result {
    for (i, s) in segs.iter().enumerate() {
        match s {
            Seg::Index(n) => write!(f, "[{n}]")?,
            Seg::Key(k) => {
                // A key longer than anything Istio names is cut (and then always quoted).
                let cut = super::bound(k);
                let k = &*cut;
                let plain = !k.is_empty()
                    && !k.contains(['.', '[', ']', '"'])
                    && matches!(cut, std::borrow::Cow::Borrowed(_));
                if plain {
                    if i > 0 {
                        f.write_char('.')?;
                    }
                    f.write_str(k)?;
                } else {
                    write!(f, "[{k:?}]")?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(p: &Path<'_>) -> String {
        p.to_string()
    }

    #[test]
    fn paths_render_like_kubectl_explain() {
        let root = Path::ROOT;
        let spec = root.key("spec");
        let http = spec.key("http");
        let h1 = http.index(1);
        let route = h1.key("route");
        let r0 = route.index(0);
        assert_eq!(render(&r0.key("weight")), "spec.http[1].route[0].weight");
        let labels = spec.key("labels");
        assert_eq!(
            render(&labels.key("app.kubernetes.io/name")),
            "spec.labels[\"app.kubernetes.io/name\"]"
        );
    }

    #[test]
    fn long_keys_are_cut() {
        let key = "k".repeat(1_000);
        let root = Path::ROOT;
        let labels = root.key("labels");
        let rendered = render(&labels.key(&key));
        assert_eq!(rendered, format!("labels[\"{}…\"]", "k".repeat(200)));
    }
}
