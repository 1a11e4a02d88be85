//! Test data for the read side and the model it is judged against: events stored the ways
//! they arrive (Tail and Logpush copies of one Worker decision, some milliseconds apart,
//! stored in either order, in separate inserts or in one; Logpush re-deliveries after the
//! spool was made anew, so with lower spool positions; copies on both sides of a period's
//! boundaries and of a month, i.e. in two partitions; one event id under two tenants), and,
//! computed here in plain Rust from the write order, which copy of each event survives
//! (ARCHITECTURE.md, "Which copy survives": the later month's, then the one inserted last)
//! and what every query must therefore return.

use gatelog_model::{AccessDecision, Decision, PrincipalType, Source, UnixMillis};
use gatelog_store::read::Period;
use gatelog_store::{PartialCheck, Store, WriteBatch};
use std::collections::BTreeMap;

/// 2025-03-03T00:00:00Z, a Monday.
pub const T0: i64 = 1_740_960_000_000;
/// 2025-03-01T00:00:00Z: February's partition ends here.
pub const MONTH: i64 = 1_740_787_200_000;
pub const HOUR: i64 = 3_600_000;

/// One stored row: a copy of a decision, the batch that holds it and the insert that wrote it.
#[derive(Debug, Clone)]
pub struct Copy {
    pub d: AccessDecision,
    pub batch_id: String,
    /// Which `write_batches` call (one `INSERT` into `decisions`) stored it.
    pub insert: usize,
}

impl Copy {
    /// Which copy of an event survives: the greatest of these (the month partition, then
    /// the insert; copies inserted together keep their batches' spool order).
    fn survival(&self) -> (String, usize, u64) {
        (self.d.time.to_rfc3339()[..7].to_owned(), self.insert, self.d.spool_seq)
    }
}

/// The key of one event.
pub type Key = (String, String);

#[derive(Debug)]
pub struct World {
    /// The inserts in write order, each its batches with their spool positions.
    pub inserts: Vec<Vec<(u64, WriteBatch)>>,
    pub copies: Vec<Copy>,
    batches: usize,
}

