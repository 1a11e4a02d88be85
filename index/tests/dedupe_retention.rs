//! One Worker decision arriving by Tail and by workers_trace_events is indexed once, and
//! retention removes whole day folders that search then ignores.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on purpose

mod common;

use common::{index_all, sample, unique_last};
use gatelog_index::{Day, SearchRequest, Searcher, drop_before, list_days};
use gatelog_model::Source;
use std::collections::BTreeSet;

#[test]
fn tail_and_trace_event_copies_are_indexed_once() {
    let tail = sample("tail.ndjson");
    let trace = sample("workers_trace_events.ndjson");
    let tail_ids: BTreeSet<&str> = tail.iter().map(|d| d.event_id.as_str()).collect();
    let shared: BTreeSet<&str> = trace.iter().map(|d| d.event_id.as_str()).filter(|id| tail_ids.contains(id)).collect();
    assert!(shared.len() > 100, "the samples describe the same invocations: {}", shared.len());
    assert!(tail.iter().all(|d| d.source == Source::Tail));
    // Both paths carry the decision's own time, so the copies land in the same day index
    // (the one place a delete-then-add can reach; see the indexer's module docs).
    for d in &trace {
        if let Some(t) = tail.iter().find(|t| t.event_id == d.event_id) {
            assert_eq!(t.time, d.time, "{}", d.event_id);
        }
    }

    let tmp = tempfile::tempdir().unwrap();
    // Tail first in one batch, Logpush copies later in other batches.
    let mut all = tail.clone();
    all.extend(trace.iter().cloned());
    index_all(tmp.path(), &all, 50);
    let searcher = Searcher::open(tmp.path(), "gatelog");
    for id in &shared {
        assert_eq!(searcher.count(&format!("event_id:{id}"), None, None).unwrap(), 1, "{id}");
    }
    assert_eq!(searcher.count("", None, None).unwrap(), unique_last(&all).len() as u64);
    // Indexing both files again (a replay) changes nothing.
    drop(searcher);
    index_all(tmp.path(), &all, 1000);
    let searcher = Searcher::open(tmp.path(), "gatelog");
    assert_eq!(searcher.count("", None, None).unwrap(), unique_last(&all).len() as u64);
}

#[test]
fn retention_drops_whole_days_and_search_ignores_them() {
    let all = sample("http_requests.ndjson");
    let days: BTreeSet<Day> = all.iter().map(|d| Day::of(d.time)).collect();
    assert!(days.len() >= 2, "the sample spans {} days", days.len());
    let cutoff = *days.iter().nth(1).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let mut indexer = index_all(tmp.path(), &all, 64);
    let searcher = Searcher::open(tmp.path(), "gatelog");
    assert_eq!(searcher.count("", None, None).unwrap(), unique_last(&all).len() as u64);
    // Warm the searcher's reader cache on the day about to go.
    assert!(!searcher.search(&SearchRequest { limit: 1000, ..SearchRequest::default() }).unwrap().hits.is_empty());

    let dropped = indexer.drop_before(cutoff).unwrap();
    assert_eq!(dropped, days.iter().copied().filter(|d| *d < cutoff).collect::<Vec<_>>());
    for day in &dropped {
        assert!(!tmp.path().join(day.dir_name()).exists());
    }
    let kept: Vec<Day> = list_days(tmp.path()).unwrap().into_iter().map(|(d, _)| d).collect();
    assert!(kept.iter().all(|d| *d >= cutoff) && !kept.is_empty());

    let want = unique_last(&all).into_iter().filter(|d| Day::of(d.time) >= cutoff).count();
    assert_eq!(searcher.count("", None, None).unwrap(), want as u64);
    let page = searcher.search(&SearchRequest { limit: 1000, ..SearchRequest::default() }).unwrap();
    assert_eq!(page.hits.len(), want);
    assert!(page.hits.iter().all(|h| Day::of(h.time) >= cutoff));

    // Late decisions for a dropped day are not indexed again.
    let old = all.iter().find(|d| Day::of(d.time) < cutoff).unwrap();
    indexer.add(old).unwrap();
    indexer.commit().unwrap();
    assert!(!tmp.path().join(Day::of(old.time).dir_name()).exists());

    // The free function does the same without an indexer.
    drop(indexer);
    let last = *days.iter().last().unwrap();
    drop_before(tmp.path(), last).unwrap();
    let only = unique_last(&all).into_iter().filter(|d| Day::of(d.time) >= last).count();
    assert_eq!(searcher.count("", None, None).unwrap(), only as u64);
}
