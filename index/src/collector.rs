//! [`NewestFirst`]: a tantivy collector that keeps the top `limit` documents by
//! `(time, event_id)` descending, restricted to a time range and to keys strictly below a
//! cursor. The key is total (event ids are unique per index), so pages never overlap or skip.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
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

/// The per-segment half of [`NewestFirst`].
pub struct NewestFirstSegment {
    segment: SegmentOrdinal,
    time: Column<i64>,
    ids: Option<StrColumn>,
    spec: NewestFirst,
    heap: BinaryHeap<Reverse<(Key, DocId)>>,
    buf: String,
}

impl std::fmt::Debug for NewestFirstSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewestFirstSegment").field("segment", &self.segment).field("kept", &self.heap.len()).finish_non_exhaustive()
    }
}

impl Collector for NewestFirst {
    type Fruit = Vec<(Key, DocAddress)>;
    type Child = NewestFirstSegment;

    fn for_segment(&self, segment: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<Self::Child> {
        Ok(NewestFirstSegment {
            segment,
            time: reader.fast_fields().i64("time")?,
            ids: reader.fast_fields().str("event_id")?,
            spec: self.clone(),
            heap: BinaryHeap::with_capacity(self.limit.saturating_add(1).min(4096)),
            buf: String::new(),
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
        let spec = &self.spec;
        if spec.limit == 0 {
            return;
        }
        let Some(time) = self.time.first(doc) else { return };
        if spec.from.is_some_and(|from| time < from) || spec.to.is_some_and(|to| time >= to) {
            return;
        }
        if let Some((before_time, _)) = &spec.before {
            if time > *before_time {
                return;
            }
        }
        let full = self.heap.len() >= spec.limit;
        if full && self.heap.peek().is_some_and(|Reverse(((t, _), _))| time < *t) {
            return;
        }
        self.buf.clear();
        if let Some(ids) = &self.ids {
            if let Some(ord) = ids.term_ords(doc).next() {
                if ids.ord_to_str(ord, &mut self.buf).is_err() {
                    self.buf.clear();
                }
            }
        }
        let key = (time, std::mem::take(&mut self.buf));
        if spec.before.as_ref().is_some_and(|before| key >= *before) {
            return;
        }
        if full {
            if self.heap.peek().is_some_and(|Reverse((min, _))| key <= *min) {
                return;
            }
            self.heap.pop();
        }
        self.heap.push(Reverse((key, doc)));
    }

    fn harvest(self) -> Self::Fruit {
        let segment = self.segment;
        let mut out: Vec<(Key, DocAddress)> = self
            .heap
            .into_iter()
            .map(|Reverse((key, doc))| (key, DocAddress::new(segment, doc)))
            .collect();
        out.sort_by(|a, b| b.0.cmp(&a.0));
        out
    }
}
