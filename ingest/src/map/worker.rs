//! Worker invocations: Logpush `workers_trace_events` (one PascalCase object per line) and
//! Tail deliveries (one JSON array of camelCase `TraceItem`s per line). Both carry the same
//! `access_decision` logs; see [`super::decision_log`].

use super::decision_log::{Collector, Invocation, LogEntry};
use super::fields::{Bool, KeyNames, Obj, ObjList, Picked, RawTs, Str};
use super::support::{Cx, Kind, Mapped, millis_ts, parse_line, strip_colo, url_host_path};
use gatelog_model::{EventId, UnixMillis};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Deserialize)]
#[allow(non_snake_case)]
struct TraceEvent<'a> {
    #[serde(borrow, default)]
    ScriptName: Str<'a>,
    #[serde(borrow, default)]
    EventTimestampMs: RawTs<'a>,
    #[serde(borrow, default)]
    Event: Obj<WteEvent<'a>>,
    #[serde(borrow, default)]
    Logs: ObjList<LogEntry<'a>>,
}

#[derive(Debug, Deserialize)]
#[allow(non_snake_case)]
struct WteEvent<'a> {
    #[serde(borrow, default)]
    RayID: Str<'a>,
    #[serde(borrow, default)]
    Request: Obj<WteRequest<'a>>,
}

#[derive(Debug, Deserialize)]
#[allow(non_snake_case)]
struct WteRequest<'a> {
    #[serde(borrow, default)]
    URL: Str<'a>,
}

pub(crate) fn map_trace_event(line: &str, cx: &Cx<'_>) -> Result<Mapped, String> {
    let r: TraceEvent<'_> = parse_line(line, Kind::Object)?;
    let ts = millis_ts("EventTimestampMs", r.EventTimestampMs)?;
    let (ray_id, url) = match &r.Event.0 {
        Some(event) => (event.RayID.as_str(), event.Request.0.as_ref().map_or("", |req| req.URL.as_str())),
        None => ("", ""),
    };
    let (host, path) = url_host_path(url);
    let inv = Invocation { host, path, ray_id, time: Some(ts.ms) };
    let mut collector = Collector::default();
    collector.scan(&r.Logs.0, "Logs", &inv, cx);
    let line_id = EventId::derive(&[cx.dataset, r.ScriptName.as_str(), &ts.text, ray_id]);
    Ok(Mapped { decisions: collector.decisions, line_id: Some(line_id), time: ts.ms, warnings: collector.warnings })
}

#[derive(Debug, Deserialize)]
#[allow(non_snake_case)]
struct TraceItem<'a> {
    #[serde(borrow, default)]
    scriptName: Str<'a>,
    #[serde(borrow, default)]
    eventTimestamp: RawTs<'a>,
    #[serde(default)]
    truncated: Bool,
    #[serde(borrow, default)]
    event: Obj<TailEvent<'a>>,
    #[serde(borrow, default)]
    logs: ObjList<LogEntry<'a>>,
}

#[derive(Debug, Deserialize)]
struct TailEvent<'a> {
    #[serde(borrow, default)]
    request: Obj<TailRequest<'a>>,
}

#[derive(Debug, Deserialize)]
struct TailRequest<'a> {
    #[serde(borrow, default)]
    url: Str<'a>,
    #[serde(borrow, default)]
    headers: Picked<'a, TailHeaders>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TailHeaders;

impl KeyNames for TailHeaders {
    const NAMES: &'static [&'static str] = &["cf-ray"];
}

pub(crate) fn map_tail(line: &str, cx: &Cx<'_>) -> Result<Mapped, String> {
    let items: Vec<&RawValue> = parse_line(line, Kind::Array)?;
    let mut collector = Collector::default();
    let mut line_id: Option<String> = None;
    let mut first_time: Option<UnixMillis> = None;
    for (i, raw) in items.iter().enumerate() {
        if !raw.get().starts_with('{') {
            return Err(format!("trace item {i}: expected an object, found {}", kind_of(raw.get())));
        }
        let item: TraceItem<'_> =
            serde_json::from_str(raw.get()).map_err(|e| format!("trace item {i}: unusable: {e}"))?;
        let time = match item.eventTimestamp {
            None => None,
            Some(ts) => match millis_ts("eventTimestamp", Some(ts)) {
                Ok(ts) => Some(ts),
                Err(e) => {
                    collector.warnings.push(format!("[{i}].{e}"));
                    None
                }
            },
        };
        let (url, cf_ray) = match item.event.0.as_ref().and_then(|e| e.request.0.as_ref()) {
            Some(req) => (req.url.as_str(), req.headers.get(0)),
            None => ("", ""),
        };
        let ray_id = strip_colo(cf_ray);
        let (host, path) = url_host_path(url);
        if item.truncated.0 == Some(true) {
            collector.warnings.push(format!(
                "[{i}]: trace item of {} was truncated by the runtime; access decisions may be missing",
                item.scriptName.non_empty().unwrap_or("an unnamed script")
            ));
        }
        let inv = Invocation { host, path, ray_id, time: time.as_ref().map(|t| t.ms) };
        collector.scan(&item.logs.0, &format!("[{i}].logs"), &inv, cx);
        if i == 0 {
            let text = time.as_ref().map_or("", |t| &t.text);
            let id = EventId::derive(&[cx.dataset, item.scriptName.as_str(), text, ray_id]);
            line_id = Some(id);
            first_time = time.as_ref().map(|t| t.ms);
        }
    }
    let time = first_time.or_else(|| collector.decisions.first().map(|d| d.time)).unwrap_or(cx.received_at);
    Ok(Mapped { decisions: collector.decisions, line_id, time, warnings: collector.warnings })
}

fn kind_of(json: &str) -> &'static str {
    match json.as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}
