//! Stable event ids.
//!
//! An id is derived from what the source says about the event, never from when or how often
//! it arrived, so a batch that Logpush retries maps to the same ids and storage can
//! deduplicate. Ids are the first 128 bits of a domain-separated SHA-256 over the parts,
//! as 32 lower-case hex digits.
//!
//! Conventions used by the mappers:
//! - Logpush records with a Ray ID: `[dataset, ray_id, timestamp, …disambiguators]`.
//! - A decision logged by a proxy (Worker `access_decision` or gatelog's own proxy):
//!   `["decision", request_id]`, with no dataset, so Tail and `workers_trace_events`
//!   copies of one invocation get one id.
//! - Anything without a natural key: `[dataset, "sha256", sha256(line)]`.

use sha2::{Digest, Sha256};

/// Namespace for stable event ids.
#[derive(Debug, Clone, Copy)]
pub struct EventId;

const DOMAIN: &[u8] = b"gatelog/event-id/v1";

impl EventId {
    /// Derives an id from ordered parts. Parts are length-prefixed, so `["ab","c"]` and
    /// `["a","bc"]` differ.
    pub fn derive(parts: &[&str]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        let digest = hasher.finalize();
        hex::encode(&digest[..16])
    }

    /// The id of a decision a proxy logged under `request_id`, whichever path brought it.
    pub fn for_decision(request_id: &str) -> String {
        Self::derive(&["decision", request_id])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_stable_and_length_prefixed() {
        let a = EventId::derive(&["http_requests", "8f2c1a9b3d4e5f60", "1740990713712549374"]);
        assert_eq!(a, EventId::derive(&["http_requests", "8f2c1a9b3d4e5f60", "1740990713712549374"]));
        assert_eq!(a.len(), 32);
        assert_ne!(EventId::derive(&["ab", "c"]), EventId::derive(&["a", "bc"]));
    }

    #[test]
    fn decision_ids_ignore_the_path() {
        assert_eq!(EventId::for_decision("r1"), EventId::derive(&["decision", "r1"]));
        assert_ne!(EventId::for_decision("r1"), EventId::for_decision("r2"));
    }
}
