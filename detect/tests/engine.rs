//! The engine as the runtime will use it: checkpoints anywhere in a real (generated and
//! mapped) stream change no finding, duplicates count once, tenants are kept apart and
//! capped, restores reject foreign bytes, memory stays within the caps under floods, and a
//! source that stops is reported while steady traffic is not.

mod support;

use gatelog_detect::{Arrival, CheckpointError, DetectConfig, Engine, RestoreError};
use gatelog_model::{AccessDecision, Batch, Decision, Finding, PrincipalType, Source, UnixMillis};
use support::generated::{Spec, deliveries, generate_all, stream};

const T0: i64 = 1_741_564_800_000; // 2025-03-10T00:00:00Z
const BATCH_MS: i64 = 5 * 60_000;

fn engine(config: DetectConfig) -> Engine {
    Engine::new(config).expect("a valid configuration")
}

fn denial(ip: &str, t: i64, event_id: &str) -> AccessDecision {
    let mut d = AccessDecision::new(event_id.into(), UnixMillis(t), "workers_trace_events", Source::Logpush);
    d.decision = Decision::Deny;
    d.client_ip = ip.into();
    d
}

fn run(e: &mut Engine, ds: &[AccessDecision]) -> Vec<Finding> {
    let mut out = Vec::new();
    for d in ds {
        e.process(d, &mut out);
    }
    out
}

/// All datasets of one generated world with its anomalies, as Logpush would deliver them.
fn world() -> Vec<Batch> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let specs: Vec<Spec> = [
        "workers_trace_events",
        "tail",
        "http_requests",
        "firewall_events",
        "access_requests",
        "audit_logs_v2",
        "gateway_http",
    ]
    .into_iter()
    .map(|dataset| Spec {
        dataset,
        seed: 31337,
        start: "2025-07-01T00:00:00Z".into(),
        hours: 60.0,
        count: 1000,
        anomalies: "default",
    })
    .collect();
    let generated = generate_all(dir.path(), &specs);
    deliveries(&generated.iter().collect::<Vec<_>>(), BATCH_MS)
}

#[test]
fn a_checkpoint_anywhere_in_a_real_stream_changes_no_finding() {
    let batches = world();
    let all = stream(&mut engine(DetectConfig::default()), &batches);
    assert!(all.len() > 10, "the world's anomalies must make findings: {}", all.len());
    let rules: std::collections::BTreeSet<&str> = all.iter().map(|f| f.rule_id.as_str()).collect();
    assert!(rules.len() >= 6, "{rules:?}");
    assert_eq!(stream(&mut engine(DetectConfig::default()), &batches), all, "a replay differs");
    for cut in [batches.len() / 4, batches.len() / 2, batches.len() * 3 / 4] {
        let mut first = engine(DetectConfig::default());
        let mut got = stream(&mut first, &batches[..cut]);
        let bytes = first.checkpoint().unwrap();
        let (mut restored, report) = Engine::restore(DetectConfig::default(), &bytes).unwrap();
        assert!(report.fresh.is_empty(), "{report:?}");
        assert_eq!(restored.stats(), first.stats());
        got.extend(stream(&mut restored, &batches[cut..]));
        assert_eq!(got, all, "restored after batch {cut} of {}", batches.len());
        assert_eq!(restored.stats().findings, all.len() as u64);
    }
}

#[test]
fn tail_and_logpush_copies_of_a_decision_count_once() {
    let mut e = engine(DetectConfig::default());
    let nine: Vec<AccessDecision> = (0..9).map(|i| denial("203.0.113.66", T0 + i * 1000, &format!("d{i}"))).collect();
    let mut twice: Vec<AccessDecision> = Vec::new();
    for d in &nine {
        twice.push(d.clone());
        let mut tail = d.clone();
        tail.dataset = "tail".into();
        tail.source = Source::Tail;
        twice.push(tail);
    }
    assert!(run(&mut e, &twice).is_empty(), "18 copies of 9 denials are 9 denials");
    assert_eq!(e.stats().duplicates, 9);
    let tenth = run(&mut e, &[denial("203.0.113.66", T0 + 9_000, "d9")]);
    assert_eq!(tenth.len(), 1);
    assert_eq!(tenth[0].rule_id, "deny_burst_ip");
}

