//! Every sample file in shared/formats/samples mapped end to end: counts, hand-checked
//! records (first lines and the planted anomalies from the summaries), golden snapshots of
//! the first decisions, and cross-path deduplication.
//!
//! Regenerate the snapshots with `GATELOG_BLESS=1 cargo test -p gatelog-ingest --test golden`.

mod common;

use common::{map_sample, sample_json};
use gatelog_ingest::{BodyOutcome, Dataset};
use gatelog_model::{AccessDecision, Decision, EventId, PrincipalType, Source, UnixMillis, sha256_hex};
use std::collections::{BTreeMap, BTreeSet};

/// (file, dataset, lines, decisions)
const SAMPLES: &[(&str, Dataset, u64, usize)] = &[
    ("http_requests.ndjson", Dataset::HttpRequests, 200, 200),
    ("http_requests_5000.ndjson.gz", Dataset::HttpRequests, 5000, 5000),
    ("firewall_events.ndjson", Dataset::FirewallEvents, 200, 200),
    ("access_requests.ndjson", Dataset::AccessRequests, 200, 200),
    ("audit_logs.ndjson", Dataset::AuditLogs, 200, 200),
    ("audit_logs_v2.ndjson", Dataset::AuditLogsV2, 200, 200),
    ("gateway_http.ndjson", Dataset::GatewayHttp, 200, 200),
    ("workers_trace_events.ndjson", Dataset::WorkersTraceEvents, 200, 164),
    ("workers_trace_events_clean.ndjson", Dataset::WorkersTraceEvents, 200, 164),
    ("tail.ndjson", Dataset::Tail, 200, 164),
];

fn by_ray<'a>(out: &'a BodyOutcome, ray: &str) -> &'a AccessDecision {
    out.decisions.iter().find(|d| d.ray_id == ray).unwrap_or_else(|| panic!("no decision with ray id {ray}"))
}

fn by_request<'a>(out: &'a BodyOutcome, request_id: &str) -> &'a AccessDecision {
    out.decisions
        .iter()
        .find(|d| d.request_id == request_id)
        .unwrap_or_else(|| panic!("no decision with request id {request_id}"))
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value.as_array().expect("array").iter().map(|v| v.as_str().expect("string").to_owned()).collect()
}

#[test]
fn every_sample_maps_completely() {
    for &(file, dataset, lines, decisions) in SAMPLES {
        let (found, out) = map_sample(file);
        assert_eq!(found, dataset, "{file}: dataset from the file name");
        assert_eq!(out.lines, lines, "{file}: lines");
        assert_eq!(out.raw.len() as u64, lines, "{file}: one raw record per line");
        assert_eq!(out.decisions.len(), decisions, "{file}: decisions");
        assert!(out.dead_letters.is_empty(), "{file}: dead letters {:?}", out.dead_letters.first());
        assert!(out.warnings.is_empty(), "{file}: warnings {:?}", out.warnings);
        assert_eq!((out.probes, out.blanks), (0, 0), "{file}");

        let raw_hashes: BTreeSet<&str> = out.raw.iter().map(|r| r.sha256.as_str()).collect();
        for raw in &out.raw {
            assert_eq!(raw.sha256, sha256_hex(raw.line.as_bytes()), "{file}: raw hash");
            assert_eq!(raw.dataset, dataset.as_str());
            assert_eq!(raw.received_at, common::RECEIVED_AT);
            assert!(!raw.line.ends_with('\n') && !raw.line.ends_with('\r'));
        }
        let mut ids = BTreeSet::new();
        for d in &out.decisions {
            assert!(ids.insert(d.event_id.clone()), "{file}: duplicate event id {}", d.event_id);
            assert!(raw_hashes.contains(d.raw_sha256.as_str()), "{file}: decision without its raw record");
            assert_eq!(d.dataset, dataset.as_str());
            assert_eq!(d.tenant, "default");
            assert_eq!(d.received_at, common::RECEIVED_AT);
            assert_eq!(d.source, if dataset == Dataset::Tail { Source::Tail } else { Source::Logpush });
            assert_eq!(d.event_id.len(), 32);
            assert!(
                d.time.0 >= 1_740_960_000_000 && d.time.0 < 1_741_132_800_000,
                "{file}: time {} in the window",
                d.time
            );
            assert_eq!(d.country, d.country.to_ascii_uppercase(), "{file}: country upper-cased");
        }
        // Raw record ids are unique too (Logpush retries must map to the same, distinct ids).
        let raw_ids: BTreeSet<&str> = out.raw.iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(raw_ids.len(), out.raw.len(), "{file}: raw event ids unique");
    }
}

