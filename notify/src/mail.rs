//! [`Mail`]: one rendered message (an alert's or a digest's), its stable Message-ID, and its
//! RFC 5322 form (`multipart/alternative`, plain text then HTML) built with lettre.
//!
//! Message-IDs derive from what the mail is about, never from when it is sent: an alert's
//! is `<alert.{alert_id}@gatelog>`, a digest's `<digest.{digest_id}@gatelog>`. A mail sent
//! again after a crash (SMTP took it, gatelog died before recording it) is therefore the
//! same message to every mail client and to anyone reading `alert_deliveries`.

use gatelog_model::{EventId, UnixMillis};
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, MultiPart};
use std::time::{Duration, SystemTime};

/// The right-hand side of every Message-ID gatelog makes.
pub const MESSAGE_ID_DOMAIN: &str = "gatelog";

/// What a mail is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MailKind {
    /// One alert's own mail.
    Alert,
    /// Alerts a rate limit folded, listed in one mail.
    Digest,
}

impl MailKind {
    pub const ALL: [MailKind; 2] = [MailKind::Alert, MailKind::Digest];

    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Alert => "alert",
            MailKind::Digest => "digest",
        }
    }
}

/// The Message-ID (without angle brackets) of `alert_id`'s mail.
pub fn alert_message_id(alert_id: &str) -> String {
    format!("alert.{alert_id}@{MESSAGE_ID_DOMAIN}")
}

/// The Message-ID of the digest first opened for `window_start` by folding `first_alert_id`.
pub fn digest_message_id(window_start: UnixMillis, first_alert_id: &str) -> String {
    let id = EventId::derive(&["digest", &window_start.0.to_string(), first_alert_id]);
    format!("digest.{id}@{MESSAGE_ID_DOMAIN}")
}

/// The file name an `.eml` of this Message-ID gets: its left-hand side (hex and dots only).
pub fn file_stem(message_id: &str) -> String {
    let local = message_id.split('@').next().unwrap_or_default();
    local.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect()
}

/// A rendered mail, ready for a transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub kind: MailKind,
    /// Without angle brackets, e.g. `alert.0123…@gatelog`.
    pub message_id: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The `Date` header (the attempt's time).
    pub date: UnixMillis,
    /// `X-Gatelog-Alert` (an alert mail's id) and `X-Gatelog-Rule`, for mail filters.
    pub alert_id: Option<String>,
    pub rule_id: Option<String>,
}

/// Why a [`Mail`] cannot become a message (a bad address slipped past validation).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the mail {message_id}: {reason}")]
pub struct BuildError {
    pub message_id: String,
    pub reason: String,
}

impl Mail {
    /// The lettre message: `multipart/alternative` with the text part first (the one a client
    /// shows when it does not render HTML) and the HTML part.
    pub fn to_message(&self) -> Result<Message, BuildError> {
        let err = |reason: String| BuildError { message_id: self.message_id.clone(), reason };
        let from: Mailbox = self.from.parse().map_err(|e| err(format!("from {:?}: {e}", self.from)))?;
        let mut to = Mailboxes::new();
        for t in &self.to {
            to.push(t.parse::<Mailbox>().map_err(|e| err(format!("to {t:?}: {e}")))?);
        }
        let date = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(self.date.0).unwrap_or(0));
        let mut builder = Message::builder()
            .message_id(Some(format!("<{}>", self.message_id)))
            .from(from)
            .subject(self.subject.clone())
            .date(date);
        for mailbox in to {
            builder = builder.to(mailbox);
        }
        if let Some(id) = &self.alert_id {
            builder =
                builder.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("X-Gatelog-Alert"), id.clone()));
        }
        if let Some(rule) = &self.rule_id {
            builder =
                builder.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("X-Gatelog-Rule"), rule.clone()));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(self.text.clone(), self.html.clone()))
            .map_err(|e| err(e.to_string()))
    }

    /// The message as it goes over the wire (and into an `.eml` file).
    pub fn to_bytes(&self) -> Result<Vec<u8>, BuildError> {
        Ok(self.to_message()?.formatted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn example() -> Mail {
        Mail {
            kind: MailKind::Alert,
            message_id: alert_message_id("0123abcd"),
            from: "gatelog <gatelog@localhost>".into(),
            to: vec!["oncall@example.com".into(), "Second <second@example.com>".into()],
            subject: "[gatelog] high: 12 denials from 203.0.113.9 — ünïcode".into(),
            text: "plain body\n".into(),
            html: "<p>html body</p>\n".into(),
            date: UnixMillis(1_740_990_713_712),
            alert_id: Some("0123abcd".into()),
            rule_id: Some("deny_burst_ip".into()),
        }
    }

    #[test]
    fn message_ids_are_stable_and_distinct() {
        assert_eq!(alert_message_id("ab"), "alert.ab@gatelog");
        let d = digest_message_id(UnixMillis(3_600_000), "ab");
        assert_eq!(d, digest_message_id(UnixMillis(3_600_000), "ab"));
        assert_ne!(d, digest_message_id(UnixMillis(7_200_000), "ab"));
        assert!(d.starts_with("digest.") && d.ends_with("@gatelog"));
        assert_eq!(file_stem(&d), d.split('@').next().unwrap());
        assert_eq!(file_stem("../x/y@z"), ".._x_y");
    }

    #[test]
    fn the_message_has_both_parts_the_stable_id_and_the_headers() {
        let bytes = example().to_bytes().unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("Message-ID: <alert.0123abcd@gatelog>"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("Content-Type: text/plain; charset=utf-8"), "{text}");
        assert!(text.contains("Content-Type: text/html; charset=utf-8"), "{text}");
        assert!(text.contains("X-Gatelog-Alert: 0123abcd") && text.contains("X-Gatelog-Rule: deny_burst_ip"));
        assert!(text.contains("Date: Mon, 03 Mar 2025 08:31:53"), "{text}");
        let bad = Mail { to: vec!["not an address".into()], ..example() };
        assert!(bad.to_message().unwrap_err().to_string().contains("not an address"));
    }
}
