//! The guard's lexical pass: rejects text this parser and ClickHouse might read
//! differently, and splits a trailing `FORMAT name` off before parsing.

use super::Rejection;

/// Rejects text that this parser and ClickHouse might read differently, and gives precise
/// reasons for `INTO OUTFILE` and `SETTINGS` (which may not even parse here).
pub fn lexical_check(sql: &str) -> Result<Vec<(usize, usize)>, Rejection> {
    let bytes = sql.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    let mut prev_word = String::new();
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' | b'`' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(Rejection::Ambiguous("unterminated quote")),
                        Some(b'\\') => i += 2,
                        Some(&c) if c == b && bytes.get(i + 1) == Some(&b) => i += 2,
                        Some(&c) if c == b => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                loop {
                    match (bytes.get(i), bytes.get(i + 1)) {
                        (None, _) => return Err(Rejection::Ambiguous("unterminated comment")),
                        (Some(b'*'), Some(b'/')) => {
                            i += 2;
                            break;
                        }
                        (Some(b'/'), Some(b'*')) => return Err(Rejection::Ambiguous("nested comment")),
                        _ => i += 1,
                    }
                }
            }
            b'#' => return Err(Rejection::Ambiguous("# comment")),
            b'$' => return Err(Rejection::Ambiguous("$ quoting")),
            _ if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = sql[start..i].to_ascii_uppercase();
                if word == "OUTFILE" && prev_word == "INTO" {
                    return Err(Rejection::IntoOutfile);
                }
                if word == "SETTINGS" {
                    return Err(Rejection::Settings);
                }
                words.push((start, i));
                prev_word = word;
            }
            _ => i += 1,
        }
    }
    Ok(words)
}

/// Splits a trailing `FORMAT name` off (the parser accepts it only in some positions).
/// `words` are the word spans from [`lexical_check`].
pub(crate) fn split_trailing_format<'s>(sql: &'s str, words: &[(usize, usize)]) -> (&'s str, Option<String>) {
    if let [.., (fs, fe), (ns, ne)] = words {
        let between = &sql[*fe..*ns];
        let after = &sql[*ne..];
        if sql[*fs..*fe].eq_ignore_ascii_case("FORMAT") && between.trim().is_empty() && after.trim().is_empty() {
            return (&sql[..*fs], Some(sql[*ns..*ne].to_owned()));
        }
    }
    (sql, None)
}
