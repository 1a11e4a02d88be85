//! The typed rows read queries return. RowBinary carries neither names nor types, so each
//! row type declares its columns ([`ReadRow::COLUMNS`]); the compatibility tests `DESCRIBE`
//! every registered read query on 18.16 and on chdb's 26.9 and compare.

use crate::StoreError;
use gatelog_model::{AccessDecision, Decision, PrincipalType, Source, UnixMillis};
use serde::{Deserialize, Serialize};

/// A row of a read query, decoded from RowBinary in column order.
pub trait ReadRow: clickhouse::RowOwned + clickhouse::RowRead + Send + 'static {
    /// The columns the query returns, in order: name and ClickHouse type (a column may also
    /// come back as `LowCardinality(<type>)`, which RowBinary sends as `<type>`).
    const COLUMNS: &'static [(&'static str, &'static str)];
}

/// Whether a column of type `actual` decodes as `expected`.
pub fn type_matches(expected: &str, actual: &str) -> bool {
    actual == expected || actual.strip_prefix("LowCardinality(").and_then(|t| t.strip_suffix(')')) == Some(expected)
}

/// One stored decision, every column, times in epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct DecisionRow {
    pub event_id: String,
    pub time_ms: i64,
    pub received_at_ms: i64,
    pub source: String,
    pub dataset: String,
    pub decision: String,
    pub principal: String,
    pub principal_type: String,
    pub roles: Vec<String>,
    pub client_ip: String,
    pub country: String,
    pub asn: u32,
    pub user_agent: String,
    pub resource: String,
    pub action: String,
    pub policy: String,
    pub reason: String,
    pub query: String,
    pub query_fingerprint: String,
    pub rows_read: u64,
    pub bytes_read: u64,
    pub result_rows: u64,
    pub duration_ms: u64,
    pub status: u16,
    pub ray_id: String,
    pub request_id: String,
    pub zone: String,
    pub host: String,
    pub path: String,
    pub auth_method: String,
    pub error: String,
    pub tenant: String,
    pub spool_seq: u64,
    pub raw_sha256: String,
    pub batch_id: String,
}

impl ReadRow for DecisionRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("event_id", "String"),
        ("time_ms", "Int64"),
        ("received_at_ms", "Int64"),
        ("source", "String"),
        ("dataset", "String"),
        ("decision", "String"),
        ("principal", "String"),
        ("principal_type", "String"),
        ("roles", "Array(String)"),
        ("client_ip", "String"),
        ("country", "String"),
        ("asn", "UInt32"),
        ("user_agent", "String"),
        ("resource", "String"),
        ("action", "String"),
        ("policy", "String"),
        ("reason", "String"),
        ("query", "String"),
        ("query_fingerprint", "String"),
        ("rows_read", "UInt64"),
        ("bytes_read", "UInt64"),
        ("result_rows", "UInt64"),
        ("duration_ms", "UInt64"),
        ("status", "UInt16"),
        ("ray_id", "String"),
        ("request_id", "String"),
        ("zone", "String"),
        ("host", "String"),
        ("path", "String"),
        ("auth_method", "String"),
        ("error", "String"),
        ("tenant", "String"),
        ("spool_seq", "UInt64"),
        ("raw_sha256", "String"),
        ("batch_id", "String"),
    ];
}

impl TryFrom<DecisionRow> for AccessDecision {
    type Error = StoreError;

