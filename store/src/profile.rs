//! Which schema a server gets: [`SchemaProfile`], chosen from the server's version.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The oldest server gatelog supports (Debian's `clickhouse-server` package).
pub const OLDEST_SUPPORTED: ServerVersion = ServerVersion { major: 18, minor: 16, patch: 0 };

/// The first server that gets [`SchemaProfile::Modern`]. `DateTime64` arrived in 20.1, but
/// `toUnixTimestamp64Milli`/`fromUnixTimestamp64Milli` (used by the `*_ms` alias columns and by
/// time-pruned queries) only in 20.5, so 20.1–20.4 stay on the legacy schema, which they fully support.
pub const MODERN_SINCE: ServerVersion = ServerVersion { major: 20, minor: 5, patch: 0 };

/// A ClickHouse server version as reported by `SELECT version()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl ServerVersion {
    /// Parses `18.16.1`, `26.9.2.1`, `24.8.4.13-lts`; the first three numbers count.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split(['.', '-']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(ServerVersion { major, minor, patch })
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Column types and table features a server supports.
///
/// Both profiles keep the same column names, so SQL written against one works on the other:
/// - `Legacy` (18.16 ≤ server < 20.5): `DateTime('UTC')` plus a stored `<name>_ms Int64`
///   (epoch milliseconds) for every timestamp, plain `String` for enum-like columns, no TTL.
/// - `Modern` (server ≥ 20.5): `DateTime64(3, 'UTC')` with `<name>_ms` as an `ALIAS`,
///   `LowCardinality(String)` for enum-like columns, a bloom-filter index on `batch_id`,
///   and a TTL when a retention is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaProfile {
    Legacy,
    Modern,
}

impl SchemaProfile {
    /// The profile for a server version; `None` if the server is older than 18.16.
    pub fn for_version(version: ServerVersion) -> Option<Self> {
        if version < OLDEST_SUPPORTED {
            None
        } else if version < MODERN_SINCE {
            Some(SchemaProfile::Legacy)
        } else {
            Some(SchemaProfile::Modern)
        }
    }

    /// `legacy` or `modern`.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaProfile::Legacy => "legacy",
            SchemaProfile::Modern => "modern",
        }
    }

    /// Parses `legacy` or `modern` (case-insensitive), as `gatelog sql dump --profile` takes it.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "legacy" => Some(SchemaProfile::Legacy),
            "modern" => Some(SchemaProfile::Modern),
            _ => None,
        }
    }

    /// Whether a server of `version` can hold this profile's schema.
    pub fn supported_by(self, version: ServerVersion) -> bool {
        match self {
            SchemaProfile::Legacy => version >= OLDEST_SUPPORTED,
            SchemaProfile::Modern => version >= MODERN_SINCE,
        }
    }
}

impl fmt::Display for SchemaProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_version_strings() {
        assert_eq!(ServerVersion::parse("18.16.1"), Some(ServerVersion { major: 18, minor: 16, patch: 1 }));
        assert_eq!(ServerVersion::parse("26.9.2.1").map(|v| v.to_string()), Some("26.9.2".into()));
        assert_eq!(ServerVersion::parse("24.8.4.13-lts").map(|v| v.minor), Some(8));
        assert_eq!(ServerVersion::parse("garbage"), None);
    }

    #[test]
    fn chooses_profiles_by_version() {
        let v = |s| ServerVersion::parse(s).unwrap();
        assert_eq!(SchemaProfile::for_version(v("18.14.19")), None);
        assert_eq!(SchemaProfile::for_version(v("18.16.1")), Some(SchemaProfile::Legacy));
        assert_eq!(SchemaProfile::for_version(v("20.1.2")), Some(SchemaProfile::Legacy));
        assert_eq!(SchemaProfile::for_version(v("20.5.1")), Some(SchemaProfile::Modern));
        assert_eq!(SchemaProfile::for_version(v("26.9.2.1")), Some(SchemaProfile::Modern));
        assert!(!SchemaProfile::Modern.supported_by(v("18.16.1")));
        assert_eq!(SchemaProfile::parse("LEGACY"), Some(SchemaProfile::Legacy));
    }
}
