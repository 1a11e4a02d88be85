//! The proxy's counters, rendered as Prometheus text at `GET /metrics`. Every label value
//! comes from a closed set.

use gatelog_model::Decision;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a decision was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The spill file reached `decisions.spill_max_bytes`.
    SpillFull,
    /// Writing the spill file failed.
    SpillError,
}

/// What became of a query whose client went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Killed {
    /// `KILL QUERY` ran and ClickHouse no longer lists it.
    Killed,
    /// It had finished before the kill.
    AlreadyDone,
    /// The kill failed or ClickHouse still listed it after `kill_timeout`.
    Failed,
}

/// Counters shared by every part of the proxy.
#[derive(Debug, Default)]
pub struct Metrics {
    decisions: [AtomicU64; 5],
    dropped: [AtomicU64; 2],
    truncated_fields: AtomicU64,
    spill_corrupt: AtomicU64,
    spill_torn: AtomicU64,
    spill_bytes: AtomicU64,
    rate_limited_source: AtomicU64,
    rate_limited_principal: AtomicU64,
    killed: [AtomicU64; 3],
}

fn decision_index(d: Decision) -> usize {
    match d {
        Decision::Allow => 0,
        Decision::Deny => 1,
        Decision::Challenge => 2,
        Decision::Log => 3,
        Decision::Error => 4,
    }
}

const DECISIONS: [&str; 5] = ["allow", "deny", "challenge", "log", "error"];

impl Metrics {
    pub fn decision(&self, d: Decision) {
        self.decisions[decision_index(d)].fetch_add(1, Ordering::Relaxed);
    }
    pub fn dropped(&self, why: Dropped) {
        self.dropped[why as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
    pub fn truncated_fields(&self, n: u64) {
        self.truncated_fields.fetch_add(n, Ordering::Relaxed);
    }
    pub fn spill_corrupt(&self) {
        self.spill_corrupt.fetch_add(1, Ordering::Relaxed);
    }
    pub fn spill_torn(&self) {
        self.spill_torn.fetch_add(1, Ordering::Relaxed);
    }
    pub fn set_spill_bytes(&self, n: u64) {
        self.spill_bytes.store(n, Ordering::Relaxed);
    }
    pub fn rate_limited(&self, by_source: bool) {
        let c = if by_source { &self.rate_limited_source } else { &self.rate_limited_principal };
        c.fetch_add(1, Ordering::Relaxed);
    }
    pub fn killed(&self, k: Killed) {
        self.killed[k as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn killed_count(&self, k: Killed) -> u64 {
        self.killed[k as usize].load(Ordering::Relaxed)
    }
    pub fn spill_corrupt_count(&self) -> u64 {
        self.spill_corrupt.load(Ordering::Relaxed) + self.spill_torn.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut family = |name: &str, kind: &str, help: &str, rows: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let rows: Vec<(String, u64)> =
            DECISIONS.iter().zip(&self.decisions).map(|(l, c)| (format!("{{decision=\"{l}\"}}"), get(c))).collect();
        family("gatelog_proxy_decisions_total", "counter", "Decisions emitted, by outcome.", &rows);
        let rows = vec![
            ("{reason=\"spill_full\"}".to_owned(), get(&self.dropped[0])),
            ("{reason=\"spill_error\"}".to_owned(), get(&self.dropped[1])),
        ];
        family("gatelog_proxy_decisions_dropped_total", "counter", "Decisions neither delivered nor spilled.", &rows);
        family(
            "gatelog_proxy_decision_fields_truncated_total",
            "counter",
            "Decision fields cut to their bound.",
            &[(String::new(), get(&self.truncated_fields))],
        );
        let rows = vec![
            ("{kind=\"checksum\"}".to_owned(), get(&self.spill_corrupt)),
            ("{kind=\"torn\"}".to_owned(), get(&self.spill_torn)),
        ];
        family("gatelog_proxy_spill_bad_records_total", "counter", "Spill records detected bad and skipped.", &rows);
        family(
            "gatelog_proxy_spill_bytes",
            "gauge",
            "Bytes in the decision spill file.",
            &[(String::new(), get(&self.spill_bytes))],
        );
        let rows = vec![
            ("{scope=\"source\"}".to_owned(), get(&self.rate_limited_source)),
            ("{scope=\"principal\"}".to_owned(), get(&self.rate_limited_principal)),
        ];
        family("gatelog_proxy_rate_limited_total", "counter", "Requests answered 429.", &rows);
        let rows = vec![
            ("{outcome=\"killed\"}".to_owned(), get(&self.killed[0])),
            ("{outcome=\"already_done\"}".to_owned(), get(&self.killed[1])),
            ("{outcome=\"failed\"}".to_owned(), get(&self.killed[2])),
        ];
        family("gatelog_proxy_abandoned_queries_total", "counter", "Queries whose client went away.", &rows);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::default();
        m.decision(Decision::Deny);
        m.dropped(Dropped::SpillFull);
        m.killed(Killed::Killed);
        let text = m.render();
        assert!(text.contains("gatelog_proxy_decisions_total{decision=\"deny\"} 1"), "{text}");
        assert!(text.contains("gatelog_proxy_decisions_dropped_total{reason=\"spill_full\"} 1"), "{text}");
        assert!(text.contains("gatelog_proxy_abandoned_queries_total{outcome=\"killed\"} 1"), "{text}");
        assert_eq!(m.dropped_total(), 1);
    }
}