#[test]
fn mapping_is_deterministic_and_ignores_arrival_time() {
    let (_, a) = map_sample("firewall_events.ndjson");
    let (_, b) = map_sample("firewall_events.ndjson");
    assert_eq!(a, b);
    let body = common::sample_bytes("firewall_events.ndjson");
    let mut ctx = common::body_ctx("later");
    ctx.received_at = UnixMillis(1_800_000_000_000);
    let later = gatelog_ingest::map_body(Dataset::FirewallEvents, &body, &ctx).unwrap();
    let ids = |o: &BodyOutcome| o.decisions.iter().map(|d| d.event_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&later), "a retried batch maps to the same ids");
}

#[test]
fn http_requests_first_line_and_deny_burst() {
    let (_, out) = map_sample("http_requests.ndjson");
    let first = &out.decisions[0];
    assert_eq!(first.event_id, EventId::derive(&["http_requests", "15a6be4b5c14bca5", "1740968602732477574"]));
    assert_eq!(out.raw[0].event_id, first.event_id);
    assert_eq!(first.time, UnixMillis(1_740_968_602_732));
    assert_eq!(first.decision, Decision::Allow);
    assert_eq!(first.principal, "");
    assert_eq!(first.principal_type, PrincipalType::Anonymous);
    assert_eq!(first.resource, "https://ch.example.com/query");
    assert_eq!((first.action.as_str(), first.status), ("POST", 200));
    assert_eq!(
        (first.host.as_str(), first.zone.as_str(), first.path.as_str()),
        ("ch.example.com", "example.com", "/query")
    );
    assert_eq!((first.client_ip.as_str(), first.country.as_str(), first.asn), ("198.51.100.35", "SG", 9506));
    assert_eq!(first.duration_ms, 1387, "EdgeEnd − EdgeStart");
    assert_eq!(first.user_agent, "DataGrip/2024.3.2");

    let planted = &sample_json("http_requests.summary.json")["planted"]["deny_burst"];
    let rays = strings(&planted["ray_ids"]);
    let from_ip: Vec<&AccessDecision> = out.decisions.iter().filter(|d| d.client_ip == "203.0.113.66").collect();
    assert_eq!(from_ip.len(), 12);
    assert!(from_ip.iter().all(|d| d.decision == Decision::Deny && rays.contains(&d.ray_id)));
    assert!(from_ip.iter().all(|d| matches!(d.status, 401 | 403 | 429) && d.country == "DE" && d.asn == 24940));
    let blocked = from_ip.iter().find(|d| d.status == 429).expect("a rate-limited request");
    assert_eq!(blocked.reason, "Rate limit ch.example.com/query per IP");
    assert!(!blocked.policy.is_empty());
    let challenged = out.decisions.iter().filter(|d| d.decision == Decision::Challenge).count();
    assert_eq!(challenged, 8, "managedChallenge → challenge");
    assert_eq!(out.decisions.iter().filter(|d| d.decision == Decision::Error).count(), 5, "500 and 504 → error");

    let (_, big) = map_sample("http_requests_5000.ndjson.gz");
    let planted = &sample_json("http_requests_5000.summary.json")["planted"]["deny_burst"];
    let rays: BTreeSet<String> = strings(&planted["ray_ids"]).into_iter().collect();
    let denied: BTreeSet<String> = big
        .decisions
        .iter()
        .filter(|d| d.client_ip == "203.0.113.66" && d.decision == Decision::Deny)
        .map(|d| d.ray_id.clone())
        .collect();
    assert_eq!(denied, rays, "all 120 burst requests are denials");
}

