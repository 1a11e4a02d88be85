//! The sinks' families on `/metrics`, one collector for all so that each family has one
//! `# TYPE` line and all its samples together. Every label comes from a closed set: `sink` is
//! a spool consumer's fixed name (`clickhouse`, `index`), `state` one of
//! [`Phase::ALL`], `outcome` is `written` or `skipped`, and `dataset` is one of
//! [`Dataset::ALL`], `proxy`, or `other` for anything else a batch might name.
//!
//! | family | sinks | meaning |
//! | --- | --- | --- |
//! | `gatelog_written_batches_total{sink,outcome}` | both | spool records stored (`skipped`: ClickHouse already had the batch) |
//! | `gatelog_written_decisions_total{sink}` | both | decisions stored (the index counts committed documents) |
//! | `gatelog_indexed_documents_total{dataset}` | index | committed documents by the batch's dataset |
//! | `gatelog_sink_commits_total{sink}` | index | commit rounds (each acknowledges the spool) |
//! | `gatelog_sink_retries_total{sink}` | clickhouse | writes retried after retryable errors |
//! | `gatelog_sink_position{sink}` | all | highest spool position stored and acknowledged |
//! | `gatelog_sink_lag_seconds{sink}` | all | 0 once the sink has stored the spool's last record; else the age of the oldest record it read and has not stored (before it read one: of the newest it stored, an upper bound) |
//! | `gatelog_sink_up{sink}` | all | 0 once the sink stopped (it needs an operator: see `/readyz`), else 1 |
//! | `gatelog_sink_state{sink,state}` | all | 1 for the sink's current state, 0 for the others |
//!
//! | `gatelog_index_rebuilding` | index | 1 while the index is being rebuilt from ClickHouse |
//! | `gatelog_index_rebuild_decisions` | index | rows read by the current (or last) rebuild |
//! | `gatelog_index_rebuild_total_decisions` | index | rows ClickHouse held when it started |
//! | `gatelog_index_rebuilds_total` | index | rebuilds completed since the start |
//!
//! `gatelog_sink_lag_records{sink}` (spool head − the sink's acknowledged position) comes
//! from the receiver's registry, for every registered spool consumer.

use crate::index::RebuildProgress;
use gatelog_consumer::{Phase, Statuses};
use gatelog_edge::{MetricsCollector, TextWriter};
use gatelog_index::IndexSinkStats;
use gatelog_ingest::Dataset;
use gatelog_ingest::http::metrics::PROXY_DATASET;
use gatelog_model::Clock;
use gatelog_spool::Spool;
use gatelog_store::sink::{SINK_NAME, SinkStats};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `sink` label of the tantivy index sink (also its spool consumer name).
pub const INDEX_SINK: &str = "index";
const OTHER_DATASET: &str = "other";

/// The sinks' counters (the index's when it is enabled) and every consumer's status.
#[derive(Debug)]
pub struct SinkMetrics {
    pub clickhouse: Arc<SinkStats>,
    pub index: Option<Arc<IndexSinkStats>>,
    /// The index's rebuilds from ClickHouse (when the index is enabled).
    pub rebuild: Option<Arc<RebuildProgress>>,
    pub statuses: Statuses,
    pub spool: Spool,
    pub clock: Arc<dyn Clock>,
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
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

        let snapshots = self.statuses.snapshots(self.spool.last_seq(), self.clock.now());
        let name = "gatelog_sink_position";
        out.family(name, "gauge", "Highest spool position a sink has stored and acknowledged.");
        for s in &snapshots {
            out.sample(name, &[("sink", s.name)], s.position);
        }
        if snapshots.iter().any(|s| s.lag_seconds.is_some()) {
            let name = "gatelog_sink_lag_seconds";
            out.family(
                name,
                "gauge",
                "0 once a sink stored the spool's last record; else the age of the oldest record it read and has not stored (before it read one: of the newest it stored, an upper bound).",
            );
            for s in &snapshots {
                if let Some(lag) = s.lag_seconds {
                    out.sample(name, &[("sink", s.name)], lag);
                }
            }
        }
        if let Some(rebuild) = &self.rebuild {
            let gauges = [
                (
                    "gatelog_index_rebuilding",
                    "1 while the index is being rebuilt from ClickHouse.",
                    u64::from(rebuild.running.load(Ordering::Relaxed)),
                ),
                (
                    "gatelog_index_rebuild_decisions",
                    "Rows read from ClickHouse by the current (or last) index rebuild.",
                    get(&rebuild.done),
                ),
                (
                    "gatelog_index_rebuild_total_decisions",
                    "Rows ClickHouse held when the current (or last) index rebuild started.",
                    get(&rebuild.total),
                ),
            ];
            for (name, help, value) in gauges {
                out.family(name, "gauge", help);
                out.sample(name, &[], value);
            }
            let name = "gatelog_index_rebuilds_total";
            out.family(name, "counter", "Index rebuilds from ClickHouse completed since gatelog started.");
            out.sample(name, &[], get(&rebuild.completed));
        }
        let name = "gatelog_sink_up";
        out.family(name, "gauge", "0 once a sink stopped and needs an operator (the reason is on /readyz), else 1.");
        for s in &snapshots {
            out.sample(name, &[("sink", s.name)], u8::from(s.phase != Phase::Stopped));
        }
        let name = "gatelog_sink_state";
        out.family(
            name,
            "gauge",
            "1 for a sink's current state (starting, running, caught_up, waiting, rebuilding, stopped), 0 for the others.",
        );
        for s in &snapshots {
            for phase in Phase::ALL {
                out.sample(name, &[("sink", s.name), ("state", phase.as_str())], u8::from(s.phase == phase));
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

    #[tokio::test]
    async fn every_consumer_has_one_up_sample_and_one_state_set_to_one() {
        let dir = tempfile::tempdir().unwrap();
        let options = gatelog_spool::SpoolOptions { preallocate: false, ..gatelog_spool::SpoolOptions::default() };
        let spool = Spool::open(dir.path(), options).unwrap();
        let statuses = Statuses::default();
        let ch = statuses.add(SINK_NAME);
        let ix = statuses.add(INDEX_SINK);
        ch.set_waiting("unreachable");
        ix.stop("record 3 does not decode");
        let metrics = SinkMetrics {
            clickhouse: Arc::default(),
            index: Some(Arc::default()),
            rebuild: Some(Arc::default()),
            statuses,
            spool: spool.clone(),
            clock: Arc::new(gatelog_model::FixedClock::new(gatelog_model::UnixMillis(0))),
        };
        let mut out = TextWriter::default();
        metrics.collect(&mut out);
        let text = out.finish();
        assert!(text.contains("gatelog_sink_up{sink=\"clickhouse\"} 1\n"), "{text}");
        assert!(text.contains("gatelog_sink_up{sink=\"index\"} 0\n"), "{text}");
        assert!(text.contains("gatelog_sink_state{sink=\"clickhouse\",state=\"waiting\"} 1\n"), "{text}");
        assert!(text.contains("gatelog_sink_state{sink=\"index\",state=\"stopped\"} 1\n"), "{text}");
        let ones = text.lines().filter(|l| l.starts_with("gatelog_sink_state{") && l.ends_with(" 1")).count();
        assert_eq!(ones, 2, "{text}");
        assert_eq!(text.matches("# TYPE gatelog_sink_state gauge").count(), 1);
        spool.close().await.unwrap();
    }
}
