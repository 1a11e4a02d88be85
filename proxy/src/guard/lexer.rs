//! The guard's lexer: ClickHouse's own tokenisation (`src/Parsers/Lexer.cpp`), restricted to
//! the text that ClickHouse 18.16 and current ClickHouse (26.x) split into the same tokens.
//!
//! Where the two lexers part ways, or where ClickHouse decodes something the guard would have
//! to decode the same way to know a name, the lexer yields a [`Kind::Bad`] token with the
//! reason instead of guessing; the parser refuses the query when it reaches one. Those are:
//! - quoted identifiers with a backslash (ClickHouse decodes `\xHH`, `\N`, `\0`, … inside
//!   backticks and double quotes), a doubled quote, a control character, or nothing inside;
//! - `/*` inside a block comment (26.x nests comments, 18.16 ends at the first `*/`), and
//!   unterminated comments, strings and quoted identifiers;
//! - `#`, `$`, `@`, `{`, `}`, `^`, `\`, a lone `|` or `!`, and any byte outside ASCII outside a
//!   string, quoted identifier or comment (26.x reads comments, heredocs, query parameters,
//!   `\G` and Unicode whitespace there; 18.16 refuses them);
//! - a number followed directly by a letter, digit separators (`1_000`) and `x'..'`/`b'..'`
//!   literals (26.x reads `123abc` as an identifier and `x'41'` as a string; 18.16 refuses
//!   both).
//!
//! Comments and whitespace are skipped. Tokens are produced on demand, so that the data after
//! `INSERT … FORMAT name` is never read as SQL.

/// A token's kind. Word and Quoted are identifiers (or keywords, for bare words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bare word: `[A-Za-z_][A-Za-z0-9_]*`.
    Word,
    /// A quoted identifier, `` `x` `` or `"x"`, whose content needs no decoding.
    Quoted,
    /// A string literal, `'…'` (with ClickHouse's escapes; its value never names anything).
    Str,
    Number,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Semicolon,
    Dot,
    Plus,
    Minus,
    Arrow,
    Star,
    Slash,
    Percent,
    Eq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Question,
    Colon,
    DoubleColon,
    Concat,
    End,
    /// Text the guard refuses, with the reason.
    Bad(&'static str),
}

