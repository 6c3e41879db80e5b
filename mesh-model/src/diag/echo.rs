//! Values echoed in diagnostics are cut to [`MAX_ECHO`] characters, so a 10 MB name gives a
//! one-line message, not 20 MB of output.

use std::borrow::Cow;

/// The most characters of one value a diagnostic repeats; longer ones end in `…`.
pub(crate) const MAX_ECHO: usize = 200;

/// `s`, or its first [`MAX_ECHO`] characters and `…`.
pub(crate) fn bound(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(MAX_ECHO) {
        None => Cow::Borrowed(s),
        Some((at, _)) => Cow::Owned(format!("{}…", &s[..at])),
    }
}

/// A message with every long quoted value (`"…"` or `` `…` ``) and every long run without
/// whitespace cut to [`MAX_ECHO`] characters, the closing quote kept.
pub(crate) fn bound_message(msg: &str) -> Cow<'_, str> {
    if msg.len() <= MAX_ECHO {
        return Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len().min(4 * MAX_ECHO));
    let mut changed = false;
    let mut rest = msg;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        // One value: a quoted string (with `\` escapes inside `"`), or a run up to whitespace.
        let end = match c {
            '"' | '`' => {
                let mut escaped = false;
                rest.char_indices()
                    .skip(1)
                    .find(|&(_, d)| {
                        let close = d == c && !escaped;
                        escaped = c == '"' && d == '\\' && !escaped;
                        close
                    })
                    .map_or(rest.len(), |(i, d)| i + d.len_utf8())
            }
            _ => rest
                .char_indices()
                .find(|(_, d)| d.is_whitespace())
                .map_or(rest.len(), |(i, _)| i),
        };
        let value = &rest[..end];
        let quoted = matches!(c, '"' | '`');
        match value.char_indices().nth(MAX_ECHO + usize::from(quoted)) {
            None => out.push_str(value),
            Some((at, _)) => {
                changed = true;
                out.push_str(&value[..at]);
                out.push('…');
                let last = value
                    .chars()
                    .next_back()
                    .filter(|&l| l == c && value.len() > 1);
                if let (true, Some(q)) = (matches!(c, '"' | '`'), last) {
                    out.push(q);
                }
            }
        }
        rest = &rest[end..];
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_the_rest_kept() {
        let name = "x".repeat(10_000);
        let msg =
            format!("name {name:?} must be a lower-case DNS subdomain, not `{name}` or {name}");
        let b = bound_message(&msg);
        assert!(b.len() < 1_000, "{}", b.len());
        let cut = format!("{}…", "x".repeat(MAX_ECHO));
        assert_eq!(
            b,
            format!("name \"{cut}\" must be a lower-case DNS subdomain, not `{cut}` or {cut}")
        );
        let short = "a message with \"short\" values that is longer than two hundred characters, because it says a lot about what is wrong and what to write instead, which is what a good message does; and it is kept exactly as it was written, word for word";
        assert!(short.len() > MAX_ECHO);
        assert!(matches!(bound_message(short), Cow::Borrowed(_)));
        // Escaped quotes stay inside their value; multi-byte characters are not split.
        let tricky = format!(
            "{:?} then é{}",
            format!("a\"{}", "é".repeat(300)),
            "é".repeat(300)
        );
        let b = bound_message(&tricky);
        assert!(b.chars().count() < 450, "{b}");
        assert!(b.contains(" then "), "{b}");
        assert_eq!(bound("abc"), "abc");
        assert_eq!(bound(&"y".repeat(201)).chars().count(), 201);
    }
}
