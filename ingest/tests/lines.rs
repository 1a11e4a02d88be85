//! One line at a time, with inline fixtures: timestamp formats, probes, blanks, bad lines,
//! forgiving field types, per-dataset decision rules and the Worker `access_decision` log.

mod common;

use common::{RECEIVED_AT, line_ctx};
use gatelog_ingest::{Dataset, LineContext, LineOutcome, is_probe, map_line, map_line_bytes};
use gatelog_model::{
    AccessDecision, DeadLetter, Decision, EventId, PrincipalType, RawRecord, Source, UnixMillis, sha256_hex,
};

fn mapped(dataset: Dataset, line: &str) -> (Vec<AccessDecision>, RawRecord, Vec<String>) {
    match map_line(dataset, line, &line_ctx(1)) {
        LineOutcome::Mapped { decisions, raw, warnings } => (decisions, raw, warnings),
        other => panic!("{dataset}: expected a mapped line for {line}, got {other:?}"),
    }
}

fn one(dataset: Dataset, line: &str) -> AccessDecision {
    let (mut decisions, raw, warnings) = mapped(dataset, line);
    assert_eq!(decisions.len(), 1, "{line}");
    assert!(warnings.is_empty(), "{warnings:?}");
    let d = decisions.remove(0);
    assert_eq!(raw.event_id, d.event_id);
    assert_eq!(d.raw_sha256, raw.sha256);
    d
}

fn dead(dataset: Dataset, line: &str, line_no: u64) -> DeadLetter {
    match map_line(dataset, line, &line_ctx(line_no)) {
        LineOutcome::Dead(d) => d,
        other => panic!("{dataset}: expected a dead letter for {line:?}, got {other:?}"),
    }
}

// 2025-03-03T08:31:53.712549374Z
const MS: i64 = 1_740_990_713_712;
const SECS_MS: i64 = 1_740_990_713_000;

