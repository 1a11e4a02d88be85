//! gatelog's input side: Cloudflare Logpush batches, Tail Worker deliveries and files from a
//! Logpush bucket, turned into [`AccessDecision`](gatelog_model::AccessDecision)s, raw
//! records and dead letters. This crate is a library: it reads only from the readers and
//! byte slices it is given.
//!
//! Module map:
//! - [`dataset`]: [`Dataset`], the eight input streams, named, found from a file path or
//!   sniffed from a record's shape.
//! - [`map`]: [`map_line`] / [`map_line_bytes`], one line to decisions + one raw record (or a
//!   probe, a blank, a dead letter), with the per-dataset mapping tables in its docs.
//!   Submodules: `http_requests`, `firewall`, `access`, `audit` (v1 and v2), `gateway`,
//!   `worker` (workers_trace_events and Tail), `decision_log` (the `access_decision` log
//!   line), [`map::decisions`] (gatelog proxy decisions, the `proxy` dataset of
//!   `POST /v1/decisions`), `fields` (forgiving borrowed field types) and `support`.
//! - [`decode`]: gzip sniffing, capped (multi-member) decompression and the line splitter.
//! - [`body`]: [`map_body`] / [`map_reader`], a whole body or file through decode and map.
//! - [`chunk`]: [`Chunk`], lines copied out of the splitter so threads can map them in
//!   parallel (the receiver does), and [`next_body`], a file cut into bodies of whole lines.
//! - [`batcher`]: [`Batcher`], the receiver's body → spool record path (same code, same
//!   batch-id rule) for `gatelog ingest`, which maps the bodies of a file through it.
//! - [`window`]: [`TimeWindow`], how far from its arrival an event's time may lie before the
//!   line is a dead letter.
//! - [`http`]: the receiver of `gatelog serve` ([`http::router`]): Logpush, Tail and proxy
//!   decisions over HTTP, authenticated, size-capped, mapped and appended to the spool
//!   before the 2xx; health, readiness and Prometheus metrics.

pub mod batcher;
pub mod body;
pub mod chunk;
pub mod dataset;
pub mod decode;
pub mod http;
pub mod map;
pub mod window;

pub use batcher::{BatchError, BatchJob, Batched, Batcher};
pub use body::{BodyContext, BodyOutcome, Limits, map_body, map_reader, map_split_line};
pub use chunk::{Chunk, FileBody, next_body, next_chunk};
pub use dataset::Dataset;
pub use decode::{BodyReader, DecodeError, Line, LineReader, is_gzip};
pub use map::{LineContext, LineOutcome, is_probe, map_line, map_line_bytes};
pub use window::TimeWindow;
