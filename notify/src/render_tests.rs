//! The templates: both parts say what happened, why, the events (masked queries) and the
//! links; HTML escapes what the events carry; digests list and count what was folded.

use super::*;
use crate::config::NotifyConfig;
use gatelog_model::{Decision, Finding, Source};

const T: i64 = 1_740_990_713_712;

fn alert() -> Alert {
    Alert {
        alert_id: "0123456789abcdef0123456789abcdef".into(),
        tenant: "default".into(),
        dedup_key: "new_country:alice@example.com:RU".into(),
        rule_id: "new_country".into(),
        severity: Severity::High,
        first_seen: UnixMillis(T),
        last_seen: UnixMillis(T + 60_000),
        count: 2,
        summary: "alice@example.com allowed in from RU, a country new to her".into(),
        principal: "alice@example.com".into(),
        client_ip: "198.51.100.7".into(),
        resource: "clickhouse:analytics.events".into(),
        ..Alert::default()
    }
}

fn finding() -> StoredFinding {
    let finding = Finding {
        rule_id: "new_country".into(),
        summary: "first access from RU".into(),
        country: "RU".into(),
        evidence: [("countries_seen".to_owned(), "DE, FR".to_owned())].into(),
        event_ids: vec!["e1".into(), "e2".into(), "e3".into()],
        ..Finding::default()
    };
    StoredFinding { finding, alert_id: alert().alert_id }
}

fn event() -> AccessDecision {
    let mut d = AccessDecision::new("e1".into(), UnixMillis(T), "proxy", Source::Proxy);
    d.decision = Decision::Allow;
    d.principal = "alice@example.com".into();
    d.client_ip = "198.51.100.7".into();
    d.country = "RU".into();
    d.asn = 64500;
    d.action = "select".into();
    d.resource = "clickhouse:analytics.<script>alert(1)</script>".into();
    d.query = "SELECT * FROM analytics.events WHERE email = 'bob@example.com' AND id = 42".into();
    d.status = 200;
    d
}

fn renderer() -> Renderer {
    let config = NotifyConfig { to: vec!["oncall@example.com".into()], ..NotifyConfig::default() };
    Renderer::new(&config, "https://gatelog.example.com/").unwrap()
}

#[test]
fn an_alert_mail_says_what_why_which_events_and_where_to_look() {
    let (a, f, e) = (alert(), [finding()], [event()]);
    let facts = AlertFacts { alert: &a, opened: UnixMillis(T + 70_000), findings: &f, events: &e, total_events: 3 };
    let mail = renderer().alert_mail(facts, UnixMillis(T + 80_000)).unwrap();
    assert_eq!(mail.message_id, "alert.0123456789abcdef0123456789abcdef@gatelog");
    assert_eq!(mail.to, vec!["oncall@example.com".to_owned()]);
    assert!(mail.subject.starts_with("[gatelog] HIGH new_country: alice@example.com allowed in"), "{}", mail.subject);
    let alert_url = "https://gatelog.example.com/v1/alerts/0123456789abcdef0123456789abcdef";
    // minijinja escapes `/` and `&` in HTML (attribute values are decoded by every client).
    let html = mail.html.replace("&#x2f;", "/").replace("&amp;", "&");
    for part in [&mail.text, &html] {
        for needle in [
            "alice@example.com",
            "198.51.100.7",
            "RU",
            "clickhouse:analytics.events",
            "Access from a new country",
            "stolen password",
            "countries_seen",
            alert_url,
            "https://gatelog.example.com/v1/search?q=principal%3A%22alice%40example.com%22&from=2025-03-03T08%3A16%3A53.712Z&to=2025-03-03T08%3A47%3A53.712Z",
            "gatelog alerts show 0123456789ab",
            "WHERE email = ? AND id = ?",
            "2025-03-03 08:31:53",
        ] {
            assert!(part.contains(needle), "{needle:?} missing from:\n{part}");
        }
        assert!(!part.contains("bob@example.com") && !part.contains("42"), "literals are masked:\n{part}");
    }
    assert!(mail.text.contains("(1 of 3)") && mail.text.contains("… and 2 more"), "{}", mail.text);
    assert!(mail.html.contains("&lt;script&gt;") && !mail.html.contains("<script>"), "HTML escapes event fields");
    assert!(mail.text.contains("<script>"), "the text part is not markup and is not escaped");
    assert!(!mail.text.contains("\n\n\n"), "no runs of blank lines:\n{}", mail.text);
    mail.to_bytes().unwrap();
}

#[test]
fn an_alert_without_stored_events_still_reads() {
    let a = Alert {
        principal: String::new(),
        client_ip: String::new(),
        resource: "dataset:http_requests".into(),
        ..alert()
    };
    let facts = AlertFacts { alert: &a, opened: UnixMillis(T), findings: &[], events: &[], total_events: 0 };
    let mail = renderer().alert_mail(facts, UnixMillis(T)).unwrap();
    assert!(mail.text.contains("no stored decision behind it"), "{}", mail.text);
    assert!(mail.text.contains("resource%3A%22dataset%3Ahttp_requests%22"), "{}", mail.text);
}

#[test]
fn a_digest_lists_counts_and_caps_what_was_folded() {
    let mut config = NotifyConfig::default();
    config.rate_limit.digest_max_alerts = 2;
    let r = Renderer::new(&config, "http://127.0.0.1:8080").unwrap();
    let alerts: Vec<(Alert, UnixMillis)> = (0..3)
        .map(|i| {
            let rule = if i == 0 { "deny_burst_ip" } else { "new_country" };
            (Alert { alert_id: format!("{i:032x}"), rule_id: rule.into(), ..alert() }, UnixMillis(T + i))
        })
        .collect();
    let mail = r.digest_mail("digest.ab@gatelog", &alerts, UnixMillis(1_740_988_800_000), UnixMillis(T)).unwrap();
    assert_eq!(mail.kind, MailKind::Digest);
    assert!(
        mail.subject.contains("3 alerts folded") && mail.subject.contains("2025-03-03 08:00:00 to 2025-03-03 09:00:00"),
        "{}",
        mail.subject
    );
    for part in [&mail.text, &mail.html] {
        assert!(part.contains("000000000000") && part.contains("000000000001"), "{part}");
        assert!(!part.contains("http://127.0.0.1:8080/v1/alerts/00000000000000000000000000000002"), "capped at 2");
        assert!(
            part.contains("and 1 more") && part.contains("deny_burst_ip 1") && part.contains("new_country 2"),
            "{part}"
        );
    }
    assert_eq!(mail.to, vec![crate::config::DEFAULT_FILE_RECIPIENT.to_owned()]);
}

#[test]
fn times_read_to_the_second() {
    assert_eq!(display_time(UnixMillis(T)), "2025-03-03 08:31:53");
}
