//! The fuzz target of the body → batch path ([`prepare`]), run for a bounded time by
//! `cargo test` (`GATELOG_FUZZ_SECS`, default 20; `GATELOG_FUZZ_SEED` replays a run).
//!
//! Inputs are generated with proptest: line shapes (records of several datasets with times
//! in and out of the window, proxy decisions, JSON of the wrong shape, random and invalid
//! UTF-8 bytes, blank and whitespace lines, CRs, validation probes, lines over the cap), with
//! or without a last newline, framed as plain bytes, one gzip member, several members split
//! anywhere (empty ones included), truncated members, trailing garbage, or a random prefix;
//! and small, random limits. Each input is checked against what an independent reading of it
//! (flate2 and a count of newlines) says:
//! - nothing panics;
//! - the outcome is the one the body calls for: 413 exactly when it inflates past its cap, a
//!   gzip error exactly when flate2 finds one, a batch over `max_batch_bytes` refused;
//! - every line is accounted for: lines = usable lines + dead letters + probes + blank lines,
//!   each dead letter has its own line number, and the spooled record says the same;
//! - what is produced is bounded: the record is at most `max_batch_bytes`, no kept line is
//!   longer than `max_line_bytes`, every time is inside the window, the batch spans at most
//!   `max_days_per_batch` days, and the budget is all given back.
//!
//! A failing input is shrunk and printed with the seed.

use super::*;
use gatelog_edge::budget::MemoryBudget;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::io::Read as _;
use std::time::{Duration, Instant};

const AT: UnixMillis = UnixMillis(1_764_806_400_000); // 2025-12-04
const DAY: i64 = 86_400_000;

