//! E-mail to on-call through `gatelog serve`, end to end: a generated world with planted
//! anomalies (`gen_samples.py`, seed 4242, one day: seconds), posted as Logpush delivers it, becomes alerts
//! (real ClickHouse 18.16), and every alert arrives once at a real SMTP server (aiosmtpd on
//! loopback) as a mail with both parts and the alert's Message-ID; the planted principals
//! and IPs are named in theirs; `/metrics` counts the deliveries by outcome. With the SMTP
//! server down the attempts are recorded as failed; after a SIGKILL of `gatelog serve` and the
//! server's return, every alert is mailed, once.

mod detect;

use detect::{generate, list_alerts, post_all, reporting};
use gatelog_e2e::{Serve, ServeSpec, count, free_port, metric, wait_for_sinks, wait_until};
use gatelog_notify::testing::{SmtpServer, has_both_parts, header, parts};
use gatelog_store::testing::{TestClickHouse, random_database};
use std::collections::BTreeMap;
use std::time::Duration;

const TOKEN: &str = "notify-test-token-0123456789";
const START: &str = "2025-06-02T07:00:00Z";

fn config_file(dir: &std::path::Path, smtp_port: u16, extra: &str) -> std::path::PathBuf {
    let config = dir.join("gatelog.toml");
    std::fs::write(
        &config,
        format!(
            "[notify]\nto = [\"oncall@example.com\"]\nbase_url = \"https://gatelog.example.com\"\npoll_interval = \"100ms\"\n\
             [notify.rate_limit]\nmax_mails = 10000\nmax_mails_per_rule = 10000\n{extra}\
             [notify.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\ntimeout = \"10s\"\n"
        ),
    )
    .expect("write gatelog.toml");
    config
}

fn spec(ch: &TestClickHouse, dir: &std::path::Path, database: &str, config: std::path::PathBuf) -> ServeSpec {
    ServeSpec {
        data_dir: dir.to_owned(),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: database.to_owned(),
        token: TOKEN.to_owned(),
        config: Some(config),
        release: false,
    }
}

fn sent_metric(m: &str) -> f64 {
    metric(m, "gatelog_alert_deliveries_total", &[("kind", "alert"), ("channel", "smtp"), ("outcome", "sent")])
        .unwrap_or(-1.0)
}

