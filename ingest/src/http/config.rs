//! [`ReceiverConfig`]: the `[receiver]` section of `gatelog.toml`, with its defaults and
//! [`ReceiverConfig::validate`].

use bytesize::ByteSize;
use serde::Deserialize;
use std::time::Duration;

/// How the HTTP receiver authenticates, bounds and paces what it is sent.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Accepted ingest tokens (the `ingest` role); several at once so a token can be rotated
    /// without downtime. `[auth]` may hold more, as SHA-256. None at all: every ingest request
    /// is rejected (401) unless `allow_unauthenticated`.
    pub tokens: Vec<String>,
    /// A header that carries the token as well as `Authorization: Bearer` (Logpush sets
    /// headers with `header_<Name>=` URL parameters), e.g. `X-Gatelog-Token`.
    pub token_header: Option<String>,
    /// Accept requests without a token when `tokens` is empty. Local demos only.
    pub allow_unauthenticated: bool,
    /// Cap on a request body as sent (compressed); larger bodies get 413.
    pub max_body_bytes: ByteSize,
    /// Cap on a body once inflated (gzip-bomb guard); larger bodies get 413.
    pub max_decompressed_bytes: ByteSize,
    /// A longer line is kept as a dead letter (its first `max_line_bytes` bytes) instead of parsed.
    pub max_line_bytes: ByteSize,
    /// Cap on one mapped batch (its decisions, raw lines and dead letters as spooled, counted
    /// while it is mapped); a body that maps to more gets 413.
    pub max_batch_bytes: ByteSize,
    /// Cap on what all requests hold at once: bodies as they arrive and the batches mapped
    /// from them until the spool has written them. A request that would go past it gets 503
    /// with `Retry-After`. At least `max_body_bytes + max_batch_bytes`, so the largest
    /// request fits alone.
    pub max_buffered_bytes: ByteSize,
    /// Lines whose event time lies more than this before `received_at` are dead letters.
    #[serde(with = "humantime_serde")]
    pub max_event_age: Duration,
    /// Lines whose event time lies more than this after `received_at` are dead letters.
    #[serde(with = "humantime_serde")]
    pub max_event_lead: Duration,
    /// The most UTC days one batch's events may fall on (each is an index folder, and days
    /// in several months are several ClickHouse partitions). Lines of further days (the
    /// days with the fewest lines first) are dead letters.
    pub max_days_per_batch: u32,
    /// Spool nothing and answer 400 when any line of a batch is bad (default: keep the good
    /// lines and store the bad ones as dead letters).
    pub reject_whole_batch: bool,
    /// `Retry-After` sent with 429 and 503 answers.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// Answer 503 while the slowest registered spool consumer is more than this many
    /// records behind.
    pub max_lag_records: u64,
}

impl std::fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverConfig")
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("token_header", &self.token_header)
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_decompressed_bytes", &self.max_decompressed_bytes)
            .field("max_line_bytes", &self.max_line_bytes)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("max_event_age", &self.max_event_age)
            .field("max_event_lead", &self.max_event_lead)
            .field("max_days_per_batch", &self.max_days_per_batch)
            .field("reject_whole_batch", &self.reject_whole_batch)
            .field("retry_after", &self.retry_after)
            .field("max_lag_records", &self.max_lag_records)
            .finish()
    }
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            tokens: Vec::new(),
            token_header: None,
            allow_unauthenticated: false,
            max_body_bytes: ByteSize::mib(64),
            max_decompressed_bytes: ByteSize::b(crate::decode::DEFAULT_MAX_DECOMPRESSED),
            max_line_bytes: ByteSize::b(crate::decode::DEFAULT_MAX_LINE as u64),
            max_batch_bytes: ByteSize::mib(256),
            max_buffered_bytes: ByteSize::mib(512),
            max_event_age: crate::window::DEFAULT_MAX_AGE,
            max_event_lead: crate::window::DEFAULT_MAX_LEAD,
            max_days_per_batch: 31,
            reject_whole_batch: false,
            retry_after: Duration::from_secs(5),
            max_lag_records: 1_000_000,
        }
    }
}

/// A receiver setting that cannot work, naming its key (`receiver.tokens[1]: must not be empty`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError { key: key.into(), message: message.into() })
}

