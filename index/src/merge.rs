//! [`CappedMergePolicy`]: which segments of a day index tantivy merges in the background.
//!
//! tantivy's default, [`LogMergePolicy`], groups segments into levels by size and merges a
//! level once it holds eight; the merged segments form the next level, and so on up to
//! 10M documents. A merge's memory grows with its size (pages of its inputs, read through
//! memory maps, plus what it allocates while writing, which the allocator returns late),
//! so the largest merge grows with the day. Measured with `gatelog serve` taking 1M
//! decisions at 12,500/s over two days: peak RSS 597–701 MB with the default policy
//! against ~300 MB between merges.
//!
//! This policy asks [`LogMergePolicy`] which levels are due and splits each into merges
//! of at most `max_docs` documents (first fit, in the level's order, largest first), keeping
//! only groups of two or more. A segment above half the cap is left alone: merged with one
//! its size or larger it would pass the cap. A merge's memory is then bounded whatever the
//! day's size (same runs: 364–375 MB at 100k, 506–582 MB at 250k). The price is more segments in
//! a large day (between half the cap and the cap each), which search walks one by one and
//! every commit visits to apply its `event_id` deletes.

use std::collections::HashMap;
use tantivy::index::{SegmentId, SegmentMeta};
use tantivy::indexer::{LogMergePolicy, MergeCandidate, MergePolicy};

/// [`LogMergePolicy`]'s levels, split into merges of at most `max_docs` documents.
#[derive(Debug)]
pub struct CappedMergePolicy {
    levels: LogMergePolicy,
    max_docs: u64,
}

impl CappedMergePolicy {
    /// Merges whose output holds at most `max_docs` documents.
    pub fn new(max_docs: u64) -> CappedMergePolicy {
        let mut levels = LogMergePolicy::default();
        levels.set_max_docs_before_merge(usize::try_from(max_docs / 2).unwrap_or(usize::MAX));
        CappedMergePolicy { levels, max_docs }
    }
}

impl MergePolicy for CappedMergePolicy {
    fn compute_merge_candidates(&self, segments: &[SegmentMeta]) -> Vec<MergeCandidate> {
        let docs: HashMap<SegmentId, u64> = segments.iter().map(|s| (s.id(), u64::from(s.num_docs()))).collect();
        self.levels
            .compute_merge_candidates(segments)
            .into_iter()
            .flat_map(|level| {
                let sized = level.0.into_iter().map(|id| (id, docs.get(&id).copied().unwrap_or(0)));
                pack(sized, self.max_docs)
            })
            .map(MergeCandidate)
            .collect()
    }
}

/// Groups `items` (with their sizes) first fit into groups whose sizes add up to at most
/// `cap`; groups of one are dropped (nothing to merge).
fn pack<T>(items: impl IntoIterator<Item = (T, u64)>, cap: u64) -> Vec<Vec<T>> {
    let mut groups: Vec<(Vec<T>, u64)> = Vec::new();
    for (item, size) in items {
        match groups.iter_mut().find(|(_, total)| total.saturating_add(size) <= cap) {
            Some((group, total)) => {
                group.push(item);
                *total += size;
            }
            None => groups.push((vec![item], size)),
        }
    }
    groups.into_iter().filter(|(group, _)| group.len() > 1).map(|(group, _)| group).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::Index;
    use tantivy::schema::{STRING, Schema};

    #[test]
    fn pack_fills_groups_up_to_the_cap_and_drops_singletons() {
        let sizes = [60, 50, 40, 30, 20, 10, 95];
        let groups = pack(sizes.iter().map(|&s| (s, s)), 100);
        // First fit: 60+40 and 50+30+20 fill up; 10 and 95 do not fit together, and alone
        // they are nothing to merge.
        assert_eq!(groups, vec![vec![60, 40], vec![50, 30, 20]]);
        for group in &groups {
            assert!(group.iter().sum::<u64>() <= 100);
        }
        assert!(pack([(1, 7), (2, 8)], 10).is_empty(), "no two fit together");
        assert!(pack(Vec::<(u8, u64)>::new(), 10).is_empty());
    }

    fn metas(sizes: &[u32]) -> Vec<SegmentMeta> {
        let mut schema = Schema::builder();
        schema.add_text_field("id", STRING);
        let index = Index::create_in_ram(schema.build());
        sizes.iter().map(|&n| index.new_segment_meta(SegmentId::generate_random(), n)).collect()
    }

    fn merged_sizes(policy: &CappedMergePolicy, segments: &[SegmentMeta]) -> Vec<Vec<u32>> {
        let size: HashMap<SegmentId, u32> = segments.iter().map(|s| (s.id(), s.num_docs())).collect();
        let mut out: Vec<Vec<u32>> = policy
            .compute_merge_candidates(segments)
            .into_iter()
            .map(|c| c.0.iter().map(|id| size[id]).collect())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn small_segments_merge_as_the_log_policy_would() {
        // Eight commit-sized segments: one level, one merge of all of them.
        let segments = metas(&[7_000; 8]);
        assert_eq!(merged_sizes(&CappedMergePolicy::new(250_000), &segments), vec![vec![7_000; 8]]);
        // Seven are not a level yet.
        assert!(merged_sizes(&CappedMergePolicy::new(250_000), &segments[..7]).is_empty());
    }

    #[test]
    fn a_level_larger_than_the_cap_becomes_several_merges_under_it() {
        // Eight segments of 60k (480k together) under a 250k cap: two merges of four.
        let segments = metas(&[60_000; 8]);
        let merges = merged_sizes(&CappedMergePolicy::new(250_000), &segments);
        assert_eq!(merges, vec![vec![60_000; 4], vec![60_000; 4]]);
        // The default policy would have merged all eight at once.
        let unbounded = LogMergePolicy::default().compute_merge_candidates(&segments);
        assert_eq!(unbounded.len(), 1);
        assert_eq!(unbounded[0].0.len(), 8);
    }

    #[test]
    fn segments_above_half_the_cap_are_left_alone() {
        let segments = metas(&[130_000; 10]);
        assert!(merged_sizes(&CappedMergePolicy::new(250_000), &segments).is_empty());
        let segments = metas(&[120_000; 10]);
        let merges = merged_sizes(&CappedMergePolicy::new(250_000), &segments);
        assert_eq!(merges, vec![vec![120_000; 2]; 5]);
    }
}
