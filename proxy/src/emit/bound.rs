//! Bounds on every field of an emitted decision, so that a client cannot make one decision
//! (or its log line, spill record and stored row) as large as it likes: a 60 KB
//! `User-Agent`, a path of a thousand segments, a token whose claims are a novel.
//!
//! A value over its bound keeps its first bytes (cut at a character boundary) and ends
//! with [`MARKER`] and the number of bytes cut: `Mozilla/5.0 …[truncated 61440 bytes]`,
//! the whole within the bound.

use gatelog_model::AccessDecision;

/// What ends a truncated value (followed by the number of bytes cut and `]`).
pub const MARKER: &str = "…[truncated ";

/// Each text field of a decision with its bound in bytes (`query`'s is configured).
fn fields(d: &mut AccessDecision, max_query_bytes: usize) -> [(&mut String, usize); 21] {
    [
        (&mut d.event_id, 128),
        (&mut d.dataset, 64),
        (&mut d.principal, 512),
        (&mut d.client_ip, 64),
        (&mut d.country, 64),
        (&mut d.user_agent, 512),
        (&mut d.resource, 2048),
        (&mut d.action, 64),
        (&mut d.policy, 256),
        (&mut d.reason, 2048),
        (&mut d.query, max_query_bytes),
        (&mut d.query_fingerprint, 128),
        (&mut d.ray_id, 128),
        (&mut d.request_id, 128),
        (&mut d.zone, 256),
        (&mut d.host, 256),
        (&mut d.path, 2048),
        (&mut d.auth_method, 64),
        (&mut d.error, 2048),
        (&mut d.tenant, 128),
        (&mut d.raw_sha256, 128),
    ]
}

/// Most roles kept, each within [`ROLE_BYTES`].
pub const MAX_ROLES: usize = 64;
pub const ROLE_BYTES: usize = 256;

/// Cuts `value` to at most `max` bytes with the marker; returns whether it cut.
pub fn truncate(value: &mut String, max: usize) -> bool {
    if value.len() <= max {
        return false;
    }
    let marker_len = |cut: usize| MARKER.len() + cut.to_string().len() + " bytes]".len();
    // The marker's own length depends on the number cut; two rounds settle it.
    let mut keep = max.saturating_sub(marker_len(value.len()));
    keep = max.saturating_sub(marker_len(value.len() - keep)).min(keep);
    while keep > 0 && !value.is_char_boundary(keep) {
        keep -= 1;
    }
    let cut = value.len() - keep;
    value.truncate(keep);
    value.push_str(MARKER);
    value.push_str(&cut.to_string());
    value.push_str(" bytes]");
    true
}

/// Applies every bound to `d`; returns how many values were cut.
pub fn bound(d: &mut AccessDecision, max_query_bytes: usize) -> u64 {
    let mut cut = 0;
    for (value, max) in fields(d, max_query_bytes) {
        cut += u64::from(truncate(value, max));
    }
    if d.roles.len() > MAX_ROLES {
        d.roles.truncate(MAX_ROLES);
        cut += 1;
    }
    for r in &mut d.roles {
        cut += u64::from(truncate(r, ROLE_BYTES));
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_model::{Source, UnixMillis};

    #[test]
    fn truncation_stays_within_the_bound_with_a_marker() {
        for (len, max) in [(60_000, 512), (514, 512), (100, 40), (10_000_000, 2048), (30, 25)] {
            let mut v = "é".repeat(len / 2);
            let before = v.len();
            assert!(truncate(&mut v, max));
            assert!(v.len() <= max, "{len} {max}: {}", v.len());
            assert!(v.contains(MARKER), "{v}");
            let kept = v.split(MARKER).next().unwrap().len();
            let said: usize = v.rsplit(MARKER).next().unwrap().trim_end_matches(" bytes]").parse().unwrap();
            assert_eq!(kept + said, before, "the marker says how much was cut");
        }
        let mut short = "curl/8".to_owned();
        assert!(!truncate(&mut short, 512));
        assert_eq!(short, "curl/8");
    }

    #[test]
    fn every_text_field_is_bounded() {
        let mut d = AccessDecision::new("e".into(), UnixMillis(0), "proxy", Source::Proxy);
        let huge = "x".repeat(100_000);
        for (f, _) in fields(&mut d, 0) {
            *f = huge.clone();
        }
        d.roles = vec![huge.clone(); 1000];
        let cut = bound(&mut d, 4096);
        assert_eq!(cut, 21 + 1 + 64);
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.len() < 64 * 1024, "{}", json.len());
        assert!(d.query.len() <= 4096 && d.query.contains(MARKER));
    }
}
