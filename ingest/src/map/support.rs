//! What every dataset mapper shares: the per-line context, the result type, timestamp
//! parsing from raw JSON text, error wording and small text helpers.

use gatelog_model::{AccessDecision, EventId, Source, TimestampError, UnixMillis};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The per-line facts a mapper stamps on its decisions.
#[derive(Debug)]
pub(crate) struct Cx<'a> {
    pub(crate) dataset: &'static str,
    pub(crate) received_at: UnixMillis,
    pub(crate) source: Source,
    /// SHA-256 of the raw line (hex).
    pub(crate) sha256: &'a str,
}

impl Cx<'_> {
    /// A decision with the contract defaults and this line's provenance.
    pub(crate) fn decision(&self, event_id: String, time: UnixMillis) -> AccessDecision {
        let mut d = AccessDecision::new(event_id, time, self.dataset, self.source);
        d.received_at = self.received_at;
        d.raw_sha256 = self.sha256.to_owned();
        d
    }

    /// `[dataset, "sha256", sha256(line)]`: the id of a line without a natural key.
    pub(crate) fn sha_id(&self) -> String {
        EventId::derive(&[self.dataset, "sha256", self.sha256])
    }

    /// `[dataset, key, …]` when the key is non-empty, else the line's hash id.
    pub(crate) fn id_or_sha(&self, key: &str, rest: &[&str]) -> String {
        if key.is_empty() {
            return self.sha_id();
        }
        let mut parts = Vec::with_capacity(2 + rest.len());
        parts.push(self.dataset);
        parts.push(key);
        parts.extend_from_slice(rest);
        EventId::derive(&parts)
    }
}

/// A usable line, before its raw record is built.
#[derive(Debug, Default)]
pub(crate) struct Mapped {
    pub(crate) decisions: Vec<AccessDecision>,
    /// The line's own id, used when there is no decision (`None` = the hash id).
    pub(crate) line_id: Option<String>,
    /// When the event happened.
    pub(crate) time: UnixMillis,
    pub(crate) warnings: Vec<String>,
}

impl Mapped {
    pub(crate) fn one(decision: AccessDecision) -> Mapped {
        Mapped { time: decision.time, decisions: vec![decision], line_id: None, warnings: Vec::new() }
    }
}

/// A parsed timestamp and the text its event id is derived from.
#[derive(Debug)]
pub(crate) struct Ts<'a> {
    pub(crate) ms: UnixMillis,
    /// The JSON text: a number as written, a string without its quotes.
    pub(crate) text: Cow<'a, str>,
}

/// Parses a Logpush timestamp (`unixnano`, `unix`, `rfc3339*`, numeric strings) from its raw
/// JSON text. `field` names it in errors.
pub(crate) fn logpush_ts<'a>(field: &str, raw: Option<&'a RawValue>) -> Result<Ts<'a>, String> {
    parse_ts(field, raw, UnixMillis::from_epoch_any)
}

/// Parses a Workers timestamp: epoch milliseconds (number or numeric string), or RFC 3339.
pub(crate) fn millis_ts<'a>(field: &str, raw: Option<&'a RawValue>) -> Result<Ts<'a>, String> {
    parse_ts(field, raw, |n| i64::try_from(n).map(UnixMillis).map_err(|_| TimestampError::OutOfRange(n)))
}

fn parse_ts<'a>(
    field: &str,
    raw: Option<&'a RawValue>,
    epoch: impl Fn(i128) -> Result<UnixMillis, TimestampError>,
) -> Result<Ts<'a>, String> {
    let Some(raw) = raw else {
        return Err(format!("{field}: missing or null"));
    };
    let text = raw.get().trim();
    let err = |e: TimestampError| format!("{field}: {e}");
    match text.as_bytes().first() {
        Some(b'"') => {
            let s = serde_json::from_str::<super::fields::Str<'a>>(raw.get()).map_err(|e| format!("{field}: {e}"))?;
            let trimmed = s.as_str().trim();
            let ms = if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                match trimmed.parse::<i128>() {
                    Ok(n) => epoch(n).map_err(err)?,
                    Err(_) => UnixMillis::parse_str(trimmed).map_err(err)?,
                }
            } else {
                UnixMillis::parse_str(trimmed).map_err(err)?
            };
            Ok(Ts { ms, text: s.0 })
        }
        Some(b'-' | b'0'..=b'9') => {
            if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
                return Err(err(TimestampError::WrongType("fractional number")));
            }
            let n =
                text.parse::<i128>().map_err(|_| err(TimestampError::Unparseable(text.chars().take(64).collect())))?;
            let ms = epoch(n).map_err(err)?;
            Ok(Ts { ms, text: Cow::Borrowed(text) })
        }
        Some(b't' | b'f') => Err(format!("{field}: timestamp is a boolean, expected an integer or a string")),
        Some(b'[') => Err(format!("{field}: timestamp is an array, expected an integer or a string")),
        Some(b'{') => Err(format!("{field}: timestamp is an object, expected an integer or a string")),
        _ => Err(format!("{field}: missing or null")),
    }
}

