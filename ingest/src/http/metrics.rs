//! [`ReceiverMetrics`]: the receiver's counters and the spool's gauges, a collector of the
//! edge's [`MetricsRegistry`](gatelog_edge::MetricsRegistry) (`GET /metrics`).
//!
//! Every label comes from a closed set, so a client cannot grow the series count: `route`
//! from [`Route`], `dataset` from [`Dataset::ALL`] plus `proxy`, and `sink` from the spool's
//! registered consumers (configured by the binary). Counters are plain atomics. The spool's
//! gauges and fsync histogram are read at scrape time.

use crate::Dataset;
use gatelog_edge::{MetricsCollector, TextWriter};
use gatelog_spool::Spool;
use std::sync::atomic::{AtomicU64, Ordering};

/// An ingest route, the label of `gatelog_received_batches_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Logpush,
    Tail,
    Decisions,
}

impl Route {
    pub const ALL: [Route; 3] = [Route::Logpush, Route::Tail, Route::Decisions];
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Logpush => "logpush",
            Route::Tail => "tail",
            Route::Decisions => "decisions",
        }
    }
}

/// The `dataset` label of proxy decisions.
pub use crate::map::decisions::PROXY_DATASET;

const STREAMS: usize = Dataset::ALL.len() + 1;

fn stream_name(i: usize) -> &'static str {
    Dataset::ALL.get(i).map_or(PROXY_DATASET, |d| d.as_str())
}

/// The `dataset` label slot of a stream: a [`Dataset`], or `None` for proxy decisions.
fn stream_index(dataset: Option<Dataset>) -> usize {
    dataset.and_then(|d| Dataset::ALL.iter().position(|x| *x == d)).unwrap_or(STREAMS - 1)
}

fn counters<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// The receiver's counters, and the spool whose gauges are read at scrape time.
#[derive(Debug)]
pub struct ReceiverMetrics {
    spool: Spool,
    received_batches: [AtomicU64; 3],
    received_lines: [AtomicU64; STREAMS],
    spooled_batches: [AtomicU64; STREAMS],
    dead_letters: [AtomicU64; STREAMS],
}

impl ReceiverMetrics {
    pub(crate) fn new(spool: Spool) -> Self {
        ReceiverMetrics {
            spool,
            received_batches: counters(),
            received_lines: counters(),
            spooled_batches: counters(),
            dead_letters: counters(),
        }
    }

    pub(crate) fn received(&self, route: Route, dataset: Option<Dataset>, lines: u64) {
        self.received_batches[route as usize].fetch_add(1, Ordering::Relaxed);
        self.received_lines[stream_index(dataset)].fetch_add(lines, Ordering::Relaxed);
    }

    pub(crate) fn spooled(&self, dataset: Option<Dataset>, dead_letters: u64) {
        let i = stream_index(dataset);
        self.spooled_batches[i].fetch_add(1, Ordering::Relaxed);
        self.dead_letters[i].fetch_add(dead_letters, Ordering::Relaxed);
    }
}

impl MetricsCollector for ReceiverMetrics {
    /// The receiver's counters, then the spool's gauges and fsync histogram.
    fn collect(&self, w: &mut TextWriter) {
        let spool = &self.spool;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);

        w.family(
            "gatelog_received_batches_total",
            "counter",
            "Authenticated ingest requests whose body was read, by route.",
        );
        for r in Route::ALL {
            w.sample(
                "gatelog_received_batches_total",
                &[("route", r.as_str())],
                get(&self.received_batches[r as usize]),
            );
        }
        let per_stream = [
            (
                "gatelog_received_lines_total",
                "Lines received (every kind: mapped, dead, probe, blank), by dataset.",
                &self.received_lines,
            ),
            ("gatelog_spooled_batches_total", "Batches made durable in the spool, by dataset.", &self.spooled_batches),
            ("gatelog_dead_letters_total", "Dead letters made durable in the spool, by dataset.", &self.dead_letters),
        ];
        for (name, help, values) in per_stream {
            w.family(name, "counter", help);
            for (i, v) in values.iter().enumerate() {
                w.sample(name, &[("dataset", stream_name(i))], get(v));
            }
        }

        let stats = spool.stats();
        w.family("gatelog_spool_bytes", "gauge", "Bytes of all spool segments on disk.");
        w.sample("gatelog_spool_bytes", &[], stats.bytes_on_disk);
        w.family("gatelog_spool_segments", "gauge", "Spool segment files on disk.");
        w.sample("gatelog_spool_segments", &[], stats.segments);
        w.family("gatelog_spool_last_seq", "gauge", "Sequence number of the last durable spool record.");
        w.sample("gatelog_spool_last_seq", &[], stats.last_seq);
        w.family("gatelog_sink_lag_records", "gauge", "Spool records written after each sink's committed position.");
        for c in &stats.consumers {
            w.sample("gatelog_sink_lag_records", &[("sink", &c.name)], c.lag);
        }

        let m = spool.metrics();
        let spool_counters = [
            ("gatelog_spool_appends_total", "Records made durable in the spool.", m.appends),
            ("gatelog_spool_append_bytes_total", "Payload bytes made durable in the spool.", m.append_bytes),
            ("gatelog_spool_append_errors_total", "Spool appends that failed (I/O, disk full).", m.append_errors),
            (
                "gatelog_spool_full_rejections_total",
                "Spool appends refused because the spool was full.",
                m.full_rejections,
            ),
            ("gatelog_spool_group_commits_total", "Spool group commits.", m.group_commits),
        ];
        for (name, help, value) in spool_counters {
            w.family(name, "counter", help);
            w.sample(name, &[], value);
        }
        let h = &m.fsync_latency;
        let name = "gatelog_spool_fsync_seconds";
        w.family(name, "histogram", "Latency of spool data fsyncs.");
        let mut cumulative = 0u64;
        for (i, count) in h.counts.iter().enumerate() {
            cumulative += count;
            let le = h.bounds_secs.get(i).map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            w.sample("gatelog_spool_fsync_seconds_bucket", &[("le", &le)], cumulative);
        }
        w.sample("gatelog_spool_fsync_seconds_sum", &[], h.sum_secs);
        w.sample("gatelog_spool_fsync_seconds_count", &[], h.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_labels_cover_every_dataset_and_proxy() {
        for (i, d) in Dataset::ALL.iter().enumerate() {
            assert_eq!(stream_index(Some(*d)), i);
            assert_eq!(stream_name(i), d.as_str());
        }
        assert_eq!(stream_name(stream_index(None)), PROXY_DATASET);
    }
}
