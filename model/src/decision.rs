//! [`AccessDecision`]: who did what, allowed or denied, why, and what it cost.
//!
//! Field names are a contract for SQL, search and reports (PRODUCT.md §2): fields may be
//! added, never renamed. Every field has a default so that partial JSON from the proxy
//! (`POST /v1/decisions`) deserialises, and the enums serialise in lower case.

use crate::UnixMillis;
use serde::{Deserialize, Serialize};

/// Where a decision entered gatelog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A Cloudflare Logpush batch (HTTP destination or a backfilled bucket file).
    #[default]
    Logpush,
    /// A Tail Worker forwarding `TraceItem`s.
    Tail,
    /// gatelog's own proxy.
    Proxy,
    /// gatelog itself: a read of evidence (search, alerts) through its HTTP routes, allowed
    /// or denied, recorded as its own audit trail. Stored apart from what gatelog watches
    /// (ClickHouse `access_log`, not `decisions`; not indexed, not fed to detection).
    Gatelog,
}

/// The dataset of gatelog's own audit records ([`Source::Gatelog`]).
pub const AUDIT_DATASET: &str = "gatelog";

/// The outcome of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
    Challenge,
    /// Observed and recorded, neither allowed nor denied by a policy (e.g. a firewall `log` rule).
    #[default]
    Log,
    /// The request failed for a reason other than policy (e.g. an upstream timeout).
    Error,
}

/// Who the principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalType {
    User,
    Service,
    #[default]
    Anonymous,
}

str_enum!(Source { Logpush => "logpush", Tail => "tail", Proxy => "proxy", Gatelog => "gatelog" });
str_enum!(Decision { Allow => "allow", Deny => "deny", Challenge => "challenge", Log => "log", Error => "error" });
str_enum!(PrincipalType { User => "user", Service => "service", Anonymous => "anonymous" });

/// The default tenant for single-tenant deployments.
pub const DEFAULT_TENANT: &str = "default";

fn default_tenant() -> String {
    DEFAULT_TENANT.to_owned()
}

/// One access decision, the canonical row of the `decisions` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AccessDecision {
    /// Stable id derived from the source (see [`crate::EventId`]).
    pub event_id: String,
    /// When the request happened, UTC, millisecond precision.
    pub time: UnixMillis,
    /// When gatelog received it.
    pub received_at: UnixMillis,
    pub source: Source,
    /// The source dataset: `http_requests`, `access_requests`, `workers_trace_events`, `proxy`, …
    pub dataset: String,
    pub decision: Decision,
    /// E-mail, subject or service-token name; empty when anonymous.
    pub principal: String,
    pub principal_type: PrincipalType,
    pub roles: Vec<String>,
    pub client_ip: String,
    /// ISO 3166 alpha-2, upper case; empty when unknown.
    pub country: String,
    /// Autonomous system number; 0 when unknown.
    pub asn: u32,
    pub user_agent: String,
    /// What was accessed: `clickhouse:analytics.events`, `https://bi.example.com/dashboards/12`.
    pub resource: String,
    /// What was done: `select`, `insert`, `GET`, `login`, `update`, …
    pub action: String,
    /// The rule that decided.
    pub policy: String,
    /// Why, in words.
    pub reason: String,
    /// SQL with literals masked; the raw text stays in the raw record.
    pub query: String,
    /// Hash of the normalised query (see [`crate::query::fingerprint`]); empty without a query.
    pub query_fingerprint: String,
    pub rows_read: u64,
    pub bytes_read: u64,
    pub result_rows: u64,
    pub duration_ms: u64,
    /// HTTP status returned to the client; 0 when there was none.
    pub status: u16,
    pub ray_id: String,
    pub request_id: String,
    pub zone: String,
    pub host: String,
    /// URL path, when the resource is an HTTP one.
    pub path: String,
    /// How the principal authenticated (`cf_access_jwt`, `oidc`, `service_token`, …).
    pub auth_method: String,
    /// Error text from the upstream, if the request failed.
    pub error: String,
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Position in the spool; used for exactly-once delivery to sinks. 0 outside the spool.
    pub spool_seq: u64,
    /// SHA-256 (hex) of the raw line this decision was mapped from; joins to `raw_records`.
    pub raw_sha256: String,
}

impl AccessDecision {
    /// A decision with the contract defaults (`tenant = "default"`), to be filled in by a mapper.
    pub fn new(event_id: String, time: UnixMillis, dataset: &str, source: Source) -> Self {
        AccessDecision {
            event_id,
            time,
            source,
            dataset: dataset.to_owned(),
            tenant: default_tenant(),
            ..AccessDecision::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_json_fills_defaults() {
        let d: AccessDecision = serde_json::from_str(
            r#"{"event_id":"e1","time":"2025-03-03T00:00:00.000Z","decision":"deny","principal":"a@example.com"}"#,
        )
        .unwrap();
        assert_eq!(d.decision, Decision::Deny);
        assert_eq!(d.tenant, "default");
        assert_eq!(d.principal_type, PrincipalType::Anonymous);
        assert_eq!(d.time.0, 1_740_960_000_000);
    }

    #[test]
    fn round_trips_through_json() {
        let mut d = AccessDecision::new("e1".into(), UnixMillis(1_740_960_000_123), "proxy", Source::Proxy);
        d.roles = vec!["analyst".into()];
        d.decision = Decision::Allow;
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains(r#""source":"proxy""#));
        assert_eq!(serde_json::from_str::<AccessDecision>(&json).unwrap(), d);
    }

    #[test]
    fn enum_names_match_serde() {
        for d in Decision::ALL {
            assert_eq!(serde_json::to_string(d).unwrap(), format!("\"{}\"", d.as_str()));
            assert_eq!(Decision::parse(d.as_str()), Some(*d));
        }
        for s in Source::ALL {
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        for p in PrincipalType::ALL {
            assert_eq!(serde_json::to_string(p).unwrap(), format!("\"{}\"", p.as_str()));
        }
    }
}