/// A token: its kind and byte range in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// Produces tokens one at a time from `src`.
#[derive(Debug, Clone)]
pub struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    /// The kind of the previous token (ClickHouse's `prev_significant_token_type`).
    prev: Option<Kind>,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl<'s> Lexer<'s> {
    pub fn new(src: &'s str) -> Self {
        Lexer { src, pos: 0, prev: None }
    }

    /// The next token ([`Kind::End`] at the end, and again after it).
    pub fn next_token(&mut self) -> Token {
        let token = self.scan();
        self.prev = Some(token.kind);
        token
    }

    fn byte(&self, i: usize) -> Option<u8> {
        self.src.as_bytes().get(i).copied()
    }

    fn token(&mut self, kind: Kind, start: usize, end: usize) -> Token {
        self.pos = end;
        Token { kind, start, end }
    }

    fn bad(&mut self, reason: &'static str, start: usize) -> Token {
        // Nothing after a refused token is read.
        let end = self.src.len();
        self.token(Kind::Bad(reason), start, end)
    }

    /// Skips whitespace and comments; `Err` for a comment the two lexers read differently.
    fn skip_trivia(&mut self) -> Result<(), &'static str> {
        let bytes = self.src.as_bytes();
        loop {
            match (self.byte(self.pos), self.byte(self.pos + 1)) {
                (Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c), _) => self.pos += 1,
                (Some(b'-'), Some(b'-')) | (Some(b'/'), Some(b'/')) => {
                    // To the end of the line; a newline cannot be escaped.
                    self.pos = bytes[self.pos..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |n| self.pos + n);
                }
                (Some(b'/'), Some(b'*')) => {
                    let mut i = self.pos + 2;
                    loop {
                        match (bytes.get(i), bytes.get(i + 1)) {
                            (Some(b'*'), Some(b'/')) => {
                                self.pos = i + 2;
                                break;
                            }
                            (Some(b'/'), Some(b'*')) => return Err("a comment inside a comment"),
                            (Some(_), _) => i += 1,
                            (None, _) => return Err("an unterminated comment"),
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn scan(&mut self) -> Token {
        if let Err(reason) = self.skip_trivia() {
            let start = self.pos;
            return self.bad(reason, start);
        }
        let start = self.pos;
        let Some(b) = self.byte(start) else {
            return Token { kind: Kind::End, start, end: start };
        };
        let next = self.byte(start + 1);
        let one = |k| (k, start + 1);
        let (kind, end) = match b {
            b'\'' => return self.quoted(start, b'\''),
            b'"' | b'`' => return self.quoted(start, b),
            b'0'..=b'9' => return self.number(start),
            b'.' => {
                let after_operand =
                    matches!(self.prev, Some(Kind::RParen | Kind::RBracket | Kind::Word | Kind::Quoted | Kind::Number));
                if start > 0 && (!next.is_some_and(|c| c.is_ascii_digit()) || after_operand) {
                    one(Kind::Dot)
                } else {
                    return self.number(start);
                }
            }
            b'(' => one(Kind::LParen),
            b')' => one(Kind::RParen),
            b'[' => one(Kind::LBracket),
            b']' => one(Kind::RBracket),
            b',' => one(Kind::Comma),
            b';' => one(Kind::Semicolon),
            b'+' => one(Kind::Plus),
            b'-' if next == Some(b'>') => (Kind::Arrow, start + 2),
            b'-' => one(Kind::Minus),
            b'*' => one(Kind::Star),
            b'/' => one(Kind::Slash),
            b'%' => one(Kind::Percent),
            b'=' if next == Some(b'=') => (Kind::Eq, start + 2),
            b'=' => one(Kind::Eq),
            b'!' if next == Some(b'=') => (Kind::NotEq, start + 2),
            b'<' if next == Some(b'=') => (Kind::Le, start + 2),
            b'<' if next == Some(b'>') => (Kind::NotEq, start + 2),
            b'<' => one(Kind::Lt),
            b'>' if next == Some(b'=') => (Kind::Ge, start + 2),
            b'>' => one(Kind::Gt),
            b'?' => one(Kind::Question),
            b':' if next == Some(b':') => (Kind::DoubleColon, start + 2),
            b':' => one(Kind::Colon),
            b'|' if next == Some(b'|') => (Kind::Concat, start + 2),
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                if matches!(b, b'x' | b'X' | b'b' | b'B') && next == Some(b'\'') {
                    return self.bad("an x'…' or b'…' literal", start);
                }
                let mut end = start + 1;
                while self.byte(end).is_some_and(is_word_byte) {
                    end += 1;
                }
                if self.byte(end) == Some(b'$') {
                    return self.bad("`$` in a name", start);
                }
                (Kind::Word, end)
            }
            b'#' => return self.bad("`#`", start),
            b'$' => return self.bad("`$` (heredoc or parameter)", start),
            b'{' | b'}' => return self.bad("`{…}` query parameters", start),
            b'@' => return self.bad("`@`", start),
            b'\\' => return self.bad("a backslash outside quotes", start),
            b'|' => return self.bad("a single `|`", start),
            b'!' => return self.bad("a single `!`", start),
            0x80.. => return self.bad("a non-ASCII character outside quotes", start),
            _ => return self.bad("an unexpected character", start),
        };
        self.token(kind, start, end)
    }

    /// A string literal or quoted identifier, scanned as ClickHouse's `quotedString` does: a
    /// backslash escapes the next byte, a doubled quote continues.
    fn quoted(&mut self, start: usize, quote: u8) -> Token {
        let bytes = self.src.as_bytes();
        let mut i = start + 1;
        let mut escapes = false;
        let mut doubled = false;
        loop {
            match bytes.get(i) {
                None => return self.bad("an unterminated quote", start),
                Some(b'\\') => {
                    if i + 1 >= bytes.len() {
                        return self.bad("an unterminated quote", start);
                    }
                    escapes = true;
                    i += 2;
                }
                Some(&c) if c == quote => {
                    if bytes.get(i + 1) == Some(&quote) {
                        doubled = true;
                        i += 2;
                    } else {
                        i += 1;
                        break;
                    }
                }
                Some(_) => i += 1,
            }
        }
        if quote == b'\'' {
            return self.token(Kind::Str, start, i);
        }
        let content = &bytes[start + 1..i - 1];
        if escapes {
            return self.bad("an escape inside a quoted identifier", start);
        }
        if doubled || content.iter().any(|&c| c == b'"' || c == b'`') {
            return self.bad("a quote inside a quoted identifier", start);
        }
        if content.is_empty() {
            return self.bad("an empty quoted identifier", start);
        }
        if content.iter().any(|&c| c < 0x20 || c == 0x7f) {
            return self.bad("a control character inside a quoted identifier", start);
        }
        self.token(Kind::Quoted, start, i)
    }

    /// A number, as 26.x scans one, refused where 18.16 would scan it otherwise.
    fn number(&mut self, start: usize) -> Token {
        let digits = |lexer: &Self, mut i: usize, hex: bool| {
            while lexer.byte(i).is_some_and(|c| if hex { c.is_ascii_hexdigit() } else { c.is_ascii_digit() }) {
                i += 1;
            }
            i
        };
        let mut i = start;
        if self.prev == Some(Kind::Dot) {
            // Tuple access (`x.1.2`): a plain integer only.
            i = digits(self, i, false);
        } else {
            let mut hex = false;
            if self.byte(i) == Some(b'0') && i + 2 < self.src.len() {
                match (self.byte(i + 1), self.byte(i + 2)) {
                    (Some(b'x' | b'X'), Some(c)) if c.is_ascii_hexdigit() => {
                        hex = true;
                        i += 2;
                    }
                    (Some(b'b' | b'B'), Some(b'0' | b'1')) => i += 2,
                    _ => {}
                }
            }
            if self.byte(i) != Some(b'.') {
                i = digits(self, i, hex);
            }
            if self.byte(i) == Some(b'.') {
                i = digits(self, i + 1, hex);
            }
            let exponent = if hex { [b'p', b'P'] } else { [b'e', b'E'] };
            if i + 1 < self.src.len() && self.byte(i).is_some_and(|c| exponent.contains(&c)) {
                i += 1;
                if i + 1 < self.src.len() && matches!(self.byte(i), Some(b'-' | b'+')) {
                    i += 1;
                }
                i = digits(self, i, false);
            }
        }
        if self.byte(i).is_some_and(|c| is_word_byte(c) || c == b'$') {
            return self.bad("a number followed by a letter", start);
        }
        self.token(Kind::Number, start, i)
    }
}

/// The identifier a Word or Quoted token names: the text itself, or what is inside the quotes.
pub fn ident_text<'s>(src: &'s str, token: &Token) -> &'s str {
    match token.kind {
        Kind::Quoted => &src[token.start + 1..token.end - 1],
        _ => &src[token.start..token.end],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Kind> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = lexer.next_token();
            if t.kind == Kind::End {
                return out;
            }
            out.push(t.kind);
            if matches!(t.kind, Kind::Bad(_)) {
                return out;
            }
        }
    }

    fn texts(src: &str) -> Vec<&str> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = lexer.next_token();
            if t.kind == Kind::End {
                return out;
            }
            out.push(&src[t.start..t.end]);
        }
    }

    fn is_bad(src: &str) -> bool {
        kinds(src).iter().any(|k| matches!(k, Kind::Bad(_)))
    }

    #[test]
    fn splits_like_clickhouse() {
        assert_eq!(
            texts("SELECT a.b, x.1.2 FROM t -- c\n/* d */ WHERE y>=1.5e-3"),
            ["SELECT", "a", ".", "b", ",", "x", ".", "1", ".", "2", "FROM", "t", "WHERE", "y", ">=", "1.5e-3"]
        );
        assert_eq!(
            texts("f(.5) 1. 0x1F 0b101 1e+5 a->b 'it''s' 'a\\'b' `q` \"d\" <> != == :: ||"),
            [
                "f", "(", ".5", ")", "1.", "0x1F", "0b101", "1e+5", "a", "->", "b", "'it''s'", "'a\\'b'", "`q`",
                "\"d\"", "<>", "!=", "==", "::", "||"
            ]
        );
        // A comment hides everything to the end of its line, `//` too (both versions).
        assert_eq!(texts("SELECT 1 // x FROM y\n+ 2"), ["SELECT", "1", "+", "2"]);
        // The string ends where ClickHouse ends it: after the escaped quote, not at it.
        assert_eq!(texts("SELECT 'a\\' FROM t --' x"), ["SELECT", "'a\\' FROM t --'", "x"]);
        assert_eq!(kinds("x.1")[2], Kind::Number);
        assert_eq!(kinds("1 . 5"), [Kind::Number, Kind::Dot, Kind::Number]);
    }

    #[test]
    fn refuses_what_the_versions_read_differently() {
        for src in [
            "`sal\\x61ries`",
            "\"sal\\x61ries\"",
            "`a``b`",
            "\"a\"\"b\"",
            "``",
            "`a\tb`",
            "`unterminated",
            "'unterminated",
            "'ends in a backslash\\",
            "/* a /* b */",
            "/* unterminated",
            "# comment",
            "$$ heredoc $$",
            "a$b",
            "{p:UInt8}",
            "x'41'",
            "B'01'",
            "123abc",
            "1_000",
            "0xg",
            "0b2",
            "1e",
            "\\G",
            "a | b",
            "!a",
            "@x",
            "a^b",
            "SELECT\u{a0}1",
            "SELECT 1\u{0}",
        ] {
            assert!(is_bad(src), "{src:?} must be refused");
        }
        for src in ["'\\x41 \\N ``'", "`ok name`", "\"üñí\"", "-- ünïcode comment\n1", "/* ünï */ 1"] {
            assert!(!is_bad(src), "{src:?} must lex");
        }
    }

    #[test]
    fn quoted_identifiers_name_their_content() {
        let src = "`a b`.\"c\"";
        let mut lexer = Lexer::new(src);
        let t = lexer.next_token();
        assert_eq!(ident_text(src, &t), "a b");
        lexer.next_token();
        let t = lexer.next_token();
        assert_eq!(ident_text(src, &t), "c");
    }
}
