//! One line in, decisions and a raw record out.
//!
//! [`map_line`] turns one line of a Logpush dataset (or one Tail delivery) into zero or more
//! [`AccessDecision`]s plus exactly one [`RawRecord`] holding the line byte for byte, or
//! reports it as a validation [probe](LineOutcome::Probe), a [blank](LineOutcome::Blank)
//! line, or a [dead letter](LineOutcome::Dead) with a specific error. It never panics and
//! never stops a batch.
//!
//! Records are deserialised into typed structs that borrow their strings from the line and
//! skip unknown fields; a wrong-typed optional field counts as absent. Timestamps go through
//! [`UnixMillis`] (never `f64`).
//!
//! # Event ids
//! | dataset | id parts ([`EventId::derive`](gatelog_model::EventId::derive)) |
//! | --- | --- |
//! | http_requests, access_requests | `[dataset, RayID, ts]` |
//! | firewall_events | `[dataset, RayID, Datetime, RuleID, Source, MatchIndex]` (one RayID has one event per matching rule) |
//! | audit_logs / audit_logs_v2 | `[dataset, ID]` / `[dataset, AuditLogID]` |
//! | gateway_http | `[dataset, RequestID]` |
//! | an `access_decision` (workers_trace_events, tail) | [`EventId::for_decision`](gatelog_model::EventId::for_decision)`(request_id)`: one id whichever path brought it |
//! | workers_trace_events without a decision | `[dataset, ScriptName, EventTimestampMs, RayID]` |
//! | tail without a decision | `[tail, scriptName, eventTimestamp, cf-ray without colo]` of the first item |
//! | anything else (no natural key, or it is empty) | `[dataset, "sha256", sha256(line)]` |
//!
//! `ts` is the timestamp's JSON text (a number as written, a string without its quotes).
//! The raw record's id is the first decision's id, or the line's own id.
//!
//! # Field mapping
//! | dataset | time | principal (type) | decision | resource | action | policy / reason |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | http_requests | `EdgeStartTimestamp` (else `EdgeEndTimestamp`) | `RequestHeaders[Cf-Access-Authenticated-User-Email]` (user), else anonymous | `SecurityAction` block/connectionClose → deny, challenge kinds → challenge; else `EdgeResponseStatus` 401/403/429 → deny, ≥500 → error, else allow | `scheme://host/path` | method | `SecurityRuleID` or first `SecuritySources` / `SecurityRuleDescription` or "edge answered 403" |
//! | firewall_events | `Datetime` | anonymous | `Action`: block, connectionclose → deny; challenge, jschallenge, managedchallenge → challenge; *solved, *bypassed, allow, bypass, skip → allow; log, unknown, other → log | `scheme://host/path?query` | method | `RuleID` or `Ref` / `Description (Source)` |
//! | access_requests | `CreatedAt` | `Email` (user) | `Allowed` true → allow, false → deny, absent → log | `https://AppDomain` | `Action` (login/logout) | `access:AppUUID` / allowed or denied, with the IdP (`Connection`) |
//! | audit_logs | `When` | `ActorEmail` (else `ActorID`); `ActorType` user → user, other → service | `ActionResult` true → allow, false → deny, absent → log | `cloudflare:ResourceType/ResourceID` | `ActionType` | — / "update firewall_rule via API succeeded" |
//! | audit_logs_v2 | `ActionTimestamp` | `ActorEmail` (else `ActorID`); as v1 | `ActionResult` `success` → allow, other → deny, absent → log | `cloudflare:ResourceProduct/ResourceType/ResourceID` | `ActionType` | — / `ActionDescription` |
//! | gateway_http | `Datetime` | `Email` (user) | `Action`: block, redirect → deny; allow, on, off, scan, noscan, isolate, noisolate → allow; other → log | `URL` | `HTTPMethod` | `PolicyName` or `PolicyID` / action, policy, blocked file and DLP profiles |
//! | workers_trace_events, tail | `ts` of the `access_decision` (else the log's timestamp) | `principal`; `principal_type` user → user, service_token → service, other → anonymous; empty principal → anonymous | `decision` as logged | `resource` | `action` | `policy` / `reason` |
//!
//! Further columns: http_requests fills status, host (`ClientRequestHost`), zone (`ZoneName`),
//! path, client_ip, country, asn, user_agent, ray_id and duration_ms (`EdgeEnd − EdgeStart`,
//! else `OriginResponseDurationMs`). firewall_events fills status, host, path, client_ip,
//! country, asn, user_agent, ray_id. access_requests fills client_ip (`IPAddress`), country,
//! host, path, ray_id. audit_logs fills client_ip (`ActorIP`); v2 also zone, user_agent
//! (`Raw.user_agent`), status (`Raw.status_code`), ray_id (`Raw.cf_ray_id` without `-COLO`)
//! and auth_method (`ActorContext`). gateway_http fills status (`HTTPStatusCode`), client_ip
//! (`SourceIP`), country (`SourceIPCountryCode`), host (`HTTPHost`), path, user_agent and
//! request_id (`RequestID`). An `access_decision` fills roles, auth_method, client_ip,
//! country, asn, query (masked with [`gatelog_model::query::mask`]), query_fingerprint (of
//! the raw query), status, rows/bytes read, result rows, duration_ms, error, request_id,
//! ray_id (else the invocation's), and host and path from the invocation's URL. Country codes
//! are upper-cased everywhere.

