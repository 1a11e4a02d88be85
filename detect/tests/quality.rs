//! Detection quality on generated data: every anomaly `gen_samples.py --anomalies default`
//! plants is found, naming the planted principals and IPs, and the same worlds with
//! `--anomalies none` raise no finding of those kinds.
//!
//! Worlds differ in seed (never the default 42), start (weekday and hour), length and
//! volume. Each is streamed three ways: each dataset alone through a fresh engine; all
//! datasets together (Tail and `workers_trace_events` copies of the same Worker decisions
//! included) as Logpush delivers them, in 5-minute batches; and the same after a warm-up
//! on a week of clean history of the same world, as the runtime warms from ClickHouse.
//! The recall and false-finding table is printed (`--nocapture`).

mod support;

use gatelog_detect::{DetectConfig, Engine};
use gatelog_model::{AccessDecision, UnixMillis};
use support::generated::{Generated, Spec, deliveries, generate_all, stream, warm};
use support::plants::{Plant, Tally, plants, rule_for};

const DATASETS: [&str; 7] = [
    "workers_trace_events",
    "http_requests",
    "firewall_events",
    "access_requests",
    "audit_logs",
    "audit_logs_v2",
    "gateway_http",
];
const BATCH_MS: i64 = 5 * 60_000;
const WEEK_MS: i64 = 7 * 86_400_000;

struct World {
    seed: u64,
    start: &'static str,
    hours: f64,
    /// Records per dataset.
    count: fn(&str) -> usize,
}

fn worlds() -> Vec<World> {
    vec![
        // The generator's default volume (200 records), a Friday afternoon start.
        World { seed: 1234, start: "2024-11-29T13:30:00Z", hours: 48.0, count: |_| 200 },
        // Three days, heavy: the hidden volume a real Worker or zone would send.
        World {
            seed: 7,
            start: "2025-06-11T05:00:00Z",
            hours: 72.0,
            count: |d| match d {
                "workers_trace_events" | "tail" | "http_requests" => 3000,
                "audit_logs" | "audit_logs_v2" => 400,
                _ => 1500,
            },
        },
        // A late-evening start, two and a half days, medium volume.
        World { seed: 90210, start: "2026-01-05T22:00:00Z", hours: 60.0, count: |_| 800 },
        // The generator's own window shape (midnight, 48 h, 200 records) on another date.
        World { seed: 5150, start: "2025-03-17T00:00:00Z", hours: 48.0, count: |_| 200 },
        // An early-morning start, three days of sparse data.
        World { seed: 903341, start: "2025-04-22T04:45:00Z", hours: 72.0, count: |_| 200 },
    ]
}

fn spec(w: &World, dataset: &'static str, anomalies: &'static str) -> Spec {
    Spec { dataset, seed: w.seed, start: w.start.to_owned(), hours: w.hours, count: (w.count)(dataset), anomalies }
}

/// A week of clean history before the world's window, at the same density.
fn history_spec(w: &World, dataset: &'static str) -> Spec {
    let start = UnixMillis::parse_str(w.start).expect("a world's start is RFC 3339").0 - WEEK_MS;
    let count = ((w.count)(dataset) as f64 * 168.0 / w.hours) as usize;
    Spec { dataset, seed: w.seed, start: UnixMillis(start).to_rfc3339(), hours: 168.0, count, anomalies: "none" }
}

fn engine() -> Engine {
    Engine::new(DetectConfig::default()).expect("the default configuration is valid")
}

fn of<'a>(generated: &'a [Generated], dataset: &str, anomalies: &str, history: bool) -> &'a Generated {
    generated
        .iter()
        .find(|g| g.spec.dataset == dataset && g.spec.anomalies == anomalies && (g.spec.hours == 168.0) == history)
        .expect("every dataset was generated")
}

#[test]
fn planted_anomalies_are_found_and_clean_data_raises_none_of_their_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let mut default = Tally::default();
    let mut none = Tally::default();
    for w in worlds() {
        let mut specs = Vec::new();
        for ds in DATASETS.iter().copied().chain(["tail"]) {
            specs.push(spec(&w, ds, "default"));
            specs.push(spec(&w, ds, "none"));
            specs.push(history_spec(&w, ds));
        }
        let generated = generate_all(dir.path(), &specs);
        for (mode, tally) in [("default", &mut default), ("none", &mut none)] {
            let sets: Vec<&Generated> = DATASETS.iter().map(|ds| of(&generated, ds, mode, false)).collect();
            let all_plants: Vec<Plant> = sets.iter().flat_map(|g| plants(g)).collect();
            if mode == "default" {
                let kinds: std::collections::BTreeSet<&str> = all_plants.iter().map(|p| p.kind.as_str()).collect();
                assert_eq!(kinds.len(), 5, "seed {}: the generator planted {kinds:?}", w.seed);
            } else {
                assert!(all_plants.is_empty(), "--anomalies none planted {all_plants:?}");
            }
            for g in &sets {
                let findings = stream(&mut engine(), &deliveries(&[g], BATCH_MS));
                let run = format!("seed {} {} alone ({mode})", w.seed, g.spec.dataset);
                tally.score(&run, &plants(g), &g.decisions.iter().collect::<Vec<_>>(), &findings);
            }
            let mut together = sets.clone();
            together.push(of(&generated, "tail", mode, false));
            let batches = deliveries(&together, BATCH_MS);
            let streamed: Vec<&AccessDecision> = batches.iter().flat_map(|b| &b.decisions).collect();
            let findings = stream(&mut engine(), &batches);
            tally.score(&format!("seed {} all datasets ({mode})", w.seed), &all_plants, &streamed, &findings);
            let history: Vec<&Generated> = DATASETS.iter().map(|ds| of(&generated, ds, "none", true)).collect();
            let mut warmed = engine();
            let past = deliveries(&history, BATCH_MS);
            warm(&mut warmed, &past);
            let findings = stream(&mut warmed, &batches);
            let known: Vec<&AccessDecision> = past.iter().flat_map(|b| &b.decisions).chain(streamed).collect();
            let run = format!("seed {} all datasets after a week of history ({mode})", w.seed);
            tally.score(&run, &all_plants, &known, &findings);
        }
    }
    println!("{}", default.render("--anomalies default"));
    println!("{}", none.render("--anomalies none"));
    assert!(default.missed.is_empty(), "missed:\n{}", default.missed.join("\n"));
    for kind in ["runaway_select", "new_country_offhours", "deny_burst", "offhours_privileged_change", "dlp_exfil"] {
        let rule = rule_for(kind);
        let (n, _) = none.findings.get(rule).copied().unwrap_or_default();
        assert_eq!(n, 0, "{rule} fired on clean data:\n{}", none.false_on_planted_rules.join("\n"));
    }
    assert!(
        default.false_on_planted_rules.is_empty(),
        "findings of the planted kinds' rules on no planted event:\n{}",
        default.false_on_planted_rules.join("\n")
    );
}
