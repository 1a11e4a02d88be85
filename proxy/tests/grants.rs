//! `gatelog proxy grants`: ClickHouse's own restrictions for the roles' users, so that a
//! guard mistake is not a leak.
//!
//! - 18.16, for real: the `users.d` file it prints is installed in a managed 18.16; then
//!   the read-only role's user cannot write, change `readonly` or read another database, but
//!   runs what the proxy sends (with its settings); the writer's user writes only where its
//!   databases allow; the proxy's own user reads nothing but kills the others' queries; and
//!   queries through the proxy run as these users.
//! - 26.9 (chdb, which cannot create users or run as one): every statement it prints parses,
//!   and each user's grants and revokes read back through SHOW GRANTS as intended.

#![allow(clippy::unwrap_used)]

#[path = "support/chdb.rs"]
mod chdb;
#[path = "support/guard_env.rs"]
mod guard_env;
mod support;

use gatelog_proxy::grants::{Options, Server, render};
use gatelog_proxy::{Proxy, ProxyConfig, ProxyDeps};
use gatelog_store::managed::ManagedOptions;
use gatelog_store::testing::TestClickHouse;
use jsonwebtoken::Algorithm;
use std::collections::BTreeMap;
use std::time::Duration;
use support::*;

fn config(issuer: &str, clickhouse: &str, dir: &std::path::Path) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
data_dir = "{dir}"
[clickhouse]
url = "{clickhouse}"
user = "gp_proxy"
password = {{ value = "proxy secret" }}
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
default_database = "analytics"
max_rows_to_read = 100000
clickhouse_user = "gp_read"
clickhouse_password = {{ value = "read secret" }}
[roles.writer]
allow = ["analytics.scratch", "analytics.events"]
statements = ["select", "insert"]
default_database = "analytics"
clickhouse_user = "gp_write"
clickhouse_password = {{ value = "write secret" }}
"#,
        dir = dir.display()
    )
}

