//! The nesting guard: how deep `[` and `{` nest, found the way the YAML parser will find them,
//! before the parser runs.
//!
//! The parser (libyaml, through `serde_yaml`) spends time in the square of the flow nesting
//! depth: every token checks every open flow level. A document whose flow collections nest
//! deeper than [`crate::MAX_FLOW_NESTING`] is therefore refused before it is parsed.
//!
//! Counting brackets is not enough: a `[` inside a quoted, plain or block scalar or a comment is
//! text, and a quote inside a block scalar or in the middle of a plain scalar is text too. So
//! this is a small copy of the token-level decisions of libyaml's scanner (`scanner.c`, as
//! translated in `unsafe-libyaml`): where tokens start, where each kind of scalar ends (block
//! scalars need the scanner's indentation stack and its simple-key rule), which characters open
//! and close flow collections. Where the scanner would stop with an error, this lexer carries
//! on: the parser reads nothing after its first error, so what the lexer counts from there on
//! can only make the guard stricter, never let a deeper document through.
//!
//! It runs in one pass, in time linear in the text and with memory bounded by the number of
//! block indentation levels.

/// The 0-based line (counting `\n`) of the first flow collection opened deeper than `limit`.
pub(crate) fn flow_nesting_over(text: &str, limit: usize) -> Option<usize> {
    Scanner::new(text).first_over(limit)
}

/// The deepest flow nesting the parser would see (for tests).
#[cfg(test)]
pub(crate) fn max_flow_nesting(text: &str) -> usize {
    let mut s = Scanner::new(text);
    s.first_over(usize::MAX);
    s.max_flow
}

fn is_break(c: Option<char>) -> bool {
    matches!(c, Some('\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}'))
}

fn is_blank(c: Option<char>) -> bool {
    matches!(c, Some(' ' | '\t'))
}

/// End of input (libyaml's buffer ends with a NUL; a NUL in the text is a reader error).
fn is_z(c: Option<char>) -> bool {
    matches!(c, None | Some('\0'))
}

fn is_breakz(c: Option<char>) -> bool {
    is_break(c) || is_z(c)
}

fn is_blankz(c: Option<char>) -> bool {
    is_blank(c) || is_breakz(c)
}

/// libyaml's `IS_ALPHA`: anchor names and tag handles.
fn is_alpha(c: Option<char>) -> bool {
    matches!(c, Some('0'..='9' | 'A'..='Z' | 'a'..='z' | '_' | '-'))
}

/// Characters of a tag's URI; `verbatim` (`!<...>`) allows `,`, `[` and `]` too.
fn is_uri_char(c: Option<char>, verbatim: bool) -> bool {
    is_alpha(c)
        || c.is_some_and(|c| ";/?:@&=+$.%!~*'()".contains(c))
        || verbatim && c.is_some_and(|c| ",[]".contains(c))
}

/// A possible simple key of the block context (a scalar or collection that a `:` may turn into a
/// mapping key): where it started.
#[derive(Debug, Clone, Copy)]
struct SimpleKey {
    column: u64,
    line: u64,
    index: u64,
}

#[derive(Debug)]
struct Scanner<'t> {
    text: &'t str,
    pos: usize,
    /// Characters since the last line break (libyaml's `mark.column`).
    column: u64,
    /// Characters read (libyaml's `mark.index`).
    index: u64,
    /// Line breaks read, of every kind libyaml counts (libyaml's `mark.line`).
    line: u64,
    /// `\n` read: the line number reported.
    newlines: usize,
    flow_level: usize,
    max_flow: usize,
    /// The block indentation (-1 outside any block collection) and the stack of outer ones.
    indent: i64,
    indents: Vec<i64>,
    simple_key_allowed: bool,
    /// The simple key of the block context (flow level 0), when one is possible. The keys of
    /// flow levels are not needed: inside flow collections there is no indentation.
    key: Option<SimpleKey>,
}

impl<'t> Scanner<'t> {
    fn new(text: &'t str) -> Self {
        Scanner {
            text,
            pos: 0,
            column: 0,
            index: 0,
            line: 0,
            newlines: 0,
            flow_level: 0,
            max_flow: 0,
            indent: -1,
            indents: Vec::new(),
            simple_key_allowed: true,
            key: None,
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.text[self.pos..].chars().nth(k)
    }

    /// libyaml's `SKIP`: one character that is not a line break.
    fn skip(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
            self.column += 1;
            self.index += 1;
        }
    }

    /// libyaml's `SKIP_LINE`: one line break (`\r\n` counts as one).
    fn skip_line(&mut self) {
        match self.peek() {
            Some('\r') if self.peek_at(1) == Some('\n') => {
                self.pos += 2;
                self.index += 2;
                self.newlines += 1;
            }
            Some(c) if is_break(Some(c)) => {
                self.pos += c.len_utf8();
                self.index += 1;
                if c == '\n' {
                    self.newlines += 1;
                }
            }
            _ => return,
        }
        self.column = 0;
        self.line += 1;
    }

