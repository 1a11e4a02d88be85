//! The checks of the ingest table (`ingest_batches` per dataset) and of the query variables'
//! options, against the generated world.

use super::checks::{Fails, cells, pct, round, secs};
use super::results::Table;
use super::scenarios::{Scenario, in_range};
use super::world::{RANGE, World};
use gatelog_model::{AccessDecision, Batch};
use std::collections::{BTreeMap, BTreeSet};

/// `ingest_batches` per dataset over the batches received in the range.
pub fn ingest_table(f: &mut Fails, at: &str, t: &Table, world: &World) {
    let mut by: BTreeMap<&str, Vec<&Batch>> = BTreeMap::new();
    for b in world.batches.iter().filter(|b| in_range(b.received_at.0)) {
        by.entry(b.dataset.as_str()).or_default().push(b);
    }
    let want = by
        .iter()
        .map(|(dataset, bs)| {
            let sum = |k: fn(&Batch) -> u64| bs.iter().map(|b| k(b)).sum::<u64>();
            let (raw, dead) = (sum(|b| b.raw.len() as u64), sum(|b| b.dead_letters.len() as u64));
            let mut received: Vec<i64> = bs.iter().map(|b| secs(b.received_at.0)).collect();
            received.sort_unstable();
            let gap = received.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
            let times = |b: &Batch| {
                let ts = b.decisions.iter().map(|d| d.time.0).chain(b.raw.iter().map(|r| r.time.0));
                let (lo, hi) = ts.fold((i64::MAX, i64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
                if lo > hi { (b.received_at.0, b.received_at.0) } else { (lo, hi) }
            };
            let newest_lag: Vec<f64> = bs.iter().map(|b| (b.received_at.0 - times(b).1) as f64).collect();
            let oldest_lag = bs.iter().map(|b| b.received_at.0 - times(b).0).max().unwrap_or(0) as f64;
            let avg = newest_lag.iter().sum::<f64>() / newest_lag.len() as f64 / 1000.0;
            vec![
                (*dataset).to_owned(),
                bs.len().to_string(),
                sum(|b| b.lines).to_string(),
                raw.to_string(),
                dead.to_string(),
                sum(|b| b.probes).to_string(),
                pct(raw as usize, (raw + dead).max(1) as usize),
                received.last().copied().unwrap_or_default().to_string(),
                (secs(RANGE.to_ms) - received.last().copied().unwrap_or_default()).to_string(),
                gap.to_string(),
                format!("{:.2}", round(avg, 1)),
                format!("{:.2}", round(oldest_lag / 1000.0, 1)),
            ]
        })
        .collect();
    let spec = [
        "dataset",
        "n:batches",
        "n:lines_received",
        "n:lines_stored",
        "n:dead_lettered",
        "n:probes_seen",
        "f:stored_pct",
        "t:last_batch",
        "n:silent_s",
        "n:max_gap_s",
        "f:avg_arrival_lag_s",
        "f:max_arrival_lag_s",
    ];
    f.rows(at, cells(t, &spec), want);
    for r in 0..t.rows.len() {
        f.truth(at, t.i64(r, "max_store_lag_s") >= 0, "a batch was stored before it was received");
    }
}

/// A query variable's options against the rows (every copy) in the range.
pub fn variable(f: &mut Fails, at: &str, name: &str, t: &Table, world: &World, s: &Scenario) {
    let rows: Vec<&AccessDecision> = world.rows.iter().filter(|d| in_range(d.time.0)).collect();
    let tenant_ok = |d: &AccessDecision| s.tenant.as_ref().is_none_or(|t| *t == d.tenant);
    let got: Vec<String> = (0..t.rows.len()).map(|r| t.str(r, &t.columns[0])).collect();
    let want: Vec<String> = match name {
        "tenant" => rows.iter().map(|d| d.tenant.clone()).collect::<BTreeSet<_>>().into_iter().collect(),
        "dataset" => rows.iter().map(|d| d.dataset.clone()).collect::<BTreeSet<_>>().into_iter().collect(),
        "role" => rows
            .iter()
            .filter(|d| d.source.as_str() == "proxy" && tenant_ok(d))
            .flat_map(|d| d.roles.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        "principal" => {
            let mut ids: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
            for d in rows.iter().filter(|d| !d.principal.is_empty() && tenant_ok(d)) {
                ids.entry(&d.principal).or_default().insert(&d.event_id);
            }
            let mut v: Vec<_> = ids.into_iter().map(|(p, ids)| (p.to_owned(), ids.len())).collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v.into_iter().take(1000).map(|(p, _)| p).collect()
        }
        other => {
            f.0.push(format!("{at}: no check for variable {other}: add one in tests/support/checks.rs"));
            return;
        }
    };
    f.rows(at, got.into_iter().map(|g| vec![g]).collect(), want.into_iter().map(|w| vec![w]).collect());
}
