//! The example Sigma rules of `rules/sigma/examples/` on decisions, and the refusals.

use super::detector::SigmaDetector;
use super::*;
use crate::rules::testing::{Harness, MONDAY, assert_deterministic, decision};
use crate::{DetectConfig, Engine};
use gatelog_model::{AccessDecision, Decision, Severity};

const SENSITIVE: &str = include_str!("../../../rules/sigma/examples/sensitive_resource_denied.yml");
const BURST: &str = include_str!("../../../rules/sigma/examples/deny_burst_ip.yml");
const AGENT: &str = include_str!("../../../rules/sigma/examples/unusual_user_agent.yml");

fn examples() -> SigmaRules {
    SigmaRules::parse(vec![
        ("examples/deny_burst_ip.yml".into(), BURST.into()),
        ("examples/sensitive_resource_denied.yml".into(), SENSITIVE.into()),
        ("examples/unusual_user_agent.yml".into(), AGENT.into()),
    ])
    .unwrap()
}

fn one(name: &str, text: &str) -> Result<SigmaRules, SigmaError> {
    SigmaRules::parse(vec![(name.into(), text.into())])
}

fn deny(principal: &str, t: i64, ip: &str, resource: &str) -> AccessDecision {
    let mut d = decision(principal, t, ip, "DE");
    d.decision = Decision::Deny;
    d.resource = resource.into();
    d.action = "select".into();
    d
}

fn run(ds: &[AccessDecision]) -> Vec<Finding> {
    let mut det = SigmaDetector::new(&examples());
    Harness::default().feed_all(&mut det, ds)
}

use gatelog_model::Finding;

#[test]
fn the_examples_parse_and_list_with_ids_kinds_and_levels() {
    let rules = examples();
    let listed: Vec<(&str, &str, Severity, bool)> =
        rules.rules().iter().map(|r| (r.id.as_str(), r.kind.as_str(), r.severity, r.generates)).collect();
    assert_eq!(
        listed,
        vec![
            ("0c6d1e3a-9b7f-4a52-8d1e-5f4b3a2c1d01", "detection", Severity::Info, false),
            ("0c6d1e3a-9b7f-4a52-8d1e-5f4b3a2c1d02", "event_count", Severity::Medium, true),
            ("6f1b2c8e-3d4a-4e5f-9a1b-2c3d4e5f6a71", "detection", Severity::High, true),
            ("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c61", "detection", Severity::Medium, true),
        ]
    );
    assert_eq!(rules.hash().len(), 16);
    assert_eq!(rule_id(None, "Denied access: to a *sensitive* table!"), "denied_access_to_a_sensitive_table");
}

#[test]
fn a_denied_sensitive_table_is_a_finding_about_that_decision() {
    let t = MONDAY + 9 * 3_600_000;
    let hit = deny("mallory@example.com", t, "203.0.113.7", "clickhouse:analytics.pii_users");
    let probe = deny("probe@monitoring.example.com", t + 1, "203.0.113.8", "clickhouse:analytics.pii_users");
    let mut allowed = hit.clone();
    allowed.decision = Decision::Allow;
    allowed.event_id = "allowed".into();
    let other = deny("mallory@example.com", t + 2, "203.0.113.7", "clickhouse:analytics.events");
    let found = run(&[hit.clone(), probe, allowed, other]);
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!(f.rule_id, "6f1b2c8e-3d4a-4e5f-9a1b-2c3d4e5f6a71");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.dedup_key, "6f1b2c8e-3d4a-4e5f-9a1b-2c3d4e5f6a71:mallory@example.com");
    assert_eq!(f.event_ids, vec![hit.event_id.clone()]);
    assert_eq!((f.principal.as_str(), f.client_ip.as_str()), ("mallory@example.com", "203.0.113.7"));
    assert_eq!(f.evidence["sigma_title"], "Denied access to a sensitive table");
    assert_eq!(f.evidence["sigma_tags"], "attack.collection");
    assert!(f.summary.contains("Denied access to a sensitive table"), "{}", f.summary);
    assert_eq!(f.finding_id, f.clone().seal().finding_id);
}

#[test]
fn ten_denials_from_one_ip_within_five_minutes_fire_the_correlation_once() {
    let t = MONDAY + 3_600_000;
    let mut ds: Vec<AccessDecision> =
        (0..9).map(|i| deny(&format!("u{i}@example.com"), t + i * 20_000, "198.51.100.4", "clickhouse:x")).collect();
    // Other IPs and denials spread wider than the timespan do not count.
    ds.extend((0..12).map(|i| deny("a@example.com", t + i * 40_000, &format!("192.0.2.{i}"), "clickhouse:x")));
    ds.extend((0..12).map(|i| deny("b@example.com", t + i * 120_000, "192.0.2.200", "clickhouse:x")));
    ds.sort_by_key(|d| d.time.0);
    assert!(run(&ds).is_empty(), "nine denials, or denials spread over 24 minutes, are no burst");
    let tenth = deny("u9@example.com", t + 9 * 20_000, "198.51.100.4", "clickhouse:x");
    ds.push(tenth.clone());
    ds.extend((10..15).map(|i| deny("u@example.com", t + i * 20_000, "198.51.100.4", "clickhouse:x")));
    let found = run(&ds);
    assert_eq!(found.len(), 1, "the window resets after firing: {found:#?}");
    let f = &found[0];
    assert_eq!(f.rule_id, "0c6d1e3a-9b7f-4a52-8d1e-5f4b3a2c1d02");
    assert_eq!(f.severity, Severity::Medium);
    assert_eq!(f.dedup_key, "0c6d1e3a-9b7f-4a52-8d1e-5f4b3a2c1d02:198.51.100.4");
    assert_eq!(f.client_ip, "198.51.100.4");
    assert_eq!(f.principal, "", "a burst by IP is not about one principal");
    assert_eq!(f.event_ids.len(), 10);
    assert_eq!(f.event_ids.last(), Some(&tenth.event_id));
    assert_eq!(f.evidence["aggregated_value"], "10");
    assert_eq!(f.window_start.0, t);
    assert_eq!(f.window_end, tenth.time);
}

