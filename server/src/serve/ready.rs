//! [`SinksReady`]: what `/readyz` says about what sits behind the spool.
//!
//! `/readyz` answers 200 `ready` only while every part of `gatelog serve` is doing its job:
//! the receiver can take a batch (the spool has room and the sinks are within
//! `receiver.max_lag_records`), and every spool consumer is running or caught up. Otherwise
//! it answers 503 `not ready: <reason>; <reason>…`, one reason per part, for example
//! `clickhouse: waiting: cannot write to ClickHouse, retrying: …` (ClickHouse unreachable:
//! ingest goes on into the spool), `index: rebuilding: …` (with progress), or
//! `index: stopped: …` (an operator must look; the reason names what, e.g. the spool record
//! that does not decode, by file and offset). A consumer that is not ready never changes
//! what ingest answers: the receiver keeps acknowledging into the spool until its own limits
//! push back, so a load balancer that follows `/readyz` takes this server out of rotation
//! while a single Logpush destination keeps delivering into the spool.
//!
//! The same [`Statuses`] feed `gatelog_sink_up` and `gatelog_sink_state` on `/metrics`, and
//! any later consumer (detection) is covered by adding its status there.

use gatelog_consumer::Statuses;
use gatelog_edge::ReadinessCheck;
use gatelog_model::Clock;
use gatelog_spool::Spool;
use std::sync::Arc;

/// Every spool consumer's readiness, for `/readyz`.
#[derive(Debug)]
pub struct SinksReady {
    pub statuses: Statuses,
    pub spool: Spool,
    pub clock: Arc<dyn Clock>,
}

impl ReadinessCheck for SinksReady {
    fn not_ready(&self) -> Vec<String> {
        self.statuses.not_ready(self.spool.last_seq(), self.clock.now())
    }
}
