//! The sinks' families on `/metrics`, one collector for both so that each family has one
//! `# TYPE` line and all its samples together. Every label comes from a closed set: `sink` is
//! `clickhouse` or `index`, `outcome` is `written` or `skipped`, and `dataset` is one of
//! [`Dataset::ALL`], `proxy`, or `other` for anything else a batch might name.
//!
//! | family | sinks | meaning |
//! | --- | --- | --- |
//! | `gatelog_written_batches_total{sink,outcome}` | both | spool records stored (`skipped`: ClickHouse already had the batch) |
//! | `gatelog_written_decisions_total{sink}` | both | decisions stored (the index counts committed documents) |
//! | `gatelog_indexed_documents_total{dataset}` | index | committed documents by the batch's dataset |
//! | `gatelog_sink_commits_total{sink}` | index | commit rounds (each acknowledges the spool) |
//! | `gatelog_sink_retries_total{sink}` | clickhouse | writes retried after retryable errors |
//! | `gatelog_sink_position{sink}` | both | highest spool position stored (committed) |
//! | `gatelog_sink_lag_seconds{sink}` | both | 0 once the sink has stored the spool's last record; else the age of the oldest record it has not (ClickHouse: of the newest record it stored, an upper bound) |
//!
//! `gatelog_sink_lag_records{sink}` (spool head − the sink's acknowledged position) comes
//! from the receiver's registry, for every registered spool consumer.

use gatelog_index::IndexSinkStats;
use gatelog_ingest::Dataset;
use gatelog_ingest::http::metrics::PROXY_DATASET;
use gatelog_ingest::http::{MetricsCollector, TextWriter};
use gatelog_model::{Clock, UnixMillis};
use gatelog_spool::Spool;
use gatelog_store::sink::{SINK_NAME, SinkStats};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `sink` label of the tantivy index sink (also its spool consumer name).
pub const INDEX_SINK: &str = "index";
const OTHER_DATASET: &str = "other";

/// Both sinks' counters (the index's when it is enabled).
#[derive(Debug)]
pub struct SinkMetrics {
    pub clickhouse: Arc<SinkStats>,
    pub index: Option<Arc<IndexSinkStats>>,
    pub spool: Spool,
    pub clock: Arc<dyn Clock>,
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The ClickHouse sink's lag: 0 when it stored the spool's last record; otherwise the age of
/// the newest record it stored (the oldest one it has not was received after it).
fn clickhouse_lag_seconds(stats: &SinkStats, spool_last_seq: u64, now: UnixMillis) -> Option<f64> {
    if get(&stats.position) >= spool_last_seq {
        return Some(0.0);
    }
    let last = i64::try_from(get(&stats.last_received_at_ms)).ok().filter(|ms| *ms > 0)?;
    Some((now.0 - last).max(0) as f64 / 1000.0)
}

/// The closed `dataset` label for a batch's dataset name.
fn dataset_label(name: &str) -> &'static str {
    if name == PROXY_DATASET {
        return PROXY_DATASET;
    }
    Dataset::ALL.iter().find(|d| d.as_str() == name).map_or(OTHER_DATASET, |d| d.as_str())
}

impl MetricsCollector for SinkMetrics {
    fn collect(&self, out: &mut TextWriter) {
        let ch = &self.clickhouse;
        let ix = self.index.as_deref();
        let ch_sink = [("sink", SINK_NAME)];
        let ix_sink = [("sink", INDEX_SINK)];

        let name = "gatelog_written_batches_total";
        out.family(name, "counter", "Spool records stored by a sink (skipped: ClickHouse already had the batch).");
        out.sample(name, &[("sink", SINK_NAME), ("outcome", "written")], get(&ch.batches_written));
        out.sample(name, &[("sink", SINK_NAME), ("outcome", "skipped")], get(&ch.batches_skipped));
        if let Some(ix) = ix {
            out.sample(name, &[("sink", INDEX_SINK), ("outcome", "written")], get(&ix.batches));
        }

        let name = "gatelog_written_decisions_total";
        out.family(name, "counter", "Decisions stored by a sink (the index: committed documents).");
        out.sample(name, &ch_sink, get(&ch.decisions_written));
        if let Some(ix) = ix {
            out.sample(name, &ix_sink, get(&ix.decisions));
        }

        if let Some(ix) = ix {
            let mut by_label: Vec<(&str, u64)> = Dataset::ALL.iter().map(|d| (d.as_str(), 0)).collect();
            by_label.extend([(PROXY_DATASET, 0), (OTHER_DATASET, 0)]);
            for (dataset, n) in ix.decisions_by_dataset() {
                let label = dataset_label(&dataset);
                if let Some(slot) = by_label.iter_mut().find(|(l, _)| *l == label) {
                    slot.1 += n;
                }
            }
            let name = "gatelog_indexed_documents_total";
            out.family(name, "counter", "Documents committed to the full-text index, by dataset.");
            for (label, n) in by_label {
                out.sample(name, &[("dataset", label)], n);
            }
            let name = "gatelog_sink_commits_total";
            out.family(
                name,
                "counter",
                "Commit rounds of a sink that commits in rounds (the index); each acknowledges the spool.",
            );
            out.sample(name, &ix_sink, get(&ix.commits));
        }

        out.family("gatelog_sink_retries_total", "counter", "Retried writes after retryable errors.");
        out.sample("gatelog_sink_retries_total", &ch_sink, get(&ch.retries));

        out.family(
            "gatelog_sink_position",
            "gauge",
            "Highest spool position a sink has stored (the index: committed).",
        );
        out.sample("gatelog_sink_position", &ch_sink, get(&ch.position));
        if let Some(ix) = ix {
            out.sample("gatelog_sink_position", &ix_sink, get(&ix.position));
        }

        let last_seq = self.spool.last_seq();
        let now = self.clock.now();
        let lags = [
            (SINK_NAME, clickhouse_lag_seconds(ch, last_seq, now)),
            (INDEX_SINK, ix.and_then(|ix| ix.lag_seconds(last_seq, now))),
        ];
        if lags.iter().any(|(_, lag)| lag.is_some()) {
            let name = "gatelog_sink_lag_seconds";
            out.family(
                name,
                "gauge",
                "0 once a sink stored the spool's last record; else the age of the oldest record it has not (clickhouse: of the newest it stored, an upper bound).",
            );
            for (sink, lag) in lags {
                if let Some(lag) = lag {
                    out.sample(name, &[("sink", sink)], lag);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_labels_are_a_closed_set() {
        assert_eq!(dataset_label("http_requests"), "http_requests");
        assert_eq!(dataset_label("tail"), "tail");
        assert_eq!(dataset_label("proxy"), "proxy");
        assert_eq!(dataset_label("anything else"), "other");
    }

    #[test]
    fn clickhouse_lag_is_zero_when_caught_up() {
        let stats = SinkStats::default();
        assert_eq!(clickhouse_lag_seconds(&stats, 0, UnixMillis(10_000)), Some(0.0));
        assert_eq!(clickhouse_lag_seconds(&stats, 1, UnixMillis(10_000)), None, "nothing stored yet");
        stats.position.store(1, Ordering::Relaxed);
        stats.last_received_at_ms.store(4_000, Ordering::Relaxed);
        assert_eq!(clickhouse_lag_seconds(&stats, 1, UnixMillis(10_000)), Some(0.0));
        assert_eq!(clickhouse_lag_seconds(&stats, 3, UnixMillis(10_000)), Some(6.0));
    }
}
