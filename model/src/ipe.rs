//! [`IpeRecord`]: how a figure in a report was produced ("information produced by the entity",
//! the auditor's term): the exact query, its parameters, the server that ran it, when, how many
//! rows came back, and the reconciliations the result passed.
//!
//! A plain data type here, below `store` and `report`, so the store's read side can fill it
//! for every query it runs and the report can print it beside every table, without either
//! crate depending on the other.

use crate::UnixMillis;
use serde::{Deserialize, Serialize};

/// One query run, as an auditor needs it to re-perform the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpeRecord {
    /// The SQL exactly as sent to the server, parameters already bound (18.16 has no
    /// server-side parameters): an auditor can paste it into `clickhouse-client`.
    pub sql: String,
    /// The parameters that were bound into `sql`, sorted by name.
    pub parameters: Vec<IpeParameter>,
    /// e.g. `ClickHouse`.
    pub server: String,
    /// As the server reports it (`SELECT version()`), e.g. `18.16.1`.
    pub server_version: String,
    /// The database the query ran in.
    pub database: String,
    /// Rows the query returned.
    pub row_count: u64,
    /// When the query was sent.
    pub ran_at: UnixMillis,
    /// How long it took, in milliseconds.
    pub elapsed_ms: u64,
    /// The checks that tie this result to an independent count, in the order they ran.
    pub reconciliations: Vec<Reconciliation>,
}

/// A value bound into a query: name, ClickHouse type, and the literal as bound.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IpeParameter {
    pub name: String,
    /// The ClickHouse type it was bound as, e.g. `DateTime('UTC')`, `String`, `UInt64`.
    pub kind: String,
    /// The value as text (what the SQL holds, without quotes).
    pub value: String,
}

/// One reconciliation: a figure compared with the same figure taken another way, e.g. a
/// population's row count against `count()` over `decisions` for the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Short name, e.g. `population_count_matches_decisions`.
    pub name: String,
    /// What is compared with what, in words.
    pub description: String,
    /// The figure the table shows.
    pub expected: String,
    /// The figure taken independently.
    pub actual: String,
    /// The independent query, when there is one.
    pub sql: Option<String>,
    pub passed: bool,
}

impl IpeRecord {
    /// Reconciliations that failed.
    pub fn failed(&self) -> impl Iterator<Item = &Reconciliation> {
        self.reconciliations.iter().filter(|r| !r.passed)
    }

    /// Whether every reconciliation passed (true when there are none).
    pub fn reconciled(&self) -> bool {
        self.failed().next().is_none()
    }
}
