//! The access review side of the store: completed review sheets recorded in `access_reviews`
//! ([`crate::sql::reviews`] has the SQL; the report reads them back through
//! [`crate::read::Catalog::access_reviews`]).

use crate::sql::reviews::{AccessReviewRow, ReviewQueries, review_row};
use crate::sql::{Lit, render};
use crate::store::with_retries;
use crate::{Store, StoreError};

/// What [`Store::record_access_review`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewRecorded {
    /// The rows were stored now.
    Stored { rows: u64 },
    /// The review was already stored (`rows` rows, first imported at `imported_at_ms`):
    /// nothing was written.
    AlreadyStored { rows: u64, imported_at_ms: i64 },
}

#[derive(Debug, Clone, Copy, serde::Deserialize, clickhouse::Row)]
struct Imported {
    rows: u64,
    imported_at_ms: i64,
}

impl Store {
    /// Records the rows of one review (all with the same `review_id`), unless that review is
    /// already stored. Two imports racing each other still leave one set of rows: the table
    /// collapses on `(review_id, principal, role)`.
    pub async fn record_access_review(&self, rows: &[AccessReviewRow]) -> Result<ReviewRecorded, StoreError> {
        let Some(first) = rows.first() else {
            return Ok(ReviewRecorded::Stored { rows: 0 });
        };
        if let Some(other) = rows.iter().find(|r| r.review_id != first.review_id) {
            return Err(StoreError::InvalidConfig(format!(
                "one review at a time: rows of {} and {}",
                first.review_id, other.review_id
            )));
        }
        let q = ReviewQueries::new(&self.inner.options);
        let table = self.qualified("access_reviews");
        let sql = render(&q.imported, &[Lit::Str(&first.review_id)]);
        let found: Vec<Imported> = self.fetch_all("SELECT", &table, &sql).await?;
        if let Some(done) = found.first().filter(|f| f.rows > 0) {
            return Ok(ReviewRecorded::AlreadyStored { rows: done.rows, imported_at_ms: done.imported_at_ms });
        }
        let values: Vec<String> = rows.iter().map(review_row).collect();
        let sql = format!("{}{}", q.insert, values.join(", "));
        with_retries(&self.inner.config, "insert", || self.execute("INSERT", &table, &sql)).await?;
        Ok(ReviewRecorded::Stored { rows: rows.len() as u64 })
    }
}
