//! Bounded, deterministic maps for per-principal, per-IP and per-pair state.
//!
//! Every map a detector keeps is a [`Keyed`]: a hash map with a fixed (unkeyed) hasher, so
//! nothing depends on a per-process random seed, and a cap. When an insert takes it past
//! its cap, the least recently seen tenth of the entries (ties broken by key) is dropped at
//! once, which keeps eviction amortised O(1) per insert and makes it a pure function of the
//! entries, so a restored checkpoint evicts exactly what the original would have.
//!
//! [`stable_hash`] is FNV-1a (64 bit): the same on every build and platform, for values that
//! are stored in checkpoints (e.g. resource and event-id hashes).

use gatelog_model::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher};

/// The hasher of every map here: SipHash with fixed keys (no per-process seed).
pub(crate) type Fixed = BuildHasherDefault<DefaultHasher>;

/// A `HashMap` with the fixed hasher.
pub(crate) type FixedMap<K, V> = HashMap<K, V, Fixed>;

/// A `HashSet` with the fixed hasher.
pub(crate) type FixedSet<K> = std::collections::HashSet<K, Fixed>;

/// Values that know when they were last touched, so the stalest can be evicted.
pub(crate) trait Recency {
    fn last_seen(&self) -> UnixMillis;
}

/// A capped map from string keys; see the module docs for its eviction rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: Deserialize<'de>"))]
pub(crate) struct Keyed<V> {
    map: FixedMap<String, V>,
}

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed { map: FixedMap::default() }
    }
}

impl<V: Recency> Keyed<V> {
    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The entry for `key`, made with `make` if absent. Inserting may first evict the
    /// stalest tenth when the map is at `cap`.
    pub(crate) fn entry(&mut self, key: &str, cap: usize, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(key) {
            if self.map.len() >= cap.max(1) {
                self.evict(cap.max(1));
            }
            self.map.insert(key.to_owned(), make());
        }
        self.map.get_mut(key).expect("present: inserted above")
    }

    /// Drops every entry `keep` says no to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        self.map.retain(|k, v| keep(k, v));
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values()
    }

    /// Keys in sorted order.
    #[cfg(test)]
    pub(crate) fn sorted_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.map.keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    /// Brings the map below `cap` by dropping the least recently seen tenth (at least one).
    fn evict(&mut self, cap: usize) {
        let target = cap - cap.div_ceil(10).max(1).min(cap);
        let excess = self.map.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let mut ages: Vec<(UnixMillis, &String)> = self.map.iter().map(|(k, v)| (v.last_seen(), k)).collect();
        ages.select_nth_unstable(excess - 1);
        let doomed: Vec<String> = ages[..excess].iter().map(|(_, k)| (*k).clone()).collect();
        for key in doomed {
            self.map.remove(&key);
        }
    }
}

/// FNV-1a, 64 bit: a hash that is the same on every build, for stored hashes.
pub(crate) fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.as_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator byte that cannot occur in UTF-8, so ["ab","c"] and ["a","bc"] differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct At(i64);
    impl Recency for At {
        fn last_seen(&self) -> UnixMillis {
            UnixMillis(self.0)
        }
    }

    #[test]
    fn never_exceeds_its_cap_and_drops_the_stalest() {
        let mut m: Keyed<At> = Keyed::default();
        for i in 0..1000 {
            m.entry(&format!("k{i:04}"), 100, || At(i));
            assert!(m.len() <= 100);
        }
        assert!(m.get("k0999").is_some(), "the newest survive");
        assert!(m.get("k0000").is_none(), "the oldest go");
    }

    #[test]
    fn eviction_ties_are_broken_by_key_so_it_is_deterministic() {
        let run = || {
            let mut m: Keyed<At> = Keyed::default();
            for i in 0..50 {
                m.entry(&format!("k{}", (i * 37) % 50), 20, || At(0));
            }
            m.sorted_keys()
        };
        assert_eq!(run(), run());
        let mut m: Keyed<At> = Keyed::default();
        for i in 0..11 {
            m.entry(&format!("k{i:02}"), 10, || At(0));
        }
        assert!(m.get("k00").is_none() && m.get("k10").is_some());
    }

    #[test]
    fn stable_hash_is_fixed_and_separates_parts() {
        assert_eq!(stable_hash(&[""]), stable_hash(&[""]));
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
        assert_eq!(stable_hash(&["a"]), 0x089b_c907_b544_c769, "pinned: stored hashes must not change");
    }
}
