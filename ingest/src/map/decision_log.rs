//! The project's `access_decision` log line (formats doc §4), as the IAP Worker logs it with
//! `console.log`: either an object argument, or a JSON string of one (older builds).
//!
//! Each `Logs[]`/`logs[]` entry of a Worker event is scanned; arguments that are (or encode)
//! an object with `"type":"access_decision"` become decisions. A broken one (not JSON, cut
//! by Logpush's 16 KiB budget, missing `request_id`) is skipped with a warning; the line
//! itself stays usable.

use super::fields::{Int, Str, StrList};
use super::support::{Cx, country};
use gatelog_model::{AccessDecision, Decision, EventId, PrincipalType, UnixMillis, query};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// Logpush's marker for log text cut at the 16 KiB budget.
pub(crate) const TRUNCATION_MARKER: &str = "<<<Logpush:";

/// One console call (`Logs[]` in Logpush, `logs[]` in Tail), keys matched case-insensitively.
#[derive(Debug, Default)]
pub(crate) struct LogEntry<'a> {
    /// The console arguments, as raw JSON.
    pub(crate) message: Vec<&'a RawValue>,
    /// Epoch ms (`TimestampMs` / `timestamp`).
    pub(crate) timestamp: Int,
}

impl<'de: 'a, 'a> Deserialize<'de> for LogEntry<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = LogEntry<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a log entry object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LogEntry<'a>, A::Error> {
                let mut entry = LogEntry::default();
                while let Some(key) = map.next_key::<Str<'_>>()? {
                    let key = key.as_str();
                    if key.eq_ignore_ascii_case("message") {
                        let raw: &'a RawValue = map.next_value()?;
                        entry.message = if raw.get().starts_with('[') {
                            serde_json::from_str::<Vec<&'a RawValue>>(raw.get()).map_err(de::Error::custom)?
                        } else {
                            vec![raw]
                        };
                    } else if key.eq_ignore_ascii_case("timestampms") || key.eq_ignore_ascii_case("timestamp") {
                        entry.timestamp = map.next_value()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(entry)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The fields of an `access_decision` (unknown ones ignored, wrong types read as absent).
#[derive(Debug, Deserialize)]
struct DecisionLog<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow, default)]
    ts: Str<'a>,
    #[serde(borrow, default)]
    request_id: Str<'a>,
    #[serde(borrow, default)]
    ray_id: Str<'a>,
    #[serde(borrow, default)]
    decision: Str<'a>,
    #[serde(borrow, default)]
    principal: Str<'a>,
    #[serde(borrow, default)]
    principal_type: Str<'a>,
    #[serde(borrow, default)]
    roles: StrList<'a>,
    #[serde(borrow, default)]
    auth_method: Str<'a>,
    #[serde(borrow, default)]
    client_ip: Str<'a>,
    #[serde(borrow, default)]
    client_country: Str<'a>,
    #[serde(default)]
    client_asn: Int,
    #[serde(borrow, default)]
    user_agent: Str<'a>,
    #[serde(borrow, default)]
    resource: Str<'a>,
    #[serde(borrow, default)]
    action: Str<'a>,
    #[serde(borrow, default)]
    query: Str<'a>,
    #[serde(borrow, default)]
    policy: Str<'a>,
    #[serde(borrow, default)]
    reason: Str<'a>,
    #[serde(default)]
    status: Int,
    #[serde(default)]
    rows_read: Int,
    #[serde(default)]
    bytes_read: Int,
    #[serde(default)]
    result_rows: Int,
    #[serde(default)]
    duration_ms: Int,
    #[serde(borrow, default)]
    error: Str<'a>,
}

/// What the invocation around a log says, for fields the decision may omit.
#[derive(Debug, Default)]
pub(crate) struct Invocation<'a> {
    pub(crate) host: &'a str,
    pub(crate) path: &'a str,
    pub(crate) ray_id: &'a str,
    pub(crate) time: Option<UnixMillis>,
}

/// Collects decisions and warnings from the log entries of one invocation.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pub(crate) decisions: Vec<AccessDecision>,
    pub(crate) warnings: Vec<String>,
    truncation_noted: bool,
}

