//! `config_versions` (migration 15): every version of a detection rule file, Sigma rule file
//! or proxy policy file that `gatelog serve` found in force, recorded when its SHA-256
//! differs from the last one recorded under the same kind and name: the change evidence of
//! SOC 2 CC8.1 (`gatelog report soc2`). The same types in both profiles.
//!
//! Columns: `version_id` (derived from kind, name, hash and `recorded_at_ms`, so an insert
//! retried is one row: `ReplacingMergeTree`, read with `FINAL`); `kind` `rule`, `sigma` or
//! `policy`; `name` (the file's name; the policy's is `policy`); `path` (as configured);
//! `sha256` of the bytes, lower-case hex; `content` (the text, so a later report can show a
//! line diff); `recorded_at_ms`; `recorded_by`: `user@host`, the OS account that ran serve
//! when it noticed the change, which is not necessarily the author of the change.
//!
//! Queries: `latest_config_versions` (per kind and name, the hash recorded last: what serve
//! compares a file with). The report's reads are in `read::evidence::operations`.

use super::SchemaOptions;
use super::Statement;
use super::detection::{PlainTable, Val, insert_prefix, values_row};
use gatelog_model::EventId;

pub(crate) const CONFIG_VERSIONS: PlainTable = PlainTable {
    name: "config_versions",
    columns: &[
        ("version_id", "String"),
        ("kind", "String"),
        ("name", "String"),
        ("path", "String"),
        ("sha256", "String"),
        ("content", "String"),
        ("recorded_at_ms", "Int64"),
        ("recorded_by", "String"),
    ],
    time_from: "recorded_at_ms",
    replacing: Some(""),
    order_by: "kind, name, version_id",
    shard_key: "cityHash64(name)",
};

/// One row of `config_versions` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clickhouse::Row)]
pub struct ConfigVersion {
    /// [`ConfigVersion::derive_id`] (set by [`ConfigVersion::seal`]).
    pub version_id: String,
    /// `rule`, `sigma` or `policy`.
    pub kind: String,
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub content: String,
    pub recorded_at_ms: i64,
    /// `user@host` of the process that recorded it.
    pub recorded_by: String,
}

impl ConfigVersion {
    pub fn derive_id(&self) -> String {
        EventId::derive(&["config", &self.kind, &self.name, &self.sha256, &self.recorded_at_ms.to_string()])
    }

    /// Sets [`ConfigVersion::version_id`] from the other fields.
    pub fn seal(mut self) -> Self {
        self.version_id = self.derive_id();
        self
    }
}

/// The hash recorded last for one kind and name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, clickhouse::Row)]
pub struct LatestVersion {
    pub kind: String,
    pub name: String,
    pub sha256: String,
}

pub(crate) fn version_row(v: &ConfigVersion) -> String {
    values_row(&[
        Val::Str(&v.version_id),
        Val::Str(&v.kind),
        Val::Str(&v.name),
        Val::Str(&v.path),
        Val::Str(&v.sha256),
        Val::Str(&v.content),
        Val::I64(v.recorded_at_ms),
        Val::Str(&v.recorded_by),
    ])
}

/// The statements of `config_versions`.
#[derive(Debug, Clone)]
pub(crate) struct ConfigVersionQueries {
    pub insert: String,
    /// Rows: [`LatestVersion`], per kind and name.
    pub latest: String,
}

impl ConfigVersionQueries {
    pub(crate) fn new(opts: &SchemaOptions) -> Self {
        let db = opts.database.as_str();
        ConfigVersionQueries {
            insert: insert_prefix(&CONFIG_VERSIONS, opts),
            latest: format!(
                "SELECT kind, name, argMax(sha256, (recorded_at_ms, version_id)) AS sha256 \
                 FROM {db}.config_versions GROUP BY kind, name ORDER BY kind, name"
            ),
        }
    }
}

/// The statements for `gatelog sql dump` and the compatibility tests.
pub(crate) fn example_statements(opts: &SchemaOptions) -> Vec<Statement> {
    let q = ConfigVersionQueries::new(opts);
    let v = ConfigVersion {
        kind: "rule".into(),
        name: "deny_burst.toml".into(),
        path: "/etc/gatelog/rules/deny_burst.toml".into(),
        sha256: gatelog_model::sha256_hex(b"id = 'deny_burst'\n"),
        content: "id = 'deny_burst'\n".into(),
        recorded_at_ms: 1_740_990_716_000,
        recorded_by: "gatelog@host1".into(),
        ..ConfigVersion::default()
    }
    .seal();
    vec![
        Statement {
            name: "insert.config_versions".to_owned(),
            sql: format!("{}(…)", q.insert),
            exec: format!("{}{}", q.insert, version_row(&v)),
        },
        Statement::same("query.latest_config_versions", q.latest),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_recorded_twice_has_one_id() {
        let v = ConfigVersion { kind: "rule".into(), name: "a.toml".into(), sha256: "ab".into(), ..Default::default() };
        let again = ConfigVersion { recorded_by: "other@host".into(), content: "x".into(), ..v.clone() };
        assert_eq!(v.clone().seal().version_id, again.seal().version_id);
        let later = ConfigVersion { recorded_at_ms: 5, ..v.clone() };
        assert_ne!(v.seal().version_id, later.seal().version_id, "the same hash again later is another version");
    }
}
