//! Shared test helpers: sample paths and fixed contexts.
#![allow(dead_code)]

use gatelog_ingest::{BodyContext, BodyOutcome, Dataset, Limits, LineContext, map_body};
use gatelog_model::{Source, UnixMillis};
use std::path::PathBuf;

/// A fixed receive time, so snapshots are stable: 2025-03-05T00:00:00Z.
pub const RECEIVED_AT: UnixMillis = UnixMillis(1_741_132_800_000);

/// The generator's sample directory (shared/ beside the repository).
pub fn samples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/formats/samples"))
}

/// A sample file's path; fails with the path when the samples are missing.
pub fn sample(name: &str) -> PathBuf {
    let dir = samples_dir();
    assert!(
        dir.is_dir(),
        "sample directory {} is missing: these tests need shared/formats/samples beside the repository \
         (a checkout of the steering repo's shared/ at ../shared relative to the workspace root)",
        dir.display()
    );
    let path = dir.join(name);
    assert!(path.is_file(), "sample file {} is missing", path.display());
    path
}

pub fn sample_bytes(name: &str) -> Vec<u8> {
    let path = sample(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub fn sample_json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&sample_bytes(name)).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

pub fn line_ctx(line_no: u64) -> LineContext<'static> {
    LineContext { received_at: RECEIVED_AT, origin: "test", line_no, source: Source::Logpush }
}

pub fn body_ctx(origin: &str) -> BodyContext<'_> {
    BodyContext { received_at: RECEIVED_AT, origin, source: Source::Logpush, limits: Limits::default() }
}

/// Maps a whole sample file with the dataset its name says.
pub fn map_sample(name: &str) -> (Dataset, BodyOutcome) {
    let path = sample(name);
    let dataset = Dataset::from_file_name(&path).unwrap_or_else(|| panic!("no dataset in {name}"));
    let out = map_body(dataset, &sample_bytes(name), &body_ctx(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    (dataset, out)
}