#[test]
fn firewall_events_first_line_and_rate_limit_burst() {
    let (_, out) = map_sample("firewall_events.ndjson");
    let first = &out.decisions[0];
    assert_eq!(
        first.event_id,
        EventId::derive(&[
            "firewall_events",
            "49e7c22cae35c2ba",
            "1740978175",
            "984ef5f72b55c255b63ee35e6e0a3671",
            "botmanagement",
            "0"
        ])
    );
    assert_eq!(first.time, UnixMillis(1_740_978_175_000));
    assert_eq!(first.decision, Decision::Challenge);
    assert_eq!(first.resource, "https://api.example.com/v1/products?page=17");
    assert_eq!(first.reason, "Challenge likely automated traffic (botmanagement)");
    assert_eq!(first.policy, "984ef5f72b55c255b63ee35e6e0a3671");
    assert_eq!((first.country.as_str(), first.status), ("US", 403));

    let planted = &sample_json("firewall_events.summary.json")["planted"]["deny_burst"];
    for ray in strings(&planted["ray_ids"]) {
        let d = by_ray(&out, &ray);
        assert_eq!((d.decision, d.status, d.client_ip.as_str()), (Decision::Deny, 429, "203.0.113.66"));
        assert!(d.reason.ends_with("(ratelimit)"), "{}", d.reason);
    }
    let count = |want: Decision| out.decisions.iter().filter(|d| d.decision == want).count();
    // Baseline actions: block 79, managedchallenge 81, managedchallengenoninteractivesolved 28, log 12.
    assert_eq!(
        (count(Decision::Deny), count(Decision::Challenge), count(Decision::Allow), count(Decision::Log)),
        (79, 81, 28, 12)
    );
}

#[test]
fn access_requests_burst_and_compromised_principal() {
    let (_, out) = map_sample("access_requests.ndjson");
    let first = &out.decisions[0];
    assert_eq!(first.event_id, EventId::derive(&["access_requests", "3386be5137f4f92f", "2025-03-03T01:53:22Z"]));
    assert_eq!((first.principal.as_str(), first.principal_type), ("chen@example.com", PrincipalType::User));
    assert_eq!((first.decision, first.action.as_str()), (Decision::Allow, "login"));
    assert_eq!(first.resource, "https://wiki.example.org");
    assert_eq!(first.policy, "access:b962c768-5c29-4146-b725-67f6dfe6e955");
    assert!(first.reason.contains("okta"), "{}", first.reason);
    assert_eq!((first.country.as_str(), first.time), ("SG", UnixMillis(1_740_966_802_000)));

    let planted = &sample_json("access_requests.summary.json")["planted"];
    for ray in strings(&planted["deny_burst"]["ray_ids"]) {
        let d = by_ray(&out, &ray);
        assert_eq!((d.decision, d.client_ip.as_str(), d.country.as_str()), (Decision::Deny, "203.0.113.66", "DE"));
    }
    let rays = strings(&planted["new_country_offhours"]["ray_ids"]);
    let decisions: Vec<(Decision, &str)> =
        rays.iter().map(|r| by_ray(&out, r)).map(|d| (d.decision, d.resource.as_str())).collect();
    assert_eq!(
        decisions,
        [
            (Decision::Allow, "https://ch.example.com"),
            (Decision::Allow, "https://grafana.example.com"),
            (Decision::Deny, "https://admin.example.com")
        ]
    );
    assert!(rays.iter().all(|r| {
        let d = by_ray(&out, r);
        d.principal == "yara@example.com" && d.country == "VN"
    }));
}

#[test]
fn audit_logs_privileged_change_in_both_versions() {
    let ids = strings(&sample_json("audit_logs.summary.json")["planted"]["offhours_privileged_change"]["ids"]);
    let (_, v1) = map_sample("audit_logs.ndjson");
    let (_, v2) = map_sample("audit_logs_v2.ndjson");
    let expect =
        [("login", "account"), ("update", "access_policy"), ("update", "logpush_job"), ("create", "api_token")];
    for (id, (action, rtype)) in ids.iter().zip(expect) {
        let a = v1.decisions.iter().find(|d| d.event_id == EventId::derive(&["audit_logs", id])).expect("v1 record");
        let b = v2.decisions.iter().find(|d| d.event_id == EventId::derive(&["audit_logs_v2", id])).expect("v2 record");
        for d in [a, b] {
            assert_eq!((d.principal.as_str(), d.principal_type), ("yara@example.com", PrincipalType::User));
            assert_eq!(
                (d.client_ip.as_str(), d.decision, d.action.as_str()),
                ("198.51.100.201", Decision::Allow, action)
            );
            assert!(d.resource.starts_with("cloudflare:") && d.resource.contains(rtype), "{}", d.resource);
        }
        assert_eq!(a.time, b.time, "v1 and v2 describe the same event");
        assert!(a.resource.starts_with(&format!("cloudflare:{rtype}/")));
    }
    let logpush = v2.decisions.iter().find(|d| d.event_id == EventId::derive(&["audit_logs_v2", &ids[2]])).unwrap();
    assert_eq!(logpush.reason, "update logpush job");
    assert!(logpush.resource.starts_with("cloudflare:logpush/logpush_job/"));
    assert_eq!(logpush.time, UnixMillis::parse_str("2025-03-04T03:19:18Z").unwrap());

    let first = &v2.decisions[0];
    assert_eq!(
        (first.user_agent.as_str(), first.status, first.ray_id.as_str()),
        ("Terraform/1.9.8", 200, "66cb3755d3b3f266")
    );
    assert_eq!(first.resource, "cloudflare:rulesets/firewall_rule/af2178790ad6f69dfeb03d9d4493e483");
    let failed = &v2.decisions[1];
    assert_eq!((failed.decision, failed.status), (Decision::Deny, 403), "ActionResult failure → deny");
    assert_eq!(v1.decisions[1].decision, Decision::Deny, "ActionResult false → deny");
}

