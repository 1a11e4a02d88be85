//! The outbox against real parts: ClickHouse 18.16 (one database per test) holding the
//! alerts and `alert_deliveries`, and a real SMTP server (aiosmtpd on loopback) or the
//! `.eml` directory. Time is a `FixedClock` moved by the test, so backoff and rate-limit
//! windows are stepped through, never waited for.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_model::{Alert, AlertEvent, Clock, Finding, FixedClock, Severity, UnixMillis};
use gatelog_notify::testing::{SmtpServer, free_port, has_both_parts, header};
use gatelog_notify::{Mailer, NotifyConfig, NotifyStats, RetryConfig, SmtpConfig, TlsMode};
use gatelog_store::Store;
use gatelog_store::testing::TestClickHouse;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// 10:00 UTC: the start of a one-hour rate-limit window.
const T0: i64 = 1_740_996_000_000;
const HOUR: i64 = 3_600_000;

/// Stores a finding, its alert and the alert's `open` event, as detection does.
async fn open_alert(store: &Store, n: u8, rule: &str, at: i64) -> Alert {
    let finding = Finding {
        rule_id: rule.into(),
        rule_version: 1,
        severity: Severity::High,
        dedup_key: format!("{rule}:alice{n}@example.com"),
        tenant: "default".into(),
        window_start: UnixMillis(at - 60_000),
        window_end: UnixMillis(at),
        principal: format!("alice{n}@example.com"),
        client_ip: format!("198.51.100.{n}"),
        country: "RU".into(),
        resource: "clickhouse:analytics.events".into(),
        event_ids: vec![format!("event-{n}")],
        summary: format!("alice{n}@example.com allowed in from RU"),
        evidence: [("countries_seen".to_owned(), "DE".to_owned())].into(),
        ..Finding::default()
    }
    .seal();
    let alert = Alert {
        alert_id: Alert::derive_id("default", &finding.dedup_key, &finding.finding_id),
        tenant: "default".into(),
        dedup_key: finding.dedup_key.clone(),
        rule_id: rule.into(),
        severity: Severity::High,
        first_seen: finding.window_start,
        last_seen: finding.window_end,
        count: 1,
        summary: finding.summary.clone(),
        principal: finding.principal.clone(),
        client_ip: finding.client_ip.clone(),
        resource: finding.resource.clone(),
        first_finding_id: finding.finding_id.clone(),
        last_finding_id: finding.finding_id.clone(),
    };
    store.write_findings(&[(finding, alert.alert_id.clone())], 1, UnixMillis(at)).await.unwrap();
    store.write_alerts(std::slice::from_ref(&alert), UnixMillis(at)).await.unwrap();
    store.append_alert_events(&[AlertEvent::opened(&alert, UnixMillis(at))]).await.unwrap();
    alert
}

fn smtp_config(port: u16) -> NotifyConfig {
    NotifyConfig {
        to: vec!["oncall@example.com".into()],
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: TlsMode::None,
            ..SmtpConfig::default()
        }),
        retry: RetryConfig { initial_backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(4) },
        // The findings name decisions these tests never store: mail without waiting for them.
        events_grace: Duration::ZERO,
        ..NotifyConfig::default()
    }
}

fn mailer(config: NotifyConfig, data_dir: &Path, clock: &Arc<FixedClock>) -> Mailer {
    let transport = Mailer::transport_for(&config, data_dir).unwrap();
    let clock: Arc<dyn Clock> = clock.clone();
    Mailer::new(config, "https://gatelog.example.com", transport, clock, Arc::new(NotifyStats::default())).unwrap()
}

/// `(attempt, outcome, error)` of an alert's rows, oldest first.
async fn attempts(store: &Store, alert_id: &str) -> Vec<(u32, String, String)> {
    let rows = store.deliveries_of(&[alert_id]).await.unwrap();
    rows.into_iter().map(|d| (d.attempt, d.outcome, d.error)).collect()
}