impl ReceiverConfig {
    /// Checks every key; the first problem is returned with the key's full name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, token) in self.tokens.iter().enumerate() {
            let key = format!("receiver.tokens[{i}]");
            if token.trim().is_empty() {
                return invalid(key, "must not be empty");
            }
            if token.len() < 16 {
                return invalid(key, format!("is {} characters long; use at least 16", token.len()));
            }
            if token.trim() != token || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return invalid(key, "must be printable ASCII without spaces (it travels in an HTTP header)");
            }
            if self.tokens[..i].contains(token) {
                return invalid(key, "duplicates an earlier token");
            }
        }
        if let Some(name) = &self.token_header {
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return invalid("receiver.token_header", format!("{name:?} is not a valid HTTP header name"));
            }
            if name.eq_ignore_ascii_case("authorization") {
                return invalid("receiver.token_header", "leave it unset to use Authorization: Bearer");
            }
        }
        if self.allow_unauthenticated && !self.tokens.is_empty() {
            return invalid("receiver.allow_unauthenticated", "must be false when receiver.tokens are set");
        }
        if self.max_body_bytes.as_u64() < 1024 {
            return invalid("receiver.max_body_bytes", format!("must be at least 1 KiB, got {}", self.max_body_bytes));
        }
        if self.max_line_bytes.as_u64() < 1024 {
            return invalid("receiver.max_line_bytes", format!("must be at least 1 KiB, got {}", self.max_line_bytes));
        }
        if usize::try_from(self.max_line_bytes.as_u64()).is_err() {
            return invalid("receiver.max_line_bytes", "is larger than this platform's memory");
        }
        if self.max_decompressed_bytes < self.max_line_bytes {
            return invalid("receiver.max_decompressed_bytes", "must be at least receiver.max_line_bytes");
        }
        if self.max_batch_bytes < self.max_line_bytes || self.max_batch_bytes.as_u64() >= 1 << 32 {
            return invalid(
                "receiver.max_batch_bytes",
                format!("must be at least receiver.max_line_bytes and less than 4 GiB, got {}", self.max_batch_bytes),
            );
        }
        let largest = self.max_body_bytes.as_u64().saturating_add(self.max_batch_bytes.as_u64());
        if self.max_buffered_bytes.as_u64() < largest || usize::try_from(self.max_buffered_bytes.as_u64()).is_err() {
            return invalid(
                "receiver.max_buffered_bytes",
                format!(
                    "must be at least receiver.max_body_bytes + receiver.max_batch_bytes ({}) so the largest request fits, got {}",
                    ByteSize::b(largest),
                    self.max_buffered_bytes
                ),
            );
        }
        if self.max_event_age < Duration::from_secs(3600) || self.max_event_age > Duration::from_secs(100 * 31_557_600)
        {
            return invalid(
                "receiver.max_event_age",
                format!("must be between 1h and 100years, got {}", humantime::format_duration(self.max_event_age)),
            );
        }
        if self.max_event_lead > Duration::from_secs(366 * 86_400) {
            return invalid(
                "receiver.max_event_lead",
                format!("must be at most 366days, got {}", humantime::format_duration(self.max_event_lead)),
            );
        }
        if !(1..=3660).contains(&self.max_days_per_batch) {
            return invalid(
                "receiver.max_days_per_batch",
                format!("must be between 1 and 3660, got {}", self.max_days_per_batch),
            );
        }
        if self.retry_after.is_zero() || self.retry_after > Duration::from_secs(3600) {
            return invalid("receiver.retry_after", "must be between 1s and 1h");
        }
        if self.max_lag_records == 0 {
            return invalid("receiver.max_lag_records", "must be at least 1");
        }
        Ok(())
    }

    /// The event times accepted around `received_at`.
    pub fn window(&self) -> crate::TimeWindow {
        crate::TimeWindow { max_age: self.max_event_age, max_lead: self.max_event_lead }
    }

    /// The receiver's credentials: `tokens` as the ingest role (named `receiver.tokens[i]`),
    /// by `Authorization: Bearer` or `token_header` (which other roles' tokens may use too),
    /// and no credential at all on the ingest routes with `allow_unauthenticated`. The binary
    /// adds `[auth]`'s tokens to these.
    pub fn credentials(&self) -> gatelog_edge::Credentials {
        let mut credentials = gatelog_edge::Credentials::new(self.token_header.as_deref());
        for (i, token) in self.tokens.iter().enumerate() {
            credentials.add_token(format!("receiver.tokens[{i}]"), gatelog_edge::Role::Ingest, token);
        }
        credentials.allow_anonymous_ingest(self.allow_unauthenticated);
        credentials
    }

    /// `Retry-After` in whole seconds (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = ReceiverConfig::default();
        c.validate().unwrap();
        assert_eq!(c.max_body_bytes, ByteSize::mib(64));
        assert_eq!(c.max_decompressed_bytes, ByteSize::mib(256));
        assert_eq!(c.max_line_bytes, ByteSize::mib(1));
        assert_eq!(c.retry_after, Duration::from_secs(5));
        assert_eq!(c.max_lag_records, 1_000_000);
        assert_eq!(c.max_batch_bytes, ByteSize::mib(256));
        assert_eq!(c.max_buffered_bytes, ByteSize::mib(512));
        assert_eq!(c.window(), crate::TimeWindow::default());
        assert_eq!(c.max_days_per_batch, 31);
        assert!(!c.reject_whole_batch);
    }

    #[test]
    fn parses_toml_with_units() {
        let c: ReceiverConfig = toml::from_str(
            "tokens = [\"aaaaaaaaaaaaaaaaaaaa\", \"bbbbbbbbbbbbbbbbbbbb\"]\ntoken_header = \"X-Gatelog-Token\"\n\
             max_body_bytes = \"8 MiB\"\nretry_after = \"30s\"\nreject_whole_batch = true\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.tokens.len(), 2);
        assert_eq!(c.max_body_bytes, ByteSize::mib(8));
        assert_eq!(c.retry_after_secs(), 30);
        assert!(c.reject_whole_batch);
        assert!(toml::from_str::<ReceiverConfig>("tokenz = []").is_err(), "unknown keys are refused");
    }

    #[test]
    fn messages_name_the_key() {
        let mut c = ReceiverConfig { tokens: vec!["x".repeat(20), String::new()], ..Default::default() };
        assert_eq!(c.validate().unwrap_err().to_string(), "receiver.tokens[1]: must not be empty");
        c.tokens = vec!["short".into()];
        assert!(c.validate().unwrap_err().to_string().starts_with("receiver.tokens[0]: "));
        c.tokens = vec!["y".repeat(20)];
        c.token_header = Some("bad header".into());
        assert!(c.validate().unwrap_err().to_string().starts_with("receiver.token_header: "));
        c.token_header = None;
        c.retry_after = Duration::ZERO;
        assert!(c.validate().unwrap_err().to_string().starts_with("receiver.retry_after: "));
        c.retry_after = Duration::from_secs(1);
        c.max_decompressed_bytes = ByteSize::kib(2);
        c.max_line_bytes = ByteSize::kib(4);
        assert!(c.validate().unwrap_err().to_string().starts_with("receiver.max_decompressed_bytes: "));
        let c = ReceiverConfig { max_buffered_bytes: ByteSize::mib(100), ..Default::default() };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("receiver.max_buffered_bytes: ") && err.contains("largest request"), "{err}");
        let c: ReceiverConfig = toml::from_str("max_event_age = \"10years\"\nmax_event_lead = \"1day\"").unwrap();
        assert_eq!(c.window(), crate::TimeWindow::default(), "the documented spelling of the defaults");
        let c: ReceiverConfig = toml::from_str("max_event_lead = \"2years\"").unwrap();
        assert!(c.validate().unwrap_err().to_string().starts_with("receiver.max_event_lead: "));
        let c = ReceiverConfig { max_days_per_batch: 0, ..Default::default() };
        assert!(c.validate().unwrap_err().to_string().starts_with("receiver.max_days_per_batch: "));
    }

    #[test]
    fn debug_redacts_tokens() {
        let c = ReceiverConfig { tokens: vec!["secret-secret-secret".into()], ..Default::default() };
        assert!(!format!("{c:?}").contains("secret-secret"));
    }
}
