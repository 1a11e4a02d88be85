//! [`MetricsRegistry`]: the Prometheus text exposition of `GET /metrics`, shared by every
//! part of the server.
//!
//! The edge itself counts error answers by [`ErrorCode`]
//! (`gatelog_rejected_requests_total{code}`, a closed label set, so a client cannot grow
//! the series count); everything else is a [`MetricsCollector`] registered by the part that
//! owns it (the receiver's counters and the spool's gauges, the sinks, the connection loop),
//! read at scrape time in registration order. A collector's labels must come from closed
//! sets too, and never carry a credential or anything a client sent.

use crate::error::ErrorCode;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Writes Prometheus text exposition (format 0.0.4).
#[derive(Debug, Default)]
pub struct TextWriter {
    out: String,
}

impl TextWriter {
    /// `# HELP` and `# TYPE` lines of a family (`kind`: counter, gauge, histogram).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', "\\n"));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample; label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{escaped}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A source of metric families (the receiver, the spool, the sinks, the connection loop).
pub trait MetricsCollector: Send + Sync + std::fmt::Debug {
    /// Appends complete families (with `family` headers) to the exposition.
    fn collect(&self, out: &mut TextWriter);
}

/// The edge's error counters plus every registered collector.
#[derive(Debug)]
pub struct MetricsRegistry {
    rejected: [AtomicU64; ErrorCode::ALL.len()],
    collectors: RwLock<Vec<Arc<dyn MetricsCollector>>>,
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        MetricsRegistry { rejected: std::array::from_fn(|_| AtomicU64::new(0)), collectors: RwLock::new(Vec::new()) }
    }
}

impl MetricsRegistry {
    /// Adds a collector whose families are appended to every scrape.
    pub fn register_collector(&self, collector: Arc<dyn MetricsCollector>) {
        self.collectors.write().unwrap_or_else(PoisonError::into_inner).push(collector);
    }

    /// Counts one error answer.
    pub fn rejected(&self, code: ErrorCode) {
        self.rejected[code.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered with `code` so far.
    pub fn rejected_count(&self, code: ErrorCode) -> u64 {
        self.rejected[code.index()].load(Ordering::Relaxed)
    }

    /// The whole exposition: every registered collector in order, then the error counters.
    pub fn render(&self) -> String {
        let mut w = TextWriter::default();
        for collector in self.collectors.read().unwrap_or_else(PoisonError::into_inner).iter() {
            collector.collect(&mut w);
        }
        w.family("gatelog_rejected_requests_total", "counter", "Requests answered with an error, by error code.");
        for c in ErrorCode::ALL {
            w.sample("gatelog_rejected_requests_total", &[("code", c.as_str())], self.rejected_count(c));
        }
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut w = TextWriter::default();
        w.sample("m", &[("sink", "a\"b\\c\nd")], 1);
        assert_eq!(w.finish(), "m{sink=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn every_code_has_a_sample_and_collectors_are_read_at_scrape_time() {
        #[derive(Debug)]
        struct One;
        impl MetricsCollector for One {
            fn collect(&self, out: &mut TextWriter) {
                out.family("gatelog_one", "gauge", "One.");
                out.sample("gatelog_one", &[], 1);
            }
        }
        let registry = MetricsRegistry::default();
        registry.rejected(ErrorCode::NotFound);
        registry.register_collector(Arc::new(One));
        let text = registry.render();
        assert!(text.contains("gatelog_one 1\n"), "{text}");
        assert!(text.contains("gatelog_rejected_requests_total{code=\"not_found\"} 1\n"), "{text}");
        for c in ErrorCode::ALL {
            assert!(text.contains(&format!("{{code=\"{}\"}}", c.as_str())), "{text}");
        }
    }
}
