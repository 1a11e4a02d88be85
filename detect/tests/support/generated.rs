//! Generated Cloudflare data (`shared/formats/gen_samples.py`), mapped by the real mappers,
//! and delivered to an engine the way Logpush delivers it.

use gatelog_detect::{Arrival, Engine};
use gatelog_ingest::{Dataset, LineContext, LineOutcome, map_line};
use gatelog_model::{AccessDecision, Batch, Finding, Source, UnixMillis};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `gen_samples.py`: `$GATELOG_SHARED/formats/`, else `shared/` beside the repository.
pub fn generator() -> PathBuf {
    let shared = std::env::var_os("GATELOG_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let path = shared.join("formats/gen_samples.py");
    assert!(path.is_file(), "{} not found (set GATELOG_SHARED to the folder holding formats/)", path.display());
    path
}

/// What to generate: one dataset of one world.
#[derive(Debug, Clone)]
pub struct Spec {
    pub dataset: &'static str,
    pub seed: u64,
    pub start: String,
    pub hours: f64,
    pub count: usize,
    /// `default` or `none`.
    pub anomalies: &'static str,
}

/// A generated dataset: its mapped decisions (file order) and the generator's summary.
#[derive(Debug)]
pub struct Generated {
    pub spec: Spec,
    pub decisions: Vec<AccessDecision>,
    pub summary: serde_json::Value,
}

/// Runs the generator for every spec (several processes at once) and maps the output.
pub fn generate_all(dir: &Path, specs: &[Spec]) -> Vec<Generated> {
    let script = generator();
    let mut out = Vec::with_capacity(specs.len());
    for chunk in specs.chunks(6) {
        let children: Vec<(Spec, PathBuf, PathBuf, Child)> = chunk
            .iter()
            .map(|spec| {
                let stem = format!("{}-{}-{}-{}", spec.dataset, spec.seed, spec.anomalies, spec.start.replace(':', ""));
                let data = dir.join(format!("{stem}.ndjson"));
                let summary = dir.join(format!("{stem}.json"));
                let child = Command::new("python3")
                    .arg(&script)
                    .args(["--dataset", spec.dataset, "--seed", &spec.seed.to_string(), "--start", &spec.start])
                    .args(["--hours", &spec.hours.to_string(), "--count", &spec.count.to_string()])
                    .args(["--anomalies", spec.anomalies, "--timestamps", "rfc3339ns"])
                    .arg("--out")
                    .arg(&data)
                    .arg("--summary-out")
                    .arg(&summary)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
                (spec.clone(), data, summary, child)
            })
            .collect();
        for (spec, data, summary, child) in children {
            let done = child.wait_with_output().unwrap();
            assert!(done.status.success(), "{spec:?}: {}", String::from_utf8_lossy(&done.stderr));
            let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
            let decisions = map_file(spec.dataset, &data);
            out.push(Generated { spec, decisions, summary });
        }
    }
    out
}

/// Maps every line of a file with the real mapper; a dead letter fails the test.
fn map_file(dataset: &str, path: &Path) -> Vec<AccessDecision> {
    let ds = Dataset::parse(dataset).unwrap_or_else(|| panic!("unknown dataset {dataset}"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let cx =
            LineContext { received_at: UnixMillis(0), origin: "test", line_no: i as u64 + 1, source: Source::Logpush };
        match map_line(ds, line, &cx) {
            LineOutcome::Mapped { decisions, .. } => out.extend(decisions),
            LineOutcome::Dead(dead) => panic!("{dataset} line {}: {}", i + 1, dead.error),
            LineOutcome::Probe | LineOutcome::Blank => {}
        }
    }
    out
}

/// Logpush-like delivery: each dataset cut into batches of `batch_ms` of event time,
/// received when the batch closes; all batches in order of receipt (then dataset).
pub fn deliveries(sets: &[&Generated], batch_ms: i64) -> Vec<Batch> {
    let mut batches = Vec::new();
    for g in sets {
        let mut current: Option<(i64, Batch)> = None;
        for d in &g.decisions {
            let slot = d.time.0.div_euclid(batch_ms);
            if current.as_ref().is_some_and(|(s, _)| *s != slot) {
                batches.extend(current.take().map(|(_, b)| b));
            }
            let (_, b) = current.get_or_insert_with(|| {
                (
                    slot,
                    Batch {
                        batch_id: format!("{}-{}-{slot}", g.spec.dataset, g.spec.seed),
                        dataset: g.spec.dataset.to_owned(),
                        received_at: UnixMillis((slot + 1) * batch_ms),
                        ..Batch::default()
                    },
                )
            });
            let mut d = d.clone();
            d.received_at = b.received_at;
            b.decisions.push(d);
        }
        batches.extend(current.map(|(_, b)| b));
    }
    batches.sort_by(|a, b| (a.received_at, &a.dataset).cmp(&(b.received_at, &b.dataset)));
    batches
}

/// Streams batches through an engine, ticking its clock at every receipt, as a runtime does.
pub fn stream(engine: &mut Engine, batches: &[Batch]) -> Vec<Finding> {
    let mut out = Vec::new();
    for b in batches {
        engine.tick(b.received_at, &mut out);
        engine.process_batch(b, &mut out);
    }
    out
}

/// Warm-up from history: decisions in time order and the arrivals of their batches.
pub fn warm(engine: &mut Engine, history: &[Batch]) {
    let arrivals: Vec<Arrival> = history.iter().flat_map(Arrival::of_batch).collect();
    engine.warm_arrivals(&arrivals);
    let mut decisions: Vec<&AccessDecision> = history.iter().flat_map(|b| &b.decisions).collect();
    decisions.sort_by_key(|d| d.time);
    engine.warm(decisions);
}
