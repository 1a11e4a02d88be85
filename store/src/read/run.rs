//! Running read queries: [`Reader::fetch`] (all rows, retried like every store request) and
//! [`Reader::stream`] (rows one at a time, bounded memory); both give the [`IpeRecord`] of
//! what ran, stamped by the reader's [`Clock`].

use super::catalog::Catalog;
use super::query::ReadQuery;
use super::rows::ReadRow;
use crate::store::{bounded, with_retries};
use crate::{Store, StoreError};
use gatelog_model::{Clock, IpeRecord, UnixMillis};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What every read query is sent with. None changes a result:
/// - `wait_end_of_query`: the server finishes the query before it answers (spilling a large
///   result to its temporary files), so a failure is an HTTP error. Without it, 18.16 appends
///   the exception's text to a `200 OK` body, which RowBinary would decode as rows.
/// - `max_bytes_before_external_sort` / `_group_by`: sorts and aggregations over a large
///   period spill to disk at 1 GiB instead of failing at the server's memory limit.
const READ_SETTINGS: [(&str, &str); 3] = [
    ("wait_end_of_query", "1"),
    ("max_bytes_before_external_sort", "1073741824"),
    ("max_bytes_before_external_group_by", "1073741824"),
];

/// The ClickHouse server, as IPE records name it.
const SERVER: &str = "ClickHouse";

/// A query's rows and the record of how they were produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched<R> {
    pub rows: Vec<R>,
    pub ipe: IpeRecord,
}

/// Runs read queries against a [`Store`], stamping their records with `clock`.
#[derive(Clone)]
pub struct Reader {
    store: Store,
    clock: Arc<dyn Clock>,
    catalog: Catalog,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader").field("store", &self.store).field("clock", &self.clock).finish_non_exhaustive()
    }
}

impl Reader {
    /// A reader of `store`; `clock` gives `ran_at` and `elapsed_ms` (a fixed clock makes
    /// both reproducible: the same data gives the same records).
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Reader {
        let catalog = Catalog::new(store.profile(), &store.inner.options);
        Reader { store, clock, catalog }
    }

    /// The queries for this store's profile and database.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn record<R>(&self, q: &ReadQuery<R>, row_count: u64, ran_at: UnixMillis) -> IpeRecord {
        let elapsed = self.clock.now().0.saturating_sub(ran_at.0);
        IpeRecord {
            sql: q.sql().to_owned(),
            parameters: q.ipe_parameters(),
            server: SERVER.to_owned(),
            server_version: self.store.server_version_text().to_owned(),
            database: self.store.database().to_owned(),
            row_count,
            ran_at,
            elapsed_ms: u64::try_from(elapsed).unwrap_or(0),
            reconciliations: Vec::new(),
        }
    }

    fn request(&self, sql: &str) -> clickhouse::query::Query {
        READ_SETTINGS.iter().fold(self.store.inner.client.query_raw(sql), |q, (k, v)| q.with_setting(*k, *v))
    }

    /// Runs `q` and returns all its rows, retrying per the store's retry policy; the record
    /// is of the attempt that succeeded. Each attempt is bounded by `request_timeout`.
    pub async fn fetch<R: ReadRow>(&self, q: &ReadQuery<R>) -> Result<Fetched<R>, StoreError> {
        let config = self.store.config();
        let timeout = config.request_timeout;
        let (rows, ran_at) = with_retries(config, q.name(), || async {
            let ran_at = self.clock.now();
            let rows = bounded("SELECT", q.table(), timeout, self.request(q.sql()).fetch_all::<R>()).await?;
            Ok((rows, ran_at))
        })
        .await?;
        let ipe = self.record(q, rows.len() as u64, ran_at);
        tracing::debug!(query = q.name(), rows = ipe.row_count, elapsed_ms = ipe.elapsed_ms, "read query ran");
        Ok(Fetched { rows, ipe })
    }

    /// Runs `q` and hands its rows over one at a time: memory stays bounded by one response
    /// chunk whatever the result's size. Not retried (rows already handed over cannot be
    /// taken back): a failure ends the stream with the error. Each wait for more rows is
    /// bounded by `request_timeout`. [`RowStream::finish`] gives the record once every row
    /// was read.
    pub fn stream<R: ReadRow>(&self, q: ReadQuery<R>) -> Result<RowStream<R>, StoreError> {
        let ran_at = self.clock.now();
        let cursor =
            self.request(q.sql()).fetch::<R>().map_err(|e| StoreError::from_clickhouse("SELECT", q.table(), e))?;
        Ok(RowStream {
            reader: self.clone(),
            cursor,
            timeout: self.store.config().request_timeout,
            query: q,
            ran_at,
            rows: 0,
            state: State::Open,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Done(UnixMillis),
    Failed,
}

/// Rows of a streamed query, then its record ([`RowStream::finish`]).
pub struct RowStream<R> {
    reader: Reader,
    cursor: clickhouse::query::RowCursor<R>,
    timeout: Duration,
    query: ReadQuery<R>,
    ran_at: UnixMillis,
    rows: u64,
    state: State,
}

impl<R> fmt::Debug for RowStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowStream")
            .field("query", &self.query.name())
            .field("rows", &self.rows)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<R: ReadRow> RowStream<R> {
    /// The next row; `None` once all were read. After an error, every call returns `None`.
    pub async fn next(&mut self) -> Result<Option<R>, StoreError> {
        if self.state != State::Open {
            return Ok(None);
        }
        let table = self.query.table();
        let result = match tokio::time::timeout(self.timeout, self.cursor.next()).await {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(e)) => Err(StoreError::from_clickhouse("SELECT", table, e)),
            Err(_) => Err(StoreError::timeout("SELECT", table, self.timeout)),
        };
        match result {
            Ok(Some(row)) => {
                self.rows += 1;
                Ok(Some(row))
            }
            Ok(None) => {
                self.state = State::Done(self.reader.clock.now());
                tracing::debug!(query = self.query.name(), rows = self.rows, "read stream ended");
                Ok(None)
            }
            Err(e) => {
                self.state = State::Failed;
                Err(e)
            }
        }
    }

    /// Rows handed over so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn query(&self) -> &ReadQuery<R> {
        &self.query
    }

    /// The record of the run, once [`RowStream::next`] returned `None`. A stream that failed
    /// or was not read to its end has no record: its rows are not the query's result.
    pub fn finish(self) -> Result<IpeRecord, StoreError> {
        match self.state {
            State::Done(ended) => {
                let mut ipe = self.reader.record(&self.query, self.rows, self.ran_at);
                ipe.elapsed_ms = u64::try_from(ended.0.saturating_sub(self.ran_at.0)).unwrap_or(0);
                Ok(ipe)
            }
            State::Open | State::Failed => Err(StoreError::StreamNotFinished {
                query: self.query.name().to_owned(),
                rows: self.rows,
                failed: self.state == State::Failed,
            }),
        }
    }
}
