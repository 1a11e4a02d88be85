//! [`Dataset`]: which Cloudflare stream a line belongs to, from a name, a file path or the
//! shape of the record itself.
//!
//! Logpush records carry no dataset name (one job = one dataset), so the receiver routes on
//! the URL path, a backfill routes on the file path, and [`Dataset::sniff`] is the fallback
//! for a file whose name says nothing.

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::path::Path;

/// A source dataset gatelog knows how to map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dataset {
    HttpRequests,
    FirewallEvents,
    AccessRequests,
    AuditLogs,
    AuditLogsV2,
    GatewayHttp,
    WorkersTraceEvents,
    /// Tail Worker deliveries: one JSON array of camelCase `TraceItem`s per line.
    Tail,
}

impl Dataset {
    /// Every dataset, in declaration order.
    pub const ALL: [Dataset; 8] = [
        Dataset::HttpRequests,
        Dataset::FirewallEvents,
        Dataset::AccessRequests,
        Dataset::AuditLogs,
        Dataset::AuditLogsV2,
        Dataset::GatewayHttp,
        Dataset::WorkersTraceEvents,
        Dataset::Tail,
    ];

    /// The snake_case name: Cloudflare's dataset name, or `tail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::HttpRequests => "http_requests",
            Dataset::FirewallEvents => "firewall_events",
            Dataset::AccessRequests => "access_requests",
            Dataset::AuditLogs => "audit_logs",
            Dataset::AuditLogsV2 => "audit_logs_v2",
            Dataset::GatewayHttp => "gateway_http",
            Dataset::WorkersTraceEvents => "workers_trace_events",
            Dataset::Tail => "tail",
        }
    }

    /// Parses the snake_case name (exactly; see [`Dataset::from_file_name`] for paths).
    pub fn parse(name: &str) -> Option<Dataset> {
        Dataset::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// Whether lines of this dataset are Logpush records (one JSON object per line).
    pub fn is_logpush(self) -> bool {
        self != Dataset::Tail
    }

    /// The dataset a file path names, looking at the file name first and then at each parent
    /// directory, nearest first. A name counts only as a whole token (bounded by the start,
    /// the end or a character that is not a letter or digit; `-` is read as `_`), and the
    /// longest match wins, so `audit_logs_v2_….gz` is `audit_logs_v2`, not `audit_logs`, and
    /// `retail.ndjson` is not `tail`.
    pub fn from_file_name(path: &Path) -> Option<Dataset> {
        path.components().rev().find_map(|c| {
            let text = c.as_os_str().to_string_lossy().to_ascii_lowercase().replace('-', "_");
            longest_token_match(&text)
        })
    }

    /// Guesses the dataset from one line's shape (its top-level keys), for files whose path
    /// names none. `None` when the line is not a JSON object or array, or says too little.
    pub fn sniff(line: &str) -> Option<Dataset> {
        let keys: TopKeys = serde_json::from_str(line.trim_start_matches('\u{feff}')).ok()?;
        let has = |k: &str| keys.keys.iter().any(|x| x == k);
        if keys.array {
            return (has("eventTimestamp") || has("scriptName") || has("logs")).then_some(Dataset::Tail);
        }
        if has("Kind") && (has("RuleID") || has("MatchIndex")) {
            Some(Dataset::FirewallEvents)
        } else if has("EdgeStartTimestamp") || (has("ClientRequestHost") && has("EdgeResponseStatus")) {
            Some(Dataset::HttpRequests)
        } else if has("AppDomain") || (has("Allowed") && has("Email")) {
            Some(Dataset::AccessRequests)
        } else if has("AuditLogID") || has("ActionTimestamp") {
            Some(Dataset::AuditLogsV2)
        } else if has("ActorEmail") && has("When") {
            Some(Dataset::AuditLogs)
        } else if has("PolicyID") || (has("SourceIP") && has("HTTPHost")) {
            Some(Dataset::GatewayHttp)
        } else if has("EventTimestampMs") || has("ScriptName") {
            Some(Dataset::WorkersTraceEvents)
        } else {
            None
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn longest_token_match(text: &str) -> Option<Dataset> {
    let bytes = text.as_bytes();
    let bounded = |i: usize| i >= bytes.len() || !bytes[i].is_ascii_alphanumeric();
    let mut best: Option<Dataset> = None;
    for d in Dataset::ALL {
        let name = d.as_str();
        let found = text
            .match_indices(name)
            .any(|(start, _)| (start == 0 || bounded(start - 1)) && bounded(start + name.len()));
        if found && best.is_none_or(|b| name.len() > b.as_str().len()) {
            best = Some(d);
        }
    }
    best
}

/// The top-level keys of an object, or of the first object in an array.
#[derive(Debug, Default)]
struct TopKeys {
    array: bool,
    keys: Vec<String>,
}

impl<'de> Deserialize<'de> for TopKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeysOf;
        impl<'de> Visitor<'de> for KeysOf {
            type Value = TopKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object or array")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(TopKeys { array: false, keys })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopKeys, A::Error> {
                let first = seq.next_element::<FirstObject>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TopKeys { array: true, keys: first.map(|f| f.0).unwrap_or_default() })
            }
        }
        d.deserialize_any(KeysOf)
    }
}

struct FirstObject(Vec<String>);

impl<'de> Deserialize<'de> for FirstObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let keys = TopKeys::deserialize(d)?;
        if keys.array {
            return Err(de::Error::custom("nested array"));
        }
        Ok(FirstObject(keys.keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in Dataset::ALL {
            assert_eq!(Dataset::parse(d.as_str()), Some(d));
            assert_eq!(d.to_string(), d.as_str());
        }
        assert_eq!(Dataset::parse("HTTP_REQUESTS"), None);
    }

    #[test]
    fn file_names() {
        let cases = [
            ("http_requests_5000.ndjson.gz", Some(Dataset::HttpRequests)),
            ("/r2/logs/audit_logs_v2/20250303/x.log.gz", Some(Dataset::AuditLogsV2)),
            ("audit_logs.ndjson", Some(Dataset::AuditLogs)),
            (
                "/bucket/firewall_events/20250303/20250303T000000Z_20250303T000100Z_abc.log.gz",
                Some(Dataset::FirewallEvents),
            ),
            ("tail.ndjson", Some(Dataset::Tail)),
            ("retail.ndjson", None),
            ("workers_trace_events_clean.ndjson", Some(Dataset::WorkersTraceEvents)),
            ("/data/gateway-http/2025.gz", Some(Dataset::GatewayHttp)),
            // the file name beats its directories
            ("/logs/http_requests/access_requests.ndjson", Some(Dataset::AccessRequests)),
            ("/tmp/x.ndjson", None),
        ];
        for (path, want) in cases {
            assert_eq!(Dataset::from_file_name(Path::new(path)), want, "{path}");
        }
    }
}
