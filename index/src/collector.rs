//! [`NewestFirst`]: a tantivy collector that keeps the top `limit` documents by
//! `(time, event_id)` descending, restricted to a time range and to keys strictly below a
//! cursor. The key is total (event ids are unique per index), so pages never overlap or skip.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn, TermOrdHit};
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

/// The sort key of a hit: newest first, then the larger event id first.
pub type Key = (i64, String);

/// Collects the newest `limit` documents.
#[derive(Debug, Clone)]
pub struct NewestFirst {
    pub limit: usize,
    /// Inclusive lower bound on `time`.
    pub from: Option<i64>,
    /// Exclusive upper bound on `time`.
    pub to: Option<i64>,
    /// Only keys strictly below this one (the last hit of the previous page).
    pub before: Option<Key>,
}

/// The per-segment half of [`NewestFirst`]. Within a segment, event ids compare by their
/// term ordinal (the dictionary is sorted), so strings are read only for the kept documents.
pub struct NewestFirstSegment {
    segment: SegmentOrdinal,
    time: Column<i64>,
    ids: Option<StrColumn>,
    limit: usize,
    from: Option<i64>,
    to: Option<i64>,
    /// The cursor as a segment-local key: `(time, ordinal bound)`; see [`id_rank`].
    before: Option<(i64, u64)>,
    heap: BinaryHeap<Reverse<(i64, u64, DocId)>>,
}

/// The rank of a document's id inside its segment: `ord + 1`, or 0 without an id (the
/// empty string sorts first).
fn id_rank(ids: Option<&StrColumn>, doc: DocId) -> u64 {
    ids.and_then(|ids| ids.term_ords(doc).next()).map_or(0, |ord| ord.saturating_add(1))
}

/// The rank bound of a cursor id: a rank is below it iff that id is below the cursor's.
fn cursor_rank(ids: Option<&StrColumn>, id: &str) -> tantivy::Result<u64> {
    if id.is_empty() {
        return Ok(0);
    }
    let Some(ids) = ids else { return Ok(1) };
    let first_not_below = match ids.dictionary().term_ord_or_next(id)? {
        TermOrdHit::Exact(ord) | TermOrdHit::Next(ord) => ord,
    };
    Ok(first_not_below.saturating_add(1))
}

impl std::fmt::Debug for NewestFirstSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewestFirstSegment")
            .field("segment", &self.segment)
            .field("kept", &self.heap.len())
            .finish_non_exhaustive()
    }
}

impl Collector for NewestFirst {
    type Fruit = Vec<(Key, DocAddress)>;
    type Child = NewestFirstSegment;

    fn for_segment(&self, segment: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<Self::Child> {
        let ids = reader.fast_fields().str("event_id")?;
        let before = match &self.before {
            Some((time, id)) => Some((*time, cursor_rank(ids.as_ref(), id)?)),
            None => None,
        };
        Ok(NewestFirstSegment {
            segment,
            time: reader.fast_fields().i64("time")?,
            ids,
            limit: self.limit,
            from: self.from,
            to: self.to,
            before,
            heap: BinaryHeap::with_capacity(self.limit.saturating_add(1).min(4096)),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<(Key, DocAddress)>>) -> tantivy::Result<Self::Fruit> {
        let mut all: Vec<(Key, DocAddress)> = fruits.into_iter().flatten().collect();
        all.sort_by(|a, b| b.0.cmp(&a.0));
        all.truncate(self.limit);
        Ok(all)
    }
}

impl SegmentCollector for NewestFirstSegment {
    type Fruit = Vec<(Key, DocAddress)>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if self.limit == 0 {
            return;
        }
        let Some(time) = self.time.first(doc) else { return };
        if self.from.is_some_and(|from| time < from) || self.to.is_some_and(|to| time >= to) {
            return;
        }
        if self.before.is_some_and(|(t, _)| time > t) {
            return;
        }
        let full = self.heap.len() >= self.limit;
        if full && self.heap.peek().is_some_and(|Reverse((t, _, _))| time < *t) {
            return;
        }
        let rank = id_rank(self.ids.as_ref(), doc);
        if self.before.is_some_and(|before| (time, rank) >= before) {
            return;
        }
        if full {
            if self.heap.peek().is_some_and(|Reverse((t, r, _))| (time, rank) <= (*t, *r)) {
                return;
            }
            self.heap.pop();
        }
        self.heap.push(Reverse((time, rank, doc)));
    }

    fn harvest(self) -> Self::Fruit {
        let mut buf = String::new();
        let mut out: Vec<(Key, DocAddress)> = self
            .heap
            .into_iter()
            .map(|Reverse((time, rank, doc))| {
                buf.clear();
                if let (Some(ids), Some(ord)) = (&self.ids, rank.checked_sub(1))
                    && ids.ord_to_str(ord, &mut buf).is_err()
                {
                    buf.clear();
                }
                ((time, buf.clone()), DocAddress::new(self.segment, doc))
            })
            .collect();
        out.sort_by(|a, b| b.0.cmp(&a.0));
        out
    }
}