#[test]
fn a_batch_the_spool_holds_twice_is_skipped() {
    let mut e = engine(DetectConfig::default());
    let batch = Batch {
        batch_id: "b-1".into(),
        dataset: "workers_trace_events".into(),
        received_at: UnixMillis(T0 + 60_000),
        decisions: (0..10).map(|i| denial("198.51.100.9", T0 + i * 1000, &format!("x{i}"))).collect(),
        ..Batch::default()
    };
    let mut out = Vec::new();
    e.process_batch(&batch, &mut out);
    e.process_batch(&batch, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(e.stats().duplicate_batches, 1);
    assert_eq!(e.stats().decisions, 10);
}

#[test]
fn tenants_are_kept_apart_and_capped() {
    let config = DetectConfig { max_tenants: 2, ..DetectConfig::default() };
    let mut e = engine(config);
    let mut ds = Vec::new();
    for (tenant, country) in [("acme", "GB"), ("globex", "US"), ("initech", "DE")] {
        for i in 0..5 {
            let mut d = denial("192.0.2.1", T0 + i * 60_000, &format!("{tenant}-{i}"));
            d.tenant = tenant.into();
            d.decision = Decision::Allow;
            d.principal = "shared@example.com".into();
            d.principal_type = PrincipalType::User;
            d.country = country.into();
            ds.push(d);
        }
    }
    assert!(run(&mut e, &ds).is_empty(), "one name in two tenants is two principals, not a new country");
    assert_eq!(e.baselines("acme").unwrap().profile("shared@example.com").unwrap().countries_list(), "GB");
    assert_eq!(e.baselines("globex").unwrap().profile("shared@example.com").unwrap().countries_list(), "US");
    assert!(e.baselines("initech").is_none());
    assert_eq!(e.stats().skipped_tenant, 5);
}

#[test]
fn restore_rejects_what_is_not_a_checkpoint_and_reports_rules_it_could_not_carry() {
    assert!(matches!(
        Engine::restore(DetectConfig::default(), b"{\"a\":1}"),
        Err(RestoreError::Checkpoint(CheckpointError::BadMagic { .. }))
    ));
    let mut e = engine(DetectConfig::default());
    run(&mut e, &[denial("192.0.2.7", T0, "e1")]);
    let bytes = e.checkpoint().unwrap();
    let mut other_format = bytes.clone();
    other_format[4] = 99;
    assert!(matches!(
        Engine::restore(DetectConfig::default(), &other_format),
        Err(RestoreError::Checkpoint(CheckpointError::Format { found: 99 }))
    ));
    assert!(matches!(
        Engine::restore(DetectConfig::default(), &bytes[..bytes.len() - 3]),
        Err(RestoreError::Checkpoint(CheckpointError::Decode(_)))
    ));
    let mut bad = DetectConfig::default();
    bad.deny_burst_ip.threshold = 1;
    assert!(matches!(Engine::restore(bad, &bytes), Err(RestoreError::Config(_))));
    // A rule that was off when the checkpoint was written starts fresh, and says so.
    let mut off = DetectConfig::default();
    off.volume_outlier.enabled = false;
    let mut e = engine(off);
    run(&mut e, &[denial("192.0.2.7", T0, "e1")]);
    let (_, report) = Engine::restore(DetectConfig::default(), &e.checkpoint().unwrap()).unwrap();
    assert_eq!(report.fresh, vec!["default/volume_outlier: not in the checkpoint".to_owned()]);
}

#[test]
fn memory_stays_within_the_caps_under_a_flood_of_new_keys() {
    let mut c = DetectConfig { max_principals: 200, dedup_capacity: 5_000, ..DetectConfig::default() };
    c.dedup_datasets.push("proxy".into());
    c.dedup_datasets.push("gateway_http".into());
    c.deny_burst_ip.max_keys = 300;
    c.deny_burst_principal.max_keys = 300;
    c.off_hours.max_principals = 100;
    c.volume_outlier.max_principals = 150;
    c.rare_pair.max_principals = 120;
    c.rare_pair.max_resources = 400;
    c.rare_pair.max_resources_per_principal = 16;
    c.dlp_exfil.max_principals = 100;
    c.source_silence.max_sources = 20;
    let caps = [
        ("baselines", 200),
        ("deny_burst_ip", 300),
        ("deny_burst_principal", 300),
        ("off_hours", 100),
        ("volume_outlier", 150),
        ("rare_pair", 120 + 400),
        ("dlp_exfil", 100),
        ("source_silence", 20),
        ("recent_ids", 5_000),
    ];
    let mut e = engine(c);
    let mut out = Vec::new();
    for i in 0..60_000i64 {
        let mut d =
            denial(&format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256), T0 + i * 10, &format!("f{i}"));
        d.principal = format!("user{i}@example.com");
        d.principal_type = PrincipalType::User;
        d.decision = if i % 3 == 0 { Decision::Deny } else { Decision::Allow };
        d.dataset = ["workers_trace_events", "gateway_http", "proxy"][(i % 3) as usize].into();
        d.resource = format!("clickhouse:db.table{i}");
        d.country = ["GB", "US", "DE", "JP"][(i % 4) as usize].into();
        d.reason = "upload matched DLP profiles: PII".into();
        d.host = "mega.nz".into();
        e.process(&d, &mut out);
        if i % 100 == 0 {
            e.observe_arrival(&Arrival::new(&format!("dataset{i}"), "", UnixMillis(T0 + i * 10), 1), &mut out);
        }
    }
    let tracked = e.tracked();
    for (what, cap) in caps {
        let held = tracked.get(what).copied().unwrap_or(0);
        assert!(held <= cap, "{what}: {held} > {cap} ({tracked:?})");
        assert!(held > 0 || what == "off_hours", "{what} held nothing: the flood did not reach it ({tracked:?})");
    }
}