impl Collector {
    /// Scans `logs` (named `label`, e.g. `Logs` or `[1].logs`, in warnings).
    pub(crate) fn scan(&mut self, logs: &[LogEntry<'_>], label: &str, inv: &Invocation<'_>, cx: &Cx<'_>) {
        for (i, log) in logs.iter().enumerate() {
            for (j, arg) in log.message.iter().enumerate() {
                let at = || format!("{label}[{i}].message[{j}]");
                let text = arg.get();
                if !self.truncation_noted && text.contains(TRUNCATION_MARKER) {
                    self.truncation_noted = true;
                    self.warnings
                        .push(format!("{}: logs were truncated by Logpush; access decisions may be missing", at()));
                }
                let log_time = log.timestamp.0.and_then(|ms| i64::try_from(ms).ok()).map(UnixMillis);
                if text.starts_with('{') {
                    if text.contains("access_decision") {
                        self.parse(text, &at(), log_time, inv, cx);
                    }
                } else if text.starts_with('"')
                    && text.contains("access_decision")
                    && let Ok(s) = serde_json::from_str::<Str<'_>>(text)
                    && s.as_str().trim_start().starts_with('{')
                {
                    self.parse(s.as_str(), &at(), log_time, inv, cx);
                }
            }
        }
    }

    fn parse(&mut self, json: &str, at: &str, log_time: Option<UnixMillis>, inv: &Invocation<'_>, cx: &Cx<'_>) {
        let log = match serde_json::from_str::<DecisionLog<'_>>(json) {
            Ok(log) => log,
            Err(e) => {
                let why = if json.contains(TRUNCATION_MARKER) || e.is_eof() {
                    "is cut short (truncated by Logpush?)"
                } else {
                    "is not valid JSON"
                };
                self.warnings.push(format!("{at}: access_decision {why}: {e}"));
                return;
            }
        };
        if log.kind.as_str() != "access_decision" {
            return;
        }
        let request_id = log.request_id.as_str().trim();
        if request_id.is_empty() {
            self.warnings.push(format!("{at}: access_decision without request_id skipped"));
            return;
        }
        let event_id = EventId::for_decision(request_id);
        if self.decisions.iter().any(|d| d.event_id == event_id) {
            self.warnings.push(format!("{at}: access_decision {request_id} repeated in the same line; kept the first"));
            return;
        }
        let time = match log.ts.non_empty().map(UnixMillis::parse_str) {
            Some(Ok(t)) => t,
            parsed => {
                if let Some(Err(e)) = parsed {
                    self.warnings.push(format!("{at}: access_decision ts: {e}; used the log's timestamp"));
                }
                log_time.or(inv.time).unwrap_or(cx.received_at)
            }
        };
        let mut d = cx.decision(event_id, time);
        let decision = log.decision.as_str().trim().to_ascii_lowercase();
        d.decision = Decision::parse(&decision).unwrap_or_else(|| {
            self.warnings.push(format!("{at}: access_decision has unknown decision {decision:?}; recorded as log"));
            Decision::Log
        });
        d.principal = log.principal.as_str().trim().to_owned();
        d.principal_type = principal_type(&d.principal, log.principal_type.as_str());
        d.roles = log.roles.non_empty().map(str::to_owned).collect();
        d.auth_method = log.auth_method.to_owned_string();
        d.client_ip = log.client_ip.to_owned_string();
        d.country = country(log.client_country.as_str());
        d.asn = log.client_asn.asn();
        d.user_agent = log.user_agent.to_owned_string();
        d.resource = log.resource.to_owned_string();
        d.action = log.action.to_owned_string();
        let sql = log.query.as_str();
        if !sql.is_empty() {
            d.query = query::mask(sql);
            d.query_fingerprint = query::fingerprint(sql);
        }
        d.policy = log.policy.to_owned_string();
        d.reason = log.reason.to_owned_string();
        d.status = log.status.status();
        d.rows_read = log.rows_read.u64();
        d.bytes_read = log.bytes_read.u64();
        d.result_rows = log.result_rows.u64();
        d.duration_ms = log.duration_ms.u64();
        d.error = log.error.to_owned_string();
        d.request_id = request_id.to_owned();
        d.ray_id = log.ray_id.non_empty().unwrap_or(inv.ray_id).to_owned();
        d.host = inv.host.to_owned();
        d.path = inv.path.to_owned();
        self.decisions.push(d);
    }
}

/// `user` → user, `service_token`/`service` → service, anything else (e.g. `unknown`, a
/// claimed identity that failed authentication) → anonymous; an empty principal is always
/// anonymous.
fn principal_type(principal: &str, logged: &str) -> PrincipalType {
    if principal.is_empty() {
        return PrincipalType::Anonymous;
    }
    match logged.trim().to_ascii_lowercase().as_str() {
        "user" => PrincipalType::User,
        "service_token" | "service" => PrincipalType::Service,
        _ => PrincipalType::Anonymous,
    }
}
