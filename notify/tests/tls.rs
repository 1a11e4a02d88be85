//! SMTP over TLS against a real server (aiosmtpd on loopback with a certificate from a private
//! CA made here with `openssl`): STARTTLS and implicit TLS deliver when `ca_file` names the CA;
//! an untrusted certificate, and a server that does not offer the STARTTLS that `starttls`
//! requires, fail with an error naming the server, and nothing is sent in clear.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use gatelog_model::UnixMillis;
use gatelog_notify::mail::{Mail, MailKind, alert_message_id};
use gatelog_notify::testing::{SmtpServer, free_port, has_both_parts, make_certificates};
use gatelog_notify::{SmtpConfig, SmtpTransport, TlsMode, Transport};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

fn mail() -> Mail {
    Mail {
        kind: MailKind::Alert,
        message_id: alert_message_id("00ff"),
        from: "gatelog <gatelog@localhost>".into(),
        to: vec!["oncall@example.com".into()],
        subject: "[gatelog] HIGH new_country: over TLS".into(),
        text: "over TLS\n".into(),
        html: "<p>over TLS</p>\n".into(),
        date: UnixMillis(1_740_990_713_712),
        alert_id: Some("00ff".into()),
        rule_id: Some("new_country".into()),
    }
}

fn config(port: u16, tls: TlsMode, ca_file: Option<PathBuf>) -> SmtpConfig {
    SmtpConfig { host: "127.0.0.1".into(), port: Some(port), tls, ca_file, ..SmtpConfig::default() }
}

async fn server(dir: &Path, flags: [&str; 2], cert: &Path, key: &Path) -> SmtpServer {
    let options: [&OsStr; 4] = [OsStr::new(flags[0]), cert.as_os_str(), OsStr::new(flags[1]), key.as_os_str()];
    SmtpServer::start_with(free_port(), &dir.join("maildir"), &options).await
}

#[tokio::test]
async fn starttls_and_implicit_tls_deliver_to_a_server_of_a_private_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certificates(tmp.path());
    for (mode, flags) in [(TlsMode::Starttls, ["--tlscert", "--tlskey"]), (TlsMode::Tls, ["--smtpscert", "--smtpskey"])]
    {
        let dir = tmp.path().join(mode.as_str());
        let server = server(&dir, flags, &cert, &key).await;
        let smtp = SmtpTransport::new(&config(server.port, mode, Some(ca.clone()))).unwrap();
        smtp.send(&mail()).await.unwrap_or_else(|e| panic!("{}: {e}", mode.as_str()));
        let got = server.messages();
        assert_eq!(got.len(), 1, "{}", mode.as_str());
        assert!(has_both_parts(&got[0]));

        // Without the CA the certificate is not trusted: nothing is sent.
        let untrusted = SmtpTransport::new(&config(server.port, mode, None)).unwrap();
        let err = untrusted.send(&mail()).await.unwrap_err().to_string();
        assert!(err.starts_with(&format!("smtp server 127.0.0.1:{}: ", server.port)), "{err}");
        assert!(err.to_lowercase().contains("certificate") || err.to_lowercase().contains("issuer"), "{err}");
        assert_eq!(server.messages().len(), 1, "{}", mode.as_str());
    }
}

#[tokio::test]
async fn starttls_is_required_not_hoped_for() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, _, _) = make_certificates(tmp.path());
    let plain = SmtpServer::start(free_port(), &tmp.path().join("maildir")).await;
    let smtp = SmtpTransport::new(&config(plain.port, TlsMode::Starttls, Some(ca))).unwrap();
    let err = smtp.send(&mail()).await.unwrap_err().to_string();
    assert!(err.starts_with(&format!("smtp server 127.0.0.1:{}: ", plain.port)), "{err}");
    assert!(plain.messages().is_empty(), "nothing went in clear");
    println!("{err}");
}

#[test]
fn a_missing_ca_file_is_a_configuration_error_naming_the_key() {
    let err = SmtpTransport::new(&config(25, TlsMode::Starttls, Some("/nonexistent/ca.pem".into()))).unwrap_err();
    assert_eq!(err.key, "notify.smtp.ca_file");
    assert!(err.message.contains("/nonexistent/ca.pem"), "{err}");
}
