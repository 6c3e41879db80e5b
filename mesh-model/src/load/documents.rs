//! Splitting a source into YAML documents, and the nesting guard that runs before parsing.

/// Splits text into YAML documents at `---` lines, returning each with its first line index.
pub(super) fn split_documents(text: &str) -> Vec<(&str, usize)> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut start_line = 0usize;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let l = line.trim_end_matches(['\n', '\r']);
        let is_marker = l == "---" || l.starts_with("--- ") || l.starts_with("---\t") || l == "...";
        if is_marker {
            out.push((&text[start..offset], start_line));
            start = offset + line.len();
            start_line = i + 1;
            if let Some(rest) = l.strip_prefix("--- ") {
                // Content on the marker line itself (rare): keep it with the next document.
                if !rest.trim().is_empty() && !rest.trim_start().starts_with('#') {
                    start = offset + 4;
                    start_line = i;
                }
            }
        }
        offset += line.len();
    }
    out.push((&text[start..], start_line));
    out.retain(|(doc, _)| {
        doc.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "...")
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_with_lines() {
        let docs = split_documents("a: 1\n---\n# c\nb: 2\n---\n\n---\nc: 3\n");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1].1, 2);
        assert_eq!(docs[2].1, 7);
    }
}
