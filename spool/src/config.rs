//! [`SpoolConfig`]: the `[spool]` section of `gatelog.toml` (serde, `deny_unknown_fields`,
//! `Default`, [`SpoolConfig::validate`] naming the key), and [`SpoolConfig::options`], the
//! [`SpoolOptions`] it asks for. Its defaults are [`SpoolOptions::default`]'s.

use crate::SpoolOptions;
use bytesize::ByteSize;
use serde::Deserialize;

/// `[spool]`: the write-ahead log under `<data_dir>/spool`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Total size on disk; beyond it ingest answers 429 with Retry-After.
    pub max_bytes: ByteSize,
    pub segment_bytes: ByteSize,
    /// Turn off only for benchmarks: a 2xx would no longer mean durable.
    pub fsync: bool,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        let o = SpoolOptions::default();
        SpoolConfig { max_bytes: ByteSize::b(o.max_bytes), segment_bytes: ByteSize::b(o.segment_bytes), fsync: o.fsync }
    }
}

/// A `[spool]` problem, naming the key in full (`spool.segment_bytes: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl SpoolConfig {
    /// Checks the sizes; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.segment_bytes.as_u64() < 1 << 20 || self.segment_bytes > self.max_bytes {
            return Err(ConfigError {
                key: "spool.segment_bytes".into(),
                message: "must be at least 1 MiB and at most spool.max_bytes".into(),
            });
        }
        Ok(())
    }

    /// The spool's options. One record may take at most half the spool, so a small spool
    /// still opens (a larger batch is answered 413 by the receiver instead); preallocation
    /// makes fsyncs cheaper, and without fsyncs would only cost writes.
    pub fn options(&self) -> SpoolOptions {
        let max_bytes = self.max_bytes.as_u64();
        SpoolOptions {
            max_record_bytes: SpoolOptions::default().max_record_bytes.min(max_bytes / 2),
            max_bytes,
            segment_bytes: self.segment_bytes.as_u64(),
            fsync: self.fsync,
            preallocate: self.fsync,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_the_default_and_the_spools_own() {
        let c: SpoolConfig = toml::from_str("").unwrap();
        assert_eq!(c, SpoolConfig::default());
        c.validate().unwrap();
        assert_eq!(c.options(), SpoolOptions::default());
    }

    #[test]
    fn unknown_keys_are_named_and_messages_name_the_key() {
        let e = toml::from_str::<SpoolConfig>("max_byte = \"1 GiB\"").unwrap_err().to_string();
        assert!(e.contains("max_byte"), "{e}");
        let c: SpoolConfig = toml::from_str("segment_bytes = \"100 KiB\"").unwrap();
        assert!(c.validate().unwrap_err().to_string().starts_with("spool.segment_bytes: "));
        let c: SpoolConfig = toml::from_str("max_bytes = \"2 MiB\"\nsegment_bytes = \"4 MiB\"").unwrap();
        assert!(c.validate().unwrap_err().to_string().starts_with("spool.segment_bytes: "));
        let c: SpoolConfig = toml::from_str("max_bytes = \"64 MiB\"\nfsync = false").unwrap();
        c.validate().unwrap();
        let o = c.options();
        assert_eq!((o.max_record_bytes, o.preallocate), (32 << 20, false));
    }
}