#[test]
fn gateway_http_dlp_exfiltration() {
    let (_, out) = map_sample("gateway_http.ndjson");
    let first = &out.decisions[0];
    assert_eq!(first.event_id, EventId::derive(&["gateway_http", "a3ee6e0a9755ba54e97b532a199f6141"]));
    assert_eq!((first.principal.as_str(), first.decision), ("jun@example.com", Decision::Allow));
    assert_eq!(
        (first.resource.as_str(), first.host.as_str()),
        ("https://docs.google.com/api/v1/messages", "docs.google.com")
    );
    let planted = &sample_json("gateway_http.summary.json")["planted"]["dlp_exfil"];
    for id in strings(&planted["request_ids"]) {
        let d = by_request(&out, &id);
        assert_eq!((d.principal.as_str(), d.decision, d.status), ("aaron@example.com", Decision::Deny, 403));
        assert_eq!(d.policy, "Block DLP-matched uploads to personal storage");
        assert!(d.reason.contains("Financial Information") && d.reason.contains("(dlp)"), "{}", d.reason);
        assert_eq!(d.action, "POST");
    }
    // off / isolate are allow (the request went through), block is deny.
    let denies = out.decisions.iter().filter(|d| d.decision == Decision::Deny).count();
    assert_eq!(denies, 7);
}

fn check_worker_anomalies(out: &BodyOutcome, summary: &serde_json::Value) {
    let planted = &summary["planted"];
    for id in strings(&planted["runaway_select"]["request_ids"]) {
        let d = by_request(out, &id);
        assert_eq!(d.event_id, EventId::for_decision(&id));
        assert_eq!((d.decision, d.action.as_str()), (Decision::Allow, "select"));
        assert!(d.rows_read >= 1_000_000_000 || d.duration_ms >= 60_000, "{d:?}");
        assert!(["bella@example.com", "laura@example.com"].contains(&d.principal.as_str()));
        assert!(!d.query.to_ascii_uppercase().contains("LIMIT"));
        assert!(!d.query_fingerprint.is_empty());
    }
    for id in strings(&planted["new_country_offhours"]["request_ids"]) {
        let d = by_request(out, &id);
        assert_eq!((d.principal.as_str(), d.country.as_str(), d.asn), ("yara@example.com", "VN", 45899));
        assert_eq!(d.client_ip, "198.51.100.201");
    }
    for id in strings(&planted["deny_burst"]["request_ids"]) {
        let d = by_request(out, &id);
        assert_eq!((d.decision, d.client_ip.as_str(), d.policy.as_str()), (Decision::Deny, "203.0.113.66", "ch-authn"));
        assert_eq!(d.principal_type, PrincipalType::Anonymous, "a claimed identity (principal_type unknown)");
        assert!(matches!(d.status, 401 | 403));
    }
}

