//! Search over the mapped sample files: exact principal matches, phrases, time ranges,
//! cursors, order, highlights, the ClickHouse link, bad input, and rebuild.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on purpose

mod common;

use common::{has_phrase, index_all, small_samples, unique_last};
use gatelog_index::{IndexError, IndexerOptions, SearchRequest, Searcher, rebuild};
use gatelog_model::{AccessDecision, Decision, UnixMillis};
use std::collections::BTreeSet;

fn setup() -> (tempfile::TempDir, Vec<AccessDecision>, Searcher) {
    let tmp = tempfile::tempdir().unwrap();
    let all = small_samples();
    index_all(tmp.path(), &all, 97);
    let searcher = Searcher::open(tmp.path(), "gatelog");
    (tmp, unique_last(&all), searcher)
}

fn req(q: &str, limit: usize) -> SearchRequest {
    SearchRequest { q: q.into(), limit, ..SearchRequest::default() }
}

/// Every hit of a query, page by page.
fn all_pages(searcher: &Searcher, base: &SearchRequest) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut req = base.clone();
    for _ in 0..10_000 {
        let page = searcher.search(&req).unwrap();
        assert!(page.hits.len() <= req.limit.max(1));
        out.extend(page.hits.iter().map(|h| (h.time.0, h.event_id.clone())));
        match page.next_cursor {
            Some(cursor) => {
                assert_eq!(page.hits.len(), req.limit, "a page with a cursor is full");
                req.cursor = Some(cursor);
            }
            None => return out,
        }
    }
    panic!("pagination does not end");
}

fn expected(decisions: &[AccessDecision], keep: impl Fn(&AccessDecision) -> bool) -> Vec<(i64, String)> {
    let mut keys: Vec<(i64, String)> =
        decisions.iter().filter(|d| keep(d)).map(|d| (d.time.0, d.event_id.clone())).collect();
    keys.sort_by(|a, b| b.cmp(a));
    keys
}

#[test]
fn principal_and_decision_match_exactly() {
    let (_tmp, all, searcher) = setup();
    let want: BTreeSet<String> = all
        .iter()
        .filter(|d| d.principal.eq_ignore_ascii_case("yara@example.com") && d.decision == Decision::Deny)
        .map(|d| d.event_id.clone())
        .collect();
    assert!(want.len() >= 3, "the samples deny yara a few times, got {}", want.len());
    let page = searcher.search(&req("principal:yara@example.com AND decision:deny", 1000)).unwrap();
    let got: BTreeSet<String> = page.hits.iter().map(|h| h.event_id.clone()).collect();
    assert_eq!(got, want);
    assert!(page.hits.iter().all(|h| h.decision == "deny" && h.principal.eq_ignore_ascii_case("yara@example.com")));
    assert!(page.next_cursor.is_none());
    // Exact: a prefix of the address does not match the keyword field.
    assert_eq!(searcher.count("principal:yara@example", None, None).unwrap(), 0);
    // Case does not matter.
    assert_eq!(searcher.count("principal:YARA@example.com AND decision:DENY", None, None).unwrap(), want.len() as u64);
}

#[test]
fn bare_words_search_the_default_fields() {
    let (_tmp, all, searcher) = setup();
    let want = all
        .iter()
        .filter(|d| {
            common::words(&d.principal).contains(&"yara".to_string())
                || ["resource", "query", "reason", "user_agent", "host", "path"].iter().any(|f| {
                    let text = match *f {
                        "resource" => &d.resource,
                        "query" => &d.query,
                        "reason" => &d.reason,
                        "user_agent" => &d.user_agent,
                        "host" => &d.host,
                        _ => &d.path,
                    };
                    common::words(text).contains(&"yara".to_string())
                })
        })
        .count();
    assert!(want > 0);
    assert_eq!(searcher.count("yara", None, None).unwrap(), want as u64);
}