#[tokio::test]
async fn an_opened_alert_reaches_the_smtp_server_once_with_both_parts() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let server = SmtpServer::start(free_port(), &tmp.path().join("maildir")).await;
    let alert = open_alert(&store, 1, "new_country", T0).await;
    let clock = Arc::new(FixedClock::new(UnixMillis(T0 + 1000)));
    let config = NotifyConfig { events_grace: Duration::from_secs(20), ..smtp_config(server.port) };
    let mut mailer = mailer(config, tmp.path(), &clock);

    // The decision behind the finding is not in ClickHouse (as when detection runs ahead of
    // the ClickHouse sink): the mail waits for it, up to events_grace after the alert opened.
    let early = mailer.round(&store).await.unwrap();
    assert_eq!((early.pending, early.sent, early.postponed), (1, 0, 1), "{early:?}");
    assert!(store.deliveries_of(&[&alert.alert_id]).await.unwrap().is_empty(), "a postponement is no attempt");
    clock.set(UnixMillis(T0 + 20_000));
    let report = mailer.round(&store).await.unwrap();
    assert_eq!((report.pending, report.sent, report.failed), (1, 1, 0), "{report:?}");
    let got = server.messages();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert!(has_both_parts(m), "{m}");
    assert_eq!(header(m, "Message-ID"), Some(format!("<alert.{}@gatelog>", alert.alert_id)));
    assert_eq!(header(m, "To").as_deref(), Some("oncall@example.com"));
    assert!(header(m, "Subject").unwrap().contains("new_country"), "{m}");
    let (text, html) = gatelog_notify::testing::parts(m);
    let link = format!("https://gatelog.example.com/v1/alerts/{}", alert.alert_id);
    for needle in ["alice1@example.com", "198.51.100.1", "(RU)", "new country", "countries_seen"] {
        assert!(text.contains(needle) && html.contains(needle), "{needle} missing:\n{text}\n{html}");
    }
    assert!(text.contains("WHY IT MATTERS") && html.contains("Why it matters"));
    assert!(text.contains(&link) && html.replace("&#x2f;", "/").contains(&link));

    let again = mailer.round(&store).await.unwrap();
    assert_eq!((again.pending, again.sent), (0, 0), "delivered means done");
    assert_eq!(server.messages().len(), 1);
    let rows = store.deliveries_of(&[&alert.alert_id]).await.unwrap();
    assert_eq!(rows.len(), 1);
    let target = format!("127.0.0.1:{}", server.port);
    assert_eq!(
        (rows[0].outcome.as_str(), rows[0].channel.as_str(), rows[0].target.as_str()),
        ("sent", "smtp", target.as_str())
    );
    assert_eq!((rows[0].kind.as_str(), rows[0].attempt, rows[0].at_ms), ("alert", 1, T0 + 20_000));
    drop(store);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn with_the_server_down_attempts_fail_by_name_and_the_alert_goes_out_when_it_returns() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port(); // nothing listens there yet
    let alert = open_alert(&store, 2, "deny_burst_ip", T0).await;
    let clock = Arc::new(FixedClock::new(UnixMillis(T0)));
    let mut mailer = mailer(smtp_config(port), tmp.path(), &clock);

    let first = mailer.round(&store).await.unwrap();
    assert_eq!((first.sent, first.failed), (0, 1));
    let error = first.error.unwrap();
    assert!(error.starts_with(&format!("smtp server 127.0.0.1:{port}: ")), "the error names the server: {error}");
    assert!(error.to_lowercase().contains("refused"), "and why: {error}");
    clock.advance_ms(999);
    let early = mailer.round(&store).await.unwrap();
    assert_eq!(
        (early.sent, early.failed, early.next_due),
        (0, 0, Some(UnixMillis(T0 + 1000))),
        "backoff: 1 s after the first failure"
    );
    clock.advance_ms(1);
    assert_eq!(mailer.round(&store).await.unwrap().failed, 1, "attempt 2");

    let server = SmtpServer::start(port, &tmp.path().join("maildir")).await;
    clock.advance_ms(1999);
    assert_eq!(mailer.round(&store).await.unwrap().sent, 0, "still within the second backoff (2 s)");
    clock.advance_ms(1);
    let back = mailer.round(&store).await.unwrap();
    assert_eq!((back.sent, back.failed, back.pending), (1, 0, 1));
    let got = server.messages();
    assert_eq!(got.len(), 1, "delivered once");
    assert_eq!(header(&got[0], "Message-ID"), Some(format!("<alert.{}@gatelog>", alert.alert_id)));
    let rows = attempts(&store, &alert.alert_id).await;
    assert_eq!(
        rows.iter().map(|(a, o, _)| (*a, o.as_str())).collect::<Vec<_>>(),
        vec![(1, "failed"), (2, "failed"), (3, "sent")]
    );
    assert!(rows[..2].iter().all(|(_, _, e)| e.contains(&format!("127.0.0.1:{port}"))), "{rows:?}");
    assert_eq!(mailer.round(&store).await.unwrap().pending, 0);
    drop(store);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn over_the_rate_limit_alerts_fold_into_a_digest_sent_when_the_window_ends() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let server = SmtpServer::start(free_port(), &tmp.path().join("maildir")).await;
    let mut config = smtp_config(server.port);
    config.rate_limit.max_mails = 2;
    config.rate_limit.max_mails_per_rule = 1;
    let first = open_alert(&store, 1, "new_country", T0 + 60_000).await;
    let second = open_alert(&store, 2, "new_country", T0 + 61_000).await;
    let third = open_alert(&store, 3, "deny_burst_ip", T0 + 62_000).await;
    let fourth = open_alert(&store, 4, "off_hours", T0 + 63_000).await;
    let clock = Arc::new(FixedClock::new(UnixMillis(T0 + 10 * 60_000)));
    let mut mailer = mailer(config, tmp.path(), &clock);

    let report = mailer.round(&store).await.unwrap();
    assert_eq!((report.sent, report.folded), (2, 2), "one per rule, two in all: {report:?}");
    let ids = |ms: &[String]| ms.iter().filter_map(|m| header(m, "Message-ID")).collect::<Vec<_>>();
    let mut mailed = ids(&server.messages());
    mailed.sort();
    let mut expected =
        vec![format!("<alert.{}@gatelog>", first.alert_id), format!("<alert.{}@gatelog>", third.alert_id)];
    expected.sort();
    assert_eq!(mailed, expected);
    clock.advance_ms(30 * 60_000);
    assert_eq!(mailer.round(&store).await.unwrap().sent, 0, "the digest waits for the window's end");

    clock.set(UnixMillis(T0 + HOUR));
    let report = mailer.round(&store).await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    let got = server.messages();
    assert_eq!(got.len(), 3);
    let digest = got.iter().find(|m| header(m, "Message-ID").is_some_and(|id| id.starts_with("<digest."))).unwrap();
    assert!(has_both_parts(digest));
    assert!(header(digest, "Subject").unwrap().contains("2 alerts folded by the rate limit"), "{digest}");
    let (text, html) = gatelog_notify::testing::parts(digest);
    for a in [&second, &fourth] {
        assert!(
            text.contains(&a.alert_id[..12]) && html.contains(&a.alert_id[..12]),
            "the digest lists {}:\n{text}",
            a.alert_id
        );
        let rows = attempts(&store, &a.alert_id).await;
        assert_eq!(rows.iter().map(|(n, o, _)| (*n, o.as_str())).collect::<Vec<_>>(), vec![(0, "folded"), (1, "sent")]);
    }
    assert_eq!(mailer.round(&store).await.unwrap().pending, 0, "everything delivered once");
    assert_eq!(server.messages().len(), 3);
    drop(store);
    ch.stop().await.unwrap();
}