#[test]
fn a_scripting_user_agent_on_an_allowed_request_is_a_finding() {
    let t = MONDAY;
    let mut curl = decision("svc@example.com", t, "10.0.0.1", "DE");
    curl.user_agent = "curl/8.5.0".into();
    let mut denied_curl = curl.clone();
    denied_curl.decision = Decision::Deny;
    denied_curl.event_id = "denied".into();
    let mut browser = curl.clone();
    browser.user_agent = "Mozilla/5.0 (X11; Linux x86_64)".into();
    browser.event_id = "browser".into();
    let mut scanner = curl.clone();
    scanner.user_agent = "Mozilla/5.0 sqlmap/1.7".into();
    scanner.event_id = "scanner".into();
    let found = run(&[curl, denied_curl, browser, scanner]);
    let ids: Vec<&str> = found.iter().flat_map(|f| f.event_ids.iter().map(String::as_str)).collect();
    assert_eq!(ids, vec!["ev-svc@example.com-1741564800000-10.0.0.1", "scanner"]);
    assert!(found.iter().all(|f| f.rule_id == "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c61"));
}

#[test]
fn checkpoints_mid_correlation_change_nothing() {
    let t = MONDAY;
    let ds: Vec<AccessDecision> =
        (0..25).map(|i| deny(&format!("u{i}@example.com"), t + i * 10_000, "198.51.100.4", "clickhouse:pii")).collect();
    let rules = examples();
    let found = assert_deterministic(|| Box::new(SigmaDetector::new(&rules)), &ds);
    // Two bursts of ten, plus the sensitive-table rule on each denial.
    assert_eq!(found.iter().filter(|f| f.rule_id.ends_with("1d02")).count(), 2);
}

#[test]
fn the_engine_runs_sigma_rules_from_the_config() {
    let config = DetectConfig { sigma_rules: examples(), ..DetectConfig::default() };
    let mut engine = Engine::new(config.clone()).unwrap();
    let mut out = Vec::new();
    engine.process(&deny("m@example.com", MONDAY, "203.0.113.7", "clickhouse:pii"), &mut out);
    assert!(out.iter().any(|f| f.rule_id.starts_with("6f1b2c8e")), "{out:#?}");
    assert!(engine.tracked().contains_key("sigma"));
    let (restored, report) = Engine::restore(config, &engine.checkpoint().unwrap()).unwrap();
    assert!(report.fresh.is_empty(), "{:?}", report.fresh);
    assert_eq!(restored.tracked()["sigma"], engine.tracked()["sigma"]);
    assert_eq!(crate::rules::enabled_versions(&engine.config().clone()).last(), Some(&("sigma", 1)));
}

const HEAD: &str = "title: T\nid: t1\nlogsource:\n    product: gatelog\n    category: access_decision\n";

#[test]
fn what_gatelog_cannot_evaluate_exactly_is_refused_naming_file_and_feature() {
    let cases = [
        (format!("{HEAD}detection:\n    sel:\n        ClientIP: 1.2.3.4\n    condition: sel\n"), "field \"ClientIP\""),
        (
            "title: T\nlogsource:\n    product: windows\ndetection:\n    sel:\n        principal: a\n    condition: sel\n"
                .to_owned(),
            "logsource.product \"windows\"",
        ),
        (
            format!("{HEAD}detection:\n    sel:\n        decision: deny\n    condition: sel | count() by client_ip > 10\n    timeframe: 5m\n"),
            "aggregation in a condition",
        ),
        (
            "title: F\nlogsource:\n    product: gatelog\nfilter:\n    rules:\n        - t1\n    selection:\n        principal: a\n    condition: not selection\n".to_owned(),
            "filter",
        ),
        (format!("{HEAD}detection:\n    sel:\n        principal|expand: '%admins%'\n    condition: sel\n"), "expand"),
        (format!("{HEAD}detection:\n    sel:\n        principal: [a\n    condition: sel\n"), "not a Sigma rule"),
        (format!("{HEAD}detection:\n    sel:\n        principal|re: '(['\n    condition: sel\n"), "does not compile"),
        (
            format!("{HEAD}detection:\n    sel:\n        decision: deny\n    condition: sel\n---\ntitle: C\ncorrelation:\n    type: value_count\n    rules: [t1]\n    group-by: [Hostname]\n    timespan: 1m\n    condition:\n        field: principal\n        gte: 3\n"),
            "group-by field \"Hostname\"",
        ),
        (format!("{HEAD}detection:\n    sel:\n        decision: deny\n    condition: sel\n---\n{HEAD}detection:\n    sel:\n        decision: allow\n    condition: sel\n"), "rule id \"t1\" is also"),
    ];
    for (text, want) in cases {
        let e = one("dir/bad.yml", &text).unwrap_err();
        assert_eq!(e.file, "dir/bad.yml");
        assert!(e.to_string().contains(want), "want {want:?} in: {e}\n{text}");
    }
}
