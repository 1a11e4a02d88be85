//! `gatelog rules list | test | run` end to end against a real ClickHouse 18.16: the built-in
//! rules' fixtures pass (each in a database of its own, dropped afterwards), a fixture that
//! expects the wrong thing fails the command with expected and got, an invalid rule file is
//! refused naming file and key, user rules come from `detect.rules_dir`, and `rules run
//! --store` stores findings, alerts and runs, nothing twice when run again.

use gatelog_e2e::{count, describe, gatelog};
use gatelog_model::{AccessDecision, Batch, Decision, Source, UnixMillis};
use gatelog_store::testing::TestClickHouse;
use std::path::Path;

fn repo_rule(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn builtin_fixtures_pass_and_a_wrong_expectation_fails_with_a_diff() {
    let mut ch = TestClickHouse::start().await.expect("clickhouse 18.16");
    let url = ch.url();
    let db = ch.database().to_owned();
    let store = ["--clickhouse-url", url.as_str(), "--clickhouse-database", db.as_str()];

    let out = gatelog(&[&["rules", "test"], &store[..]].concat());
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("3 rules, 4 fixtures: 4 passed, 0 failed"), "{}", describe(&out));
    for id in ["deny_enumeration", "brute_force_success", "principal_many_ips"] {
        assert!(text.contains(&format!("ok    {id} (rules/{id}.toml): ")), "{id}: {}", describe(&out));
    }
    let left = format!("SELECT count() FROM system.databases WHERE name LIKE '{db}_rules_test_%'");
    assert_eq!(count(&url, &left), 0, "every fixture database is dropped");

    // The same rule expecting 9 resources where there are 10, and a finding where none is.
    let dir = tempfile::tempdir().unwrap();
    let wrong = repo_rule("deny_enumeration.toml").replacen("count = 10\n", "count = 9\n", 1).replacen(
        "expect = []\n",
        "[[fixtures.expect]]\nprincipal = \"mallory@example.com\"\n",
        1,
    );
    let file = dir.path().join("deny_enumeration.toml");
    std::fs::write(&file, wrong).unwrap();
    let out = gatelog(&[&["rules", "test", file.to_str().unwrap()], &store[..]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = stdout(&out);
    let expected_lines = [
        format!("FAIL  deny_enumeration ({}): denied on ten tables is enumeration, on two is not", file.display()),
        "      - expected { dedup_key = \"deny_enumeration:mallory@example.com\", evidence.count = \"9\", evidence.ips = \"2\", evidence.last_ip = \"198.51.100.4\", principal = \"mallory@example.com\" }".to_owned(),
        "      + got      { dedup_key = \"deny_enumeration:mallory@example.com\", evidence.count = \"10\", evidence.ips = \"2\", evidence.last_ip = \"198.51.100.4\", principal = \"mallory@example.com\" }".to_owned(),
        "FAIL  deny_enumeration".to_owned(),
        "      - expected { principal = \"mallory@example.com\" }".to_owned(),
        "1 rules, 2 fixtures: 0 passed, 2 failed".to_owned(),
    ];
    for line in &expected_lines {
        assert!(text.contains(line.as_str()), "missing {line:?} in\n{}", describe(&out));
    }

    // SQL the server refuses fails its fixtures with the server's message; the database goes too.
    let broken = dir.path().join("broken_sql.toml");
    let text = repo_rule("principal_many_ips.toml")
        .replacen("id = \"principal_many_ips\"", "id = \"broken_sql\"", 1)
        .replacen("uniqExact(country) AS countries", "uniqExact(countryy) AS countries", 1);
    std::fs::write(&broken, text).unwrap();
    let out = gatelog(&[&["rules", "test", broken.to_str().unwrap()], &store[..]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("FAIL  broken_sql") && text.contains("      error: rule broken_sql: "), "{}", describe(&out));
    assert!(text.contains("countryy"), "the server's message names the column: {}", describe(&out));
    assert_eq!(count(&url, &left), 0, "a failed fixture's database is dropped too");

    // An invalid rule is refused before anything runs, naming the file and the key.
    let bad = dir.path().join("bad_rule.toml");
    let text = repo_rule("principal_many_ips.toml")
        .replacen("id = \"principal_many_ips\"", "id = \"bad_rule\"", 1)
        .replacen("severity = \"medium\"", "severity = \"urgent\"", 1);
    std::fs::write(&bad, text).unwrap();
    let out = gatelog(&[&["rules", "test", bad.to_str().unwrap()], &store[..]].concat());
    assert!(!out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}: severity: must be one of info, low, medium, high, critical, got \"urgent\"",
            bad.display()
        )),
        "{}",
        describe(&out)
    );

    drop(dir);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn user_rules_are_listed_and_run_stores_each_finding_once() {
    let mut ch = TestClickHouse::start().await.expect("clickhouse 18.16");
    let url = ch.url();
    let db = ch.database().to_owned();
    let store = ["--clickhouse-url", url.as_str(), "--clickhouse-database", db.as_str()];

    // A user rule in detect.rules_dir: the built-in, copied under another id.
    let dir = tempfile::tempdir().unwrap();
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    let copy = repo_rule("principal_many_ips.toml")
        .replacen("id = \"principal_many_ips\"", "id = \"my_many_ips\"", 1)
        .replace("principal_many_ips:svc-export", "my_many_ips:svc-export");
    std::fs::write(rules_dir.join("my_many_ips.toml"), copy).unwrap();
    let config = dir.path().join("gatelog.toml");
    std::fs::write(&config, format!("[detect]\nrules_dir = {:?}\n", rules_dir.to_str().unwrap())).unwrap();
    let with_config = ["--config", config.to_str().unwrap()];
    let out = gatelog(&[&["rules", "list"], &with_config[..], &store[..]].concat());
    assert!(out.status.success(), "{}", describe(&out));
    let listed: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(listed.len(), 5, "header, 3 built-ins, 1 user rule: {listed:?}");
    assert!(listed[4].starts_with("my_many_ips ") && listed[4].contains("medium") && listed[4].contains("15m"));
    assert!(listed[4].contains(&rules_dir.join("my_many_ips.toml").display().to_string()), "{}", listed[4]);

    // Stored history: an IP denied six times on a login, then allowed as bob.
    let s = gatelog_store::Store::connect(&ch.store_config()).await.unwrap();
    s.migrate().await.unwrap();
    let t0 = UnixMillis::parse_str("2025-03-03T08:00:00Z").unwrap();
    let decisions: Vec<AccessDecision> = (0..7)
        .map(|i| {
            let mut d =
                AccessDecision::new(format!("bf{i}"), UnixMillis(t0.0 + i * 1000), "access_requests", Source::Logpush);
            d.received_at = UnixMillis(t0.0 + 600_000);
            d.client_ip = "203.0.113.50".into();
            d.resource = "https://bi.example.com/login".into();
            d.decision = if i < 6 { Decision::Deny } else { Decision::Allow };
            if i == 6 {
                d.principal = "bob@example.com".into();
            }
            d
        })
        .collect();
    let batch =
        Batch { batch_id: "rules-run".into(), dataset: "access_requests".into(), decisions, ..Batch::default() };
    s.write_batch(&batch).await.unwrap();
    drop(s);

    let run = ["rules", "run", "--from", "2025-03-03T00:00:00Z", "--to", "2025-03-04T00:00:00Z"];
    let out = gatelog(&[&run[..], &store[..]].concat());
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(
        text.contains("3 rules over arrivals") && text.contains("(72 windows): 1 findings; nothing was stored"),
        "{text}"
    );
    assert!(text.contains("critical  brute_force_success"), "{text}");
    assert!(
        text.contains(
            "203.0.113.50 was denied 6 times on https://bi.example.com/login, then allowed as bob@example.com"
        ),
        "{text}"
    );
    let findings = format!("SELECT count() FROM {db}.findings FINAL");
    assert_eq!(count(&url, &findings), 0, "no --store, nothing written");

    for _ in 0..2 {
        let stored = [&run[..], &["--rule", "brute_force_success", "--store"], &store[..]].concat();
        let out = gatelog(&stored);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(stdout(&out).contains("1 findings, stored with their alerts and runs"), "{}", describe(&out));
    }
    assert_eq!(count(&url, &findings), 1, "the same finding stored twice is one");
    assert_eq!(count(&url, &format!("SELECT count() FROM {db}.alerts FINAL WHERE rule_id = 'brute_force_success'")), 1);
    assert_eq!(count(&url, &format!("SELECT count() FROM {db}.alert_events FINAL WHERE action = 'open'")), 1);
    let runs = format!(
        "SELECT count() FROM {db}.detector_runs WHERE kind = 'manual' AND rule_id = 'brute_force_success' AND outcome = 'ok'"
    );
    assert_eq!(count(&url, &runs), 2 * 24, "a run per window, per invocation");

    drop(dir);
    ch.stop().await.unwrap();
}