#[test]
fn worker_events_first_decision_and_anomalies() {
    let (_, wte) = map_sample("workers_trace_events.ndjson");
    let first = &wte.decisions[0];
    assert_eq!(first.event_id, EventId::for_decision("02bc478f-a284-452a-a2b1-f550ddfe37b6"));
    assert_eq!(first.time, UnixMillis::parse_str("2025-03-03T00:10:27.779Z").unwrap());
    assert_eq!((first.principal.as_str(), first.principal_type), ("karl@example.com", PrincipalType::User));
    assert_eq!(first.roles, ["sre"]);
    assert_eq!((first.resource.as_str(), first.action.as_str()), ("clickhouse:system.query_log", "select"));
    assert_eq!(
        (first.host.as_str(), first.path.as_str(), first.ray_id.as_str()),
        ("ch.example.com", "/query", "c3e4fd4346373451")
    );
    assert_eq!(
        (first.rows_read, first.bytes_read, first.result_rows, first.duration_ms),
        (165_908, 22_005_380, 580, 16)
    );
    assert_eq!(first.auth_method, "cf_access_jwt");
    assert!(first.query.contains("INTERVAL ? HOUR") && first.query.ends_with("LIMIT ?"), "masked: {}", first.query);
    assert_eq!(
        first.query_fingerprint,
        gatelog_model::query::fingerprint(
            "SELECT query_id, user, query_duration_ms, read_rows FROM system.query_log WHERE event_time >= now() - INTERVAL 1 HOUR ORDER BY query_duration_ms DESC LIMIT 20"
        )
    );
    check_worker_anomalies(&wte, &sample_json("workers_trace_events.summary.json"));

    // Lines without an access_decision keep a line-derived id.
    let quiet: Vec<_> = wte.raw.iter().filter(|r| !wte.decisions.iter().any(|d| d.raw_sha256 == r.sha256)).collect();
    assert_eq!(quiet.len(), 36);
    for raw in quiet {
        let v: serde_json::Value = serde_json::from_str(&raw.line).unwrap();
        let want = EventId::derive(&[
            "workers_trace_events",
            v["ScriptName"].as_str().unwrap(),
            &v["EventTimestampMs"].to_string(),
            v["Event"]["RayID"].as_str().unwrap(),
        ]);
        assert_eq!(raw.event_id, want);
        assert_eq!(raw.time.0, v["EventTimestampMs"].as_i64().unwrap());
    }

    let (_, tail) = map_sample("tail.ndjson");
    check_worker_anomalies(&tail, &sample_json("tail.summary.json"));
    let (_, clean) = map_sample("workers_trace_events_clean.ndjson");
    assert!(clean.decisions.iter().all(|d| d.rows_read < 1_000_000_000 && d.duration_ms < 60_000));
}

#[test]
fn tail_and_logpush_copies_share_decision_ids() {
    let (_, wte) = map_sample("workers_trace_events.ndjson");
    let (_, tail) = map_sample("tail.ndjson");
    let ids = |o: &BodyOutcome| -> BTreeMap<String, String> {
        o.decisions.iter().map(|d| (d.event_id.clone(), d.request_id.clone())).collect()
    };
    let (a, b) = (ids(&wte), ids(&tail));
    assert_eq!(a.len(), 164);
    assert_eq!(a, b, "same invocations, same decision ids");
    for (event_id, request_id) in &a {
        assert_eq!(event_id, &EventId::for_decision(request_id));
    }
    // Same content apart from where it came from.
    for d in &wte.decisions {
        let t = tail.decisions.iter().find(|t| t.event_id == d.event_id).unwrap();
        assert_eq!((t.source, t.dataset.as_str()), (Source::Tail, "tail"));
        let strip = |x: &AccessDecision| {
            let mut x = x.clone();
            x.source = Source::Logpush;
            x.dataset.clear();
            x.raw_sha256.clear();
            x
        };
        assert_eq!(strip(d), strip(t));
    }
}

/// First 5 decisions of each dataset, as JSON lines in tests/golden/<dataset>.jsonl.
#[test]
fn golden_snapshots() {
    let bless = std::env::var("GATELOG_BLESS").is_ok_and(|v| v == "1");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut failures = Vec::new();
    for &(file, dataset, _, _) in SAMPLES {
        if file.ends_with(".gz") || file.contains("clean") {
            continue;
        }
        let (_, out) = map_sample(file);
        let mut text = String::new();
        for d in out.decisions.iter().take(5) {
            text.push_str(&serde_json::to_string(d).unwrap());
            text.push('\n');
        }
        let path = dir.join(format!("{}.jsonl", dataset.as_str()));
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with GATELOG_BLESS=1 to create it)", path.display()));
        if want != text {
            let line = want.lines().zip(text.lines()).position(|(a, b)| a != b).unwrap_or(0);
            failures.push(format!(
                "{}: differs at line {}\n want: {}\n  got: {}",
                path.display(),
                line + 1,
                want.lines().nth(line).unwrap_or(""),
                text.lines().nth(line).unwrap_or("")
            ));
        }
    }
    assert!(failures.is_empty(), "golden snapshots differ (GATELOG_BLESS=1 to accept):\n{}", failures.join("\n"));
}
