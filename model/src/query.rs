//! SQL text for indexing: literals masked, and a fingerprint of the query's shape.
//!
//! This is a lexer, not a parser: it must accept any text (including SQL no server would
//! run) and never fail. It recognises quoted strings (`'…'` with `''` and `\'` escapes),
//! quoted identifiers (`"…"`, `` `…` ``, kept as they are), numbers that are not part of an
//! identifier, and comments (`--`, `#!`/`# ` line comments and `/* … */`).
//!
//! - [`mask`] replaces string and number literals with `?` and keeps everything else, so
//!   `WHERE email = 'a@b.c' AND id = 42` becomes `WHERE email = ? AND id = ?`.
//! - [`fingerprint`] hashes the normalised shape: masked, comments dropped, whitespace
//!   collapsed, case folded outside quoted identifiers, and `IN (?, ?, …)` folded to
//!   `IN (?)`, so queries that differ only in their values share a fingerprint.
//! - [`has_outer_limit`] tells whether the outermost statement caps its result rows
//!   (`LIMIT n`, `LIMIT n OFFSET m`, `LIMIT m, n`, `TOP n`, `FETCH FIRST n ROWS`), which a
//!   `LIMIT` inside a subquery or a ClickHouse `LIMIT n BY …` does not.

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Literal,
    QuotedIdent,
    Word,
    Space,
    Comment,
    Other,
}

/// Splits `sql` into `(kind, start..end)` spans that cover it exactly.
fn tokens(sql: &str) -> Vec<(Kind, std::ops::Range<usize>)> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let kind = match b {
            b'\'' => {
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                        b'\'' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
                Kind::Literal
            }
            b'"' | b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                Kind::QuotedIdent
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                Kind::Comment
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
                Kind::Comment
            }
            b'0'..=b'9' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.' || bytes[i] == b'_') {
                    i += 1;
                }
                Kind::Literal
            }
            _ if b.is_ascii_whitespace() => {
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                Kind::Space
            }
            _ if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] >= 0x80) {
                    i += 1;
                }
                Kind::Word
            }
            _ => {
                i += 1;
                Kind::Other
            }
        };
        // Escapes and unterminated quotes may step past the end or into a UTF-8 sequence.
        i = i.min(bytes.len());
        while !sql.is_char_boundary(i) {
            i += 1;
        }
        out.push((kind, start..i));
    }
    out
}

/// Replaces string and number literals with `?`; everything else is kept verbatim.
pub fn mask(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    for (kind, span) in tokens(sql) {
        match kind {
            Kind::Literal => out.push('?'),
            _ => out.push_str(&sql[span]),
        }
    }
    out
}

/// The normalised shape of a query, the input to [`fingerprint`].
pub fn normalize(sql: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (kind, span) in tokens(sql) {
        let text = &sql[span];
        match kind {
            Kind::Literal => parts.push("?".to_owned()),
            Kind::QuotedIdent => parts.push(text.to_owned()),
            Kind::Word | Kind::Other => parts.push(text.to_lowercase()),
            Kind::Space | Kind::Comment => {}
        }
    }
    // Fold value lists: `( ? , ? , ? )` becomes `( ? )`.
    let mut folded: Vec<String> = Vec::with_capacity(parts.len());
    for part in parts {
        let n = folded.len();
        if part == "?" && n >= 2 && folded[n - 1] == "," && folded[n - 2] == "?" {
            folded.pop();
            continue;
        }
        folded.push(part);
    }
    folded.join(" ")
}

/// A 64-bit fingerprint (16 hex digits) of the query's normalised shape; empty for empty SQL.
pub fn fingerprint(sql: &str) -> String {
    let normalized = normalize(sql);
    if normalized.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(normalized.as_bytes());
    hex::encode(&digest[..8])
}

