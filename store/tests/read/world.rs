//! Test data for the read side and the model it is judged against: events stored the ways
//! they arrive (Tail and Logpush copies of one Worker decision, some milliseconds apart and
//! stored in either order; Logpush re-deliveries of a batch; copies on both sides of a
//! period's boundaries), and, computed here in plain Rust, which copy of each event counts
//! (the one stored last) and what every query must therefore return.

use gatelog_model::{AccessDecision, Decision, PrincipalType, Source, UnixMillis};
use gatelog_store::read::Period;
use gatelog_store::{PartialCheck, Store, WriteBatch};
use std::collections::BTreeMap;

/// 2025-03-03T00:00:00Z, a Monday.
pub const T0: i64 = 1_740_960_000_000;
pub const HOUR: i64 = 3_600_000;

/// One stored row: a copy of a decision and the batch that holds it.
#[derive(Debug, Clone)]
pub struct Copy {
    pub d: AccessDecision,
    pub batch_id: String,
}

#[derive(Debug)]
pub struct World {
    /// In write order, each with its spool position.
    pub batches: Vec<(u64, WriteBatch)>,
    pub copies: Vec<Copy>,
}

fn decision(i: usize, time: i64) -> AccessDecision {
    let id = format!("ev-{i:04}");
    let mut d = AccessDecision::new(id, UnixMillis(time), "http_requests", Source::Logpush);
    d.principal = if i.is_multiple_of(13) { String::new() } else { format!("user{}@example.com", i % 7) };
    d.principal_type = if d.principal.is_empty() { PrincipalType::Anonymous } else { PrincipalType::User };
    d.country = ["DE", "US", "FR", ""][i % 4].to_owned();
    d.asn = [3320, 15169, 0][i % 3];
    d.client_ip = format!("198.51.100.{}", i % 9);
    d.resource = format!("https://bi.example.com/r/{}", i % 5);
    d.decision = match i {
        i if i % 6 == 0 => Decision::Deny,
        i if i % 11 == 0 => Decision::Challenge,
        _ => Decision::Allow,
    };
    d.roles = vec![if i.is_multiple_of(5) { "admin" } else { "analyst" }.to_owned()];
    d.status = if d.decision == Decision::Deny { 403 } else { 200 };
    d.request_id = format!("req-{i}");
    d
}

/// The Tail and Logpush (`workers_trace_events`) copies of a Worker decision.
fn worker_copies(d: &AccessDecision, tail_offset_ms: i64) -> (AccessDecision, AccessDecision) {
    let mut logpush = d.clone();
    logpush.dataset = "workers_trace_events".into();
    let mut tail = d.clone();
    tail.dataset = "tail".into();
    tail.source = Source::Tail;
    tail.time = UnixMillis(d.time.0 + tail_offset_ms);
    (logpush, tail)
}

impl World {
    /// `n` events from half an hour before [`T0`] for about 7 hours, plus two events
    /// straddling each of `boundaries` (copies 150 ms either side; one event's copy stored
    /// last is after the boundary, the other's before).
    pub fn generate(n: usize, boundaries: &[i64]) -> World {
        let mut first = Vec::new();
        let mut second = Vec::new();
        let mut again = Vec::new();
        for i in 0..n {
            let d = decision(i, T0 - HOUR / 2 + i as i64 * 67_000);
            if i % 4 == 1 {
                let (logpush, tail) = worker_copies(&d, (i as i64 % 3) * 400);
                if i % 8 == 1 {
                    first.push(logpush);
                    second.push(tail);
                } else {
                    first.push(tail);
                    second.push(logpush);
                }
            } else {
                if i % 10 == 2 {
                    again.push(d.clone());
                }
                first.push(d);
            }
        }
        for (k, b) in boundaries.iter().enumerate() {
            for (j, later_after) in [true, false].into_iter().enumerate() {
                let d = decision(10_000 + k * 2 + j, b - 150);
                let (before, after) = worker_copies(&d, 300);
                let (a, z) = if later_after { (before, after) } else { (after, before) };
                first.push(a);
                second.push(z);
            }
        }
        let mut world = World { batches: Vec::new(), copies: Vec::new() };
        for round in [first, second, again] {
            world.add_round(round);
        }
        world
    }

    /// Stores `round` in batches of 25 decisions of one dataset, after everything before it.
    fn add_round(&mut self, round: Vec<AccessDecision>) {
        let mut by_dataset: BTreeMap<String, Vec<AccessDecision>> = BTreeMap::new();
        for d in round {
            by_dataset.entry(d.dataset.clone()).or_default().push(d);
        }
        for (dataset, decisions) in by_dataset {
            for chunk in decisions.chunks(25) {
                let seq = self.batches.len() as u64 + 1;
                let batch_id = format!("b{seq:03}-{dataset}");
                let received_at = UnixMillis(chunk.iter().map(|d| d.time.0).max().unwrap_or(T0) + 5_000 + seq as i64);
                let decisions: Vec<AccessDecision> = chunk
                    .iter()
                    .cloned()
                    .map(|mut d| {
                        d.spool_seq = seq;
                        d.received_at = received_at;
                        d
                    })
                    .collect();
                self.copies.extend(decisions.iter().map(|d| Copy { d: d.clone(), batch_id: batch_id.clone() }));
                let batch = WriteBatch {
                    batch_id,
                    dataset: dataset.clone(),
                    origin: format!("/v1/logpush/{dataset}"),
                    received_at,
                    lines: decisions.len() as u64,
                    probes: 0,
                    bytes: 100 * decisions.len() as u64,
                    sha256: format!("{seq:064x}"),
                    decisions,
                    raw: Vec::new(),
                    dead_letters: Vec::new(),
                };
                self.batches.push((seq, batch));
            }
        }
    }

    /// Writes every batch in order, as the spool sink would.
    pub async fn store(&self, store: &Store) {
        for (seq, batch) in &self.batches {
            store.write_batches(&[(*seq, batch)], PartialCheck::Always).await.unwrap();
        }
    }

    /// Per event, the copy that counts: the one stored last.
    pub fn winners(&self) -> BTreeMap<&str, &Copy> {
        let mut out: BTreeMap<&str, &Copy> = BTreeMap::new();
        for c in &self.copies {
            let key = |c: &Copy| (c.d.spool_seq, c.d.received_at, c.batch_id.clone(), c.d.time);
            let slot = out.entry(c.d.event_id.as_str()).or_insert(c);
            if key(c) > key(slot) {
                *slot = c;
            }
        }
        out
    }

    /// The events of `period` passing `keep`, as (time, event id), oldest first.
    pub fn population(&self, period: Period, keep: impl Fn(&AccessDecision) -> bool) -> Vec<(i64, String)> {
        let mut out: Vec<(i64, String)> = self
            .winners()
            .values()
            .filter(|c| period.contains(c.d.time) && keep(&c.d))
            .map(|c| (c.d.time.0, c.d.event_id.clone()))
            .collect();
        out.sort();
        out
    }

    /// Events of `period` by (dataset, decision).
    pub fn counts(&self, period: Period) -> BTreeMap<(String, String), u64> {
        let mut out = BTreeMap::new();
        for c in self.winners().values().filter(|c| period.contains(c.d.time)) {
            *out.entry((c.d.dataset.clone(), c.d.decision.as_str().to_owned())).or_insert(0) += 1;
        }
        out
    }

    /// Stored rows (every copy).
    pub fn rows(&self) -> usize {
        self.copies.len()
    }
}
