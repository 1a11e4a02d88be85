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
    // Here both paths carry the decision's own time; copies that disagree are the next test's.
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

/// Copies of one event whose times differ: by 1 ms across midnight (either copy first, in one
/// batch or in separate commits), by an hour across midnight, and within a day. One document
/// each, the newest copy, in the day of its own time; copies further apart than
/// `dedup_window` stay two.
#[test]
fn copies_across_midnight_are_one_document() {
    use gatelog_index::{Indexer, IndexerOptions};
    use gatelog_model::{AccessDecision, Batch, UnixMillis};
    use std::time::Duration;

    const MIDNIGHT: i64 = 1_741_046_400_000; // 2025-03-04T00:00:00Z
    let copy = |id: &str, ms: i64, who: &str| {
        let mut d = AccessDecision::new(id.into(), UnixMillis(ms), "tail", Source::Tail);
        d.principal = who.into();
        d
    };
    let batch = |decisions: Vec<AccessDecision>| Batch { decisions, ..Batch::default() };
    let tmp = tempfile::tempdir().unwrap();
    let opts = IndexerOptions { writer_memory_bytes: 15_000_000, ..IndexerOptions::default() };
    let mut indexer = Indexer::open(tmp.path(), opts).unwrap();
    // First copies.
    indexer
        .index_batch(
            1,
            &batch(vec![
                copy("late-first", MIDNIGHT, "first@example.com"),
                copy("early-first", MIDNIGHT - 1, "first@example.com"),
                copy("hour", MIDNIGHT - 1_800_000, "first@example.com"),
                copy("far", MIDNIGHT - 7_200_000, "first@example.com"),
            ]),
        )
        .unwrap();
    indexer.commit().unwrap();
    // Second copies, 1 ms (or 30 min, or 3 h) on the other side of midnight, and one in the
    // same batch as its first copy.
    indexer
        .index_batch(
            2,
            &batch(vec![
                copy("late-first", MIDNIGHT - 1, "second@example.com"),
                copy("early-first", MIDNIGHT, "second@example.com"),
                copy("hour", MIDNIGHT + 1_800_000, "second@example.com"),
                copy("far", MIDNIGHT + 3_600_000, "second@example.com"),
                copy("same-batch", MIDNIGHT + 5, "first@example.com"),
                copy("same-batch", MIDNIGHT - 5, "second@example.com"),
            ]),
        )
        .unwrap();
    indexer.commit().unwrap();
    let searcher = Searcher::open(tmp.path(), "gatelog");
    for id in ["late-first", "early-first", "hour", "same-batch"] {
        assert_eq!(searcher.count(&format!("event_id:{id}"), None, None).unwrap(), 1, "{id}");
        let page = searcher.search(&SearchRequest { q: format!("event_id:{id}"), ..SearchRequest::default() }).unwrap();
        assert_eq!(page.hits[0].principal, "second@example.com", "{id}: the newest copy stays");
        // It is found in its own day by a time range too.
        let t = page.hits[0].time;
        let ranged = SearchRequest {
            q: format!("event_id:{id}"),
            from: Some(t),
            to: Some(UnixMillis(t.0 + 1)),
            ..SearchRequest::default()
        };
        assert_eq!(searcher.search(&ranged).unwrap().hits.len(), 1, "{id}");
    }
    assert_eq!(searcher.count("event_id:far", None, None).unwrap(), 2, "3 h apart: beyond the 1 h window");
    drop(searcher);
    drop(indexer);

    // A wider window reaches it (a replay of the second copy).
    let opts = IndexerOptions { dedup_window: Duration::from_secs(4 * 3600), ..opts };
    let mut indexer = Indexer::open(tmp.path(), opts).unwrap();
    indexer.index_batch(3, &batch(vec![copy("far", MIDNIGHT + 3_600_000, "second@example.com")])).unwrap();
    indexer.commit().unwrap();
    let searcher = Searcher::open(tmp.path(), "gatelog");
    assert_eq!(searcher.count("event_id:far", None, None).unwrap(), 1);
}

/// `IndexerOptions::retention` (what `retention` in gatelog.toml sets): as time passes, a
/// day is deleted once it ended more than the retention ago, never before; late decisions
/// of an expired day are not indexed, and a reopened index does not bring it back.
#[test]
fn the_retention_option_expires_days_as_time_passes() {
    use gatelog_index::{Indexer, IndexerOptions};
    use gatelog_model::{Batch, UnixMillis};
    use std::time::Duration;

    let all = sample("http_requests.ndjson");
    let days: Vec<Day> = all.iter().map(|d| Day::of(d.time)).collect::<BTreeSet<_>>().into_iter().collect();
    assert!(days.len() >= 2, "the sample spans {} days", days.len());
    let (first, second) = (days[0], days[1]);
    let retention = Duration::from_secs(2 * 86_400);
    let opts =
        IndexerOptions { writer_memory_bytes: 15_000_000, retention: Some(retention), ..IndexerOptions::default() };
    let tmp = tempfile::tempdir().unwrap();
    let mut indexer = Indexer::open(tmp.path(), opts).unwrap();
    indexer.index_batch(1, &Batch { decisions: all.clone(), ..Batch::default() }).unwrap();
    indexer.commit().unwrap();
    let searcher = Searcher::open(tmp.path(), "gatelog");
    let total = unique_last(&all).len() as u64;
    assert_eq!(searcher.count("", None, None).unwrap(), total);

    let two_days = 2 * 86_400_000;
    // The first day's start is exactly the retention ago: nothing of it is older yet.
    assert!(indexer.expire(UnixMillis(first.start().0 + two_days)).unwrap().is_empty());
    // The first day ended just under the retention ago: still kept.
    assert!(indexer.expire(UnixMillis(first.end().0 + two_days - 1)).unwrap().is_empty());
    assert!(tmp.path().join(first.dir_name()).exists());
    // An hour into the second day, plus the retention: the first day is wholly older.
    let now = UnixMillis(second.start().0 + two_days + 3_600_000);
    assert_eq!(indexer.expire(now).unwrap(), vec![first]);
    assert!(indexer.expire(now).unwrap().is_empty(), "a second look drops nothing");
    assert!(!tmp.path().join(first.dir_name()).exists());
    assert!(tmp.path().join(second.dir_name()).exists());
    let kept = unique_last(&all).into_iter().filter(|d| Day::of(d.time) >= second).count() as u64;
    assert!(kept > 0 && kept < total);
    assert_eq!(searcher.count("", None, None).unwrap(), kept);

    // A late decision of the expired day is not indexed; a reopened index stays as it was.
    let late: Vec<_> = all.iter().filter(|d| Day::of(d.time) == first).take(1).cloned().collect();
    indexer.index_batch(2, &Batch { decisions: late, ..Batch::default() }).unwrap();
    indexer.commit().unwrap();
    assert!(!tmp.path().join(first.dir_name()).exists());
    drop(indexer);
    let reopened = Indexer::open(tmp.path(), opts).unwrap();
    assert_eq!(reopened.position(), 2);
    assert_eq!(searcher.count("", None, None).unwrap(), kept);

    // Without a retention nothing expires, however late it is.
    let mut keep_all = Indexer::open(tmp.path(), IndexerOptions { retention: None, ..opts }).unwrap();
    assert!(keep_all.expire(UnixMillis(i64::MAX / 2)).unwrap().is_empty());
    assert!(tmp.path().join(second.dir_name()).exists());
}
