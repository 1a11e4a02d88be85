//! The SQL guard under attack, through the proxy on a real socket, in front of a real
//! ClickHouse 18.16 (issue 15, class 1): `tests/attacks/guard.toml`, every `{T}` template
//! with every spelling of a denied table (escapes ClickHouse decodes, doubled quotes,
//! comments inside names, IN-table forms, quoted and re-cased function names, table
//! functions, CTE shadowing, writes), plus single cases.
//!
//! Judged by what ClickHouse did, not only by the proxy's status: every attack is refused
//! (403/400 with a rule), no response carries a denied table's marker, ClickHouse's own log
//! never mentions a refused request's query id (it never ran), and the denied tables and the
//! writer's table hold what they held before.

#![allow(clippy::unwrap_used)]

#[path = "support/guard_env.rs"]
mod guard_env;
mod support;

use gatelog_proxy::{Proxy, ProxyConfig, ProxyDeps};
use guard_env::{exec, marker_in};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use std::collections::BTreeMap;
use support::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Attacks {
    spellings: Vec<String>,
    template: Vec<Case>,
    case: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    class: String,
    sql: String,
    #[serde(default = "analyst")]
    role: String,
    #[serde(default)]
    rule: Option<String>,
}

fn analyst() -> String {
    "analyst".into()
}

/// Every case: the templates with each spelling, then the single cases.
fn cases() -> Vec<Case> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attacks/guard.toml");
    let attacks: Attacks = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for t in &attacks.template {
        for s in &attacks.spellings {
            out.push(Case { sql: t.sql.replace("{T}", s), ..t.clone() });
        }
    }
    out.extend(attacks.case);
    out
}

/// The test roles: analyst and writer, behind a loopback issuer.
fn config(issuer: &str, clickhouse: &str, dir: &std::path::Path) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
data_dir = "{dir}"
[clickhouse]
url = "{clickhouse}"
[[issuers]]
name = "idp"
issuer = "{issuer}"
audiences = ["{AUDIENCE}"]
algorithms = ["RS256"]
[[role_mappings]]
role = "analyst"
groups = ["analysts"]
[[role_mappings]]
role = "writer"
groups = ["writers"]
[roles.analyst]
allow = ["analytics.*"]
deny = ["analytics.salaries"]
statements = ["select", "show", "describe"]
table_functions = ["numbers"]
default_database = "analytics"
[roles.writer]
allow = ["analytics.scratch", "analytics.events"]
statements = ["select", "insert"]
default_database = "analytics"
[decisions]
flush_interval = "20ms"
"#,
        dir = dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_on_the_guard_never_reach_clickhouse() {
    let client = http_client();
    let mut ch = guard_env::clickhouse(&client).await;
    let ch_url = format!("{}/", ch.url());
    let before = exec(&client, &ch_url, "SELECT count(), sum(amount) FROM analytics.salaries").await.unwrap();

    let issuer = LoopbackIssuer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = ProxyConfig::parse(&config(&issuer.url, &ch.url(), dir.path())).unwrap();
    let deps = ProxyDeps::real(&config).unwrap();
    let proxy = Proxy::bind(config, None, deps).await.unwrap();
    let url = format!("http://{}/", proxy.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(proxy.run(async move {
        let _ = stop_rx.await;
    }));
    let now = gatelog_model::Clock::now(&gatelog_model::SystemClock).as_secs();
    let token = |group: &str| {
        sign(
            &claims(&issuer.url, now, &format!("{group}@example.com"), &[group]),
            "rsa",
            Algorithm::RS256,
            Some("rsa-1"),
        )
    };
    let tokens: BTreeMap<&str, String> = [("analyst", token("analysts")), ("writer", token("writers"))].into();

    let cases = cases();
    let mut failures = Vec::new();
    let mut ids = Vec::new();
    let mut by_class: BTreeMap<String, usize> = BTreeMap::new();
    for case in &cases {
        *by_class.entry(case.class.clone()).or_default() += 1;
        let resp =
            client.post(&url).bearer_auth(&tokens[case.role.as_str()]).body(case.sql.clone()).send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let rule = json["error"]["rule"].as_str().unwrap_or_default();
        if let Some(id) = json["error"]["decision_id"].as_str() {
            ids.push((id.to_owned(), case.sql.clone()));
        }
        let rule_ok = case.rule.as_ref().is_none_or(|r| rule.starts_with(r.as_str()));
        if !(status == 403 || status == 400) || !rule_ok || marker_in(&body).is_some() {
            failures.push(format!("[{}] {:?} as {}: {status} {body}", case.class, case.sql, case.role));
        }
    }

    // What ClickHouse saw: none of the refused requests (the proxy stamps the decision id as
    // query_id), and the tables as they were.
    let log = guard_env::server_log(&ch);
    let seen = guard_env::logged_query_ids(&log);
    for (id, sql) in &ids {
        if seen.contains(id) {
            failures.push(format!("ClickHouse ran a refused query {sql:?} ({id})"));
        }
    }
    let after = exec(&client, &ch_url, "SELECT count(), sum(amount) FROM analytics.salaries").await.unwrap();
    assert_eq!(before, after, "analytics.salaries changed");
    assert_eq!(exec(&client, &ch_url, "SELECT count() FROM secret.vault").await.unwrap(), "1\n");
    assert_eq!(exec(&client, &ch_url, "SELECT count() FROM analytics.scratch").await.unwrap(), "0\n");

    for (class, n) in &by_class {
        println!("guard attacks: {class}: {n} cases");
    }
    println!("guard attacks: {} cases, {} not refused as they must be", cases.len(), failures.len());
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    ch.stop().await.unwrap();
    assert_eq!(ids.len(), cases.len(), "every refusal names its decision");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
