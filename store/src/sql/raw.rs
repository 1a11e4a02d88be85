//! The queries behind `Store::raw_line` (`gatelog raw`, `GET /v1/raw/{event_id}`): an
//! event's decision names its batch (`decisions.batch_id`); the batch's body is one row of
//! `raw_batches` (migration 18), which names each decision's line; events stored before
//! migration 18 have their line in `raw_records`, found by `(dataset, raw_sha256)`.
//! Bytes travel as `hex(…)`, so a body or a line is read back byte for byte whatever it holds.

use super::SchemaOptions;
use super::Statement;
use super::queries::{Lit, render};

/// The query texts, rendered for a database.
#[derive(Debug, Clone)]
pub(crate) struct RawQueries {
    /// Params: tenant, event_id. The copy `FINAL` keeps.
    pub event: String,
    /// Params: event_id, batch_id.
    pub batch: String,
    /// Params: dataset, sha256 (a line stored before migration 18).
    pub record: String,
}

impl RawQueries {
    pub(crate) fn new(opts: &SchemaOptions) -> Self {
        let db = &opts.database;
        RawQueries {
            event: format!(
                "SELECT batch_id, dataset, raw_sha256 FROM {db}.decisions FINAL WHERE tenant = ? AND event_id = ? LIMIT 1"
            ),
            batch: format!(
                "SELECT dataset, source, received_at_ms, sha256, lines, hex(body) AS body_hex, \
                 toUInt32(arrayElement(event_lines, indexOf(event_ids, ?))) AS line \
                 FROM {db}.raw_batches WHERE batch_id = ? LIMIT 1"
            ),
            record: format!(
                "SELECT hex(line) AS line_hex, sha256, received_at_ms, batch_id FROM {db}.raw_records WHERE dataset = ? AND sha256 = ? LIMIT 1"
            ),
        }
    }
}

/// The statements of `Store::raw_line`, with example parameters (`gatelog sql dump`, the
/// compatibility tests).
pub(crate) fn example_statements(opts: &SchemaOptions) -> Vec<Statement> {
    let q = RawQueries::new(opts);
    let example = |name: &str, template: &str, params: &[Lit<'_>]| Statement {
        name: name.to_owned(),
        sql: template.to_owned(),
        exec: render(template, params),
    };
    vec![
        example("query.raw.event", &q.event, &[Lit::Str("default"), Lit::Str("example")]),
        example("query.raw.batch", &q.batch, &[Lit::Str("example"), Lit::Str("example-batch")]),
        example("query.raw.record", &q.record, &[Lit::Str("http_requests"), Lit::Str("example")]),
    ]
}
