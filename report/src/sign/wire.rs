//! The SSH wire encoding (RFC 4251 §5) that OpenSSH key files and SSH signatures use:
//! `uint32` big-endian, `string` = `uint32` length then the bytes; and PEM-style armour.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Appends `bytes` as an SSH `string`.
pub(crate) fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every blob gatelog writes is far below 4 GiB; saturate rather than wrap if one were not.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Reads SSH wire values from a byte slice; every read says what it expected when it fails.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!("{what}: needs {n} bytes, {} left", self.rest.len()));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn string(&mut self, what: &str) -> Result<&'a [u8], String> {
        let len = self.u32(what)? as usize;
        self.bytes(len, what)
    }

    pub(crate) fn expect_string(&mut self, expected: &[u8], what: &str) -> Result<(), String> {
        let got = self.string(what)?;
        if got == expected {
            Ok(())
        } else {
            Err(format!(
                "{what}: expected {:?}, found {:?}",
                String::from_utf8_lossy(expected),
                String::from_utf8_lossy(got)
            ))
        }
    }

    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.rest
    }
}

/// `-----BEGIN {label}-----`, the base64 of `bytes` in lines of `width`, `-----END {label}-----`.
pub(crate) fn armor(label: &str, bytes: &[u8], width: usize) -> String {
    let b64 = STANDARD.encode(bytes);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(width) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The bytes inside `-----BEGIN {label}-----` … `-----END {label}-----` (whitespace ignored).
pub(crate) fn dearmor(label: &str, text: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let text = text.trim();
    let Some(body) = text.strip_prefix(begin.as_str()) else {
        return Err(format!("does not start with {begin:?}"));
    };
    let Some(body) = body.strip_suffix(end.as_str()) else {
        return Err(format!("does not end with {end:?}"));
    };
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).map_err(|e| format!("not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_short_input_is_named() {
        let mut out = Vec::new();
        put_string(&mut out, b"ssh-ed25519");
        put_u32(&mut out, 7);
        let mut r = Reader::new(&out);
        r.expect_string(b"ssh-ed25519", "key type").unwrap();
        assert_eq!(r.u32("n").unwrap(), 7);
        assert!(r.remaining().is_empty());
        let err = Reader::new(&out[..6]).string("key type").unwrap_err();
        assert!(err.starts_with("key type: needs 11 bytes"), "{err}");
    }

    #[test]
    fn armor_round_trips_at_any_width() {
        let data: Vec<u8> = (0..=255).collect();
        let text = armor("SSH SIGNATURE", &data, 70);
        assert!(text.lines().all(|l| l.len() <= 70 || l.starts_with("-----")));
        assert_eq!(dearmor("SSH SIGNATURE", &text).unwrap(), data);
        assert!(dearmor("OPENSSH PRIVATE KEY", &text).unwrap_err().contains("BEGIN OPENSSH PRIVATE KEY"));
    }
}