#[test]
fn every_timestamp_format_in_every_logpush_dataset() {
    let formats: [(&str, i64, &str); 7] = [
        ("1740990713712549374", MS, "1740990713712549374"), // unixnano
        ("1740990713", SECS_MS, "1740990713"),              // unix
        ("\"2025-03-03T08:31:53Z\"", SECS_MS, "2025-03-03T08:31:53Z"), // rfc3339
        ("\"2025-03-03T08:31:53.712Z\"", MS, "2025-03-03T08:31:53.712Z"), // rfc3339ms
        ("\"2025-03-03T08:31:53.712549374Z\"", MS, "2025-03-03T08:31:53.712549374Z"), // rfc3339ns
        ("\"1740990713\"", SECS_MS, "1740990713"),          // numeric string
        ("1740990713712999999", MS, "1740990713712999999"), // no f64 rounding
    ];
    let datasets = [
        (Dataset::HttpRequests, "EdgeStartTimestamp", r#""RayID":"8f2c1a9b3d4e5f60""#),
        (
            Dataset::FirewallEvents,
            "Datetime",
            r#""RayID":"8f2c1a9b3d4e5f60","RuleID":"r1","Source":"waf","MatchIndex":0"#,
        ),
        (Dataset::AccessRequests, "CreatedAt", r#""RayID":"8f2c1a9b3d4e5f60""#),
        (Dataset::AuditLogs, "When", r#""ID":"a-1""#),
        (Dataset::AuditLogsV2, "ActionTimestamp", r#""AuditLogID":"a-1""#),
        (Dataset::GatewayHttp, "Datetime", r#""RequestID":"0123456789abcdef0123456789abcdef""#),
    ];
    for (dataset, field, rest) in datasets {
        for (json, want_ms, id_text) in formats {
            let line = format!(r#"{{{rest},"{field}":{json}}}"#);
            let d = one(dataset, &line);
            assert_eq!(d.time, UnixMillis(want_ms), "{dataset} {field}={json}");
            let want_id = match dataset {
                Dataset::HttpRequests | Dataset::AccessRequests => {
                    EventId::derive(&[dataset.as_str(), "8f2c1a9b3d4e5f60", id_text])
                }
                Dataset::FirewallEvents => {
                    EventId::derive(&[dataset.as_str(), "8f2c1a9b3d4e5f60", id_text, "r1", "waf", "0"])
                }
                Dataset::AuditLogs | Dataset::AuditLogsV2 => EventId::derive(&[dataset.as_str(), "a-1"]),
                _ => EventId::derive(&[dataset.as_str(), "0123456789abcdef0123456789abcdef"]),
            };
            assert_eq!(d.event_id, want_id, "{dataset} {json}");
        }
    }
}

#[test]
fn unusable_timestamps_are_dead_letters_that_say_why() {
    let cases = [
        (r#"{"RayID":"r"}"#, "line 3: EdgeStartTimestamp: missing or null"),
        (r#"{"EdgeStartTimestamp":null}"#, "line 3: EdgeStartTimestamp: missing or null"),
        (
            r#"{"EdgeStartTimestamp":"x"}"#,
            "line 3: EdgeStartTimestamp: timestamp \"x\" is neither an epoch number nor RFC 3339",
        ),
        (
            r#"{"EdgeStartTimestamp":1.5e18}"#,
            "line 3: EdgeStartTimestamp: timestamp is a fractional number, expected an integer or a string",
        ),
        (
            r#"{"EdgeStartTimestamp":true}"#,
            "line 3: EdgeStartTimestamp: timestamp is a boolean, expected an integer or a string",
        ),
        (
            r#"{"EdgeStartTimestamp":[1]}"#,
            "line 3: EdgeStartTimestamp: timestamp is an array, expected an integer or a string",
        ),
        (
            r#"{"EdgeStartTimestamp":99999999999999999999999999}"#,
            "line 3: EdgeStartTimestamp: timestamp 99999999999999999999999999 is out of range",
        ),
    ];
    for (line, want) in cases {
        let d = dead(Dataset::HttpRequests, line, 3);
        assert_eq!(d.error, want, "{line}");
        assert_eq!((d.line.as_str(), d.line_no, d.origin.as_str()), (line, 3, "test"));
        assert_eq!(d.sha256, sha256_hex(line.as_bytes()));
        assert_eq!((d.dataset.as_str(), d.received_at), ("http_requests", RECEIVED_AT));
    }
    // The end timestamp stands in for a missing start.
    let d = one(Dataset::HttpRequests, r#"{"EdgeEndTimestamp":1740990713}"#);
    assert_eq!(d.time, UnixMillis(SECS_MS));
    let d = dead(Dataset::WorkersTraceEvents, r#"{"ScriptName":"x","Logs":[]}"#, 1);
    assert_eq!(d.error, "line 1: EventTimestampMs: missing or null");
}

#[test]
fn probes_and_blank_lines() {
    for probe in [
        r#"{"content":"tests"}"#,
        "{ \"content\" : \"tests\" }\r\n",
        "  {\n\"content\":\t\"tests\"}",
        "test",
        " test \n",
    ] {
        assert!(is_probe(probe), "{probe:?}");
        for dataset in Dataset::ALL {
            assert_eq!(map_line(dataset, probe, &line_ctx(1)), LineOutcome::Probe, "{dataset} {probe:?}");
        }
    }
    for not_probe in [r#"{"content":"test"}"#, r#"{"content":"tests","x":1}"#, "tests", "testing"] {
        assert!(!is_probe(not_probe), "{not_probe:?}");
    }
    for blank in ["", " ", "\t", "\r", "\r\n", "   \n"] {
        assert_eq!(map_line(Dataset::HttpRequests, blank, &line_ctx(1)), LineOutcome::Blank, "{blank:?}");
    }
}

#[test]
fn wrong_shapes_and_broken_json_are_specific_dead_letters() {
    let cases = [
        (Dataset::HttpRequests, r#"[{"EdgeStartTimestamp":1}]"#, "line 7: expected a JSON object, found an array"),
        (Dataset::FirewallEvents, "42", "line 7: expected a JSON object, found a number"),
        (Dataset::AccessRequests, r#""hello""#, "line 7: expected a JSON object, found a string"),
        (Dataset::AuditLogs, "null", "line 7: expected a JSON object, found null"),
        (Dataset::Tail, r#"{"scriptName":"x"}"#, "line 7: expected a JSON array of trace items, found an object"),
        (Dataset::Tail, r#"[{"scriptName":"x"}, 3]"#, "line 7: trace item 1: expected an object, found a number"),
    ];
    for (dataset, line, want) in cases {
        assert_eq!(dead(dataset, line, 7).error, want, "{dataset} {line}");
    }
    let truncated = dead(Dataset::HttpRequests, r#"{"EdgeStartTimestamp":1740990713,"RayID":"8f2c"#, 2);
    assert!(
        truncated.error.starts_with("line 2: invalid JSON, the line ends early (truncated?)"),
        "{}",
        truncated.error
    );
    let garbage = dead(Dataset::GatewayHttp, "<html>502 Bad Gateway</html>", 4);
    assert!(garbage.error.starts_with("line 4: invalid JSON: expected value at line 1 column 1"), "{}", garbage.error);
    let trailing = dead(Dataset::HttpRequests, r#"{"EdgeStartTimestamp":1} {"#, 1);
    assert!(trailing.error.contains("trailing characters"), "{}", trailing.error);
    let duplicate = dead(Dataset::HttpRequests, r#"{"EdgeStartTimestamp":1,"EdgeStartTimestamp":2}"#, 1);
    assert!(duplicate.error.contains("duplicate field `EdgeStartTimestamp`"), "{}", duplicate.error);
}

#[test]
fn invalid_utf8_is_a_dead_letter_kept_lossily() {
    let bytes = b"{\"Ray\xffID\":1}\n";
    let ctx = LineContext { received_at: RECEIVED_AT, origin: "batch-9", line_no: 12, source: Source::Logpush };
    let LineOutcome::Dead(d) = map_line_bytes(Dataset::HttpRequests, bytes, &ctx) else {
        panic!("expected a dead letter")
    };
    assert_eq!(d.error, "line 12: invalid UTF-8 at byte 5");
    assert_eq!(d.line, "{\"Ray\u{fffd}ID\":1}");
    assert_eq!(d.sha256, sha256_hex(&bytes[..bytes.len() - 1]), "hash of the original bytes, without the newline");
    assert_eq!(d.origin, "batch-9");
    // Valid UTF-8 takes the normal path.
    assert!(matches!(
        map_line_bytes(Dataset::HttpRequests, b"{\"EdgeStartTimestamp\":1}", &ctx),
        LineOutcome::Mapped { .. }
    ));
}

#[test]
fn raw_record_is_the_exact_line() {
    let line =
        "{\"EdgeStartTimestamp\":1740990713 ,  \"Extra\":{\"nested\":[1,2,{\"x\":null}]},\"ClientCountry\":\"us\"}";
    let (decisions, raw, _) = mapped(Dataset::HttpRequests, &format!("{line}\r\n"));
    assert_eq!(raw.line, line, "newline and CR dropped, everything else kept");
    assert_eq!(raw.sha256, sha256_hex(line.as_bytes()));
    assert_eq!((raw.time, raw.received_at, raw.dataset.as_str()), (UnixMillis(SECS_MS), RECEIVED_AT, "http_requests"));
    assert_eq!(decisions[0].country, "US");
    // No RayID: the id comes from the line's hash.
    assert_eq!(raw.event_id, EventId::derive(&["http_requests", "sha256", &sha256_hex(line.as_bytes())]));
    // A byte-order mark is skipped for parsing and kept in the raw line.
    let with_bom = format!("\u{feff}{line}");
    let (_, raw, _) = mapped(Dataset::HttpRequests, &with_bom);
    assert_eq!(raw.line, with_bom);
}

#[test]
fn forgiving_field_types_and_any_key_order() {
    let d = one(
        Dataset::HttpRequests,
        r#"{"EdgeResponseStatus":"403","ClientASN":"x","SecuritySources":"waf","ClientRequestPath":"/a\"b\u00e9","ZoneName":7,
            "ClientRequestHost":"h.example","EdgeStartTimestamp":"1740990713","RequestHeaders":{"CF-ACCESS-AUTHENTICATED-USER-EMAIL":"ann@example.com"},
            "EdgeEndTimestamp":{"not":"a time"},"OriginResponseDurationMs":12.0,"ClientCountry":null}"#,
    );
    assert_eq!((d.decision, d.status), (Decision::Deny, 403), "numeric string status");
    assert_eq!(d.asn, 0);
    assert_eq!(d.path, "/a\"bé", "escapes decoded");
    assert_eq!(d.resource, "https://h.example/a\"bé");
    assert_eq!(d.zone, "7");
    assert_eq!(d.country, "");
    assert_eq!((d.principal.as_str(), d.principal_type), ("ann@example.com", PrincipalType::User));
    assert_eq!(d.duration_ms, 12, "unparseable EdgeEnd falls back to the origin duration");
    assert_eq!(d.reason, "edge answered 403");
    // Minimal record: only the timestamp.
    let d = one(Dataset::HttpRequests, r#"{"EdgeStartTimestamp":1740990713}"#);
    assert_eq!((d.decision, d.resource.as_str(), d.reason.as_str()), (Decision::Allow, "", ""));
}

#[test]
fn http_request_decision_rules() {
    let rec = |extra: &str| {
        format!(
            r#"{{"EdgeStartTimestamp":1740990713,"ClientRequestHost":"a.example","ClientRequestPath":"/p",{extra}}}"#
        )
    };
    let cases = [
        (
            r#""SecurityAction":"block","EdgeResponseStatus":403,"SecurityRuleID":"r9","SecurityRuleDescription":"Block bots""#,
            Decision::Deny,
            "r9",
            "Block bots",
        ),
        (
            r#""SecurityAction":"managedChallenge","EdgeResponseStatus":403,"SecuritySources":["botManagement"]"#,
            Decision::Challenge,
            "botManagement",
            "security action managedChallenge by botManagement",
        ),
        (
            r#""SecurityAction":"jschallenge","EdgeResponseStatus":503"#,
            Decision::Challenge,
            "",
            "security action jschallenge",
        ),
        (
            r#""SecurityAction":"log","EdgeResponseStatus":200,"SecuritySources":["","waf"]"#,
            Decision::Allow,
            "waf",
            "edge answered 200",
        ),
        (r#""SecurityAction":"skip","EdgeResponseStatus":429"#, Decision::Deny, "", "edge answered 429"),
        (r#""EdgeResponseStatus":401"#, Decision::Deny, "", "edge answered 401"),
        (r#""EdgeResponseStatus":502"#, Decision::Error, "", "edge answered 502"),
        (r#""EdgeResponseStatus":404"#, Decision::Allow, "", "edge answered 404"),
        (
            r#""SecurityAction":"connectionClose","EdgeResponseStatus":0"#,
            Decision::Deny,
            "",
            "security action connectionClose",
        ),
    ];
    for (extra, decision, policy, reason) in cases {
        let d = one(Dataset::HttpRequests, &rec(extra));
        assert_eq!((d.decision, d.policy.as_str(), d.reason.as_str()), (decision, policy, reason), "{extra}");
        assert_eq!(d.resource, "https://a.example/p");
    }
    let d = one(
        Dataset::HttpRequests,
        r#"{"EdgeStartTimestamp":1,"ClientRequestScheme":"http","EdgeRequestHost":"e.example","ClientRequestURI":"/x?y=1"}"#,
    );
    assert_eq!((d.resource.as_str(), d.path.as_str(), d.host.as_str()), ("http://e.example/x", "/x", "e.example"));
    let d = one(
        Dataset::HttpRequests,
        r#"{"EdgeStartTimestamp":1740990713712549374,"EdgeEndTimestamp":1740990713700000000}"#,
    );
    assert_eq!(d.duration_ms, 0, "never negative");
}

#[test]
fn firewall_events_sharing_a_ray_id_get_distinct_ids() {
    let base = r#""Datetime":1740990713,"RayID":"8f2c1a9b3d4e5f60","Action":"log","Source":"waf""#;
    let a = one(Dataset::FirewallEvents, &format!(r#"{{{base},"RuleID":"r1","MatchIndex":1}}"#));
    let b = one(Dataset::FirewallEvents, &format!(r#"{{{base},"RuleID":"r2","MatchIndex":1}}"#));
    let c = one(Dataset::FirewallEvents, &format!(r#"{{{base},"RuleID":"r2","MatchIndex":0}}"#));
    assert!(a.event_id != b.event_id && b.event_id != c.event_id && a.event_id != c.event_id);
    assert_eq!(a.decision, Decision::Log);
    let d = one(
        Dataset::FirewallEvents,
        r#"{"Datetime":1,"Action":"jschallengesolved","Ref":"my-ref","ClientRequestHost":"h","ClientRequestPath":"/","ClientRequestQuery":"a=1"}"#,
    );
    assert_eq!((d.decision, d.policy.as_str(), d.resource.as_str()), (Decision::Allow, "my-ref", "https://h/?a=1"));
}

#[test]
fn access_audit_and_gateway_edge_cases() {
    let d = one(
        Dataset::AccessRequests,
        r#"{"CreatedAt":1,"Email":"","Allowed":false,"AppDomain":"app.example.com/admin","Action":"login"}"#,
    );
    assert_eq!((d.principal_type, d.decision), (PrincipalType::Anonymous, Decision::Deny));
    assert_eq!(
        (d.resource.as_str(), d.host.as_str(), d.path.as_str()),
        ("https://app.example.com/admin", "app.example.com", "/admin")
    );
    assert_eq!(one(Dataset::AccessRequests, r#"{"CreatedAt":1,"Email":"a@b.c"}"#).decision, Decision::Log);

    let d = one(
        Dataset::AuditLogs,
        r#"{"When":1,"ActorEmail":"","ActorID":"svc-123","ActorType":"system","ActionResult":true}"#,
    );
    assert_eq!((d.principal.as_str(), d.principal_type), ("svc-123", PrincipalType::Service));
    let d = one(
        Dataset::AuditLogsV2,
        r#"{"ActionTimestamp":1,"ActorEmail":"t@example.com","ActorType":"user","ActionResult":"failure","Raw":"oops"}"#,
    );
    assert_eq!((d.decision, d.principal_type, d.status), (Decision::Deny, PrincipalType::User, 0));
    assert_eq!(
        one(Dataset::AuditLogsV2, r#"{"ActionTimestamp":1,"ActionResult":"SUCCESS"}"#).decision,
        Decision::Allow
    );

    let gw = |action: &str| one(Dataset::GatewayHttp, &format!(r#"{{"Datetime":1,"Action":"{action}"}}"#)).decision;
    for (action, want) in [
        ("block", Decision::Deny),
        ("redirect", Decision::Deny),
        ("isolate", Decision::Allow),
        ("off", Decision::Allow),
        ("noscan", Decision::Allow),
        ("on", Decision::Allow),
        ("", Decision::Log),
        ("weird", Decision::Log),
    ] {
        assert_eq!(gw(action), want, "{action}");
    }
    let d = one(
        Dataset::GatewayHttp,
        r#"{"Datetime":1,"RequestID":"","Action":"block","PolicyID":"p-1","BlockedFileReason":"malware","DownloadMatchedDlpProfiles":["PII","Keys"]}"#,
    );
    assert_eq!(d.policy, "p-1");
    assert_eq!(
        d.reason,
        "gateway action block by policy p-1; blocked file (malware); download matched DLP profiles: PII, Keys"
    );
    assert_eq!(d.event_id.len(), 32, "empty RequestID falls back to the hash id");
}

fn decision_json(request_id: &str) -> String {
    format!(
        r#"{{"type":"access_decision","version":1,"ts":"2025-03-03T00:10:27.779Z","request_id":"{request_id}","ray_id":"","decision":"deny","principal":"svc:etl","principal_type":"service_token","roles":["etl"],"auth_method":"cf_access_service_token","client_ip":"192.0.2.9","client_country":"gb","client_asn":"2856","resource":"clickhouse:finance.payroll","action":"select","query":"SELECT * FROM finance.payroll WHERE id = 42 AND name = 'bob'","policy":"deny-finance","reason":"no grant","status":403,"rows_read":0,"error":null}}"#
    )
}

#[test]
fn worker_logs_match_keys_case_insensitively_and_take_both_log_styles() {
    let object = decision_json("r-object");
    let string = serde_json::to_string(&decision_json("r-string")).unwrap();
    let line = format!(
        r#"{{"EventTimestampMs":1740960627779,"ScriptName":"ch-iap-proxy","Event":{{"RayID":"c3e4fd4346373451","Request":{{"URL":"https://ch.example.com/query?x=1"}}}},
            "Logs":[{{"level":"log","message":[{object}],"timestampms":1}},{{"LEVEL":"log","MESSAGE":["note",{string}],"TimestampMs":2}},{{"Message":"plain text"}}]}}"#
    );
    let (decisions, raw, warnings) = mapped(Dataset::WorkersTraceEvents, &line);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(decisions.len(), 2);
    assert_eq!(raw.event_id, EventId::for_decision("r-object"));
    let d = &decisions[1];
    assert_eq!(d.event_id, EventId::for_decision("r-string"));
    assert_eq!(
        (d.principal.as_str(), d.principal_type, d.decision),
        ("svc:etl", PrincipalType::Service, Decision::Deny)
    );
    assert_eq!((d.country.as_str(), d.asn, d.status), ("GB", 2856, 403));
    assert_eq!(d.query, "SELECT * FROM finance.payroll WHERE id = ? AND name = ?");
    assert_eq!(
        d.query_fingerprint,
        gatelog_model::query::fingerprint("SELECT * FROM finance.payroll WHERE id = 42 AND name = 'bob'")
    );
    assert_eq!(
        (d.ray_id.as_str(), d.host.as_str(), d.path.as_str()),
        ("c3e4fd4346373451", "ch.example.com", "/query"),
        "from the invocation"
    );
    assert_eq!(d.error, "", "null error");
    assert_eq!(
        (d.time, d.dataset.as_str(), d.request_id.as_str()),
        (UnixMillis(1_740_960_627_779), "workers_trace_events", "r-string")
    );
}

#[test]
fn a_broken_access_decision_does_not_cost_the_line() {
    let missing_id = decision_json("");
    let cut =
        serde_json::to_string(&format!("{}<<<Logpush: messages truncated>>>", &decision_json("r-cut")[..200])).unwrap();
    let good = decision_json("r-good");
    let line = format!(
        r#"{{"EventTimestampMs":1740960627779,"ScriptName":"s","Logs":[{{"Message":[{missing_id}]}},{{"Message":[{cut}]}},{{"Message":[{good}]}},{{"Message":[{good}]}}]}}"#
    );
    let (decisions, _, warnings) = mapped(Dataset::WorkersTraceEvents, &line);
    assert_eq!(decisions.len(), 1, "only the good one (once)");
    assert_eq!(decisions[0].request_id, "r-good");
    assert!(
        warnings.iter().any(|w| w == "Logs[0].message[0]: access_decision without request_id skipped"),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.starts_with("Logs[1].message[0]: logs were truncated by Logpush")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("Logs[1].message[0]: access_decision is cut short (truncated by Logpush?)")),
        "{warnings:?}"
    );
    assert!(warnings.iter().any(|w| w.contains("repeated in the same line")), "{warnings:?}");

    // No decision at all: still a usable line with its own id.
    let line = r#"{"EventTimestampMs":1740960627779,"ScriptName":"www-router","Event":{"RayID":"abc"},"Logs":[]}"#;
    let (decisions, raw, _) = mapped(Dataset::WorkersTraceEvents, line);
    assert!(decisions.is_empty());
    assert_eq!(raw.event_id, EventId::derive(&["workers_trace_events", "www-router", "1740960627779", "abc"]));
    assert_eq!(raw.time, UnixMillis(1_740_960_627_779));
}

#[test]
fn access_decision_fallbacks() {
    let log = r#"{"type":"access_decision","request_id":"r1","decision":"maybe","principal":"x@example.com","principal_type":"unknown","ts":"nope"}"#;
    let line =
        format!(r#"{{"EventTimestampMs":1740960627779,"Logs":[{{"Message":[{log}],"TimestampMs":1740960627800}}]}}"#);
    let (decisions, _, warnings) = mapped(Dataset::WorkersTraceEvents, &line);
    let d = &decisions[0];
    assert_eq!(d.time, UnixMillis(1_740_960_627_800), "log timestamp when ts is unusable");
    assert_eq!((d.decision, d.principal_type), (Decision::Log, PrincipalType::Anonymous));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    // Not an access_decision: ignored silently.
    let line = r#"{"EventTimestampMs":1,"Logs":[{"Message":[{"type":"other","request_id":"r"}, "{\"type\":\"access_decision_stats\"}"]}]}"#;
    let (decisions, _, warnings) = mapped(Dataset::WorkersTraceEvents, line);
    assert!(decisions.is_empty() && warnings.is_empty(), "{warnings:?}");
}

#[test]
fn tail_lines() {
    // An empty delivery is a usable line.
    let (decisions, raw, _) = mapped(Dataset::Tail, "[]");
    assert!(decisions.is_empty());
    assert_eq!(raw.event_id, EventId::derive(&["tail", "sha256", &sha256_hex(b"[]")]));
    assert_eq!(raw.time, RECEIVED_AT);

    let decision = decision_json("r-tail");
    let line = format!(
        r#"[{{"scriptName":"ch-iap-proxy","eventTimestamp":1740960627779,"truncated":true,"logs":[{{"message":[{decision}],"level":"log","timestamp":1}}],
            "event":{{"request":{{"url":"https://ch.example.com/query","headers":{{"CF-Ray":"c3e4fd4346373451-TXL"}}}}}}}},
           {{"scriptName":"ch-iap-authz","eventTimestamp":null,"event":{{"rpcMethod":"authorize"}},"logs":[]}}]"#
    );
    let ctx = line_ctx(1); // says Logpush: Tail lines are Tail regardless
    let LineOutcome::Mapped { decisions, raw, warnings } = map_line(Dataset::Tail, &line, &ctx) else { panic!() };
    assert_eq!(decisions.len(), 1);
    let d = &decisions[0];
    assert_eq!((d.source, d.dataset.as_str(), d.ray_id.as_str()), (Source::Tail, "tail", "c3e4fd4346373451"));
    assert_eq!(raw.time, UnixMillis(1_740_960_627_779));
    assert_eq!(warnings.len(), 1, "truncated item: {warnings:?}");

    // Without a decision: scriptName, eventTimestamp, cf-ray of the first item.
    let line = r#"[{"scriptName":"www-router","eventTimestamp":1740960627779,"event":{"request":{"url":"https://www.example.com/","headers":{"cf-ray":"abc-AMS"}}},"logs":[]}]"#;
    let (_, raw, _) = mapped(Dataset::Tail, line);
    assert_eq!(raw.event_id, EventId::derive(&["tail", "www-router", "1740960627779", "abc"]));
}

#[test]
fn sniffing_finds_every_sample_dataset() {
    let samples = [
        ("http_requests.ndjson", Dataset::HttpRequests),
        ("firewall_events.ndjson", Dataset::FirewallEvents),
        ("access_requests.ndjson", Dataset::AccessRequests),
        ("audit_logs.ndjson", Dataset::AuditLogs),
        ("audit_logs_v2.ndjson", Dataset::AuditLogsV2),
        ("gateway_http.ndjson", Dataset::GatewayHttp),
        ("workers_trace_events.ndjson", Dataset::WorkersTraceEvents),
        ("tail.ndjson", Dataset::Tail),
    ];
    for (file, want) in samples {
        let text = String::from_utf8(common::sample_bytes(file)).unwrap();
        for line in text.lines().take(20) {
            assert_eq!(Dataset::sniff(line), Some(want), "{file}");
        }
    }
    for line in ["", "test", "[]", "[1]", "{}", r#"{"a":1}"#, "{not json", r#"{"content":"tests"}"#] {
        assert_eq!(Dataset::sniff(line), None, "{line}");
    }
    assert_eq!(Dataset::sniff(r#"{"ClientRequestHost":"h","EdgeResponseStatus":200}"#), Some(Dataset::HttpRequests));
    assert_eq!(Dataset::sniff(r#"[{"logs":[]}]"#), Some(Dataset::Tail));
}

#[test]
fn probe_detection_is_exact() {
    assert!(!is_probe(r#"{"content":"te sts"}"#));
    assert!(!is_probe(r#"["content","tests"]"#));
    assert!(is_probe(r#"{"content":"tes\u0074s"}"#), "JSON escapes are the same text");
}

#[test]
fn deep_nesting_never_overflows_the_stack() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for dataset in Dataset::ALL {
        assert!(matches!(map_line(dataset, &deep, &line_ctx(1)), LineOutcome::Dead(_)), "{dataset}");
    }
    // Skipped unknown fields and raw log arguments are walked without recursion: still usable.
    let line = format!(r#"{{"EdgeStartTimestamp":1,"Extra":{deep}}}"#);
    assert!(matches!(map_line(Dataset::HttpRequests, &line, &line_ctx(1)), LineOutcome::Mapped { .. }));
    let line = format!(r#"{{"EventTimestampMs":1,"Logs":[{{"Message":[{deep}]}}]}}"#);
    assert!(matches!(map_line(Dataset::WorkersTraceEvents, &line, &line_ctx(1)), LineOutcome::Mapped { .. }));
    let line = format!(r#"{{"EdgeStartTimestamp":1,"SecuritySources":{deep},"RequestHeaders":{deep}}}"#);
    assert!(matches!(map_line(Dataset::HttpRequests, &line, &line_ctx(1)), LineOutcome::Mapped { .. }));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000));
    let line = format!(r#"[{{"eventTimestamp":1,"event":{objects},"logs":[{{"message":[{objects}]}}]}}]"#);
    assert!(matches!(map_line(Dataset::Tail, &line, &line_ctx(1)), LineOutcome::Mapped { .. }));
    assert_eq!(Dataset::sniff(&deep), None);
}