#[test]
fn a_source_that_stops_is_reported_and_steady_traffic_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec {
        dataset: "http_requests",
        seed: 2718,
        start: "2025-05-05T00:00:00Z".into(),
        hours: 72.0,
        count: 4000,
        anomalies: "none",
    };
    let generated = generate_all(dir.path(), &[spec]);
    let batches = deliveries(&[&generated[0]], BATCH_MS);
    let ticks = |e: &mut Engine, from: i64, hours: i64| {
        let mut out = Vec::new();
        for k in 1..=hours * 12 {
            e.tick(UnixMillis(from + k * BATCH_MS), &mut out);
        }
        out
    };
    // Everything arrives: no silence, also not in the hours after the last batch.
    let mut steady = engine(DetectConfig::default());
    let mut found = stream(&mut steady, &batches);
    let last = batches.last().unwrap().received_at.0;
    found.extend(ticks(&mut steady, last, 1));
    assert!(found.iter().all(|f| f.rule_id != "source_silence"), "{found:?}");
    // The dataset stops after two days: it is reported within a few hours, once.
    let two_days = UnixMillis::parse_str("2025-05-07T02:00:00Z").unwrap().0;
    let cut = batches.iter().position(|b| b.received_at.0 >= two_days).unwrap();
    let mut stopped = engine(DetectConfig::default());
    let before = stream(&mut stopped, &batches[..cut]);
    assert!(before.iter().all(|f| f.rule_id != "source_silence"));
    let stop = batches[cut - 1].received_at.0;
    let after = ticks(&mut stopped, stop, 8);
    let whole: Vec<&Finding> = after.iter().filter(|f| f.dedup_key == "source_silence:http_requests").collect();
    assert_eq!(whole.len(), 1, "{after:?}");
    assert_eq!(whole[0].window_start.0, stop);
    // The generated day starts thin (its first hours hold little traffic), so the source's
    // longest gap is long: silent after three times that, well within the 8 hours ticked.
    let after_ms = whole[0].window_end.0 - stop;
    assert!((30 * 60_000..=6 * 3_600_000).contains(&after_ms), "reported {} min after the stop", after_ms / 60_000);
    assert!(after.iter().all(|f| f.rule_id == "source_silence" && f.dataset == "http_requests"));
}
