//! `access_reviews` (migration 14): the completed access review sheets `gatelog review
//! import` records (CC6.3), one row per principal × role of a sheet. `ReplacingMergeTree`
//! keyed `(review_id, principal, role)`: a sheet imported twice is one set of rows (the import
//! also looks first and records nothing when the sheet is already there); read with `FINAL`.
//! The same types in both profiles.
//!
//! Columns: `review_id` (SHA-256 of the sheet's decided rows in a canonical form, so the same
//! decisions saved again with other line endings or quoting are the same review);
//! `principal`, `role`; `decision` (`keep` or `remove`); `rationale`; `reviewer`;
//! `reviewed_at_ms` (as the reviewer dated it); `imported_at_ms`; `sheet_sha256` (of the file's
//! bytes as imported).

use super::SchemaOptions;
use super::Statement;
use super::detection::{PlainTable, Val, insert_prefix, values_row};
use super::queries::{Lit, render};

pub(crate) const ACCESS_REVIEWS: PlainTable = PlainTable {
    name: "access_reviews",
    columns: &[
        ("review_id", "String"),
        ("principal", "String"),
        ("role", "String"),
        ("decision", "String"),
        ("rationale", "String"),
        ("reviewer", "String"),
        ("reviewed_at_ms", "Int64"),
        ("imported_at_ms", "Int64"),
        ("sheet_sha256", "String"),
    ],
    time_from: "imported_at_ms",
    replacing: Some(""),
    order_by: "review_id, principal, role",
    shard_key: "cityHash64(review_id)",
};

/// One row of `access_reviews` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clickhouse::Row)]
pub struct AccessReviewRow {
    pub review_id: String,
    pub principal: String,
    pub role: String,
    pub decision: String,
    pub rationale: String,
    pub reviewer: String,
    pub reviewed_at_ms: i64,
    pub imported_at_ms: i64,
    pub sheet_sha256: String,
}

pub(crate) fn review_row(r: &AccessReviewRow) -> String {
    values_row(&[
        Val::Str(&r.review_id),
        Val::Str(&r.principal),
        Val::Str(&r.role),
        Val::Str(&r.decision),
        Val::Str(&r.rationale),
        Val::Str(&r.reviewer),
        Val::I64(r.reviewed_at_ms),
        Val::I64(r.imported_at_ms),
        Val::Str(&r.sheet_sha256),
    ])
}

/// The review statements, with `?` placeholders.
#[derive(Debug, Clone)]
pub(crate) struct ReviewQueries {
    pub insert: String,
    /// Params: review id. Rows: `(rows, first imported_at_ms)` of that review.
    pub imported: String,
}

impl ReviewQueries {
    pub(crate) fn new(opts: &SchemaOptions) -> Self {
        let db = opts.database.as_str();
        ReviewQueries {
            insert: insert_prefix(&ACCESS_REVIEWS, opts),
            imported: format!(
                "SELECT toUInt64(count()) AS rows, min(imported_at_ms) AS imported_at_ms \
                 FROM {db}.access_reviews FINAL WHERE review_id = ?"
            ),
        }
    }
}

/// The review statements for `gatelog sql dump` and the compatibility tests.
pub(crate) fn example_statements(opts: &SchemaOptions) -> Vec<Statement> {
    let q = ReviewQueries::new(opts);
    let row = AccessReviewRow {
        review_id: "example-review".into(),
        principal: "alice@example.com".into(),
        role: "admin".into(),
        decision: "remove".into(),
        rationale: "left the data team".into(),
        reviewer: "carol@example.com".into(),
        reviewed_at_ms: 1_740_990_713_712,
        imported_at_ms: 1_740_990_800_000,
        sheet_sha256: "0".repeat(64),
    };
    vec![
        Statement {
            name: "insert.access_reviews".to_owned(),
            sql: format!("{}(…)", q.insert),
            exec: format!("{}{}", q.insert, review_row(&row)),
        },
        Statement {
            name: "query.access_review_imported".to_owned(),
            sql: q.imported.clone(),
            exec: render(&q.imported, &[Lit::Str("example-review")]),
        },
    ]
}
