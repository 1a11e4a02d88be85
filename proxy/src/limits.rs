//! Request rates (token buckets refilled per minute) and concurrency limits:
//! - per source address, before anything else ([`Limiter::allow_source`]): every request
//!   counts, authenticated or not, so a flood of bad tokens or unrouted paths is cut
//!   before it costs a signature check or a decision's worth of work downstream;
//! - per role and principal ([`Limiter::allow_request`], [`Limiter::acquire`]).
//!
//! A refusal says when to come back ([`RetryAfter`], the `Retry-After` header). Bucket maps
//! are bounded: beyond [`MAX_BUCKETS`] keys, full (idle) buckets are forgotten first, then
//! the least recently used. Time comes from the injected [`Clock`], so tests own it.

use gatelog_model::Clock;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Most keys a bucket map keeps.
pub const MAX_BUCKETS: usize = 100_000;

type Key = (String, String);

/// Whole seconds until the next request would be allowed (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// Token buckets by key, bounded.
#[derive(Debug)]
struct Buckets<K: Ord + Clone> {
    map: BTreeMap<K, Bucket>,
}

impl<K: Ord + Clone> Buckets<K> {
    fn new() -> Self {
        Buckets { map: BTreeMap::new() }
    }

    fn take(&mut self, key: &K, per_minute: u32, now: i64) -> Result<(), RetryAfter> {
        let capacity = f64::from(per_minute);
        let per_ms = capacity / 60_000.0;
        if !self.map.contains_key(key) && self.map.len() >= MAX_BUCKETS {
            self.evict(now, per_ms, capacity);
        }
        let bucket = self.map.entry(key.clone()).or_insert(Bucket { tokens: capacity, at_ms: now });
        let elapsed = (now - bucket.at_ms).max(0) as f64;
        bucket.tokens = (bucket.tokens + elapsed * per_ms).min(capacity);
        bucket.at_ms = bucket.at_ms.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait_ms = (1.0 - bucket.tokens) / per_ms;
        Err(RetryAfter(((wait_ms / 1000.0).ceil() as u64).max(1)))
    }

    /// Forgets buckets that have refilled; if that is not enough, the oldest half.
    fn evict(&mut self, now: i64, per_ms: f64, capacity: f64) {
        self.map.retain(|_, b| b.tokens + ((now - b.at_ms).max(0) as f64) * per_ms < capacity);
        if self.map.len() >= MAX_BUCKETS {
            let mut ages: Vec<i64> = self.map.values().map(|b| b.at_ms).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            self.map.retain(|_, b| b.at_ms > cutoff);
        }
    }
}

/// Rate and concurrency state.
#[derive(Debug)]
pub struct Limiter {
    clock: Arc<dyn Clock>,
    principals: Mutex<Buckets<Key>>,
    sources: Mutex<Buckets<IpAddr>>,
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

/// The bucket key of a source: the address, or its /64 for IPv6 (one host's share).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match crate::net::canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

impl Limiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Limiter {
            clock,
            principals: Mutex::new(Buckets::new()),
            sources: Mutex::new(Buckets::new()),
            running: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// Takes one request of `source`'s budget (`per_minute` 0: unlimited).
    pub fn allow_source(&self, source: IpAddr, per_minute: u32) -> Result<(), RetryAfter> {
        if per_minute == 0 {
            return Ok(());
        }
        let now = self.clock.now().0;
        self.sources.lock().unwrap_or_else(|p| p.into_inner()).take(&source_key(source), per_minute, now)
    }

    /// Takes one request from the (role, principal) bucket.
    pub fn allow_request(&self, role: &str, principal: &str, per_minute: Option<u32>) -> Result<(), RetryAfter> {
        let Some(limit) = per_minute else { return Ok(()) };
        let now = self.clock.now().0;
        let key = (role.to_owned(), principal.to_owned());
        self.principals.lock().unwrap_or_else(|p| p.into_inner()).take(&key, limit, now)
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

    /// Queries running for (role, principal), for tests and diagnostics.
    pub fn running(&self, role: &str, principal: &str) -> u32 {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.get(&(role.to_owned(), principal.to_owned())).copied().unwrap_or(0)
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
        assert!(l.allow_request("r", "a", Some(2)).is_ok());
        assert!(l.allow_request("r", "a", Some(2)).is_ok());
        assert_eq!(l.allow_request("r", "a", Some(2)), Err(RetryAfter(30)));
        assert!(l.allow_request("r", "b", Some(2)).is_ok(), "per principal");
        clock.advance_ms(30_000);
        assert!(l.allow_request("r", "a", Some(2)).is_ok());
        assert!(l.allow_request("r", "a", Some(2)).is_err());
        assert!(l.allow_request("r", "a", None).is_ok());
    }

    #[test]
    fn sources_share_a_bucket_per_address_and_ipv6_64() {
        let clock = Arc::new(FixedClock::new(UnixMillis(5_000)));
        let l = Limiter::new(clock.clone());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..120 {
            l.allow_source(a, 120).unwrap();
        }
        assert_eq!(l.allow_source(a, 120), Err(RetryAfter(1)));
        assert_eq!(l.allow_source("::ffff:192.0.2.1".parse().unwrap(), 120), Err(RetryAfter(1)), "mapped v4");
        assert!(l.allow_source("192.0.2.2".parse().unwrap(), 120).is_ok());
        assert!(l.allow_source(a, 0).is_ok(), "0 is off");
        let v6: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        for _ in 0..3 {
            l.allow_source(v6, 3).unwrap();
        }
        assert!(l.allow_source("2001:db8:1:2:ffff::9".parse().unwrap(), 3).is_err(), "same /64");
        assert!(l.allow_source("2001:db8:1:3::1".parse().unwrap(), 3).is_ok());
        clock.advance_ms(500);
        assert!(l.allow_source(a, 120).is_ok(), "2 per second refill");
    }

    #[test]
    fn bucket_maps_are_bounded() {
        let mut b: Buckets<u32> = Buckets::new();
        for k in 0..(MAX_BUCKETS as u32 + 10) {
            let _ = b.take(&k, 10, i64::from(k));
        }
        assert!(b.map.len() <= MAX_BUCKETS);
    }

    #[test]
    fn concurrency_slots_release_on_drop() {
        let l = Limiter::new(Arc::new(FixedClock::default()));
        let a = l.acquire("r", "p", Some(1)).unwrap();
        assert!(l.acquire("r", "p", Some(1)).is_none());
        assert_eq!(l.running("r", "p"), 1);
        drop(a);
        assert!(l.acquire("r", "p", Some(1)).is_some());
    }
}
