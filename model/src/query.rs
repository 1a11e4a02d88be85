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

    proptest::proptest! {
        #[test]
        fn never_panics_and_masking_is_idempotent(s in "\\PC*") {
            let once = mask(&s);
            let _ = fingerprint(&s);
            proptest::prop_assert_eq!(mask(&once), once.clone());
        }
    }
}
