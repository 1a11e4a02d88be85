//! The traffic the watch tests judge: five-minute batches of allowed requests, every third
//! with a burst of twelve denials from one IP within a minute.

use gatelog_model::{AccessDecision, Batch, Decision, Source, UnixMillis};

pub const T0: i64 = 1_748_847_600_000; // 2025-06-02T07:00:00Z
pub const FIVE_MIN: i64 = 5 * 60_000;

/// Batch `i` with id `id`: ten allowed requests and, when `i % 3 == 0`, twelve denials from
/// `burst_ip`.
pub fn batch(i: i64, id: &str, burst_ip: &str) -> Batch {
    let at = T0 + i * FIVE_MIN;
    let mut decisions = Vec::new();
    for n in 0..10 {
        let mut d =
            AccessDecision::new(format!("ok-{i}-{n}"), UnixMillis(at + n * 1000), "access_requests", Source::Logpush);
        d.principal = format!("user{}@example.com", n % 3);
        d.client_ip = format!("192.0.2.{}", n % 3);
        d.country = "GB".into();
        decisions.push(d);
    }
    if i % 3 == 0 {
        for n in 0..12 {
            let mut d = AccessDecision::new(
                format!("deny-{i}-{n}"),
                UnixMillis(at + 20_000 + n * 3000),
                "access_requests",
                Source::Logpush,
            );
            d.decision = Decision::Deny;
            d.client_ip = burst_ip.to_owned();
            decisions.push(d);
        }
    }
    Batch {
        batch_id: id.to_owned(),
        dataset: "access_requests".into(),
        origin: "/v1/logpush/access_requests".into(),
        received_at: UnixMillis(at + FIVE_MIN),
        lines: decisions.len() as u64,
        decisions,
        ..Batch::default()
    }
}
