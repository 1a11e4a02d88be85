//! [`IndexConfig`]: the `[index]` section of `gatelog.toml` (serde, `deny_unknown_fields`,
//! `Default`, [`IndexConfig::validate`] naming the key), and
//! [`IndexConfig::indexer_options`], the [`IndexerOptions`] it asks for. Its defaults are
//! [`IndexerOptions::default`]'s.

use crate::IndexerOptions;
use bytesize::ByteSize;
use serde::Deserialize;
use std::time::Duration;

/// `[index]`: the tantivy full-text index under `<data_dir>/index`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    pub enabled: bool,
    /// The index sink commits at least this often while anything is waiting.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// tantivy's indexing memory per day being written (usually one or two days at once);
    /// when full, tantivy writes a segment early. At least 15 MB.
    pub writer_memory: ByteSize,
    /// The most decisions one background merge of a day's segments may produce. A merge
    /// holds memory in proportion to its size; a large day ends in more, smaller segments.
    pub merge_max_docs: u64,
    /// Copies of one event (Tail and Logpush) whose times are at most this far apart are one
    /// search hit even when they fall on both sides of midnight (ClickHouse counts them once
    /// whatever the distance). Each decision this close to midnight costs a delete in the
    /// neighbouring day's index. At most 24h.
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
}

impl Default for IndexConfig {
    fn default() -> Self {
        let o = IndexerOptions::default();
        IndexConfig {
            enabled: true,
            commit_interval: o.commit_interval,
            writer_memory: ByteSize::b(o.writer_memory_bytes as u64),
            merge_max_docs: o.merge_max_docs,
            dedup_window: o.dedup_window,
        }
    }
}

/// An `[index]` problem, naming the key in full (`index.merge_max_docs: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn invalid(key: &str, message: String) -> Result<(), ConfigError> {
    Err(ConfigError { key: key.to_owned(), message })
}

impl IndexConfig {
    /// Checks ranges; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.writer_memory.as_u64() < 15_000_000 || self.writer_memory > ByteSize::gib(4) {
            return invalid(
                "index.writer_memory",
                format!("must be between 15 MB (tantivy's minimum) and 4 GiB, got {}", self.writer_memory),
            );
        }
        if !(10_000..=10_000_000).contains(&self.merge_max_docs) {
            return invalid(
                "index.merge_max_docs",
                format!("must be between 10000 and 10000000, got {}", self.merge_max_docs),
            );
        }
        if self.dedup_window > Duration::from_secs(86_400) {
            return invalid(
                "index.dedup_window",
                format!("must be at most 24h, got {}", humantime::format_duration(self.dedup_window)),
            );
        }
        if self.commit_interval.is_zero() {
            return invalid("index.commit_interval", "must be longer than 0s".into());
        }
        Ok(())
    }

    /// The indexer's options; `retention` is the top-level `retention` of `gatelog.toml`.
    pub fn indexer_options(&self, retention: Option<Duration>) -> IndexerOptions {
        IndexerOptions {
            commit_interval: self.commit_interval,
            writer_memory_bytes: usize::try_from(self.writer_memory.as_u64()).unwrap_or(usize::MAX),
            merge_max_docs: self.merge_max_docs,
            dedup_window: self.dedup_window,
            retention,
            ..IndexerOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_the_default_and_the_indexers_own() {
        let c: IndexConfig = toml::from_str("").unwrap();
        assert_eq!(c, IndexConfig::default());
        c.validate().unwrap();
        assert_eq!(c.indexer_options(None), IndexerOptions::default());
        let day = Some(Duration::from_secs(86_400));
        assert_eq!(c.indexer_options(day).retention, day);
    }

    #[test]
    fn unknown_keys_are_named_and_messages_name_the_key() {
        let e = toml::from_str::<IndexConfig>("enable = false").unwrap_err().to_string();
        assert!(e.contains("enable"), "{e}");
        for (text, key) in [
            ("writer_memory = \"1 MiB\"", "index.writer_memory"),
            ("merge_max_docs = 500", "index.merge_max_docs"),
            ("dedup_window = \"25h\"", "index.dedup_window"),
            ("commit_interval = \"0s\"", "index.commit_interval"),
        ] {
            let c: IndexConfig = toml::from_str(text).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.starts_with(&format!("{key}: ")), "{text}: {e}");
        }
        let c: IndexConfig = toml::from_str("merge_max_docs = 500").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("got 500"));
    }
}