#[test]
fn query_phrase_matches_and_highlights() {
    let (_tmp, all, searcher) = setup();
    let want = expected(&all, |d| has_phrase(&d.query, "system.users"));
    assert!(!want.is_empty());
    let page = searcher.search(&req(r#"query:"system.users""#, 1000)).unwrap();
    let got: Vec<(i64, String)> = page.hits.iter().map(|h| (h.time.0, h.event_id.clone())).collect();
    assert_eq!(got, want);
    for hit in &page.hits {
        let (field, html) = hit.highlights.iter().find(|(f, _)| f == "query").expect("a query highlight");
        assert_eq!(field, "query");
        assert!(html.contains("<b>system</b>") && html.contains("<b>users</b>"), "{html}");
        assert_eq!(hit.clickhouse_sql, format!("SELECT * FROM gatelog.decisions WHERE event_id = '{}'", hit.event_id));
    }
}

#[test]
fn time_ranges_are_half_open_and_paged() {
    let (_tmp, all, searcher) = setup();
    let min = all.iter().map(|d| d.time.0).min().unwrap();
    let max = all.iter().map(|d| d.time.0).max().unwrap();
    let (from, to) = (min + (max - min) / 3, min + 2 * (max - min) / 3);
    // Make the bounds land on documents, to test inclusive/exclusive.
    let from = all.iter().map(|d| d.time.0).filter(|t| *t >= from).min().unwrap();
    let to = all.iter().map(|d| d.time.0).filter(|t| *t >= to).min().unwrap();
    let want = expected(&all, |d| d.time.0 >= from && d.time.0 < to);
    let base = SearchRequest {
        q: String::new(),
        from: Some(UnixMillis(from)),
        to: Some(UnixMillis(to)),
        limit: 37,
        cursor: None,
    };
    assert_eq!(all_pages(&searcher, &base), want);
    assert_eq!(searcher.count("", Some(UnixMillis(from)), Some(UnixMillis(to))).unwrap(), want.len() as u64);
    let denied = expected(&all, |d| d.time.0 >= from && d.time.0 < to && d.decision == Decision::Deny);
    assert_eq!(all_pages(&searcher, &SearchRequest { q: "decision:deny".into(), ..base }), denied);
}

#[test]
fn cursors_page_through_everything_newest_first() {
    let (_tmp, all, searcher) = setup();
    let want = expected(&all, |_| true);
    for limit in [1, 7, 50, 1000] {
        let got = all_pages(&searcher, &req("", limit));
        assert_eq!(got.len(), want.len(), "limit {limit}");
        assert_eq!(got, want, "limit {limit}");
    }
    // A page of 1000 equals the first 1000 keys; limits above the maximum are capped.
    let page = searcher.search(&req("", 5000)).unwrap();
    assert_eq!(page.hits.len(), 1000.min(want.len()));
    assert!(page.hits.windows(2).all(|w| (w[0].time, &w[0].event_id) > (w[1].time, &w[1].event_id)));
    // Default limit.
    assert_eq!(searcher.search(&req("", 0)).unwrap().hits.len(), 50);
}

#[test]
fn bad_queries_and_cursors_are_the_callers_fault() {
    let (_tmp, _all, searcher) = setup();
    for q in ["principal:(", "nosuchfield:x", "status:abc"] {
        match searcher.search(&req(q, 10)) {
            Err(IndexError::BadQuery(msg)) => assert!(!msg.is_empty()),
            other => panic!("{q}: {other:?}"),
        }
    }
    let bad = SearchRequest { cursor: Some("%%%".into()), ..req("", 10) };
    assert!(matches!(searcher.search(&bad), Err(IndexError::BadCursor(_))));
}

#[test]
fn numbers_and_keywords_are_searchable() {
    let (_tmp, all, searcher) = setup();
    let forbidden = all.iter().filter(|d| d.status == 403).count() as u64;
    assert!(forbidden > 0);
    assert_eq!(searcher.count("status:403", None, None).unwrap(), forbidden);
    let ds = all.iter().filter(|d| d.dataset == "firewall_events").count() as u64;
    assert_eq!(searcher.count("dataset:firewall_events", None, None).unwrap(), ds);
}

#[test]
fn rebuild_recreates_the_index_from_decisions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index");
    let mut all = small_samples();
    for (i, d) in all.iter_mut().enumerate() {
        d.spool_seq = 1 + i as u64 / 100;
    }
    let stats = rebuild(
        &dir,
        IndexerOptions { commit_docs: 300, writer_memory_bytes: 15_000_000, ..IndexerOptions::default() },
        all.clone(),
        None,
    )
    .unwrap();
    assert_eq!(stats.decisions, all.len() as u64);
    assert_eq!(stats.position, all.iter().map(|d| d.spool_seq).max().unwrap());
    let indexer = gatelog_index::Indexer::open(&dir, IndexerOptions::default()).unwrap();
    assert_eq!(indexer.position(), stats.position);
    drop(indexer);
    let searcher = Searcher::open(&dir, "gatelog");
    assert_eq!(searcher.count("", None, None).unwrap(), unique_last(&all).len() as u64);
    // Rebuilding again replaces, not adds.
    rebuild(&dir, IndexerOptions::default(), all.iter().take(10).cloned(), Some(7)).unwrap();
    assert_eq!(searcher.count("", None, None).unwrap(), unique_last(&all[..10]).len() as u64);
    assert!(!tmp.path().join("index.rebuild").exists() && !tmp.path().join("index.old").exists());

    // A stream that fails half-way leaves the index as it was.
    let failing = all.iter().cloned().map(Ok).take(20).chain(std::iter::once(Err("clickhouse went away")));
    let err = gatelog_index::try_rebuild(&dir, IndexerOptions::default(), failing, Some(9)).unwrap_err();
    assert!(err.to_string().contains("clickhouse went away"), "{err}");
    assert_eq!(searcher.count("", None, None).unwrap(), unique_last(&all[..10]).len() as u64);
    assert_eq!(gatelog_index::Indexer::open(&dir, IndexerOptions::default()).unwrap().position(), 7);
    assert!(!tmp.path().join("index.rebuild").exists());
}
