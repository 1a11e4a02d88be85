//! Cursor stability, randomized: for random decisions (many sharing a millisecond), random
//! page sizes and random queries, paging returns every matching document exactly once in
//! `(time, event_id)` descending order, even when new documents are indexed between pages.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on purpose

use gatelog_index::{Indexer, IndexerOptions, SearchRequest, Searcher};
use gatelog_model::{AccessDecision, Batch, Decision, Source, UnixMillis};
use proptest::prelude::*;
use std::collections::BTreeSet;

const BASE: i64 = 1_740_960_000_000;

fn decision(id: u32, offset_ms: i64, deny: bool) -> AccessDecision {
    let mut d = AccessDecision::new(format!("{id:08x}"), UnixMillis(BASE + offset_ms), "proxy", Source::Proxy);
    d.decision = if deny { Decision::Deny } else { Decision::Allow };
    d.principal = format!("p{}@example.com", id % 3);
    d
}

fn opts() -> IndexerOptions {
    IndexerOptions { writer_memory_bytes: 15_000_000, ..IndexerOptions::default() }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn paging_is_gapless_and_ordered(
        // Times over ~3 days but clustered, so ties on the millisecond are common. An id has
        // one time (ids derive from the source's timestamp), its copies may differ otherwise.
        docs in prop::collection::vec((0u32..300, any::<bool>()), 1..120),
        late in prop::collection::vec((10_000u32..20_000, -5i64..200_000_000, any::<bool>()), 0..30),
        page in 1usize..20,
        only_denied in any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let mut indexer = Indexer::open(tmp.path(), opts()).unwrap();
        const OFFSETS: [i64; 6] = [0, 1, 2, 86_399_999, 86_400_000, 172_800_123];
        let initial: Vec<AccessDecision> = docs.iter().map(|(id, deny)| decision(*id, OFFSETS[(*id as usize * 7) % 6], *deny)).collect();
        indexer.index_batch(1, &Batch { decisions: initial.clone(), ..Batch::default() }).unwrap();
        indexer.commit().unwrap();

        let keep = |d: &AccessDecision| !only_denied || d.decision == Decision::Deny;
        // The index keeps the last copy of each id.
        let mut last = std::collections::BTreeMap::new();
        for d in &initial { last.insert(d.event_id.clone(), d.clone()); }
        let want: BTreeSet<(i64, String)> = last.values().filter(|d| keep(d)).map(|d| (d.time.0, d.event_id.clone())).collect();

        let searcher = Searcher::open(tmp.path(), "gatelog");
        let mut req = SearchRequest { q: if only_denied { "decision:deny".into() } else { String::new() }, limit: page, ..SearchRequest::default() };
        let mut got: Vec<(i64, String)> = Vec::new();
        let mut late_iter = late.iter();
        let mut seq = 1;
        loop {
            let result = searcher.search(&req).unwrap();
            got.extend(result.hits.iter().map(|h| (h.time.0, h.event_id.clone())));
            // New documents arrive between pages.
            if let Some((id, off, deny)) = late_iter.next() {
                seq += 1;
                indexer.index_batch(seq, &Batch { decisions: vec![decision(*id, *off, *deny)], ..Batch::default() }).unwrap();
                indexer.commit().unwrap();
            }
            match result.next_cursor {
                Some(c) => req.cursor = Some(c),
                None => break,
            }
        }
        prop_assert!(got.windows(2).all(|w| w[0] > w[1]), "strictly descending, no repeats");
        let got_set: BTreeSet<(i64, String)> = got.iter().cloned().collect();
        prop_assert!(want.is_subset(&got_set), "every document present at the start is returned");
        // Anything extra is a late document older than the cursor at the time it arrived.
        for extra in got_set.difference(&want) {
            prop_assert!(u32::from_str_radix(&extra.1, 16).unwrap() >= 10_000, "{extra:?}");
        }
    }
}