async fn as_user(
    client: &reqwest::Client,
    url: &str,
    (user, password): (&str, &str),
    params: &str,
    sql: &str,
) -> Result<String, String> {
    let resp = client
        .post(format!("{url}/?{params}"))
        .basic_auth(user, Some(password))
        .body(sql.to_owned())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if status.is_success() { Ok(text) } else { Err(text) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_grants_hold_on_clickhouse_18_16() {
    let dir = tempfile::tempdir().unwrap();
    // Loopback ClickHouse: the users accept loopback connections only.
    let text = config("https://idp.test", "http://127.0.0.1:8123", dir.path());
    let options = Options { server: Server::Legacy, passwords: true, networks: Vec::new() };
    let grants = render(&ProxyConfig::parse(&text).unwrap(), &options).unwrap();
    println!("{}", grants.text);
    assert!(grants.warnings.iter().any(|w| w.contains("analytics.salaries")), "{:?}", grants.warnings);

    let opts = ManagedOptions {
        users_d: vec![("gatelog-proxy.xml".into(), grants.text.clone())],
        ..ManagedOptions::default()
    };
    let mut ch = TestClickHouse::start_with(opts).await.unwrap();
    let url = ch.url();
    let client = http_client();
    for sql in guard_env::schema() {
        guard_env::exec(&client, &format!("{url}/"), &sql).await.unwrap();
    }
    let read = ("gp_read", "read secret");
    let write = ("gp_write", "write secret");
    let proxy_user = ("gp_proxy", "proxy secret");

    // The read-only role's user: reads its database with the proxy's settings; nothing else.
    let proxy_settings = "database=analytics&readonly=2&max_rows_to_read=100000&max_execution_time=20";
    assert_eq!(as_user(&client, &url, read, proxy_settings, "SELECT count() FROM events").await.unwrap(), "60\n");
    for (params, sql) in [
        ("", "INSERT INTO analytics.scratch (id) VALUES (1)"),
        ("", "CREATE TABLE analytics.nope (a UInt8) ENGINE = Memory"),
        ("readonly=0", "SELECT 1"),
        ("", "SELECT * FROM secret.vault"),
        ("", "SELECT 1 SETTINGS readonly = 0"),
    ] {
        let got = as_user(&client, &url, read, params, sql).await;
        assert!(got.is_err(), "gp_read ran {sql} ({params}): {got:?}");
    }
    assert!(as_user(&client, &url, ("gp_read", "wrong"), "", "SELECT 1").await.is_err(), "the password holds");

    // The writer's user: writes in its database, reads nothing outside it.
    as_user(&client, &url, write, "", "INSERT INTO analytics.scratch (id, note) VALUES (1, 'w')").await.unwrap();
    assert!(as_user(&client, &url, write, "", "SELECT * FROM secret.vault").await.is_err());

    // The proxy's own user: no data at all, but it kills the role users' queries.
    assert!(as_user(&client, &url, proxy_user, "", "SELECT count() FROM analytics.events").await.is_err());
    let slow = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move { as_user(&client, &url, read, "query_id=grants-slow", "SELECT sleep(3)").await }
    });
    let mut killed = String::new();
    for _ in 0..100 {
        killed =
            as_user(&client, &url, proxy_user, "", "KILL QUERY WHERE query_id = 'grants-slow' SYNC").await.unwrap();
        if killed.contains("grants-slow") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(killed.contains("grants-slow"), "{killed}");
    assert!(slow.await.unwrap().is_err(), "the killed query failed");

    // Through the proxy, as these users.
    let issuer = LoopbackIssuer::start().await;
    let config = ProxyConfig::parse(&config(&issuer.url, &url, dir.path())).unwrap();
    let deps = ProxyDeps::real(&config).unwrap();
    let proxy = Proxy::bind(config, None, deps).await.unwrap();
    let proxy_url = format!("http://{}/", proxy.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(proxy.run(async move {
        let _ = stop_rx.await;
    }));
    let now = gatelog_model::Clock::now(&gatelog_model::SystemClock).as_secs();
    let tokens: BTreeMap<&str, String> = ["analysts", "writers"]
        .into_iter()
        .map(|g| (g, sign(&claims(&issuer.url, now, "u@example.com", &[g]), "rsa", Algorithm::RS256, Some("rsa-1"))))
        .collect();
    let ask = |group: &'static str, sql: &'static str| {
        let (client, url, token) = (client.clone(), proxy_url.clone(), tokens[group].clone());
        async move {
            let resp = client.post(&url).bearer_auth(token).body(sql).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    assert_eq!(ask("analysts", "SELECT count() FROM events").await, (200, "60\n".to_owned()));
    let (status, body) = ask("writers", "INSERT INTO analytics.scratch (id, note) VALUES (2, 'p')").await;
    assert_eq!(status, 200, "{body}");
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    ch.stop().await.unwrap();
}

#[test]
fn modern_grants_parse_and_read_back_in_chdb_26_9() {
    let Some(python) = chdb::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = ProxyConfig::parse(&config("https://idp.test", "http://127.0.0.1:8123", dir.path())).unwrap();
    let options = Options { server: Server::Modern, passwords: true, networks: Vec::new() };
    let grants = render(&config, &options).unwrap();
    println!("{}", grants.text);
    let statements: Vec<&str> = grants
        .text
        .lines()
        .filter(|l| !l.starts_with("--") && !l.is_empty())
        .map(|l| l.trim_end_matches(';'))
        .collect();
    // Each user's GRANT and REVOKE, in users.xml's form (the user is the element).
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in &statements {
        if let Some((grant, user)) = s.rsplit_once(" TO ").filter(|_| s.starts_with("GRANT ")) {
            users.entry(user.to_owned()).or_default().push(grant.to_owned());
        } else if let Some((revoke, user)) = s.rsplit_once(" FROM ").filter(|_| s.starts_with("REVOKE ")) {
            users.entry(user.to_owned()).or_default().push(revoke.to_owned());
        }
    }
    let job = serde_json::json!({"statements": statements, "users": users});
    let results = chdb::run(&python, &guard_env::corpus_dir().join("grants_chdb.py"), &job);
    let mut shown: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &results {
        if let Some(s) = r["statement"].as_str() {
            let formatted = r["formatted"].as_str().unwrap_or_default();
            let verb = s.split(' ').next().unwrap_or_default();
            assert!(r["ok"] == true && formatted.starts_with(verb), "26.9 does not read {s:?}: {formatted}");
        } else {
            let grants = r["grants"].as_array().unwrap().iter().map(|g| g.as_str().unwrap().to_owned()).collect();
            shown.insert(r["user"].as_str().unwrap().to_owned(), grants);
        }
    }
    println!("{shown:#?}");
    // `verb privileges ON target TO|FROM user`, privileges in any order.
    let has = |user: &str, verb: &str, privileges: &[&str], target: &str| {
        let want: std::collections::BTreeSet<&str> = privileges.iter().copied().collect();
        shown[user].iter().any(|g| {
            let Some(rest) = g.strip_prefix(verb) else { return false };
            let Some((list, tail)) = rest.split_once(" ON ") else { return false };
            tail.starts_with(&format!("{target} "))
                && list.split(", ").collect::<std::collections::BTreeSet<_>>() == want
        })
    };
    let reading = ["SELECT", "SHOW TABLES", "SHOW COLUMNS"];
    assert!(has("gp_read", "GRANT ", &reading, "analytics.*"), "{shown:?}");
    assert!(has("gp_read", "REVOKE ", &reading, "analytics.salaries"), "{shown:?}");
    assert!(has("gp_write", "GRANT ", &["SELECT", "INSERT"], "analytics.scratch"), "{shown:?}");
    assert!(has("gp_write", "GRANT ", &["SELECT", "INSERT"], "analytics.events"), "{shown:?}");
    assert_eq!(shown["gp_proxy"], ["GRANT KILL QUERY ON *.* TO gp_proxy"]);
    assert!(statements.iter().any(|s| s.starts_with("ALTER USER gp_read") && s.ends_with("SETTINGS readonly = 2")));
}
