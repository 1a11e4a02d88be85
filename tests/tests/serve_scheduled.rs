//! Rules as code on their schedule inside `gatelog serve`, end to end against real ClickHouse
//! 18.16: a user rule (`detect.rules_dir`, every minute over the minute before) judges
//! decisions posted to `/v1/decisions`, and its alert appears without anyone running
//! `gatelog rules run`: the finding, the alert, its `open` event (which the mailer reads) and
//! a `scheduled` run per window in `detector_runs`, and the mail (an `.eml` file: no SMTP
//! server configured); `/metrics` counts the runs and shows the rule's lag. Restarted, it resumes after the last completed window: no window twice.

use gatelog_e2e::{Serve, ServeSpec, count, free_port, http_client, metric, query, wait_until};
use gatelog_store::testing::{TestClickHouse, random_database};
use std::time::Duration;

const TOKEN: &str = "scheduled-test-token-0123456789";

const RULE: &str = r#"
id = "fast_enumeration"
version = 1
title = "Principal denied on several resources (every minute)"
description = "A principal denied on at least `threshold` distinct resources in a minute of arrivals."
runbook = "Look at the events."
severity = "high"
soc2 = ["CC7.2"]
schedule = "1m"
window = "1m"
threshold = 3
query = """
SELECT tenant, principal, uniqExact(resource) AS count, min(time_ms) AS window_start_ms,
    max(time_ms) AS window_end_ms, arraySlice(arraySort(groupUniqArray(event_id)), 1, 20) AS event_ids
FROM {db}.decisions
WHERE received_at_ms >= {from} AND received_at_ms < {to}
    AND time >= {time_from} AND time < {time_to}
    AND decision = 'deny' AND principal != ''
GROUP BY tenant, principal
HAVING uniqExact(resource) >= {threshold}
ORDER BY tenant, principal
"""
dedup_key = "{rule}:{principal}"
summary = "{principal} was denied on {count} distinct resources"
"#;

fn now_rfc3339() -> String {
    use gatelog_model::Clock as _;
    gatelog_model::SystemClock.now().to_rfc3339()
}

#[tokio::test]
async fn a_scheduled_rule_alerts_inside_serve_and_resumes_after_a_restart() {
    let mut ch = TestClickHouse::start().await.expect("clickhouse");
    let tmp = tempfile::tempdir().expect("tempdir");
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(rules.join("fast_enumeration.toml"), RULE).expect("rule");
    let config = tmp.path().join("gatelog.toml");
    std::fs::write(
        &config,
        format!("[detect]\nrules_dir = {:?}\n[detect.sql_rules]\nlag = \"1s\"\n", rules.display().to_string()),
    )
    .expect("config");
    let db = random_database();
    let spec = ServeSpec {
        data_dir: tmp.path().join("data"),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: db.clone(),
        token: TOKEN.to_owned(),
        config: Some(config),
        release: false,
    };
    let base = spec.base_url();
    let mut serve = Serve::start(&spec).await;

    let time = now_rfc3339();
    let body: String = (0..5)
        .map(|i| {
            format!(
                "{{\"event_id\":\"enum-{i}\",\"time\":\"{time}\",\"decision\":\"deny\",\"principal\":\"mallory@example.com\",\"client_ip\":\"203.0.113.9\",\"resource\":\"clickhouse:db.t{i}\"}}\n"
            )
        })
        .collect();
    let r = http_client()
        .post(format!("{base}/v1/decisions"))
        .bearer_auth(TOKEN)
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);

    // The window holding the arrivals ends at the next whole minute; it runs a second later.
    let opened = |m: &str| metric(m, "gatelog_scheduled_alerts_opened_total", &[]).unwrap_or(0.0);
    let (_, metrics, took) = wait_until(&base, "/metrics", Duration::from_secs(150), |_, m| opened(m) >= 1.0).await;
    println!("the scheduled rule's alert opened {took:?} after the post");
    let url = ch.url();
    let alerts = query(&url, &format!("SELECT rule_id, dedup_key, severity FROM {db}.alerts FINAL FORMAT TSV"));
    let ours: Vec<&str> = alerts.lines().filter(|l| l.starts_with("fast_enumeration\t")).collect();
    assert_eq!(ours, vec!["fast_enumeration\tfast_enumeration:mallory@example.com\thigh"], "{alerts}");
    let opens = format!(
        "SELECT count() FROM {db}.alert_events FINAL WHERE action = 'open' AND alert_id IN \
         (SELECT alert_id FROM {db}.alerts FINAL WHERE rule_id = 'fast_enumeration')"
    );
    assert_eq!(count(&url, &opens), 1, "one open event for the mailer");
    let findings = format!("SELECT count() FROM {db}.findings FINAL WHERE rule_id = 'fast_enumeration'");
    assert_eq!(count(&url, &findings), 1);
    let scheduled = format!(
        "SELECT count() FROM {db}.detector_runs WHERE kind = 'scheduled' AND rule_id = 'fast_enumeration' AND outcome = 'ok'"
    );
    assert!(count(&url, &scheduled) >= 1);
    assert!(metric(&metrics, "gatelog_scheduled_runs_total", &[("outcome", "ok")]).unwrap_or(0.0) >= 1.0, "{metrics}");
    let lag = metric(&metrics, "gatelog_scheduled_rule_lag_seconds", &[("rule", "fast_enumeration")]);
    assert!(lag.is_some_and(|s| s < 120.0), "{metrics}");
    // Every built-in rule is scheduled too.
    for builtin in ["deny_enumeration", "brute_force_success", "principal_many_ips"] {
        assert!(metric(&metrics, "gatelog_scheduled_rule_lag_seconds", &[("rule", builtin)]).is_some(), "{metrics}");
    }
    // The mailer mails it like any alert: no SMTP server is configured, so an `.eml` file.
    let outbox = spec.data_dir.join("outbox");
    let mailed = |outbox: &std::path::Path| {
        std::fs::read_dir(outbox).into_iter().flatten().flatten().any(|e| {
            std::fs::read_to_string(e.path())
                .is_ok_and(|t| t.contains("fast_enumeration") && t.contains("mallory@example.com"))
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !mailed(&outbox) {
        assert!(
            std::time::Instant::now() < deadline,
            "the alert was not mailed to {}:\n{}",
            outbox.display(),
            serve.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        serve.terminate(Duration::from_secs(30)).await.map(|s| s.success()),
        Some(true),
        "{}",
        serve.log_tail(30)
    );

    // Restarted: it resumes after the last completed window, so no window runs twice.
    let before = count(&url, &scheduled);
    let mut serve = Serve::start(&spec).await;
    let twice = format!(
        "SELECT count() FROM (SELECT rule_id, window_end_ms, count() AS n FROM {db}.detector_runs \
         WHERE kind = 'scheduled' AND outcome = 'ok' GROUP BY rule_id, window_end_ms HAVING n > 1)"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    while count(&url, &scheduled) <= before {
        assert!(std::time::Instant::now() < deadline, "no scheduled run after the restart:\n{}", serve.log_tail(30));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(count(&url, &twice), 0, "a window ran twice");
    assert_eq!(count(&url, &findings), 1);
    assert_eq!(
        serve.terminate(Duration::from_secs(30)).await.map(|s| s.success()),
        Some(true),
        "{}",
        serve.log_tail(30)
    );
    ch.stop().await.expect("stop clickhouse");
}
