//! Sigma rules of `detect.sigma_dir` in `gatelog serve`, end to end against real ClickHouse
//! 18.16: the shipped examples (`rules/sigma/examples/`) in a config's `sigma_dir`, decisions
//! posted to `/v1/decisions`, and the alerts they raise (`gatelog alerts list`): a denied
//! sensitive table (detection), ten denials from one IP in five minutes (event_count
//! correlation), a scripting user agent. `gatelog rules list` shows them, `gatelog detect`
//! (backtest) finds them again in what is stored, and a Sigma file gatelog cannot evaluate
//! stops a command with a message naming the file and the field.

mod detect;

use detect::list_alerts;
use gatelog_e2e::{Serve, ServeSpec, describe, free_port, gatelog, http_client, wait_for_sinks};
use gatelog_store::testing::{TestClickHouse, random_database};
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "sigma-test-token-0123456789";
const SENSITIVE: &str = "6f1b2c8e-3d4a-4e5f-9a1b-2c3d4e5f6a71";
const BURST: &str = "0c6d1e3a-9b7f-4a52-8d1e-5f4b3a2c1d02";
const AGENT: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c61";

#[allow(clippy::disallowed_methods)] // the test's own reference point, not code under test
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms fit i64")
}

#[allow(clippy::unwrap_used)]
fn copy_examples(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/sigma/examples");
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

fn line(id: &str, time: i64, decision: &str, principal: &str, ip: &str, resource: &str, agent: &str) -> String {
    format!(
        "{{\"event_id\":\"{id}\",\"time\":{time},\"dataset\":\"proxy\",\"source\":\"proxy\",\"decision\":\"{decision}\",\
         \"principal\":\"{principal}\",\"client_ip\":\"{ip}\",\"resource\":\"{resource}\",\"action\":\"select\",\
         \"user_agent\":\"{agent}\"}}\n"
    )
}

#[tokio::test]
async fn sigma_rules_from_the_config_raise_alerts_in_serve_and_in_the_backtest() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let sigma_dir = tmp.path().join("sigma");
    copy_examples(&sigma_dir);
    let config = tmp.path().join("gatelog.toml");
    std::fs::write(&config, format!("[detect]\nsigma_dir = {:?}\n", sigma_dir.to_str().unwrap())).unwrap();
    let database = random_database();
    let data_dir = tmp.path().join("data");
    let spec = ServeSpec {
        data_dir: data_dir.clone(),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: database.clone(),
        token: TOKEN.to_owned(),
        config: Some(config.clone()),
        release: false,
    };
    let mut serve = Serve::start(&spec).await;

    let now = now_ms();
    let t0 = now - 30 * 60_000;
    let browser = "Mozilla/5.0 (X11; Linux x86_64)";
    let mut body =
        line("sg-pii", t0, "deny", "mallory@example.com", "203.0.113.7", "clickhouse:analytics.pii_users", browser);
    for i in 0..10 {
        let who = format!("guess{i}@example.com");
        body.push_str(&line(
            &format!("sg-burst-{i}"),
            t0 + 60_000 + i * 15_000,
            "deny",
            &who,
            "198.51.100.4",
            "clickhouse:analytics.events",
            browser,
        ));
    }
    body.push_str(&line(
        "sg-curl",
        t0 + 600_000,
        "allow",
        "etl@example.com",
        "10.0.0.9",
        "clickhouse:analytics.events",
        "curl/8.5.0",
    ));
    body.push_str(&line(
        "sg-quiet",
        t0 + 601_000,
        "allow",
        "alice@example.com",
        "10.0.0.10",
        "clickhouse:analytics.events",
        browser,
    ));
    let r = http_client()
        .post(format!("{}/v1/decisions", spec.base_url()))
        .bearer_auth(TOKEN)
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap_or_default());
    wait_for_sinks(&spec.base_url(), Duration::from_secs(120)).await;
    assert_eq!(
        serve.terminate(Duration::from_secs(30)).await.map(|s| s.success()),
        Some(true),
        "{}",
        serve.log_tail(30)
    );

    let alerts = list_alerts(&ch.url(), &database, &data_dir, &[]);
    let of = |rule: &str| alerts.iter().filter(|a| a.rule_id == rule).collect::<Vec<_>>();
    let sensitive = of(SENSITIVE);
    assert_eq!(sensitive.len(), 1, "{alerts:#?}");
    assert_eq!(sensitive[0].principal, "mallory@example.com");
    let burst = of(BURST);
    assert_eq!(burst.len(), 1, "{alerts:#?}");
    assert_eq!((burst[0].client_ip.as_str(), burst[0].principal.as_str()), ("198.51.100.4", ""));
    let agent = of(AGENT);
    assert_eq!(agent.len(), 1, "{alerts:#?}");
    assert_eq!(agent[0].principal, "etl@example.com");
    assert!(
        !alerts.iter().any(|a| a.rule_id == "0c6d1e3a-9b7f-4a52-8d1e-5f4b3a2c1d01"),
        "the denied-request rule only feeds its correlation: {alerts:#?}"
    );
    let findings = gatelog_e2e::query(
        &ch.url(),
        &format!("SELECT length(event_ids) FROM {database}.findings FINAL WHERE rule_id = '{BURST}' FORMAT TSV"),
    );
    assert_eq!(findings.trim(), "10", "the burst names its ten denials");

    // `rules list` shows the Sigma rules with their files.
    let config_s = config.to_string_lossy().into_owned();
    let out = gatelog(&["rules", "list", "--config", &config_s]);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", describe(&out));
    for id in [SENSITIVE, BURST, AGENT] {
        assert!(listed.lines().any(|l| l.starts_with(id) && l.contains("(sigma)")), "{id} in:\n{listed}");
    }

    // The backtest over the stored decisions finds the same three.
    let (url, dir_s) = (ch.url(), data_dir.to_string_lossy().into_owned());
    let (from, to) = ((t0 - 60_000).to_string(), (now + 60_000).to_string());
    let mut args = vec!["detect", "--from", &from, "--to", &to, "--json", "--no-progress", "--config", &config_s];
    args.extend(["--clickhouse-url", &url, "--clickhouse-database", &database, "--data-dir", &dir_s]);
    args.extend(["--rule", SENSITIVE, "--rule", BURST, "--rule", AGENT]);
    let out = gatelog(&args);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut rules: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "alert")
        .map(|v| v["rule_id"].as_str().unwrap().to_owned())
        .collect();
    rules.sort();
    assert_eq!(rules, vec![BURST, SENSITIVE, AGENT], "{stdout}");

    // A Sigma file gatelog cannot evaluate exactly stops the command, naming file and field.
    let bad = sigma_dir.join("zz_bad.yml");
    std::fs::write(&bad, "title: Bad\nlogsource:\n    product: gatelog\ndetection:\n    sel:\n        ClientIP: 1.2.3.4\n    condition: sel\n").unwrap();
    let out = gatelog(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(stderr.contains(&bad.display().to_string()) && stderr.contains("field \"ClientIP\""), "{stderr}");
    let bad_s = bad.to_string_lossy().into_owned();
    let out = gatelog(&["rules", "sigma", &bad_s]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("ClientIP"), "{}", describe(&out));
    ch.stop().await.unwrap();
}