/// Deserialises a whole line as `T`, wording failures for people: the JSON kind when the
/// line is valid JSON of the wrong shape, the parser's message (with its column) otherwise.
pub(crate) fn parse_line<'a, T: Deserialize<'a>>(line: &'a str, expected: Kind) -> Result<T, String> {
    // serde reads a struct from an array too (fields by position): check the shape first.
    let open = match expected {
        Kind::Object => b'{',
        Kind::Array => b'[',
    };
    if line.trim_start().as_bytes().first() != Some(&open) {
        let error = serde_json::from_str::<IgnoredAny>(line).err();
        return Err(describe_shape(line, error.as_ref(), expected));
    }
    match serde_json::from_str::<T>(line) {
        Ok(value) => Ok(value),
        Err(e) => Err(describe_shape(line, Some(&e), expected)),
    }
}

/// The JSON kind a mapper expects at the top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Object,
    Array,
}

/// Words for a line that did not deserialise; `error` is the parser's error, if any.
fn describe_shape(line: &str, error: Option<&serde_json::Error>, expected: Kind) -> String {
    let found = json_kind(line.trim_start());
    let valid = serde_json::from_str::<IgnoredAny>(line).is_ok();
    let want = match expected {
        Kind::Object => "a JSON object",
        Kind::Array => "a JSON array of trace items",
    };
    match (valid, found, error) {
        (true, Some(found), _) if found != kind_name(expected) => format!("expected {want}, found {found}"),
        (_, _, None) => format!("expected {want}"),
        (true, _, Some(error)) => format!("unusable record: {error}"),
        (false, _, Some(error)) if error.is_eof() => format!("invalid JSON, the line ends early (truncated?): {error}"),
        (false, _, Some(error)) => format!("invalid JSON: {error}"),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Object => "an object",
        Kind::Array => "an array",
    }
}

fn json_kind(text: &str) -> Option<&'static str> {
    Some(match text.as_bytes().first()? {
        b'{' => "an object",
        b'[' => "an array",
        b'"' => "a string",
        b'-' | b'0'..=b'9' => "a number",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => return None,
    })
}

/// ISO country code in upper case.
pub(crate) fn country(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

/// A Ray ID without the `-COLO` suffix the `cf-ray` header adds.
pub(crate) fn strip_colo(ray: &str) -> &str {
    ray.split_once('-').map_or(ray, |(id, _)| id)
}

/// Host and path (without query or fragment) of a URL; both empty when it has no `//`.
pub(crate) fn url_host_path(url: &str) -> (&str, &str) {
    let Some((_, rest)) = url.split_once("://") else {
        return ("", "");
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    (host, &tail[..path_end])
}

/// `scheme://host` + `path`, or just the path when there is no host.
pub(crate) fn http_resource(scheme: &str, host: &str, path: &str) -> String {
    if host.is_empty() {
        return path.to_owned();
    }
    let scheme = if scheme.is_empty() { "https" } else { scheme };
    let mut out = String::with_capacity(scheme.len() + 3 + host.len() + path.len());
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(host);
    out.push_str(path);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts() {
        assert_eq!(url_host_path("https://ch.example.com/query?database=x"), ("ch.example.com", "/query"));
        assert_eq!(url_host_path("https://u:p@h.example/a/b#f"), ("h.example", "/a/b"));
        assert_eq!(url_host_path("https://h.example"), ("h.example", ""));
        assert_eq!(url_host_path("not a url"), ("", ""));
    }

    #[test]
    fn colo_is_stripped() {
        assert_eq!(strip_colo("66cb3755d3b3f266-LHR"), "66cb3755d3b3f266");
        assert_eq!(strip_colo("66cb3755d3b3f266"), "66cb3755d3b3f266");
    }
}
