//! Nothing a client sends may panic the mapper: arbitrary text, arbitrary JSON (also shaped
//! like each dataset's records), arbitrary bytes and bodies.

mod common;

use common::{body_ctx, line_ctx};
use gatelog_ingest::{Dataset, LineOutcome, LineReader, map_body, map_line, map_line_bytes};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("2025-03-03T08:31:53.712Z"),
            Just("1740990713"),
            Just("access_decision"),
            Just("<<<Logpush: messages truncated>>>"),
            Just("-1"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Keys the mappers read, so random objects reach the typed paths, plus random ones.
fn key() -> impl Strategy<Value = String> {
    const KNOWN: &[&str] = &[
        "EdgeStartTimestamp",
        "EdgeEndTimestamp",
        "RayID",
        "ClientRequestHost",
        "EdgeResponseStatus",
        "SecurityAction",
        "SecuritySources",
        "RequestHeaders",
        "ClientCountry",
        "ClientASN",
        "Datetime",
        "Action",
        "RuleID",
        "MatchIndex",
        "Kind",
        "CreatedAt",
        "Allowed",
        "Email",
        "AppDomain",
        "When",
        "ActionResult",
        "ActorEmail",
        "ActorType",
        "ID",
        "ActionTimestamp",
        "AuditLogID",
        "Raw",
        "status_code",
        "cf_ray_id",
        "RequestID",
        "PolicyID",
        "URL",
        "HTTPStatusCode",
        "UploadMatchedDlpProfiles",
        "EventTimestampMs",
        "ScriptName",
        "Event",
        "Request",
        "Logs",
        "Message",
        "message",
        "TimestampMs",
        "timestamp",
        "logs",
        "eventTimestamp",
        "scriptName",
        "event",
        "request",
        "url",
        "headers",
        "cf-ray",
        "truncated",
        "type",
        "request_id",
        "ts",
        "decision",
        "principal",
        "principal_type",
        "roles",
        "query",
        "client_asn",
        "status",
        "rows_read",
        "error",
    ];
    prop_oneof![4 => prop::sample::select(KNOWN).prop_map(str::to_owned), 1 => "[a-zA-Z_]{1,8}"]
}

/// A Worker event whose log message is arbitrary, to exercise access_decision extraction.
fn worker_line() -> impl Strategy<Value = String> {
    (json_value(), json_value(), any::<bool>()).prop_map(|(message, decision_extra, as_string)| {
        let mut decision = Map::new();
        decision.insert("type".into(), Value::from("access_decision"));
        if let Value::Object(extra) = decision_extra {
            decision.extend(extra);
        }
        let arg = if as_string { Value::String(Value::Object(decision).to_string()) } else { Value::Object(decision) };
        serde_json::json!({
            "EventTimestampMs": 1_740_960_627_779_u64,
            "Logs": [{"Message": [message, arg]}, {"message": message}],
        })
        .to_string()
    })
}

fn check(dataset: Dataset, line: &str) -> Result<(), TestCaseError> {
    match map_line(dataset, line, &line_ctx(1)) {
        LineOutcome::Mapped { decisions, raw, .. } => {
            prop_assert_eq!(raw.line.as_str(), line.trim_end_matches('\n').trim_end_matches('\r'));
            for d in &decisions {
                prop_assert_eq!(&d.raw_sha256, &raw.sha256);
                prop_assert_eq!(d.event_id.len(), 32);
            }
        }
        LineOutcome::Dead(dead) => prop_assert!(dead.error.starts_with("line 1: "), "{}", dead.error),
        LineOutcome::Probe | LineOutcome::Blank => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(line in "\\PC{0,200}") {
        for dataset in Dataset::ALL {
            check(dataset, &line)?;
        }
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        let line = value.to_string();
        for dataset in Dataset::ALL {
            check(dataset, &line)?;
        }
        // And as a Tail delivery of that value.
        check(Dataset::Tail, &Value::Array(vec![value]).to_string())?;
    }

    #[test]
    fn arbitrary_worker_logs_never_panic(line in worker_line()) {
        check(Dataset::WorkersTraceEvents, &line)?;
        let usable = matches!(map_line(Dataset::WorkersTraceEvents, &line, &line_ctx(1)), LineOutcome::Mapped { .. });
        prop_assert!(usable, "a bad access_decision must not cost the line");
    }

    #[test]
    fn arbitrary_bytes_and_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for dataset in Dataset::ALL {
            let _ = map_line_bytes(dataset, &bytes, &line_ctx(1));
            let _ = map_body(dataset, &bytes, &body_ctx("prop"));
        }
        let mut gz = vec![0x1f, 0x8b];
        gz.extend_from_slice(&bytes);
        prop_assert!(map_body(Dataset::HttpRequests, &gz, &body_ctx("prop")).is_err() || bytes.len() > 8);
    }

    #[test]
    fn line_reader_agrees_with_a_naive_split(
        text in prop::collection::vec(prop_oneof![Just(b'a'), Just(b'\n'), Just(b'\r'), Just(b'x')], 0..200),
        capacity in 1usize..16,
    ) {
        let mut reader = LineReader::new(std::io::BufReader::with_capacity(capacity, text.as_slice()), 1 << 20);
        let mut got = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            got.push(line.bytes.to_vec());
        }
        let mut want: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec()).collect();
        if text.is_empty() || text.ends_with(b"\n") {
            want.pop();
        }
        prop_assert_eq!(got, want);
    }
}