#[tokio::test]
async fn alerts_detection_opens_arrive_once_each_at_the_smtp_server() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let world = generate(tmp.path(), 4242, START, 24, 100, "default");
    assert!(!world.plants.is_empty(), "the generator planted nothing");
    let smtp = SmtpServer::start(free_port(), &tmp.path().join("maildir")).await;
    let database = random_database();
    let dir = tmp.path().join("data");
    let spec = spec(&ch, &dir, &database, config_file(tmp.path(), smtp.port, ""));
    let mut serve = Serve::start(&spec).await;
    post_all(&spec.base_url(), TOKEN, &world.deliveries).await;
    wait_for_sinks(&spec.base_url(), Duration::from_secs(120)).await;
    let paging = count(&ch.url(), &format!("SELECT count() FROM {database}.alerts FINAL WHERE severity != 'info'"));
    assert!(paging > 0, "the world raised no alert to mail");
    let (_, metrics, took) = wait_until(&spec.base_url(), "/metrics", Duration::from_secs(60), |_, m| {
        sent_metric(m) >= paging as f64 && metric(m, "gatelog_alert_outbox_pending", &[]) == Some(0.0)
    })
    .await;
    println!("{paging} alerts mailed; the last within {took:?} of the sinks catching up");
    assert_eq!(metric(&metrics, "gatelog_alert_outbox_failing", &[]), Some(0.0));
    assert_eq!(
        metric(
            &metrics,
            "gatelog_alert_deliveries_total",
            &[("kind", "alert"), ("channel", "smtp"), ("outcome", "failed")]
        ),
        Some(0.0)
    );

    // Read again: a tick (source silence) may have opened one meanwhile, mailed by now.
    let paging = count(&ch.url(), &format!("SELECT count() FROM {database}.alerts FINAL WHERE severity != 'info'"));
    let messages = smtp.messages();
    let mut by_id: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for m in &messages {
        assert!(has_both_parts(m), "{m}");
        by_id.entry(header(m, "Message-ID").unwrap_or_default()).or_default().push(m);
    }
    let alerts = list_alerts(&ch.url(), &database, &dir, &[]);
    for a in alerts.iter().filter(|a| by_id.contains_key(&format!("<alert.{}@gatelog>", a.alert_id))) {
        assert_eq!(by_id[&format!("<alert.{}@gatelog>", a.alert_id)].len(), 1, "one mail for {}", a.alert_id);
    }
    assert_eq!(messages.len() as u64, paging, "one mail per alert that pages, none twice");
    let sent =
        count(&ch.url(), &format!("SELECT count() FROM {database}.alert_deliveries FINAL WHERE outcome = 'sent'"));
    assert_eq!(sent, paging, "each delivery recorded");

    // The planted anomalies' mails name who and where.
    for plant in &world.plants {
        let alert = reporting(&alerts, plant).into_iter().next().unwrap_or_else(|| panic!("no alert for {plant:?}"));
        let mail = by_id
            .get(&format!("<alert.{}@gatelog>", alert.alert_id))
            .unwrap_or_else(|| panic!("no mail for {plant:?}"));
        let (text, html) = parts(mail[0]);
        let who = if alert.principal.is_empty() { &alert.client_ip } else { &alert.principal };
        assert!(text.to_lowercase().contains(who) && html.to_lowercase().contains(who), "{who} in:\n{text}");
        assert!(text.contains(&format!("https://gatelog.example.com/v1/alerts/{}", alert.alert_id)), "{text}");
        assert!(
            text.contains("EVENTS BEHIND IT (") && !text.contains("no stored decision"),
            "the decisions are listed:\n{text}"
        );
    }
    // `gatelog alerts show` says where the mail went.
    let (url, dir_arg) = (ch.url(), dir.to_string_lossy().into_owned());
    let mailed = alerts.iter().find(|a| by_id.contains_key(&format!("<alert.{}@gatelog>", a.alert_id)));
    let id = mailed.expect("a mailed alert").alert_id.as_str();
    let out = gatelog_e2e::gatelog(&[
        "alerts",
        "show",
        id,
        "--clickhouse-url",
        &url,
        "--clickhouse-database",
        &database,
        "--data-dir",
        &dir_arg,
    ]);
    let shown = String::from_utf8_lossy(&out.stdout);
    let expected = format!("alert sent attempt 1 via smtp to 127.0.0.1:{} <alert.{id}@gatelog>", smtp.port);
    assert!(out.status.success() && shown.contains(&expected), "{expected} not in:\n{}", gatelog_e2e::describe(&out));
    assert_eq!(
        serve.terminate(Duration::from_secs(30)).await.map(|s| s.success()),
        Some(true),
        "{}",
        serve.log_tail(30)
    );
    drop(smtp);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn an_smtp_outage_and_a_sigkill_lose_no_mail_and_send_none_twice() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let world = generate(tmp.path(), 4242, START, 24, 100, "default");
    let smtp_port = free_port(); // the server is down for now
    let retry = "[notify.retry]\ninitial_backoff = \"100ms\"\nmax_backoff = \"500ms\"\n";
    let database = random_database();
    let dir = tmp.path().join("data");
    let spec = spec(&ch, &dir, &database, config_file(tmp.path(), smtp_port, retry));
    let mut serve = Serve::start(&spec).await;
    post_all(&spec.base_url(), TOKEN, &world.deliveries).await;
    wait_for_sinks(&spec.base_url(), Duration::from_secs(120)).await;
    let failed = |m: &str| {
        metric(m, "gatelog_alert_deliveries_total", &[("kind", "alert"), ("channel", "smtp"), ("outcome", "failed")])
            .unwrap_or(0.0)
    };
    let (_, metrics, _) =
        wait_until(&spec.base_url(), "/metrics", Duration::from_secs(60), |_, m| failed(m) >= 3.0).await;
    assert_eq!(metric(&metrics, "gatelog_alert_outbox_failing", &[]), Some(1.0), "{metrics}");
    assert_eq!(sent_metric(&metrics), 0.0);
    serve.kill();

    let smtp = SmtpServer::start(smtp_port, &tmp.path().join("maildir")).await;
    let mut serve = Serve::start(&spec).await;
    let paging = count(&ch.url(), &format!("SELECT count() FROM {database}.alerts FINAL WHERE severity != 'info'"));
    assert!(paging > 0);
    wait_until(&spec.base_url(), "/metrics", Duration::from_secs(60), |_, m| {
        sent_metric(m) >= paging as f64 && metric(m, "gatelog_alert_outbox_pending", &[]) == Some(0.0)
    })
    .await;
    let messages = smtp.messages();
    let ids: std::collections::BTreeSet<String> = messages.iter().filter_map(|m| header(m, "Message-ID")).collect();
    assert_eq!((messages.len() as u64, ids.len() as u64), (paging, paging), "every alert once");
    let q = |sql: &str| count(&ch.url(), &format!("SELECT count() FROM {database}.alert_deliveries FINAL WHERE {sql}"));
    assert_eq!(q("outcome = 'sent'"), paging);
    let failed_rows = q(&format!("outcome = 'failed' AND position(error, 'smtp server 127.0.0.1:{smtp_port}: ') = 1"));
    assert!(failed_rows >= 3, "the failed attempts are on record, naming the server: {failed_rows}");
    println!("{paging} alerts: {failed_rows} failed attempts while the server was down, then each mailed once");
    assert_eq!(
        serve.terminate(Duration::from_secs(30)).await.map(|s| s.success()),
        Some(true),
        "{}",
        serve.log_tail(30)
    );
    drop(smtp);
    ch.stop().await.unwrap();
}
