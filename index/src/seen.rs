//! [`SeenIds`]: the event ids a day index may hold, so that adding a decision whose id it
//! cannot hold skips tantivy's `delete_term`.
//!
//! A delete is not free in tantivy: every `delete_term` is looked up in the term dictionary
//! of every segment of the index, once when the segment it was added with is flushed and
//! again at each commit for every segment already there. With one delete per added document
//! that was about 6 % of tantivy's indexing thread and 6 % of `gatelog ingest`'s CPU per
//! record (bench/README.md, issue 20), although almost every event id arrives once. The deletes exist for the copies that do arrive again (a Tail and a
//! Logpush copy of one Worker decision, a backfill cut differently, a replay after a crash),
//! and those are exactly the ids a day index already holds.
//!
//! So each day the [`crate::Indexer`] writes keeps a Bloom filter of the event ids in that
//! day's index: loaded from the committed segments' `event_id` term dictionaries when the day
//! is first written after open, and given every id added since. A filter never forgets an id
//! (no false negatives), so an id it does not contain is provably in no committed or
//! uncommitted segment of the day, and the delete would match nothing; an id it contains
//! (a copy, or a false positive, about 1 % of new ids) is deleted as before. Deleted
//! documents keep their terms until a merge drops them, so the loaded set is a superset too.
//!
//! The filter grows by chaining: when the newest one holds its capacity, a new one twice as
//! large is added, so the false-positive rate stays near 1 % per filter. Each filter has 10
//! bits per id of capacity rounded up to a power of two, so the memory is 1.25–5 bytes an
//! id (at most about 50 MB for a 10M-document day); the indexer keeps the filters of the
//! days it writes and of a few recent ones.

use crate::IndexError;
use crate::schema::Fields;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::path::Path;
use tantivy::Index;

/// Bits per id of capacity; with [`HASHES`] probes, about 1 % false positives when full.
const BITS_PER_ID: usize = 10;
/// Probes per id.
const HASHES: u64 = 7;
/// Capacity of the first filter of an empty day.
const MIN_CAPACITY: usize = 1 << 16;

/// One fixed-size Bloom filter.
#[derive(Debug)]
struct Bloom {
    words: Vec<u64>,
    /// Number of bits minus one (a power of two minus one).
    mask: u64,
    len: usize,
    capacity: usize,
}

impl Bloom {
    fn with_capacity(capacity: usize) -> Bloom {
        let bits = (capacity.max(1) * BITS_PER_ID).next_power_of_two().max(64);
        Bloom { words: vec![0; bits / 64], mask: bits as u64 - 1, len: 0, capacity }
    }

    /// Sets the probed bits of `hash` (double hashing; the step is odd, so the probes differ
    /// in a power-of-two table).
    fn insert(&mut self, hash: u64) {
        let step = hash.rotate_left(32) | 1;
        for i in 0..HASHES {
            let bit = hash.wrapping_add(i.wrapping_mul(step)) & self.mask;
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        self.len += 1;
    }

    fn contains(&self, hash: u64) -> bool {
        let step = hash.rotate_left(32) | 1;
        (0..HASHES).all(|i| {
            let bit = hash.wrapping_add(i.wrapping_mul(step)) & self.mask;
            self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }
}

/// The event ids one day index may hold; see the module docs.
#[derive(Debug)]
pub struct SeenIds {
    filters: Vec<Bloom>,
}

fn hash(id: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

impl SeenIds {
    /// The event ids in the committed segments of the index in `path` (deleted documents
    /// included: their terms stay until a merge).
    pub(crate) fn load(path: &Path, fields: &Fields) -> Result<SeenIds, IndexError> {
        let index = Index::open_in_dir(path).map_err(IndexError::tantivy(path))?;
        let reader: tantivy::IndexReader = index
            .reader_builder()
            .reload_policy(tantivy::ReloadPolicy::Manual)
            .try_into()
            .map_err(IndexError::tantivy(path))?;
        let searcher = reader.searcher();
        let docs = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX);
        let mut seen = SeenIds::with_capacity(docs.saturating_mul(2));
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(fields.event_id).map_err(IndexError::tantivy(path))?;
            let mut terms = inverted.terms().stream().map_err(IndexError::io("reading the event ids of", path))?;
            while terms.advance() {
                seen.insert(terms.key());
            }
        }
        tracing::debug!(path = %path.display(), docs, bytes = seen.heap_bytes(), "loaded the event ids of a day index");
        Ok(seen)
    }

    /// An empty set sized for about `expected` ids before it first grows.
    pub fn with_capacity(expected: usize) -> SeenIds {
        SeenIds { filters: vec![Bloom::with_capacity(expected.max(MIN_CAPACITY))] }
    }

    /// Adds an id; returns whether it may have been added before (`false`: certainly not).
    pub fn insert(&mut self, id: &[u8]) -> bool {
        let hash = hash(id);
        let seen = self.filters.iter().any(|f| f.contains(hash));
        let next_capacity = match self.filters.last() {
            Some(last) if last.len < last.capacity => None,
            Some(last) => Some(2 * last.capacity),
            None => Some(MIN_CAPACITY),
        };
        if let Some(capacity) = next_capacity {
            self.filters.push(Bloom::with_capacity(capacity));
        }
        if let Some(last) = self.filters.last_mut() {
            last.insert(hash);
        }
        seen
    }

    /// Whether the id may have been added: `false` means it certainly was not.
    pub fn may_contain(&self, id: &[u8]) -> bool {
        let hash = hash(id);
        self.filters.iter().any(|f| f.contains(hash))
    }

    /// Bytes of filter held.
    pub fn heap_bytes(&self) -> usize {
        self.filters.iter().map(|f| f.words.len() * 8).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_added_id_is_found_and_few_others_are() {
        let mut seen = SeenIds::with_capacity(1000);
        // Far past the first filter's capacity, so the chain grows several times.
        let n = 300_000u32;
        for i in 0..n {
            seen.insert(format!("id-{i}").as_bytes());
        }
        assert!(seen.filters.len() >= 3, "grew: {}", seen.filters.len());
        assert!((0..n).all(|i| seen.may_contain(format!("id-{i}").as_bytes())), "no false negatives");
        let others = 100_000u32;
        let false_positives = (0..others).filter(|i| seen.may_contain(format!("other-{i}").as_bytes())).count();
        // About 1 % a filter, a few filters: well under 5 % together.
        assert!(false_positives < others as usize / 20, "{false_positives} false positives of {others}");
        assert!(seen.heap_bytes() < n as usize * 8, "{} bytes", seen.heap_bytes());
    }

    #[test]
    fn an_empty_set_contains_nothing() {
        let seen = SeenIds::with_capacity(0);
        assert!(!seen.may_contain(b"anything"));
        assert!(!seen.may_contain(b""));
    }
}