    /// `---` or `...` followed by a blank, a break or the end, at the start of a line.
    fn at_document_indicator(&self) -> bool {
        if self.column != 0 {
            return false;
        }
        let rest = &self.text[self.pos..];
        (rest.starts_with("---") || rest.starts_with("...")) && is_blankz(rest[3..].chars().next())
    }

    fn save_simple_key(&mut self) {
        if self.flow_level == 0 && self.simple_key_allowed {
            self.key = Some(SimpleKey {
                column: self.column,
                line: self.line,
                index: self.index,
            });
        }
    }

    fn remove_simple_key(&mut self) {
        if self.flow_level == 0 {
            self.key = None;
        }
    }

    fn roll_indent(&mut self, column: u64) {
        if self.flow_level == 0 && self.indent < column as i64 {
            self.indents.push(self.indent);
            self.indent = column as i64;
        }
    }

    fn unroll_indent(&mut self, column: i64) {
        if self.flow_level != 0 {
            return;
        }
        while self.indent > column {
            self.indent = self.indents.pop().unwrap_or(-1);
        }
    }

    /// Scans to the end; returns the line where the flow level first went above `limit`.
    fn first_over(&mut self, limit: usize) -> Option<usize> {
        loop {
            self.scan_to_next_token();
            // A simple key is no longer possible once the scanner has left its line or gone
            // 1024 characters past it.
            if let Some(k) = self.key {
                if k.line < self.line || k.index + 1024 < self.index {
                    self.key = None;
                }
            }
            self.unroll_indent(self.column as i64);
            let c = self.peek();
            if is_z(c) {
                return None;
            }
            let c1 = self.peek_at(1);
            if self.column == 0 && c == Some('%') {
                // A directive line.
                self.unroll_indent(-1);
                self.remove_simple_key();
                self.simple_key_allowed = false;
                while !is_breakz(self.peek()) {
                    self.skip();
                }
                self.skip_line();
                continue;
            }
            if self.at_document_indicator() {
                self.unroll_indent(-1);
                self.remove_simple_key();
                self.simple_key_allowed = false;
                for _ in 0..3 {
                    self.skip();
                }
                continue;
            }
            match c {
                Some('[' | '{') => {
                    self.save_simple_key();
                    self.flow_level += 1;
                    if self.flow_level > self.max_flow {
                        self.max_flow = self.flow_level;
                        if self.flow_level > limit {
                            return Some(self.newlines);
                        }
                    }
                    self.simple_key_allowed = true;
                    self.skip();
                }
                Some(']' | '}') => {
                    self.remove_simple_key();
                    self.flow_level = self.flow_level.saturating_sub(1);
                    self.simple_key_allowed = false;
                    self.skip();
                }
                Some(',') => {
                    self.remove_simple_key();
                    self.simple_key_allowed = true;
                    self.skip();
                }
                Some('-') if is_blankz(c1) => {
                    self.roll_indent(self.column);
                    self.remove_simple_key();
                    self.simple_key_allowed = true;
                    self.skip();
                }
                Some('?') if self.flow_level != 0 || is_blankz(c1) => {
                    self.roll_indent(self.column);
                    self.remove_simple_key();
                    self.simple_key_allowed = self.flow_level == 0;
                    self.skip();
                }
                Some(':') if self.flow_level != 0 || is_blankz(c1) => {
                    if self.flow_level == 0 {
                        match self.key.take() {
                            Some(k) => {
                                self.roll_indent(k.column);
                                self.simple_key_allowed = false;
                            }
                            None => {
                                self.roll_indent(self.column);
                                self.simple_key_allowed = true;
                            }
                        }
                    } else {
                        // Whether the flow level's own key was possible or not, no key may
                        // follow the `:` directly.
                        self.simple_key_allowed = false;
                    }
                    self.skip();
                }
                Some('*' | '&') => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.skip();
                    while is_alpha(self.peek()) {
                        self.skip();
                    }
                }
                Some('!') => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.scan_tag();
                }
                Some('|' | '>') if self.flow_level == 0 => {
                    self.remove_simple_key();
                    self.simple_key_allowed = true;
                    self.scan_block_scalar();
                }
                Some(q @ ('\'' | '"')) => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.scan_quoted_scalar(q == '\'');
                }
                _ if self.starts_plain_scalar(c, c1) => {
                    self.save_simple_key();
                    self.simple_key_allowed = false;
                    self.scan_plain_scalar();
                }
                // A character that cannot start a token: the parser stops here.
                _ => self.skip(),
            }
        }
    }

    /// Whitespace, comments and line breaks up to the next token.
    fn scan_to_next_token(&mut self) {
        loop {
            if self.column == 0 && self.peek() == Some('\u{feff}') {
                self.skip();
            }
            while self.peek() == Some(' ')
                || (self.flow_level != 0 || !self.simple_key_allowed) && self.peek() == Some('\t')
            {
                self.skip();
            }
            if self.peek() == Some('#') {
                while !is_breakz(self.peek()) {
                    self.skip();
                }
            }
            if !is_break(self.peek()) {
                return;
            }
            self.skip_line();
            if self.flow_level == 0 {
                self.simple_key_allowed = true;
            }
        }
    }

    fn starts_plain_scalar(&self, c: Option<char>, c1: Option<char>) -> bool {
        let indicator = c.is_some_and(|c| "-?:,[]{}#&*!|>'\"%@`".contains(c));
        !(is_blankz(c) || indicator)
            || c == Some('-') && !is_blank(c1)
            || self.flow_level == 0 && matches!(c, Some('?' | ':')) && !is_blankz(c1)
    }

    /// `!tag`, `!!tag`, `!handle!suffix` or `!<verbatim>`.
    fn scan_tag(&mut self) {
        self.skip();
        if self.peek() == Some('<') {
            self.skip();
            while is_uri_char(self.peek(), true) {
                self.skip();
            }
            if self.peek() == Some('>') {
                self.skip();
            }
            return;
        }
        while is_alpha(self.peek()) {
            self.skip();
        }
        if self.peek() == Some('!') {
            self.skip();
        }
        while is_uri_char(self.peek(), false) {
            self.skip();
        }
    }

    /// `'...'` or `"..."`, over as many lines as it takes.
    fn scan_quoted_scalar(&mut self, single: bool) {
        let quote = if single { '\'' } else { '"' };
        self.skip();
        loop {
            let c = self.peek();
            if is_z(c) {
                return;
            }
            if is_break(c) {
                self.skip_line();
            } else if single && c == Some('\'') && self.peek_at(1) == Some('\'') {
                self.skip();
                self.skip();
            } else if c == Some(quote) {
                self.skip();
                return;
            } else if !single && c == Some('\\') {
                self.skip();
                if is_break(self.peek()) {
                    self.skip_line();
                } else {
                    self.skip();
                }
            } else {
                self.skip();
            }
        }
    }

    /// A plain scalar: ends at `: `, ` #`, a flow indicator inside a flow collection, a
    /// document marker, or (in the block context) a line indented no deeper than the
    /// enclosing block collection.
    fn scan_plain_scalar(&mut self) {
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        loop {
            if self.at_document_indicator() || self.peek() == Some('#') {
                break;
            }
            while !is_blankz(self.peek()) {
                let c = self.peek();
                let c1 = self.peek_at(1);
                if c == Some(':') && is_blankz(c1)
                    || self.flow_level != 0 && matches!(c, Some(',' | '[' | ']' | '{' | '}'))
                {
                    break;
                }
                if self.flow_level != 0
                    && c == Some(':')
                    && matches!(c1, Some(',' | '?' | '[' | ']' | '{' | '}'))
                {
                    // The scanner stops with "found unexpected ':'".
                    break;
                }
                leading_blanks = false;
                self.skip();
            }
            if !(is_blank(self.peek()) || is_break(self.peek())) {
                break;
            }
            while is_blank(self.peek()) || is_break(self.peek()) {
                if is_blank(self.peek()) {
                    self.skip();
                } else {
                    self.skip_line();
                    leading_blanks = true;
                }
            }
            if self.flow_level == 0 && (self.column as i64) < indent {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
    }

    /// `|` or `>` with its header, then every line indented at least as far as the content
    /// (given by an indentation indicator, or by the first non-empty line).
    fn scan_block_scalar(&mut self) {
        self.skip();
        let mut increment: i64 = 0;
        let digit = |c: Option<char>| c.and_then(|c| c.to_digit(10)).map(i64::from);
        if matches!(self.peek(), Some('+' | '-')) {
            self.skip();
            if let Some(d) = digit(self.peek()) {
                increment = d;
                self.skip();
            }
        } else if let Some(d) = digit(self.peek()) {
            increment = d;
            self.skip();
            if matches!(self.peek(), Some('+' | '-')) {
                self.skip();
            }
        }
        while is_blank(self.peek()) {
            self.skip();
        }
        if self.peek() == Some('#') {
            while !is_breakz(self.peek()) {
                self.skip();
            }
        }
        // Anything else before the line break is a scanner error; the parser stops there.
        if is_break(self.peek()) {
            self.skip_line();
        }
        let mut indent: i64 = 0;
        if increment != 0 {
            indent = if self.indent >= 0 {
                self.indent + increment
            } else {
                increment
            };
        }
        self.scan_block_scalar_breaks(&mut indent);
        while self.column as i64 == indent && !is_z(self.peek()) {
            while !is_breakz(self.peek()) {
                self.skip();
            }
            self.skip_line();
            self.scan_block_scalar_breaks(&mut indent);
        }
    }

    /// Empty lines and indentation before (and between) the lines of a block scalar; sets the
    /// content indentation when it is not known yet.
    fn scan_block_scalar_breaks(&mut self, indent: &mut i64) {
        let mut max_indent: i64 = 0;
        loop {
            while (*indent == 0 || (self.column as i64) < *indent) && self.peek() == Some(' ') {
                self.skip();
            }
            max_indent = max_indent.max(self.column as i64);
            // A tab where indentation is expected is a scanner error: the parser stops.
            if !is_break(self.peek()) {
                break;
            }
            self.skip_line();
        }
        if *indent == 0 {
            *indent = max_indent.max(self.indent + 1).max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(text: &str) -> usize {
        max_flow_nesting(text)
    }

    #[test]
    fn flow_collections_count() {
        assert_eq!(depth("a: [1, {b: [2]}]\n"), 3);
        assert_eq!(depth("a: [[[[1]]]]\n"), 4);
        assert_eq!(flow_nesting_over("a: [[[[1]]]]\n", 3), Some(0));
        assert_eq!(flow_nesting_over("a: [1, {b: [2]}]\n", 3), None);
        assert_eq!(
            flow_nesting_over("a: 1\nb:\n  c: [[[[\n    x]]]]\n", 3),
            Some(2)
        );
    }

    #[test]
    fn brackets_in_scalars_and_comments_are_text() {
        assert_eq!(depth("a: '[[[[' # [[[[\nb: \"{{{{\"\n"), 0);
        assert_eq!(depth("a: foo[[[[\nb: x{{{\n"), 0, "plain scalars");
        assert_eq!(
            depth("a: foo\n  [[[[ more\n  {{{ text\nb: 1\n"),
            0,
            "continuation lines of a plain scalar"
        );
        assert_eq!(depth("a: |\n  [[[[\n  {{{{\nb: 1\n"), 0, "block scalar");
        assert_eq!(depth("- >-\n  [[[[\n- [[x]]\n"), 2);
        assert_eq!(depth("a: !tag [[1]]\n"), 2);
        assert_eq!(depth("a: &x [[1]]\nb: *x\n"), 2);
        assert_eq!(depth("a: 'it''s [[' \nb: \"q\\\" [[\"\n"), 0, "escapes");
    }

    #[test]
    fn a_quote_inside_a_scalar_does_not_hide_what_follows() {
        // The old guard skipped from a quote to the next quote of the same kind.
        assert_eq!(depth("a: |\n  it's \"quoted\nb: [[[x]]]\n"), 3);
        assert_eq!(
            depth("a: x \"\nb: [[[x]]]\n"),
            3,
            "a quote inside a plain scalar"
        );
        assert_eq!(depth("a: don't\nb: [[[x]]]\n"), 3);
        assert_eq!(depth("# it's\nb: [[[x]]]\n"), 3, "a quote in a comment");
    }

    #[test]
    fn block_scalars_end_where_the_parser_ends_them() {
        // Content indentation from the first line; a less indented line ends it.
        assert_eq!(depth("a: |\n    x\n  [[y]]\n"), 2);
        // An empty block scalar: the next line at the key's indentation is not content.
        assert_eq!(depth("a: |\nb: [[y]]\n"), 2);
        // The key's indentation comes from the simple key, not the line.
        assert_eq!(depth("- a: |\n    text\n  b: [[y]]\n"), 2);
        assert_eq!(depth("- a: |\n    [[text\n    b: [[y]]\n"), 0);
        // An indentation indicator.
        assert_eq!(depth("a: |2\n    [[x\n  [[y\n"), 0);
        assert_eq!(depth("a:\n  b: |1\n   [[x\n  c: [[y]]\n"), 2);
    }

    #[test]
    fn deep_documents_are_linear_to_scan() {
        let n = 200_000;
        let text = format!("x: {}{}\n", "[".repeat(n), "]".repeat(n));
        let start = std::time::Instant::now();
        assert_eq!(flow_nesting_over(&text, 128), Some(0));
        assert_eq!(depth(&text), n);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let deep = format!("x: {}1{}\n", "[".repeat(8_000), "]".repeat(8_000));
        let loaded = crate::load_str("deep.yaml", &deep);
        let d = loaded.errors().next().expect("refused");
        assert!(d.message().contains("nest deeper than 128"), "{d}");
        assert_eq!(d.line(), Some(1));
    }
}
