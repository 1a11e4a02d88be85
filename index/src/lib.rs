//! gatelog's full-text index of access decisions (PRODUCT.md §4, §5): tantivy indexes, one
//! per UTC day, fed exactly-once from the spool and searched newest first with stable cursors.
//! The index is disposable: ClickHouse is the store of record and [`rebuild`] recreates it.
//!
//! Module map:
//! - [`config`]: [`IndexConfig`], the `[index]` section of `gatelog.toml`, and the
//!   [`IndexerOptions`] it builds (retention included).
//! - [`schema`]: the tantivy schema (one document per decision), tokenizers, default fields.
//! - [`day`]: [`Day`], the `decisions-YYYYMMDD/` folders, listing and retention ([`drop_before`];
//!   [`Indexer::expire`] applies `IndexerOptions::retention`).
//! - [`indexer`]: [`Indexer`], writes and commit rounds; the exactly-once design and invariant.
//! - `payload`: the commit payload and position recovery after a crash.
//! - `seen`: the Bloom filter of event ids a day index may hold, so a new id costs no delete.
//! - [`merge`]: [`CappedMergePolicy`], background merges bounded in size (and so in memory).
//! - [`sink`]: [`run_sink`], the spool consumer (a `gatelog_consumer::Consumer`) driving an
//!   [`Indexer`] on its own thread.
//! - [`stats`]: [`IndexSinkStats`], what the sink committed.
//! - [`search`]: [`Searcher`], [`SearchRequest`] → [`SearchPage`] of [`Hit`]s, cursors.
//! - [`collector`]: the newest-first `(time, event_id)` collector with cursor and time range.
//! - [`rebuild`](mod@rebuild): [`rebuild()`](rebuild::rebuild), the index again from a stream of decisions.
//! - [`error`]: the error type, [`IndexError`].

pub mod collector;
pub mod config;
pub mod day;
pub mod error;
pub mod indexer;
pub mod merge;
mod payload;
pub mod rebuild;
pub mod schema;
pub mod search;
mod seen;
pub mod sink;
pub mod stats;

#[cfg(test)]
mod tests;

pub use config::IndexConfig;
pub use day::{Day, drop_before, list_days};
pub use error::IndexError;
pub use indexer::{Indexer, IndexerOptions};
pub use merge::CappedMergePolicy;
pub use rebuild::{RebuildStats, rebuild, try_rebuild};
pub use search::{DEFAULT_LIMIT, Hit, MAX_LIMIT, SearchPage, SearchRequest, Searcher};
pub use sink::run_sink;
pub use stats::IndexSinkStats;
