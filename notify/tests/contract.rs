//! One contract, two transports: the in-memory double the unit tests lean on and lettre
//! against a real SMTP server (aiosmtpd on loopback) behave alike. A mail handed over
//! arrives whole (both parts, its Message-ID); the same mail handed over twice arrives twice
//! with the same Message-ID (deduplication is the outbox's job, not the transport's); with
//! the server gone, a hand-over fails with an error naming where it was going.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_model::UnixMillis;
use gatelog_notify::mail::{Mail, MailKind, alert_message_id};
use gatelog_notify::testing::{SmtpServer, free_port, has_both_parts, header};
use gatelog_notify::{MemoryTransport, SmtpConfig, SmtpTransport, TlsMode, Transport};

fn mail() -> Mail {
    Mail {
        kind: MailKind::Alert,
        message_id: alert_message_id("0123456789abcdef"),
        from: "gatelog <gatelog@localhost>".into(),
        to: vec!["oncall@example.com".into()],
        subject: "[gatelog] HIGH deny_burst_ip: 12 denials from 203.0.113.9".into(),
        text: "12 denials from 203.0.113.9\n".into(),
        html: "<p>12 denials from <code>203.0.113.9</code></p>\n".into(),
        date: UnixMillis(1_740_990_713_712),
        alert_id: Some("0123456789abcdef".into()),
        rule_id: Some("deny_burst_ip".into()),
    }
}

/// The contract: `received` reads what arrived, `go_down` takes the server away.
async fn contract(
    transport: &dyn Transport,
    received: &dyn Fn() -> Vec<String>,
    go_down: &mut dyn FnMut(),
    target: &str,
) {
    let m = mail();
    assert_eq!(transport.send(&m).await.unwrap(), target, "says where it went");
    let got = received();
    assert_eq!(got.len(), 1);
    assert!(has_both_parts(&got[0]), "{}", got[0]);
    assert_eq!(header(&got[0], "Message-ID").as_deref(), Some("<alert.0123456789abcdef@gatelog>"));
    assert_eq!(header(&got[0], "X-Gatelog-Rule").as_deref(), Some("deny_burst_ip"));
    assert!(got[0].contains("203.0.113.9"));

    transport.send(&m).await.unwrap();
    let got = received();
    assert_eq!(got.len(), 2, "the transport does not deduplicate");
    assert_eq!(header(&got[0], "Message-ID"), header(&got[1], "Message-ID"), "a resend is the same message");

    go_down();
    let err = transport.send(&m).await.unwrap_err().to_string();
    assert!(err.contains(target), "the error names {target}: {err}");
    assert_eq!(received().len(), 2);
}

#[tokio::test]
async fn the_memory_transport_keeps_the_contract() {
    let memory = MemoryTransport::default();
    let seen = memory.clone();
    let received = move || seen.sent().iter().map(|m| String::from_utf8(m.to_bytes().unwrap()).unwrap()).collect();
    let failing = memory.clone();
    contract(&memory, &received, &mut || failing.set_failing(Some("connection refused")), "memory").await;
    assert_eq!(memory.attempts(), 3);
}

#[tokio::test]
async fn lettre_against_a_real_smtp_server_keeps_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = SmtpServer::start(port, &tmp.path().join("maildir")).await;
    let config = SmtpConfig { host: "127.0.0.1".into(), port: Some(port), tls: TlsMode::None, ..SmtpConfig::default() };
    let smtp = SmtpTransport::new(&config).unwrap();
    let maildir = server.maildir.clone();
    let received = move || gatelog_notify::testing::messages(&maildir);
    let target = format!("127.0.0.1:{port}");
    contract(&smtp, &received, &mut || server.stop(), &target).await;
}