mod access;
mod audit;
mod decision_log;
pub mod decisions;
mod fields;
mod firewall;
mod gateway;
mod http_requests;
mod support;
mod worker;

use crate::Dataset;
use gatelog_model::{AccessDecision, DeadLetter, RawRecord, Source, UnixMillis, sha256_hex};

/// Where a line came from and when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct LineContext<'a> {
    /// Stamped on every decision and raw record.
    pub received_at: UnixMillis,
    /// A file name or an endpoint, for dead letters.
    pub origin: &'a str,
    /// 1-based line number within the batch or file.
    pub line_no: u64,
    /// The path it arrived by. Tail lines are always [`Source::Tail`].
    pub source: Source,
}

/// What became of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome {
    /// A usable line: its raw record, zero or more decisions, and any partial problems
    /// (e.g. a malformed `access_decision` log inside an otherwise good Worker event).
    Mapped { decisions: Vec<AccessDecision>, raw: RawRecord, warnings: Vec<String> },
    /// The Logpush destination validation probe (`{"content":"tests"}` or `test`): store nothing.
    Probe,
    /// An empty or whitespace-only line.
    Blank,
    /// A line that cannot be used, with the reason.
    Dead(DeadLetter),
}

/// Whether a line is the Logpush validation probe: `{"content":"tests"}` (any whitespace)
/// or a bare `test`.
pub fn is_probe(line: &str) -> bool {
    let trimmed = line.trim();
    if trimmed == "test" {
        return true;
    }
    if trimmed.len() > 256 || !trimmed.starts_with('{') {
        return false;
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Probe<'a> {
        #[serde(borrow)]
        content: std::borrow::Cow<'a, str>,
    }
    serde_json::from_str::<Probe<'_>>(trimmed).is_ok_and(|p| p.content == "tests")
}

/// Maps one line (without its newline; a trailing `\n`/`\r\n` is tolerated and not kept).
pub fn map_line(dataset: Dataset, line: &str, ctx: &LineContext<'_>) -> LineOutcome {
    let line = strip_newline(line);
    if line.trim().is_empty() {
        return LineOutcome::Blank;
    }
    if is_probe(line) {
        return LineOutcome::Probe;
    }
    let sha256 = sha256_hex(line.as_bytes());
    let source = if dataset == Dataset::Tail { Source::Tail } else { ctx.source };
    let cx = support::Cx { dataset: dataset.as_str(), received_at: ctx.received_at, source, sha256: &sha256 };
    // A UTF-8 byte-order mark at the start of a body is not part of the JSON.
    let json = line.strip_prefix('\u{feff}').unwrap_or(line);
    let result = match dataset {
        Dataset::HttpRequests => http_requests::map(json, &cx),
        Dataset::FirewallEvents => firewall::map(json, &cx),
        Dataset::AccessRequests => access::map(json, &cx),
        Dataset::AuditLogs => audit::map_v1(json, &cx),
        Dataset::AuditLogsV2 => audit::map_v2(json, &cx),
        Dataset::GatewayHttp => gateway::map(json, &cx),
        Dataset::WorkersTraceEvents => worker::map_trace_event(json, &cx),
        Dataset::Tail => worker::map_tail(json, &cx),
    };
    match result {
        Ok(mapped) => {
            let support::Mapped { decisions, line_id, time, warnings } = mapped;
            let event_id = match decisions.first() {
                Some(first) => first.event_id.clone(),
                None => line_id.unwrap_or_else(|| cx.sha_id()),
            };
            let raw = RawRecord {
                event_id,
                dataset: dataset.as_str().to_owned(),
                received_at: ctx.received_at,
                time,
                line: line.to_owned(),
                sha256,
            };
            LineOutcome::Mapped { decisions, raw, warnings }
        }
        Err(error) => LineOutcome::Dead(DeadLetter {
            dataset: dataset.as_str().to_owned(),
            received_at: ctx.received_at,
            origin: ctx.origin.to_owned(),
            line_no: ctx.line_no,
            line: line.to_owned(),
            sha256,
            error: format!("line {}: {error}", ctx.line_no),
        }),
    }
}

/// Maps one line given as bytes: UTF-8 lines go to [`map_line`]; anything else is a dead
/// letter (`invalid UTF-8 at byte N`) holding the line decoded lossily and the SHA-256 of the
/// original bytes.
pub fn map_line_bytes(dataset: Dataset, line: &[u8], ctx: &LineContext<'_>) -> LineOutcome {
    match std::str::from_utf8(line) {
        Ok(text) => map_line(dataset, text, ctx),
        Err(e) => {
            let line = strip_newline_bytes(line);
            dead_letter(dataset, ctx, line, format!("invalid UTF-8 at byte {}", e.valid_up_to()))
        }
    }
}

/// A dead letter for bytes that never reached a mapper (bad UTF-8, an over-long line).
pub(crate) fn dead_letter(dataset: Dataset, ctx: &LineContext<'_>, line: &[u8], error: String) -> LineOutcome {
    LineOutcome::Dead(DeadLetter {
        dataset: dataset.as_str().to_owned(),
        received_at: ctx.received_at,
        origin: ctx.origin.to_owned(),
        line_no: ctx.line_no,
        line: String::from_utf8_lossy(line).into_owned(),
        sha256: sha256_hex(line),
        error: format!("line {}: {error}", ctx.line_no),
    })
}

fn strip_newline(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

fn strip_newline_bytes(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