/// Whether the outermost statement of `sql` (raw or [`mask`]ed) limits its result rows:
/// `LIMIT`, `TOP` or `FETCH FIRST|NEXT` at parenthesis depth 0, not counting `LIMIT n BY …`
/// (ClickHouse's per-group limit). A lexer's answer: it never fails, and text it cannot
/// read has no limit.
pub fn has_outer_limit(sql: &str) -> bool {
    let words: Vec<(usize, &str)> = {
        let mut depth = 0usize;
        let mut out = Vec::new();
        for (kind, span) in tokens(sql) {
            let text = &sql[span];
            match kind {
                Kind::Other if text == "(" => depth += 1,
                Kind::Other if text == ")" => depth = depth.saturating_sub(1),
                Kind::Word | Kind::Literal | Kind::Other if text != "," => out.push((depth, text)),
                _ => {}
            }
        }
        out
    };
    let top = |i: usize| words.get(i).filter(|(depth, _)| *depth == 0).map(|(_, w)| *w);
    let is = |i: usize, keyword: &str| top(i).is_some_and(|w| w.eq_ignore_ascii_case(keyword));
    let number = |i: usize| top(i).is_some_and(|w| w == "?" || w.as_bytes()[0].is_ascii_digit());
    (0..words.len()).any(|i| {
        if is(i, "limit") {
            // `LIMIT n BY cols` caps rows per group; `LIMIT m, n BY` likewise.
            let by_at = if number(i + 2) { i + 3 } else { i + 2 };
            !is(by_at, "by")
        } else if is(i, "top") {
            i > 0 && (is(i - 1, "select") || is(i - 1, "distinct")) && number(i + 1)
        } else {
            is(i, "fetch") && (is(i + 1, "first") || is(i + 1, "next"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_strings_and_numbers_only() {
        assert_eq!(
            mask("SELECT a1, \"b2\" FROM t WHERE email = 'x''y' AND id = 42 -- note 7"),
            "SELECT a1, \"b2\" FROM t WHERE email = ? AND id = ? -- note 7"
        );
        assert_eq!(mask("x = 'it\\'s'"), "x = ?");
    }

    #[test]
    fn same_shape_same_fingerprint() {
        let a = fingerprint("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'bob'");
        let b = fingerprint("select *  from t\nwhere id in (7) and name = 'alice' /* hi */");
        assert_eq!(a, b);
        assert_ne!(a, fingerprint("SELECT * FROM u WHERE id IN (1)"));
        assert_eq!(fingerprint("  "), "");
    }

    #[test]
    fn outer_limit_only_counts_the_outermost_statement() {
        let limited = [
            "SELECT * FROM t LIMIT 10",
            "select * from t order by x desc limit 5 offset 10",
            "SELECT a FROM t LIMIT 20, 10",
            "SELECT * FROM (SELECT * FROM t) LIMIT 1",
            "SELECT a FROM t LIMIT 5 BY a LIMIT 100",
            "SELECT TOP 10 * FROM t",
            "SELECT DISTINCT TOP 3 a FROM t",
            "SELECT a FROM t FETCH FIRST 10 ROWS ONLY",
            "SELECT * FROM t LIMIT ?",
        ];
        for sql in limited {
            assert!(has_outer_limit(sql), "{sql}");
            assert!(has_outer_limit(&mask(sql)), "masked {sql}");
        }
        let unlimited = [
            "SELECT * FROM t",
            "SELECT * FROM t WHERE x IN (SELECT x FROM u LIMIT 10)",
            "SELECT a, b FROM t LIMIT 3 BY a",
            "SELECT a FROM t LIMIT 1, 3 BY a",
            "SELECT 'LIMIT 10' FROM t -- LIMIT 10",
            "SELECT `limit` FROM t",
            "SELECT top FROM t",
            "",
        ];
        for sql in unlimited {
            assert!(!has_outer_limit(sql), "{sql}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_masking_is_idempotent(s in "\\PC*") {
            let once = mask(&s);
            let _ = fingerprint(&s);
            let _ = has_outer_limit(&s);
            proptest::prop_assert_eq!(mask(&once), once.clone());
        }
    }
}
