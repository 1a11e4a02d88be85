//! [`Arrival`]: a batch of a dataset reached gatelog — the input of source-silence
//! detection.
//!
//! The runtime feeds arrivals from the spool as batches are consumed
//! ([`Arrival::of_batch`]) and, at start, from the `ingest_batches` history, so a source's
//! cadence is known before the first tick.

use gatelog_model::decision::DEFAULT_TENANT;
use gatelog_model::{Batch, UnixMillis};
use std::collections::BTreeMap;

/// A dataset (and zone) delivered rows at `received_at` (wall time of receipt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub tenant: String,
    pub dataset: String,
    /// The zone the rows are about; empty for account-scoped datasets or when unknown.
    pub zone: String,
    pub received_at: UnixMillis,
    pub rows: u64,
}

impl Arrival {
    /// An arrival of `dataset` for the default tenant.
    pub fn new(dataset: &str, zone: &str, received_at: UnixMillis, rows: u64) -> Arrival {
        Arrival {
            tenant: DEFAULT_TENANT.to_owned(),
            dataset: dataset.to_owned(),
            zone: zone.to_owned(),
            received_at,
            rows,
        }
    }

    /// One arrival per (tenant, zone) among a batch's decisions, or a single one for the
    /// default tenant when it has none (dead letters and probes still show the source is
    /// alive). Sorted, so the order does not depend on the batch's row order.
    pub fn of_batch(batch: &Batch) -> Vec<Arrival> {
        let mut rows: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for d in &batch.decisions {
            *rows.entry((d.tenant.as_str(), d.zone.as_str())).or_default() += 1;
        }
        if rows.is_empty() {
            return vec![Arrival::new(&batch.dataset, "", batch.received_at, 0)];
        }
        rows.into_iter()
            .map(|((tenant, zone), n)| Arrival {
                tenant: tenant.to_owned(),
                dataset: batch.dataset.clone(),
                zone: zone.to_owned(),
                received_at: batch.received_at,
                rows: n,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_model::{AccessDecision, Source};

    #[test]
    fn a_batch_arrives_once_per_tenant_and_zone() {
        let mut batch = Batch { dataset: "http_requests".into(), received_at: UnixMillis(5), ..Batch::default() };
        assert_eq!(Arrival::of_batch(&batch), vec![Arrival::new("http_requests", "", UnixMillis(5), 0)]);
        for zone in ["b.example", "a.example", "b.example"] {
            let mut d = AccessDecision::new("e".into(), UnixMillis(1), "http_requests", Source::Logpush);
            d.zone = zone.into();
            batch.decisions.push(d);
        }
        let arrivals = Arrival::of_batch(&batch);
        assert_eq!(arrivals.len(), 2);
        assert_eq!((arrivals[0].zone.as_str(), arrivals[0].rows), ("a.example", 1));
        assert_eq!((arrivals[1].zone.as_str(), arrivals[1].rows), ("b.example", 2));
    }
}