    /// The decision as it was written (`batch_id` is the store's, not the decision's).
    /// Fails, naming the event, on an outcome, source or principal type this build does not know.
    fn try_from(r: DecisionRow) -> Result<AccessDecision, StoreError> {
        let unknown = |column: &str, value: &str| StoreError::InvalidRow {
            query: "decision row".to_owned(),
            detail: format!("event {}: unknown {column} {value:?}", r.event_id),
        };
        let source = Source::parse(&r.source).ok_or_else(|| unknown("source", &r.source))?;
        let decision = Decision::parse(&r.decision).ok_or_else(|| unknown("decision", &r.decision))?;
        let principal_type =
            PrincipalType::parse(&r.principal_type).ok_or_else(|| unknown("principal_type", &r.principal_type))?;
        Ok(AccessDecision {
            event_id: r.event_id,
            time: UnixMillis(r.time_ms),
            received_at: UnixMillis(r.received_at_ms),
            source,
            dataset: r.dataset,
            decision,
            principal: r.principal,
            principal_type,
            roles: r.roles,
            client_ip: r.client_ip,
            country: r.country,
            asn: r.asn,
            user_agent: r.user_agent,
            resource: r.resource,
            action: r.action,
            policy: r.policy,
            reason: r.reason,
            query: r.query,
            query_fingerprint: r.query_fingerprint,
            rows_read: r.rows_read,
            bytes_read: r.bytes_read,
            result_rows: r.result_rows,
            duration_ms: r.duration_ms,
            status: r.status,
            ray_id: r.ray_id,
            request_id: r.request_id,
            zone: r.zone,
            host: r.host,
            path: r.path,
            auth_method: r.auth_method,
            error: r.error,
            tenant: r.tenant,
            spool_seq: r.spool_seq,
            raw_sha256: r.raw_sha256,
        })
    }
}

/// Events of one dataset and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct DecisionCount {
    pub dataset: String,
    pub decision: String,
    pub count: u64,
}

impl ReadRow for DecisionCount {
    const COLUMNS: &'static [(&'static str, &'static str)] =
        &[("dataset", "String"), ("decision", "String"), ("count", "UInt64")];
}

/// One fact of a principal's (or a client IP's) history: how many events it had with
/// `dimension` = `value`, how many of them denied, first and last seen. Dimensions:
/// `events` (value empty: all its events), and for principals `country`, `asn`,
/// `hour_of_week` (0 = Monday 00:00–00:59 UTC … 167) and `resource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct HistoryRow {
    /// `principal` or `client_ip`.
    pub subject: String,
    /// The principal or the IP.
    pub key: String,
    pub dimension: String,
    pub value: String,
    pub events: u64,
    pub denies: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

impl ReadRow for HistoryRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("subject", "String"),
        ("key", "String"),
        ("dimension", "String"),
        ("value", "String"),
        ("events", "UInt64"),
        ("denies", "UInt64"),
        ("first_ms", "Int64"),
        ("last_ms", "Int64"),
    ];
}

/// One stored batch, from its `ingest_batches` marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct BatchRow {
    pub batch_id: String,
    pub dataset: String,
    pub origin: String,
    pub received_at_ms: i64,
    pub lines: u64,
    pub decisions: u64,
    pub raw_records: u64,
    pub dead_letters: u64,
    pub probes: u64,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub bytes: u64,
    pub sha256: String,
    pub spool_seq: u64,
}

impl ReadRow for BatchRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("batch_id", "String"),
        ("dataset", "String"),
        ("origin", "String"),
        ("received_at_ms", "Int64"),
        ("lines", "UInt64"),
        ("decisions", "UInt64"),
        ("raw_records", "UInt64"),
        ("dead_letters", "UInt64"),
        ("probes", "UInt64"),
        ("min_time_ms", "Int64"),
        ("max_time_ms", "Int64"),
        ("bytes", "UInt64"),
        ("sha256", "String"),
        ("spool_seq", "UInt64"),
    ];
}

/// A number of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct EventCount {
    pub events: u64,
}

impl ReadRow for EventCount {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[("events", "UInt64")];
}

/// Several numbers of events, in the order of the filters asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct EventCounts {
    pub counts: Vec<u64>,
}

impl ReadRow for EventCounts {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[("counts", "Array(UInt64)")];
}

/// A link of the hash chain: its position, its batch and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct ChainHeadRow {
    pub links: u64,
    pub last_batch_id: String,
    pub hash: String,
}

