//! gatelog's own audit trail against the real 18.16: a batch of `gatelog`-source decisions
//! (reads of the evidence) is stored in `access_log`, never in `decisions`, in the same
//! exactly-once write as the batches beside it; a copy written again (an attempt whose
//! marker was lost) is read once; the filters and the order hold. (The query also runs on
//! 26.9: `compat.rs`.)
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use gatelog_model::decision::AUDIT_DATASET;
use gatelog_model::{AccessDecision, Batch, Decision, EventId, Source, UnixMillis};
use gatelog_store::PartialCheck;
use gatelog_store::access_log::AccessQuery;
use gatelog_store::testing::TestClickHouse;

const T: i64 = common::T0;

fn read(i: i64, principal: &str, decision: Decision) -> AccessDecision {
    let mut d = AccessDecision::new(
        EventId::derive(&["audit", &i.to_string()]),
        UnixMillis(T + i * 1000),
        AUDIT_DATASET,
        Source::Gatelog,
    );
    d.received_at = d.time;
    d.decision = decision;
    d.principal = principal.into();
    d.roles = vec!["viewer".into()];
    d.resource = "/v1/search".into();
    d.action = "GET".into();
    d.query = format!("q=n{i}");
    d.status = if decision == Decision::Allow { 200 } else { 403 };
    d
}

fn audit_batch(id: &str, reads: Vec<AccessDecision>) -> Batch {
    Batch {
        batch_id: id.into(),
        dataset: AUDIT_DATASET.into(),
        origin: "/v1/search".into(),
        received_at: UnixMillis(T),
        lines: reads.len() as u64,
        decisions: reads,
        ..Batch::default()
    }
}

#[tokio::test]
async fn reads_of_the_evidence_are_kept_apart_once_and_newest_first() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let reads =
        vec![read(1, "alice", Decision::Allow), read(2, "bob", Decision::Deny), read(3, "alice", Decision::Allow)];
    let normal = common::batch("normal", 4, 0);
    let audit = audit_batch("audit-1", reads.clone());
    store.write_batches(&[(1, &normal), (2, &audit)], PartialCheck::Always).await.unwrap();
    // The same records again under another batch id: a retried write whose first marker was lost.
    store.write_batch(&audit_batch("audit-1-again", reads)).await.unwrap();

    let u = store.decision_uniqueness().await.unwrap();
    assert_eq!((u.rows, u.unique_event_ids), (4, 4), "only the posted decisions are in `decisions`");
    assert_eq!(store.count_rows_of_batch("access_log", "audit-1").await.unwrap(), 3);

    let all = AccessQuery { from: UnixMillis(T), to: UnixMillis(T + 10_000), limit: 100, ..AccessQuery::default() };
    let got = store.access_log(&all).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|e| e.query.as_str()).collect();
    assert_eq!(ids, ["q=n3", "q=n2", "q=n1"], "each read once, newest first");
    assert_eq!((got[1].principal.as_str(), got[1].decision.as_str(), got[1].status), ("bob", "deny", 403));
    assert_eq!(got[0].roles, ["viewer"]);

    let alice = AccessQuery { principal: Some("alice".into()), ..all.clone() };
    assert_eq!(store.access_log(&alice).await.unwrap().len(), 2);
    let denied = AccessQuery { decision: Some("deny".into()), ..all.clone() };
    assert_eq!(store.access_log(&denied).await.unwrap()[0].principal, "bob");
    let early = AccessQuery { to: UnixMillis(T + 2_000), ..all.clone() };
    assert_eq!(store.access_log(&early).await.unwrap().len(), 1, "to is exclusive");
    let one = AccessQuery { limit: 1, ..all };
    assert_eq!(store.access_log(&one).await.unwrap()[0].query, "q=n3");
    ch.stop().await.unwrap();
}
