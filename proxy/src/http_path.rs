//! Request paths in one normal form, so that the path a policy decides is the path the
//! upstream serves.
//!
//! [`normalize`] follows RFC 3986 §6.2.2: percent-encoded unreserved characters are decoded
//! (`%61dmin` is `admin`, `%2e%2e` is `..`), other escapes are kept with upper-case hex, dot
//! segments are removed (`/a/./b/../c` is `/a/c`, never above the root) and empty segments
//! collapse (`//` is `/`). What upstreams read differently from one another is refused
//! rather than guessed: an encoded slash (`%2f`), a backslash raw or encoded (servers on
//! Windows read it as a slash), `;` raw or encoded (Java servers cut path parameters from
//! segments, so `..;` is `..` there), an encoded `%` (decoded twice by some), control
//! characters, escapes that are not UTF-8 (overlong forms of `.` and `/`) and malformed
//! escapes.

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with /")]
    NotAbsolute,
    #[error("the path has a malformed percent escape")]
    BadEscape,
    #[error("the path has an encoded slash (%2F), which upstreams read differently")]
    EncodedSlash,
    #[error("the path has a backslash, which some upstreams read as a slash")]
    Backslash,
    #[error("the path has a `;`, which some upstreams cut path parameters at")]
    Semicolon,
    #[error("the path has an encoded % (%25), which some upstreams decode twice")]
    DoubleEncoding,
    #[error("the path has a control character")]
    Control,
    #[error("the path's escapes are not UTF-8")]
    NotUtf8,
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_escape(out: &mut String, v: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(v >> 4)]));
    out.push(char::from(HEX[usize::from(v & 15)]));
}

/// Decodes the unreserved escapes of `raw`, refusing ambiguous ones; escapes of other
/// characters stay (upper-case hex).
fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) =
                    (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
                else {
                    return Err(PathError::BadEscape);
                };
                let v = h * 16 + l;
                match v {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::Backslash),
                    b';' => return Err(PathError::Semicolon),
                    b'%' => return Err(PathError::DoubleEncoding),
                    0..=0x1f | 0x7f => return Err(PathError::Control),
                    v if unreserved(v) => out.push(char::from(v)),
                    v => push_escape(&mut out, v),
                }
                decoded.push(v);
                i += 3;
                continue;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::Semicolon),
            0..=0x20 | 0x7f => return Err(PathError::Control),
            _ => {}
        }
        decoded.push(b);
        if b.is_ascii() {
            out.push(char::from(b));
        } else {
            // Raw non-ASCII (not in a parsed URI, but cheap to handle) is written escaped.
            push_escape(&mut out, b);
        }
        i += 1;
    }
    std::str::from_utf8(&decoded).map_err(|_| PathError::NotUtf8)?;
    Ok(out)
}

/// The normal form of a request path (see the module docs), or why it is refused.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = decode_unreserved(raw)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in decoded.split('/').skip(1) {
        trailing = false;
        match seg {
            "" => trailing = true,
            "." => trailing = true,
            ".." => {
                segments.pop();
                trailing = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// `path` with ASCII letters lowercased outside percent escapes (whose hex stays upper case).
pub fn lowercase(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut escape = 0;
    for c in path.chars() {
        if c == '%' {
            escape = 2;
            out.push(c);
        } else if escape > 0 {
            escape -= 1;
            out.push(c);
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        for (raw, want) in [
            ("/", "/"),
            ("/bi/metabase/", "/bi/metabase/"),
            ("/bi/metabase", "/bi/metabase"),
            ("/bi/metabase/x/../admin", "/bi/metabase/admin"),
            ("/bi/metabase/./admin", "/bi/metabase/admin"),
            ("/bi/metabase/%61dmin", "/bi/metabase/admin"),
            ("/bi/metabase/%2e%2e/admin", "/bi/admin"),
            ("/bi/metabase/x/%2E%2E/admin", "/bi/metabase/admin"),
            ("/bi/metabase/x/.%2e/admin", "/bi/metabase/admin"),
            ("/bi//metabase///admin", "/bi/metabase/admin"),
            ("/bi/metabase/x/..", "/bi/metabase/"),
            ("/bi/metabase/x/.", "/bi/metabase/x/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/%c3%a9t%c3%a9", "/a/%C3%A9t%C3%A9"),
            ("/a/b%20c", "/a/b%20c"),
            ("/a/%7Euser", "/a/~user"),
            ("/a/...", "/a/..."),
            ("/é/%61dmin", "/%C3%A9/admin"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for (raw, why) in [
            ("/bi/metabase/x%2f..%2fadmin", PathError::EncodedSlash),
            ("/bi/metabase/x%2F", PathError::EncodedSlash),
            ("/bi/metabase\\admin", PathError::Backslash),
            ("/bi/metabase/%5cadmin", PathError::Backslash),
            ("/bi/metabase/..;/admin", PathError::Semicolon),
            ("/bi/metabase/admin%3bx", PathError::Semicolon),
            ("/bi/metabase/%252e%252e/admin", PathError::DoubleEncoding),
            ("/bi/metabase/%00", PathError::Control),
            ("/bi/metabase/%0a", PathError::Control),
            ("/bi/metabase/%zz", PathError::BadEscape),
            ("/bi/metabase/%4", PathError::BadEscape),
            ("/bi/metabase/%c0%ae%c0%ae/admin", PathError::NotUtf8),
            ("bi/metabase", PathError::NotAbsolute),
        ] {
            assert_eq!(normalize(raw), Err(why), "{raw}");
        }
    }

    #[test]
    fn normal_forms_are_fixed_points() {
        for raw in ["/bi/metabase/x/../admin", "/a//b/./c/", "/%61/%7e/%c3%a9", "/x/.."] {
            let once = normalize(raw).unwrap();
            assert_eq!(normalize(&once).unwrap(), once, "{raw}");
        }
    }

    #[test]
    fn lowercase_keeps_escapes() {
        assert_eq!(lowercase("/BI/Admin/%C3%A9X"), "/bi/admin/%C3%A9x");
    }
}
