//! Splitting a source into YAML documents, and the nesting guard that runs before parsing.

/// The 0-based line where `[`/`{` nesting first goes deeper than `limit`, skipping quoted
/// strings and comments.
pub(super) fn flow_nesting_over(text: &str, limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 0usize;
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some('\'') if c == '\'' => {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                } else {
                    quote = None;
                }
            }
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' if matches!(prev, ' ' | '[' | '{' | ',' | ':' | '\n' | '-') => {
                    quote = Some(c)
                }
                '#' if prev.is_whitespace() => {
                    while chars.peek().is_some_and(|&n| n != '\n') {
                        chars.next();
                    }
                }
                '[' | '{' => {
                    depth += 1;
                    if depth > limit {
                        return Some(line);
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        if c == '\n' {
            line += 1;
        }
        prev = c;
    }
    None
}

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

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        assert_eq!(flow_nesting_over("a: [1, {b: [2]}]\n", 3), None);
        assert_eq!(flow_nesting_over("a: [[[[1]]]]\n", 3), Some(0));
        assert_eq!(
            flow_nesting_over("a: '[[[[' # [[[[\nb: \"{{{{\"\n", 3),
            None
        );
        let deep = format!("x: {}1{}\n", "[".repeat(8_000), "]".repeat(8_000));
        let loaded = crate::load_str("deep.yaml", &deep);
        let d = loaded.errors().next().expect("refused");
        assert!(d.message().contains("nest deeper than 128"), "{d}");
        assert_eq!(d.line(), Some(1));
    }
}
