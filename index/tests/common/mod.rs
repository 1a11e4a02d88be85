//! Shared helpers: the sample files mapped with gatelog-ingest, and indexing them.
#![allow(dead_code)]

use gatelog_index::{Indexer, IndexerOptions};
use gatelog_ingest::{BodyContext, Dataset, Limits, map_body};
use gatelog_model::{AccessDecision, Batch, Source, UnixMillis};
use std::path::{Path, PathBuf};

/// `$GATELOG_SHARED/formats/samples`, else `shared/` beside the repository.
pub fn samples_dir() -> PathBuf {
    let dir = match std::env::var_os("GATELOG_SHARED") {
        Some(shared) => PathBuf::from(shared).join("formats/samples"),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/formats/samples")),
    };
    assert!(dir.is_dir(), "sample directory {} is missing (set GATELOG_SHARED)", dir.display());
    dir
}

/// Every decision a sample file maps to.
pub fn sample(name: &str) -> Vec<AccessDecision> {
    let path = samples_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dataset = Dataset::from_file_name(&path).unwrap_or_else(|| panic!("no dataset for {name}"));
    let ctx = BodyContext {
        received_at: UnixMillis(1_741_132_800_000),
        origin: name,
        source: Source::Logpush,
        limits: Limits::default(),
    };
    let out = map_body(dataset, &bytes, &ctx).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(!out.decisions.is_empty(), "{name} mapped to no decisions");
    out.decisions
}

/// The small sample files (not the 5000-line one).
pub const SMALL: &[&str] = &[
    "http_requests.ndjson",
    "firewall_events.ndjson",
    "access_requests.ndjson",
    "audit_logs.ndjson",
    "audit_logs_v2.ndjson",
    "gateway_http.ndjson",
    "workers_trace_events.ndjson",
    "tail.ndjson",
];

pub fn small_samples() -> Vec<AccessDecision> {
    SMALL.iter().flat_map(|name| sample(name)).collect()
}

/// Indexes `decisions` as consecutive spool records of `per_batch` and commits.
pub fn index_all(dir: &Path, decisions: &[AccessDecision], per_batch: usize) -> Indexer {
    let mut indexer =
        Indexer::open(dir, IndexerOptions { writer_memory_bytes: 15_000_000, ..IndexerOptions::default() }).unwrap();
    let mut seq = indexer.position();
    for chunk in decisions.chunks(per_batch.max(1)) {
        seq += 1;
        let batch = Batch { decisions: chunk.to_vec(), ..Batch::default() };
        indexer.index_batch(seq, &batch).unwrap();
    }
    indexer.commit().unwrap();
    indexer
}

/// Keeps the last copy of each event id (what the index keeps).
pub fn unique_last(decisions: &[AccessDecision]) -> Vec<AccessDecision> {
    let mut by_id = std::collections::BTreeMap::new();
    for d in decisions {
        by_id.insert(d.event_id.clone(), d.clone());
    }
    by_id.into_values().collect()
}

/// Lower-case alphanumeric words, as tantivy's default tokenizer splits text.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Whether `phrase` occurs as consecutive words of `text`.
pub fn has_phrase(text: &str, phrase: &str) -> bool {
    let (t, p) = (words(text), words(phrase));
    !p.is_empty() && t.windows(p.len()).any(|w| w == p.as_slice())
}