#[tokio::test]
async fn without_an_smtp_server_mails_are_eml_files_under_the_outbox() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let alert = open_alert(&store, 5, "new_country", T0).await;
    let clock = Arc::new(FixedClock::new(UnixMillis(T0)));
    let mut mailer =
        mailer(NotifyConfig { events_grace: Duration::ZERO, ..NotifyConfig::default() }, tmp.path(), &clock);
    assert_eq!(mailer.destination(), tmp.path().join("outbox").display().to_string());
    assert_eq!(mailer.round(&store).await.unwrap().sent, 1);
    assert_eq!(mailer.round(&store).await.unwrap().pending, 0);
    let files: Vec<_> = std::fs::read_dir(tmp.path().join("outbox")).unwrap().map(|e| e.unwrap().path()).collect();
    let expected = tmp.path().join("outbox").join(format!("alert.{}.eml", alert.alert_id));
    assert_eq!(files, vec![expected.clone()], "one file per alert, named by its Message-ID");
    let eml = std::fs::read_to_string(&expected).unwrap();
    assert!(has_both_parts(&eml));
    assert_eq!(header(&eml, "To").as_deref(), Some("oncall@localhost"));
    assert!(gatelog_notify::testing::parts(&eml).0.contains("alice5@example.com"));
    let rows = store.deliveries_of(&[&alert.alert_id]).await.unwrap();
    assert_eq!((rows[0].channel.as_str(), rows[0].target.clone()), ("file", expected.display().to_string()));
    drop(store);
    ch.stop().await.unwrap();
}
