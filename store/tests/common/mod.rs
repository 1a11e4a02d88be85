//! Shared fixtures for the store's integration tests.
#![allow(dead_code)]

pub mod chdb;
pub mod copies;

use gatelog_model::{AccessDecision, DeadLetter, Decision, PrincipalType, RawRecord, Source, UnixMillis, sha256_hex};
use gatelog_store::WriteBatch;

pub const T0: i64 = 1_740_990_713_712; // 2025-03-03T08:31:53.712Z

/// A batch of `n` decisions (with their raw lines) and `dead` dead letters.
pub fn batch(batch_id: &str, n: usize, dead: usize) -> WriteBatch {
    let received = UnixMillis(T0 + 60_000);
    let mut decisions = Vec::with_capacity(n);
    let mut raw = Vec::with_capacity(n);
    for i in 0..n {
        let line =
            format!(r#"{{"RayID":"{batch_id}-{i}","ClientIP":"203.0.113.{}","EdgeResponseStatus":200}}"#, i % 250);
        let event_id = gatelog_model::EventId::derive(&["http_requests", batch_id, &i.to_string()]);
        let time = UnixMillis(T0 + i as i64 * 7);
        let mut d = AccessDecision::new(event_id.clone(), time, "http_requests", Source::Logpush);
        d.received_at = received;
        d.decision = if i % 10 == 0 { Decision::Deny } else { Decision::Allow };
        d.principal = format!("user{}@example.com", i % 17);
        d.principal_type = PrincipalType::User;
        d.ray_id = format!("{batch_id}-{i}");
        d.status = 200;
        d.raw_sha256 = sha256_hex(line.as_bytes());
        decisions.push(d);
        raw.push(RawRecord::new(event_id, "http_requests", received, time, &line));
    }
    let dead_letters = (0..dead)
        .map(|i| DeadLetter {
            dataset: "http_requests".into(),
            received_at: received,
            origin: "/v1/logpush/http_requests".into(),
            line_no: (n + i + 1) as u64,
            line: format!("not json {i}"),
            sha256: sha256_hex(format!("not json {i}").as_bytes()),
            error: "expected value at line 1 column 1".into(),
        })
        .collect();
    WriteBatch {
        batch_id: batch_id.into(),
        dataset: "http_requests".into(),
        origin: "/v1/logpush/http_requests".into(),
        received_at: received,
        lines: (n + dead) as u64,
        probes: 0,
        bytes: 1234,
        sha256: sha256_hex(batch_id.as_bytes()),
        decisions,
        raw,
        dead_letters,
        body: Vec::new(),
        decision_lines: Vec::new(),
    }
}
