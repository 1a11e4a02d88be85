//! `manifest.json`: what the bundle holds (every file's path, SHA-256 and size), who made it
//! (gatelog's version), for what (the report's parameters), and the period's chain head. It
//! is the signed document: the signature covers its exact bytes.

use crate::chain::ChainHead;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `manifest.json`'s `schema` value; a reader refuses other versions.
pub const MANIFEST_SCHEMA: &str = "gatelog.bundle.manifest/1";
/// The manifest's name in the archive.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The SSH signature of the manifest's bytes.
pub const SIGNATURE_FILE: &str = "manifest.json.sig";

/// The manifest as written (canonical JSON: sorted keys, two-space indent, final newline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema: String,
    /// gatelog's version that built the bundle.
    pub gatelog_version: String,
    /// The report's parameters (period, seed, options), as given.
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The chain head at the end of the report's period, when the store provides it.
    pub chain_head: Option<ChainHead>,
    /// Every file of the bundle but the manifest and its signature, sorted by path.
    pub files: Vec<FileEntry>,
}

/// One file: its path inside the bundle, SHA-256 (lower-case hex) and size in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// Why a path cannot name a file in a bundle.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path == MANIFEST_FILE || path == SIGNATURE_FILE {
        return Err(format!("{path:?} is reserved for the bundle's own manifest"));
    }
    if path.starts_with('/') || path.contains('\\') || path.contains(':') {
        return Err(format!("{path:?} must be relative, with / between folders"));
    }
    if path.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(format!("{path:?} has an empty, `.` or `..` part"));
    }
    if path.chars().any(char::is_control) {
        return Err(format!("{path:?} has a control character"));
    }
    Ok(())
}

impl Manifest {
    /// Checks what serde cannot: the schema, paths, sorted and unique, hashes in hex.
    pub fn validate(&self) -> Result<(), String> {
        if self.schema != MANIFEST_SCHEMA {
            return Err(format!("schema is {:?}, expected {MANIFEST_SCHEMA:?}", self.schema));
        }
        for pair in self.files.windows(2) {
            if pair[0].path >= pair[1].path {
                return Err(format!("files are not sorted and unique at {:?}", pair[1].path));
            }
        }
        for f in &self.files {
            check_path(&f.path).map_err(|e| format!("files: {e}"))?;
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(format!("files: {:?} has sha256 {:?}, not 64 lower-case hex digits", f.path, f.sha256));
            }
        }
        Ok(())
    }

    /// The entry for `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.binary_search_by(|f| f.path.as_str().cmp(path)).ok().map(|i| &self.files[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_escape_or_collide_are_refused() {
        for bad in ["", "/etc/passwd", "../x", "a//b", "a/./b", "a\\b", "C:x", MANIFEST_FILE, SIGNATURE_FILE, "a\nb"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        for good in ["report.html", "csv/cc6.1 population.csv", "a/b/c.json"] {
            check_path(good).unwrap();
        }
    }
}
