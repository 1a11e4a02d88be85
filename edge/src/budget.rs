//! [`MemoryBudget`]: the memory every ingest request holds, counted as it is held.
//!
//! A request holds its body as it arrives (the buffer's capacity, not the `Content-Length`
//! it announced), then the batch mapped from it (each piece's encoded rows and dead letters,
//! by capacity) until the spool has written it. Each request charges what it holds to its
//! [`Reservation`] as it grows, and gives everything back when the reservation is dropped,
//! whatever ended the request. Two caps apply:
//! - the budget's total (`receiver.max_buffered_bytes`): past it, [`OverBudget::Busy`],
//!   answered 503 with `Retry-After` (other requests are holding the memory; retrying later
//!   works);
//! - the request's own cap on its mapped batch (`receiver.max_batch_bytes`): past it,
//!   [`OverBudget::BatchTooLarge`], answered 413 (retrying cannot help).
//!
//! What the caps do not count is bounded by other limits: the pieces being mapped (a few per
//! mapping thread, each at most 128 lines and 256 KiB plus one line of `max_line_bytes`) and
//! the inflater's buffers.

use crate::metrics::{MetricsCollector, TextWriter};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The receiver's shared budget. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    held: AtomicUsize,
    peak: AtomicUsize,
    refused: AtomicU64,
}

/// Why a reservation could not grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    /// Every request together would hold more than the budget.
    Busy { limit: usize },
    /// This request's batch would be larger than its cap.
    BatchTooLarge { limit: usize },
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Self {
        MemoryBudget {
            inner: Arc::new(Inner {
                limit,
                held: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// An empty reservation whose mapped batch may hold at most `batch_cap` bytes.
    pub fn reserve(&self, batch_cap: usize) -> Reservation {
        Reservation { budget: self.clone(), held: 0, batch: 0, batch_cap }
    }

    /// Bytes held by every request now.
    pub fn held(&self) -> usize {
        self.inner.held.load(Ordering::Relaxed)
    }

    /// The most bytes held at once since the start.
    pub fn peak(&self) -> usize {
        self.inner.peak.load(Ordering::Relaxed)
    }

    fn take(&self, bytes: usize) -> Result<(), OverBudget> {
        let inner = &self.inner;
        let mut current = inner.held.load(Ordering::Relaxed);
        loop {
            let next = current.saturating_add(bytes);
            if next > inner.limit {
                inner.refused.fetch_add(1, Ordering::Relaxed);
                return Err(OverBudget::Busy { limit: inner.limit });
            }
            match inner.held.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    inner.peak.fetch_max(next, Ordering::Relaxed);
                    return Ok(());
                }
                Err(actual) => current = actual,
            }
        }
    }

    fn give_back(&self, bytes: usize) {
        self.inner.held.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl MetricsCollector for MemoryBudget {
    fn collect(&self, out: &mut TextWriter) {
        let inner = &self.inner;
        let families = [
            (
                "gatelog_receiver_buffered_bytes",
                "gauge",
                "Bytes ingest requests hold now (bodies and mapped batches).",
                self.held() as u64,
            ),
            (
                "gatelog_receiver_buffered_bytes_peak",
                "gauge",
                "The most bytes ingest requests held at once since the start.",
                self.peak() as u64,
            ),
            ("gatelog_receiver_buffered_bytes_limit", "gauge", "receiver.max_buffered_bytes.", inner.limit as u64),
            (
                "gatelog_receiver_buffer_refusals_total",
                "counter",
                "Requests answered 503 because every request together held receiver.max_buffered_bytes.",
                inner.refused.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in families {
            out.family(name, kind, help);
            out.sample(name, &[], value);
        }
    }
}

/// What one request holds. Dropping it gives everything back.
#[derive(Debug)]
pub struct Reservation {
    budget: MemoryBudget,
    held: usize,
    batch: usize,
    batch_cap: usize,
}

impl Reservation {
    /// Charges `bytes` more of the request's body.
    pub fn grow_body(&mut self, bytes: usize) -> Result<(), OverBudget> {
        self.budget.take(bytes)?;
        self.held += bytes;
        Ok(())
    }

    /// Charges `bytes` more of the request's mapped batch (checked against its cap first).
    pub fn grow_batch(&mut self, bytes: usize) -> Result<(), OverBudget> {
        let batch = self.batch.saturating_add(bytes);
        if batch > self.batch_cap {
            return Err(OverBudget::BatchTooLarge { limit: self.batch_cap });
        }
        self.budget.take(bytes)?;
        self.batch = batch;
        self.held += bytes;
        Ok(())
    }

    /// Gives back `bytes` of the mapped batch (buffers dropped or shrunk).
    pub fn shrink_batch(&mut self, bytes: usize) {
        let bytes = bytes.min(self.batch);
        self.release(bytes);
        self.batch -= bytes;
    }

    /// Gives back everything charged to the mapped batch (a body mapped again).
    pub fn release_batch(&mut self) {
        self.release(self.batch);
        self.batch = 0;
    }

    /// Gives back `bytes` the request no longer holds (its body, once mapped).
    pub fn release(&mut self, bytes: usize) {
        let bytes = bytes.min(self.held);
        self.budget.give_back(bytes);
        self.held -= bytes;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_share_the_total_and_give_back_on_drop() {
        let budget = MemoryBudget::new(100);
        let mut a = budget.reserve(1000);
        let mut b = budget.reserve(1000);
        a.grow_body(60).unwrap();
        assert_eq!(b.grow_body(50), Err(OverBudget::Busy { limit: 100 }));
        b.grow_body(40).unwrap();
        assert_eq!(budget.held(), 100);
        a.release(60);
        b.grow_batch(50).unwrap();
        drop(b);
        assert_eq!(budget.held(), 0);
        a.grow_body(100).unwrap();
        drop(a);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_batch_over_its_cap_is_too_large_whatever_the_total() {
        let budget = MemoryBudget::new(1 << 20);
        let mut r = budget.reserve(10);
        r.grow_batch(10).unwrap();
        assert_eq!(r.grow_batch(1), Err(OverBudget::BatchTooLarge { limit: 10 }));
        assert_eq!(budget.held(), 10, "a refused charge holds nothing");
    }
}