fn decision(i: usize, time: i64) -> AccessDecision {
    let id = format!("ev-{i:05}");
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
    /// straddling each of `boundaries` (copies 150 ms either side; one event's copy inserted
    /// last is after the boundary, the other's before).
    pub fn generate(n: usize, boundaries: &[i64]) -> World {
        let (mut first, mut second, mut together, mut again) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let d = decision(i, T0 - HOUR / 2 + i as i64 * 67_000);
            match i % 12 {
                1 | 5 | 9 => {
                    let (logpush, tail) = worker_copies(&d, (i as i64 % 3) * 400);
                    let (a, z) = if i % 8 == 1 { (logpush, tail) } else { (tail, logpush) };
                    first.push(a);
                    second.push(z);
                }
                7 => {
                    // Both copies in one insert: the later batch of the group survives.
                    let (logpush, tail) = worker_copies(&d, 250);
                    together.push(logpush);
                    together.push(tail);
                }
                _ => {
                    if i % 10 == 2 {
                        again.push(d.clone());
                    }
                    if i % 9 == 4 {
                        // The same event id from another tenant: another event.
                        let mut other = d.clone();
                        other.tenant = "acme".into();
                        other.decision = Decision::Deny;
                        first.push(other);
                    }
                    first.push(d);
                }
            }
        }
        for (k, b) in boundaries.iter().enumerate() {
            for (j, later_after) in [true, false].into_iter().enumerate() {
                let d = decision(90_000 + k * 2 + j, b - 150);
                let (before, after) = worker_copies(&d, 300);
                let (a, z) = if later_after { (before, after) } else { (after, before) };
                first.push(a);
                second.push(z);
            }
        }
        let mut world = World { inserts: Vec::new(), copies: Vec::new(), batches: 0 };
        let mut seq = 0;
        for round in [first, second] {
            for batch in world.batches_of(round, &mut seq) {
                world.add_insert(vec![batch]);
            }
        }
        let group = world.batches_of(together, &mut seq);
        world.add_insert(group);
        // Re-deliveries after the spool was made anew: positions start again at 1.
        let mut fresh_spool = 0;
        for batch in world.batches_of(again, &mut fresh_spool) {
            world.add_insert(vec![batch]);
        }
        world
    }

    /// `round` as batches of up to 25 decisions of one tenant and dataset, numbered from `seq`.
    fn batches_of(&mut self, round: Vec<AccessDecision>, seq: &mut u64) -> Vec<(u64, WriteBatch)> {
        let mut by_dataset: BTreeMap<(String, String), Vec<AccessDecision>> = BTreeMap::new();
        for d in round {
            by_dataset.entry((d.dataset.clone(), d.tenant.clone())).or_default().push(d);
        }
        let mut out = Vec::new();
        for ((dataset, tenant), decisions) in by_dataset {
            for chunk in decisions.chunks(25) {
                *seq += 1;
                self.batches += 1;
                let batch_id = format!("b{:03}-{dataset}-{tenant}", self.batches);
                let received_at = UnixMillis(chunk.iter().map(|d| d.time.0).max().unwrap_or(T0) + 5_000 + *seq as i64);
                let decisions: Vec<AccessDecision> = chunk
                    .iter()
                    .cloned()
                    .map(|mut d| {
                        d.spool_seq = *seq;
                        d.received_at = received_at;
                        d
                    })
                    .collect();
                let batch = WriteBatch {
                    batch_id,
                    dataset: dataset.clone(),
                    origin: format!("/v1/logpush/{dataset}"),
                    received_at,
                    lines: decisions.len() as u64,
                    probes: 0,
                    bytes: 100 * decisions.len() as u64,
                    sha256: format!("{:064x}", self.batches),
                    decisions,
                    raw: Vec::new(),
                    dead_letters: Vec::new(),
                    body: Vec::new(),
                    decision_lines: Vec::new(),
                };
                out.push((*seq, batch));
            }
        }
        out
    }

    fn add_insert(&mut self, batches: Vec<(u64, WriteBatch)>) {
        let insert = self.inserts.len();
        for (_, b) in &batches {
            self.copies.extend(b.decisions.iter().map(|d| Copy { d: d.clone(), batch_id: b.batch_id.clone(), insert }));
        }
        self.inserts.push(batches);
    }

    /// Every batch, in write order.
    pub fn batches(&self) -> impl Iterator<Item = &(u64, WriteBatch)> {
        self.inserts.iter().flatten()
    }

    /// Writes every insert in order, as the spool sink would.
    pub async fn store(&self, store: &Store) {
        for insert in &self.inserts {
            let group: Vec<(u64, &WriteBatch)> = insert.iter().map(|(seq, b)| (*seq, b)).collect();
            store.write_batches(&group, PartialCheck::Always).await.unwrap();
        }
    }

    /// Per event (tenant, event id), the copy that counts: the one that survives.
    pub fn winners(&self) -> BTreeMap<Key, &Copy> {
        let mut out: BTreeMap<Key, &Copy> = BTreeMap::new();
        for c in &self.copies {
            let slot = out.entry((c.d.tenant.clone(), c.d.event_id.clone())).or_insert(c);
            if c.survival() > slot.survival() {
                *slot = c;
            }
        }
        out
    }

    /// How many events' surviving copy is not the one with the highest spool position, and
    /// how many not the one inserted last: data on which simpler rules give other figures.
    pub fn rule_matters(&self) -> (usize, usize) {
        let winners = self.winners();
        let beaten = |better: &dyn Fn(&Copy, &Copy) -> bool| {
            winners
                .iter()
                .filter(|(key, w)| {
                    self.copies.iter().any(|c| (c.d.tenant.clone(), c.d.event_id.clone()) == **key && better(c, w))
                })
                .count()
        };
        (beaten(&|c, w| c.d.spool_seq > w.d.spool_seq), beaten(&|c, w| c.insert > w.insert))
    }

    /// The events of `period` passing `keep`, as (time, tenant, event id), oldest first.
    pub fn population(&self, period: Period, keep: impl Fn(&AccessDecision) -> bool) -> Vec<(i64, String, String)> {
        let mut out: Vec<(i64, String, String)> = self
            .winners()
            .values()
            .filter(|c| period.contains(c.d.time) && keep(&c.d))
            .map(|c| (c.d.time.0, c.d.tenant.clone(), c.d.event_id.clone()))
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
