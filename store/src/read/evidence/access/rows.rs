//! The rows of the access evidence queries ([`super`]).

use super::super::super::rows::ReadRow;
use crate::sql::reviews::AccessReviewRow;
use serde::{Deserialize, Serialize};

/// One event of an access population (privileged decisions, access outside a user's window,
/// authentication failures). `event_key` is `tenant/event_id`: unique, the id samples are
/// drawn by. `finding` says why the event is in the population (empty where it needs no
/// saying).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct AccessEventRow {
    pub event_key: String,
    pub time_ms: i64,
    pub tenant: String,
    pub event_id: String,
    pub dataset: String,
    pub decision: String,
    pub principal: String,
    pub roles: Vec<String>,
    pub resource: String,
    pub action: String,
    pub client_ip: String,
    pub country: String,
    pub status: u16,
    pub auth_method: String,
    pub policy: String,
    pub reason: String,
    pub finding: String,
}

impl ReadRow for AccessEventRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("event_key", "String"),
        ("time_ms", "Int64"),
        ("tenant", "String"),
        ("event_id", "String"),
        ("dataset", "String"),
        ("decision", "String"),
        ("principal", "String"),
        ("roles", "Array(String)"),
        ("resource", "String"),
        ("action", "String"),
        ("client_ip", "String"),
        ("country", "String"),
        ("status", "UInt16"),
        ("auth_method", "String"),
        ("policy", "String"),
        ("reason", "String"),
        ("finding", "String"),
    ];
}

/// A principal whose first event ever stored is in the period: when, from where, and how
/// many events it had in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct FirstSeenRow {
    pub principal: String,
    pub first_ms: i64,
    pub first_client_ip: String,
    pub first_country: String,
    pub first_asn: u32,
    pub first_dataset: String,
    pub first_auth_method: String,
    pub events: u64,
}

impl ReadRow for FirstSeenRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("principal", "String"),
        ("first_ms", "Int64"),
        ("first_client_ip", "String"),
        ("first_country", "String"),
        ("first_asn", "UInt32"),
        ("first_dataset", "String"),
        ("first_auth_method", "String"),
        ("events", "UInt64"),
    ];
}

/// A principal's use of one resource under one role it held (a decision's `roles`).
/// `events_first_role` counts the events where `role` was the first of the decision's roles:
/// its sum over all rows is the number of events with a principal and a role (each once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct RoleUsageRow {
    pub principal: String,
    pub role: String,
    pub resource: String,
    pub events: u64,
    pub allowed: u64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub events_first_role: u64,
}

impl ReadRow for RoleUsageRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("principal", "String"),
        ("role", "String"),
        ("resource", "String"),
        ("events", "UInt64"),
        ("allowed", "UInt64"),
        ("first_ms", "Int64"),
        ("last_ms", "Int64"),
        ("events_first_role", "UInt64"),
    ];
}

/// Firewall / WAF / Gateway events of one dataset, outcome, rule and WAF source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct BoundaryActionRow {
    pub dataset: String,
    pub decision: String,
    pub rule: String,
    pub waf_source: String,
    pub events: u64,
}

impl ReadRow for BoundaryActionRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("dataset", "String"),
        ("decision", "String"),
        ("rule", "String"),
        ("waf_source", "String"),
        ("events", "UInt64"),
    ];
}

/// Events by one value of one dimension (`client_ip`, `country`, `asn`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clickhouse::Row)]
pub struct SourceCountRow {
    pub dimension: String,
    pub value: String,
    pub events: u64,
}

impl ReadRow for SourceCountRow {
    const COLUMNS: &'static [(&'static str, &'static str)] =
        &[("dimension", "String"), ("value", "String"), ("events", "UInt64")];
}

impl ReadRow for AccessReviewRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("review_id", "String"),
        ("principal", "String"),
        ("role", "String"),
        ("decision", "String"),
        ("rationale", "String"),
        ("reviewer", "String"),
        ("reviewed_at_ms", "Int64"),
        ("imported_at_ms", "Int64"),
        ("sheet_sha256", "String"),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<R: ReadRow>() -> Vec<&'static str> {
        R::COLUMNS.iter().map(|c| c.0).collect()
    }

    #[test]
    fn declared_columns_follow_the_struct_fields() {
        assert_eq!(names::<AccessEventRow>(), <AccessEventRow as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<FirstSeenRow>(), <FirstSeenRow as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<RoleUsageRow>(), <RoleUsageRow as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<BoundaryActionRow>(), <BoundaryActionRow as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<SourceCountRow>(), <SourceCountRow as clickhouse::Row>::COLUMN_NAMES);
        assert_eq!(names::<AccessReviewRow>(), <AccessReviewRow as clickhouse::Row>::COLUMN_NAMES);
    }
}