#[derive(Debug, Clone)]
enum Line {
    /// A record of the body's dataset whose time lies `days` before `received_at` (negative:
    /// after), as epoch millis or RFC 3339.
    Record {
        n: u16,
        days: i64,
        rfc3339: bool,
    },
    /// A timestamp no window holds.
    FarTime(&'static str),
    Json(String),
    Bytes(Vec<u8>),
    Blank(String),
    Probe,
    /// `len` copies of a byte: over the line cap for most limits.
    Long(usize, u8),
}

#[derive(Debug, Clone)]
enum Framing {
    Plain,
    /// gzip members cut at these fractions of the body (0..=100), then optionally truncated
    /// to a fraction of the compressed bytes, then with bytes appended.
    Gzip {
        cuts: Vec<u8>,
        truncate: Option<u8>,
        trailing: Vec<u8>,
    },
    Prefix(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Input {
    mapper: usize,
    lines: Vec<Line>,
    crlf: bool,
    last_newline: bool,
    framing: Framing,
    max_line: usize,
    max_decompressed: u64,
    max_batch: usize,
    max_days: usize,
    reject_whole_batch: bool,
}

const MAPPERS: [Mapper; 5] = [
    Mapper::Dataset(Dataset::HttpRequests, Source::Logpush),
    Mapper::Dataset(Dataset::FirewallEvents, Source::Logpush),
    Mapper::Dataset(Dataset::WorkersTraceEvents, Source::Logpush),
    Mapper::Dataset(Dataset::Tail, Source::Tail),
    Mapper::Decisions,
];

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        5 => (any::<u16>(), -1i64..3, any::<bool>()).prop_map(|(n, days, rfc3339)| Line::Record { n, days, rfc3339 }),
        2 => (any::<u16>(), -3i64..5000, any::<bool>()).prop_map(|(n, days, rfc3339)| Line::Record { n, days, rfc3339 }),
        1 => prop::sample::select(vec!["0000-01-01T00:00:00Z", "1900-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "-99999999999999", "1969-12-31T23:59:59Z"]).prop_map(Line::FarTime),
        2 => "[ -~]{0,80}".prop_map(Line::Json),
        2 => prop::collection::vec(any::<u8>(), 0..120).prop_map(Line::Bytes),
        2 => "[ \t\r]{0,6}".prop_map(Line::Blank),
        1 => Just(Line::Probe),
        1 => (0usize..6000, any::<u8>()).prop_map(|(len, b)| Line::Long(len, b)),
    ]
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        3 => Just(Framing::Plain),
        4 => (prop::collection::vec(0u8..=100, 0..4), prop::option::weighted(0.2, 0u8..100), prop::option::weighted(0.1, prop::collection::vec(any::<u8>(), 1..3)).prop_map(Option::unwrap_or_default))
            .prop_map(|(cuts, truncate, trailing)| Framing::Gzip { cuts, truncate, trailing }),
        1 => prop::collection::vec(any::<u8>(), 1..4).prop_map(Framing::Prefix),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    (
        0..MAPPERS.len(),
        prop::collection::vec(line(), 0..200),
        any::<bool>(),
        prop::bool::weighted(0.8),
        framing(),
        (256usize..4096, 1024u64..400_000, 1024usize..600_000, 1usize..6, prop::bool::weighted(0.1)),
    )
        .prop_map(|(mapper, lines, crlf, last_newline, framing, limits)| Input {
            mapper,
            lines,
            crlf,
            last_newline,
            framing,
            max_line: limits.0,
            max_decompressed: limits.1,
            max_batch: limits.2,
            max_days: limits.3,
            reject_whole_batch: limits.4,
        })
}

/// A record of `mapper`'s shape at `ts` (JSON text of the timestamp).
fn record(mapper: Mapper, n: u16, ts: &str) -> String {
    // The `access_decision` log line a Worker writes, as the JSON string it logs.
    let log = format!(
        r#""{{\"type\":\"access_decision\",\"version\":1,\"ts\":{},\"request_id\":\"q{n}\",\"decision\":\"deny\",\"principal\":\"a@b.c\"}}""#,
        ts.replace('"', "\\\"")
    );
    match mapper {
        Mapper::Dataset(Dataset::Tail, _) => format!(
            r#"[{{"scriptName":"w","outcome":"ok","eventTimestamp":{ts},"event":{{"request":{{"url":"https://h/{n}","method":"GET"}}}},"logs":[{{"message":[{log}],"level":"log","timestamp":{ts}}}],"exceptions":[]}}]"#
        ),
        Mapper::Dataset(Dataset::WorkersTraceEvents, _) => format!(
            r#"{{"ScriptName":"w","EventTimestampMs":{ts},"Event":{{"RayID":"{n:016x}"}},"Logs":[{{"Level":"log","Message":[{log}],"TimestampMs":{ts}}}],"Outcome":"ok"}}"#
        ),
        Mapper::Dataset(Dataset::FirewallEvents, _) => format!(
            r#"{{"RayID":"{n:016x}","Datetime":{ts},"Action":"block","RuleID":"r{n}","Source":"waf","ClientRequestHost":"h"}}"#
        ),
        Mapper::Decisions => format!(r#"{{"event_id":"d{n}","time":{ts},"decision":"deny"}}"#),
        Mapper::Dataset(_, _) => format!(
            r#"{{"RayID":"{n:016x}","EdgeStartTimestamp":{ts},"ClientRequestHost":"h","ClientRequestURI":"/{n}","EdgeResponseStatus":403}}"#
        ),
    }
}

/// The body's inflated bytes.
fn plain(input: &Input) -> Vec<u8> {
    let mapper = MAPPERS[input.mapper];
    let mut out = Vec::new();
    for (i, line) in input.lines.iter().enumerate() {
        match line {
            Line::Record { n, days, rfc3339 } => {
                let t = UnixMillis(AT.0 - days * DAY - i64::from(*n));
                let ts = if *rfc3339 { format!("\"{}\"", t.to_rfc3339()) } else { t.0.to_string() };
                out.extend_from_slice(record(mapper, *n, &ts).as_bytes());
            }
            Line::FarTime(ts) => out.extend_from_slice(record(mapper, 7, &format!("\"{ts}\"")).as_bytes()),
            Line::Json(text) => out.extend_from_slice(text.as_bytes()),
            Line::Bytes(bytes) => out.extend(bytes.iter().map(|b| if *b == b'\n' { b' ' } else { *b })),
            Line::Blank(text) => out.extend_from_slice(text.as_bytes()),
            Line::Probe => out.extend_from_slice(br#"{"content":"tests"}"#),
            Line::Long(len, b) => out.extend(std::iter::repeat_n(if *b == b'\n' { b'x' } else { *b }, *len)),
        }
        if i + 1 < input.lines.len() || input.last_newline {
            out.extend_from_slice(if input.crlf { b"\r\n" } else { b"\n" });
        }
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    super::super::client::gzip(data).expect("gzip")
}

/// The body as sent.
fn framed(input: &Input, plain: &[u8]) -> Vec<u8> {
    match &input.framing {
        Framing::Plain => plain.to_vec(),
        Framing::Prefix(prefix) => [prefix.as_slice(), plain].concat(),
        Framing::Gzip { cuts, truncate, trailing } => {
            let mut at: Vec<usize> = cuts.iter().map(|c| plain.len() * usize::from(*c) / 100).collect();
            at.sort_unstable();
            let mut out = Vec::new();
            let mut from = 0;
            for cut in at.into_iter().chain([plain.len()]) {
                out.extend(gzip(&plain[from..cut]));
                from = cut;
            }
            if let Some(t) = truncate {
                out.truncate(out.len() * usize::from(*t) / 100);
            }
            out.extend_from_slice(trailing);
            out
        }
    }
}

/// What flate2 alone makes of the body: `Ok(inflated)`, or `Err(true)` past the cap,
/// `Err(false)` for a gzip error.
fn reference(body: &[u8], max: u64) -> Result<Vec<u8>, bool> {
    if !crate::is_gzip(body) {
        return if body.len() as u64 > max { Err(true) } else { Ok(body.to_vec()) };
    }
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(body).take(max + 1);
    match decoder.read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > max => Err(true),
        Ok(_) => Ok(out),
        Err(_) => Err(false),
    }
}

fn count_lines(plain: &[u8]) -> u64 {
    let newlines = plain.iter().filter(|b| **b == b'\n').count() as u64;
    newlines + u64::from(!plain.is_empty() && !plain.ends_with(b"\n"))
}

/// What the inputs came to, for the printed summary.
#[derive(Debug, Default)]
struct Tally {
    spooled: u64,
    other_plans: u64,
    refused: u64,
    decisions: u64,
    dead_letters: u64,
}

/// Runs one input; `Err` says what is wrong.
fn check(input: &Input, pool: &rayon::ThreadPool) -> Result<(), String> {
    check_counting(input, pool, &mut Tally::default())
}

fn check_counting(input: &Input, pool: &rayon::ThreadPool, tally: &mut Tally) -> Result<(), String> {
    let plain = plain(input);
    let body = framed(input, &plain);
    let window = crate::TimeWindow::default();
    let limits = Limits { max_decompressed: input.max_decompressed, max_line: input.max_line, window };
    let job = Job {
        mapper: MAPPERS[input.mapper],
        received_at: AT,
        origin: "fuzz",
        limits,
        reject_whole_batch: input.reject_whole_batch,
        max_days: input.max_days,
        lines_before: 0,
    };
    let budget = MemoryBudget::new(1 << 30);
    let mut reservation = budget.reserve(input.max_batch);
    let result = prepare(&body, &job, pool, &mut reservation);
    drop(reservation);
    if budget.held() != 0 {
        return Err(format!("{} bytes of budget never given back", budget.held()));
    }
    let expected = reference(&body, input.max_decompressed);
    let prepared = match (result, expected) {
        (Ok(prepared), Ok(inflated)) => (prepared, inflated),
        (Err(PrepareError::Decode(DecodeError::TooLarge { .. })), Err(true))
        | (Err(PrepareError::Decode(DecodeError::Corrupt { .. } | DecodeError::Io(_))), Err(false)) => {
            tally.refused += 1;
            return Ok(());
        }
        // Refused for its size before the rest of the body was read: a rejection either way.
        (Err(PrepareError::OverBudget(OverBudget::BatchTooLarge { limit })), _) if limit == input.max_batch => {
            tally.refused += 1;
            return Ok(());
        }
        (result, expected) => {
            return Err(format!(
                "outcome {:?} for a body flate2 reads as {:?}",
                result.map(|p| p.lines),
                expected.map(|b| b.len())
            ));
        }
    };
    let (prepared, inflated) = prepared;
    let lines = count_lines(&inflated);
    let accounted = prepared.raw_records as u64 + prepared.dead_letters as u64 + prepared.probes + prepared.blanks;
    if prepared.lines != lines || accounted != lines {
        return Err(format!("{lines} lines in the body, {} counted, {accounted} accounted for", prepared.lines));
    }
    let Plan::Spool { parts, .. } = &prepared.plan else {
        tally.other_plans += 1;
        let quiet = prepared.raw_records == 0 && prepared.dead_letters == 0;
        return match &prepared.plan {
            Plan::Reject { .. } if input.reject_whole_batch && prepared.dead_letters > 0 => Ok(()),
            Plan::ProbeOnly if quiet && prepared.probes > 0 => Ok(()),
            Plan::NoRecords if quiet && prepared.probes == 0 => Ok(()),
            plan => Err(format!("plan {plan:?} for {prepared:?}")),
        };
    };
    tally.spooled += 1;
    tally.decisions += prepared.decisions as u64;
    tally.dead_letters += prepared.dead_letters as u64;
    let record: Vec<u8> = parts.concat();
    if record.len() > input.max_batch {
        return Err(format!("a record of {} bytes over max_batch_bytes {}", record.len(), input.max_batch));
    }
    let batch = gatelog_model::Batch::decode(&record).map_err(|e| format!("the record does not decode: {e}"))?;
    if (batch.lines, batch.decision_lines.len(), batch.dead_letters.len(), batch.decisions.len())
        != (lines, prepared.decisions, prepared.dead_letters, prepared.decisions)
        || !batch.raw.is_empty()
    {
        return Err(format!("the record disagrees with the answer: {prepared:?}"));
    }
    if batch.bytes != inflated.len() as u64 || batch.sha256 != gatelog_model::sha256_hex(&inflated) {
        return Err("the record's size or hash is not the body's".into());
    }
    let mut kept = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&batch.body[..]), &mut kept)
        .map_err(|e| format!("the stored body does not inflate: {e}"))?;
    if kept != inflated {
        return Err("the stored body is not the body received".into());
    }
    if let Some(n) = batch.decision_lines.iter().find(|n| **n == 0 || u64::from(**n) > lines) {
        return Err(format!("a decision's line {n} for {lines} lines"));
    }
    let mut numbers: Vec<u64> = batch.dead_letters.iter().map(|d| d.line_no).collect();
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.len() != batch.dead_letters.len() || numbers.iter().any(|n| *n == 0 || *n > lines) {
        return Err(format!("dead letters' line numbers {numbers:?} for {lines} lines"));
    }
    // A dead letter keeps at most max_line bytes, decoded lossily (an invalid byte is 3).
    if let Some(dead) = batch.dead_letters.iter().find(|d| d.line.len() > 3 * input.max_line) {
        return Err(format!("a dead letter of {} bytes", dead.line.len()));
    }
    let (from, to) = window.bounds(AT);
    let times: Vec<UnixMillis> = batch.decisions.iter().map(|d| d.time).collect();
    if let Some(t) = times.iter().find(|t| !(from..=to).contains(*t)) {
        return Err(format!("time {t} outside the window {from} .. {to}"));
    }
    let days: std::collections::BTreeSet<i64> = times.iter().map(|t| t.0.div_euclid(DAY)).collect();
    if days.len() > input.max_days {
        return Err(format!("the batch spans {} days, over {}", days.len(), input.max_days));
    }
    Ok(())
}

/// Simplifies a failing input as far as it keeps failing.
fn shrink(mut tree: impl ValueTree<Value = Input>, pool: &rayon::ThreadPool) -> (Input, String) {
    let mut failure = check(&tree.current(), pool).err().unwrap_or_default();
    for _ in 0..10_000 {
        if !tree.simplify() {
            break;
        }
        match check(&tree.current(), pool) {
            Err(e) => failure = e,
            Ok(()) => {
                if !tree.complicate() {
                    break;
                }
            }
        }
    }
    (tree.current(), failure)
}

#[test]
fn the_generated_records_map_to_decisions() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    for (mapper, kind) in MAPPERS.into_iter().enumerate() {
        let input = Input {
            mapper,
            lines: vec![Line::Record { n: 1, days: 0, rfc3339: false }, Line::Record { n: 2, days: 1, rfc3339: true }],
            crlf: false,
            last_newline: true,
            framing: Framing::Plain,
            max_line: 4096,
            max_decompressed: 1 << 20,
            max_batch: 1 << 20,
            max_days: 5,
            reject_whole_batch: false,
        };
        let body = plain(&input);
        let job = Job {
            mapper: kind,
            received_at: AT,
            origin: "fuzz",
            limits: Limits { max_decompressed: 1 << 20, max_line: 4096, window: crate::TimeWindow::default() },
            reject_whole_batch: false,
            max_days: 5,
            lines_before: 0,
        };
        let prepared = prepare(&body, &job, &pool, &mut MemoryBudget::new(1 << 30).reserve(1 << 20)).unwrap();
        assert_eq!((prepared.raw_records, prepared.dead_letters), (2, 0), "{kind:?}: {prepared:?}");
        assert!(prepared.decisions >= 2, "{kind:?}: {prepared:?}");
        check(&input, &pool).unwrap();
    }
}

#[test]
fn fuzz_body_to_batch() {
    let secs: u64 = std::env::var("GATELOG_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("GATELOG_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        u64::try_from(std::time::SystemTime::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_nanos() % 1_000_000_007))
            .unwrap_or(1)
    });
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(Config { failure_persistence: None, ..Config::default() }, rng);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("pool");
    let strategy = input();
    let started = Instant::now();
    let mut executions = 0u64;
    let mut tally = Tally::default();
    while started.elapsed() < Duration::from_secs(secs) {
        let tree = strategy.new_tree(&mut runner).expect("an input");
        let value = tree.current();
        if let Err(first) = check_counting(&value, &pool, &mut tally) {
            let (minimal, failure) = shrink(tree, &pool);
            panic!(
                "fuzz finding after {executions} executions (GATELOG_FUZZ_SEED={seed}): {first}\n\
                 shrunk: {failure}\ninput: {minimal:#?}"
            );
        }
        executions += 1;
    }
    eprintln!(
        "fuzz body -> batch: {executions} executions in {secs}s (seed {seed}), 0 findings: {} spooled \
         ({} decisions, {} dead letters), {} answered without spooling (probe, blank, rejected whole), \
         {} refused (too large, corrupt gzip, batch over its cap)",
        tally.spooled, tally.decisions, tally.dead_letters, tally.other_plans, tally.refused
    );
    assert!(executions > 0);
}
