//! Per-principal, per-role request rate (token bucket refilled per minute) and concurrency
//! limits. Time comes from the injected [`Clock`], so tests own it.

use gatelog_model::Clock;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type Key = (String, String);

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// Rate and concurrency state for every (role, principal).
#[derive(Debug)]
pub struct Limiter {
    clock: Arc<dyn Clock>,
    buckets: Mutex<BTreeMap<Key, Bucket>>,
    running: Arc<Mutex<BTreeMap<Key, u32>>>,
}

/// Held while a query runs; releases its concurrency slot on drop.
#[derive(Debug)]
pub struct Slot {
    key: Key,
    running: Arc<Mutex<BTreeMap<Key, u32>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = running.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.key);
            }
        }
    }
}

impl Limiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Limiter { clock, buckets: Mutex::new(BTreeMap::new()), running: Arc::new(Mutex::new(BTreeMap::new())) }
    }

    /// Takes one request from the bucket; false when `per_minute` is exhausted.
    pub fn allow_request(&self, role: &str, principal: &str, per_minute: Option<u32>) -> bool {
        let Some(limit) = per_minute else { return true };
        let now = self.clock.now().0;
        let capacity = f64::from(limit);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Forget idle principals rather than grow without bound.
            buckets.retain(|_, b| now - b.at_ms < 60_000);
        }
        let bucket =
            buckets.entry((role.to_owned(), principal.to_owned())).or_insert(Bucket { tokens: capacity, at_ms: now });
        let elapsed = (now - bucket.at_ms).max(0) as f64;
        bucket.tokens = (bucket.tokens + elapsed * capacity / 60_000.0).min(capacity);
        bucket.at_ms = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes a concurrency slot; `None` when `max` queries already run.
    pub fn acquire(&self, role: &str, principal: &str, max: Option<u32>) -> Option<Slot> {
        let key = (role.to_owned(), principal.to_owned());
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let n = running.entry(key.clone()).or_insert(0);
        if max.is_some_and(|m| *n >= m) {
            return None;
        }
        *n += 1;
        Some(Slot { key, running: self.running.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_model::{FixedClock, UnixMillis};

    #[test]
    fn rate_refills_with_the_clock() {
        let clock = Arc::new(FixedClock::new(UnixMillis(1_000_000)));
        let l = Limiter::new(clock.clone());
        assert!(l.allow_request("r", "a", Some(2)));
        assert!(l.allow_request("r", "a", Some(2)));
        assert!(!l.allow_request("r", "a", Some(2)));
        assert!(l.allow_request("r", "b", Some(2)), "per principal");
        clock.advance_ms(30_000);
        assert!(l.allow_request("r", "a", Some(2)));
        assert!(!l.allow_request("r", "a", Some(2)));
        assert!(l.allow_request("r", "a", None));
    }

    #[test]
    fn concurrency_slots_release_on_drop() {
        let l = Limiter::new(Arc::new(FixedClock::default()));
        let a = l.acquire("r", "p", Some(1)).unwrap();
        assert!(l.acquire("r", "p", Some(1)).is_none());
        drop(a);
        assert!(l.acquire("r", "p", Some(1)).is_some());
    }
}