impl ReadRow for ChainHeadRow {
    const COLUMNS: &'static [(&'static str, &'static str)] =
        &[("links", "UInt64"), ("last_batch_id", "String"), ("hash", "String")];
}

/// When the newest stored batch arrived (epoch milliseconds; 0 when nothing is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct LatestArrival {
    pub received_at_ms: i64,
}

impl ReadRow for LatestArrival {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[("received_at_ms", "Int64")];
}

/// What the other tables hold: raw records (once per dataset and line hash), dead letters,
/// and stored batches (once per batch id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct StoreCounts {
    pub raw_records: u64,
    pub dead_letters: u64,
    pub batches: u64,
}

impl ReadRow for StoreCounts {
    const COLUMNS: &'static [(&'static str, &'static str)] =
        &[("raw_records", "UInt64"), ("dead_letters", "UInt64"), ("batches", "UInt64")];
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::SchemaProfile;
    use crate::schema::DECISIONS;

    fn names<R: ReadRow>() -> Vec<&'static str> {
        R::COLUMNS.iter().map(|c| c.0).collect()
    }

    #[test]
    fn declared_columns_follow_the_struct_fields() {
        // `COLUMN_NAMES` is the derive's view of the fields, in order.
        assert_eq!(names::<DecisionRow>(), <DecisionRow as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<DecisionCount>(), <DecisionCount as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<HistoryRow>(), <HistoryRow as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<BatchRow>(), <BatchRow as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<EventCount>(), <EventCount as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<StoreCounts>(), <StoreCounts as clickhouse::Row>::COLUMN_NAMES);
    }

    #[test]
    fn a_decision_row_is_every_column_of_the_table() {
        // The legacy insert columns are the stored ones with `<time>_ms` beside each time.
        let stored: Vec<String> = DECISIONS
            .insert_columns(SchemaProfile::Legacy)
            .into_iter()
            .filter(|c| c != "time" && c != "received_at")
            .collect();
        assert_eq!(names::<DecisionRow>(), stored);
    }

    #[test]
    fn low_cardinality_decodes_as_its_type() {
        assert!(type_matches("String", "String"));
        assert!(type_matches("String", "LowCardinality(String)"));
        assert!(!type_matches("String", "Nullable(String)"));
        assert!(!type_matches("UInt64", "UInt32"));
    }

    #[test]
    fn rows_convert_to_decisions_or_name_what_is_unknown() {
        let mut row = DecisionRow {
            event_id: "e1".into(),
            time_ms: 5,
            received_at_ms: 6,
            source: "tail".into(),
            dataset: "workers_trace_events".into(),
            decision: "deny".into(),
            principal: "a@example.com".into(),
            principal_type: "user".into(),
            roles: vec!["admin".into()],
            client_ip: String::new(),
            country: "DE".into(),
            asn: 3320,
            user_agent: String::new(),
            resource: "r".into(),
            action: "select".into(),
            policy: String::new(),
            reason: String::new(),
            query: String::new(),
            query_fingerprint: String::new(),
            rows_read: 1,
            bytes_read: 2,
            result_rows: 3,
            duration_ms: 4,
            status: 403,
            ray_id: String::new(),
            request_id: "q".into(),
            zone: String::new(),
            host: String::new(),
            path: String::new(),
            auth_method: String::new(),
            error: String::new(),
            tenant: "default".into(),
            spool_seq: 9,
            raw_sha256: "h".into(),
            batch_id: "b".into(),
        };
        let d = AccessDecision::try_from(row.clone()).unwrap();
        assert_eq!((d.source, d.decision, d.principal_type), (Source::Tail, Decision::Deny, PrincipalType::User));
        assert_eq!((d.time, d.received_at, d.spool_seq, d.status), (UnixMillis(5), UnixMillis(6), 9, 403));
        row.decision = "maybe".into();
        let err = AccessDecision::try_from(row).unwrap_err().to_string();
        assert!(err.contains("event e1") && err.contains("\"maybe\""), "{err}");
    }
}
