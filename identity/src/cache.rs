//! A small bounded LRU map keyed by a 32-byte digest (SHA-256 of whatever identifies the
//! entry), used by the verified-token cache ([`crate::identity`]) and the SQL verdict cache
//! ([`crate::policy`]). Deterministic (BTreeMaps, no random hasher); O(log n) per operation.
//! Not synchronised: callers wrap it in a `Mutex` and keep the critical section short.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// A SHA-256 digest used as a cache key.
pub type Key = [u8; 32];

/// SHA-256 over length-prefixed parts, so that `("ab", "c")` and `("a", "bc")` differ.
pub fn key_of(parts: &[&[u8]]) -> Key {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// A bounded map that evicts the least recently used entry when full.
#[derive(Debug)]
pub struct Lru<V> {
    capacity: usize,
    tick: u64,
    entries: BTreeMap<Key, (V, u64)>,
    order: BTreeMap<u64, Key>,
}

impl<V> Lru<V> {
    /// A cache of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Lru { capacity: capacity.max(1), tick: 0, entries: BTreeMap::new(), order: BTreeMap::new() }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The entry for `key`, marked as most recently used.
    pub fn get(&mut self, key: &Key) -> Option<&V> {
        let tick = self.next_tick();
        let (_, used) = self.entries.get_mut(key)?;
        self.order.remove(used);
        *used = tick;
        self.order.insert(tick, *key);
        self.entries.get(key).map(|(v, _)| v)
    }

    /// Inserts or replaces; evicts the least recently used entries beyond the capacity.
    pub fn insert(&mut self, key: Key, value: V) {
        let tick = self.next_tick();
        if let Some((_, old)) = self.entries.insert(key, (value, tick)) {
            self.order.remove(&old);
        }
        self.order.insert(tick, key);
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            self.entries.remove(&oldest);
        }
    }

    pub fn remove(&mut self, key: &Key) -> Option<V> {
        let (v, used) = self.entries.remove(key)?;
        self.order.remove(&used);
        Some(v)
    }

    /// Drops every entry `keep` refuses.
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let order = &mut self.order;
        self.entries.retain(|_, (v, used)| {
            let k = keep(v);
            if !k {
                order.remove(used);
            }
            k
        });
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u8) -> Key {
        key_of(&[&[n]])
    }

    #[test]
    fn bounded_and_evicts_least_recently_used() {
        let mut c = Lru::new(3);
        for n in 0..3 {
            c.insert(k(n), n);
        }
        assert_eq!(c.get(&k(0)), Some(&0)); // 0 is now the most recent; 1 the oldest
        c.insert(k(3), 3);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&k(1)), None);
        assert_eq!(c.get(&k(0)), Some(&0));
        assert_eq!(c.get(&k(2)), Some(&2));
        assert_eq!(c.get(&k(3)), Some(&3));
        for n in 10..100 {
            c.insert(k(n), n);
            assert!(c.len() <= 3);
        }
        assert_eq!(c.order.len(), c.entries.len());
    }

    #[test]
    fn replace_remove_retain_clear() {
        let mut c = Lru::new(4);
        c.insert(k(1), 1);
        c.insert(k(1), 10);
        assert_eq!((c.len(), c.order.len()), (1, 1));
        assert_eq!(c.get(&k(1)), Some(&10));
        c.insert(k(2), 2);
        c.insert(k(3), 3);
        c.retain(|v| *v != 2);
        assert_eq!((c.len(), c.order.len()), (2, 2));
        assert_eq!(c.remove(&k(3)), Some(3));
        assert_eq!(c.order.len(), 1);
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn keys_are_length_prefixed() {
        assert_ne!(key_of(&[b"ab", b"c"]), key_of(&[b"a", b"bc"]));
        assert_eq!(key_of(&[b"ab", b"c"]), key_of(&[b"ab", b"c"]));
    }
}
