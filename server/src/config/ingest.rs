//! `[ingest]`: how `gatelog ingest` cuts files into batches and bounds them. The binary's own
//! command, so its section lives here; the time window's defaults are `ingest::window`'s.

use super::ConfigError;
use bytesize::ByteSize;
use serde::Deserialize;
use std::time::Duration;

/// `[ingest]`: how files and bodies are cut and bounded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSection {
    /// Lines per batch (one body of the file, mapped as the receiver maps a request): the
    /// unit of idempotence.
    pub batch_lines: usize,
    /// A batch closes once it holds this many bytes of NDJSON (bounds memory, and keeps the
    /// mapped batch within one spool record and the body within what a server accepts).
    pub batch_bytes: ByteSize,
    /// A longer line becomes a dead letter instead of being parsed.
    pub max_line_bytes: ByteSize,
    /// Cap on the inflated size of one gzip member stream (decompression-bomb guard).
    pub max_decompressed_bytes: ByteSize,
    /// Batches mapped ahead of the one being appended to the spool (or posted).
    pub write_concurrency: usize,
    /// Lines whose event time lies more than this before the ingest run are dead letters.
    #[serde(with = "humantime_serde")]
    pub max_event_age: Duration,
    /// Lines whose event time lies more than this after the ingest run are dead letters.
    #[serde(with = "humantime_serde")]
    pub max_event_lead: Duration,
}

/// The largest `ingest.batch_bytes`: its mapped batch (about twice the NDJSON) stays well
/// within a spool record (256 MiB), and the body within the receiver's `max_body_bytes`.
pub const MAX_INGEST_BATCH_BYTES: ByteSize = ByteSize::mib(64);

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            batch_lines: 50_000,
            batch_bytes: ByteSize::mib(32),
            max_line_bytes: ByteSize::b(gatelog_ingest::decode::DEFAULT_MAX_LINE as u64),
            max_decompressed_bytes: ByteSize::gib(64),
            write_concurrency: 2,
            max_event_age: gatelog_ingest::window::DEFAULT_MAX_AGE,
            max_event_lead: gatelog_ingest::window::DEFAULT_MAX_LEAD,
        }
    }
}

impl IngestSection {
    /// Checks ranges and combinations; the error names the key (`ingest.…`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if !(1..=1_000_000).contains(&self.batch_lines) {
            return invalid("ingest.batch_lines", format!("must be between 1 and 1000000, got {}", self.batch_lines));
        }
        if self.batch_bytes < self.max_line_bytes {
            return invalid("ingest.batch_bytes", "must be at least ingest.max_line_bytes".into());
        }
        if self.batch_bytes > MAX_INGEST_BATCH_BYTES {
            return invalid(
                "ingest.batch_bytes",
                format!(
                    "must be at most {MAX_INGEST_BATCH_BYTES} (a batch, mapped, is one spool record), got {}",
                    self.batch_bytes
                ),
            );
        }
        if self.max_line_bytes.as_u64() < 1024 {
            return invalid("ingest.max_line_bytes", format!("must be at least 1 KiB, got {}", self.max_line_bytes));
        }
        if self.max_decompressed_bytes < self.max_line_bytes {
            return invalid("ingest.max_decompressed_bytes", "must be at least ingest.max_line_bytes".into());
        }
        if self.max_event_age < Duration::from_secs(3600) || self.max_event_age > Duration::from_secs(100 * 31_557_600)
        {
            return invalid(
                "ingest.max_event_age",
                format!("must be between 1h and 100years, got {}", humantime::format_duration(self.max_event_age)),
            );
        }
        if self.max_event_lead > Duration::from_secs(366 * 86_400) {
            return invalid(
                "ingest.max_event_lead",
                format!("must be at most 366days, got {}", humantime::format_duration(self.max_event_lead)),
            );
        }
        if !(1..=64).contains(&self.write_concurrency) {
            return invalid(
                "ingest.write_concurrency",
                format!("must be between 1 and 64, got {}", self.write_concurrency),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_the_default_and_every_message_names_its_key() {
        let empty: IngestSection = toml::from_str("").unwrap();
        assert_eq!(empty, IngestSection::default());
        empty.validate().unwrap();
        let e = toml::from_str::<IngestSection>("batch_line = 1").unwrap_err().to_string();
        assert!(e.contains("batch_line"), "{e}");
        for (text, key) in [
            ("batch_lines = 0", "ingest.batch_lines"),
            ("batch_bytes = \"1 KiB\"", "ingest.batch_bytes"),
            ("batch_bytes = \"65 MiB\"", "ingest.batch_bytes"),
            ("max_line_bytes = \"100 B\"\nbatch_bytes = \"1 MiB\"", "ingest.max_line_bytes"),
            ("max_decompressed_bytes = \"1 KiB\"", "ingest.max_decompressed_bytes"),
            ("max_event_age = \"10m\"", "ingest.max_event_age"),
            ("max_event_lead = \"400days\"", "ingest.max_event_lead"),
            ("write_concurrency = 65", "ingest.write_concurrency"),
        ] {
            let section: IngestSection = toml::from_str(text).unwrap();
            let e = section.validate().unwrap_err().to_string();
            assert!(e.starts_with(&format!("{key}: ")), "{text}: {e}");
        }
    }
}
