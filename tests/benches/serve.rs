//! `gatelog serve` against ClickHouse's own HTTP ingest of the same gzip bodies, in one run
//! against one managed ClickHouse. Prints figures; asserts nothing (a benchmark, not a test).
//!
//! ```sh
//! cargo bench -p gatelog-e2e --bench serve            # or ./x bench-serve
//! BENCH_RECORDS=20000 cargo bench -p gatelog-e2e --bench serve
//! ```
//!
//! Environment:
//! - `BENCH_RECORDS` (default 200000): records of the baseline and throughput phases (with
//!   `BENCH_INPUT`: at most this many); a latency-only run sends none of them.
//! - `BENCH_BATCH_LINES` (default 2000): NDJSON lines per gzip body, like a Logpush batch.
//! - `BENCH_CLIENTS` (default 8): concurrent clients of the throughput phases.
//! - `BENCH_INPUT` (optional): a gzip NDJSON `http_requests` file (e.g. the 1M-record file
//!   `./x bench-ingest` caches in `bench/data/`); default: the shared 5000-line sample, cycled,
//!   each record given its own RayID (so its own event id).
//! - `BENCH_CONFIG` (optional): `gatelog.toml` text added to every serve phase's config
//!   (`\n` for line breaks), e.g. `BENCH_CONFIG='[clickhouse]\nsink_batch_bytes = "32 MiB"'`.
//! - `BENCH_LATENCY_RECORDS` (default 1000000): records of the latency phase, its own (more
//!   generated records, or the lines of `BENCH_INPUT` after the first `BENCH_RECORDS`), so
//!   its p99 rests on ~500 requests rather than being the slowest of ~100.
//! - `BENCH_LATENCY_RATE` (optional, events/s): run only the latency phase, at this rate
//!   (no baseline, no throughput phases): for working on ack latency.
//! - `GATELOG_E2E_SERVE_LOG` (optional): the serve processes' log filter (default `warn`);
//!   when set, each phase's log is kept as `bench/data/serve-<phase>.log`, e.g.
//!   `gatelog_ingest=debug` gives a `receiver: batch spooled` line per request with `map_ms`
//!   and `spool_ms`; the latency phase's requests (body, spool seq, due time, latency) go to
//!   `bench/data/answers-latency.tsv`, to be read next to that log.
//! - `GATELOG_SHARED`: the folder holding `formats/samples` (default `../shared`).
//!
//! Method:
//! 1. The gzip bodies are built in memory before anything is timed; the release `gatelog` is
//!    built; `gatelog clickhouse run` starts one managed ClickHouse (under a temporary folder
//!    in `bench/data/`, removed at the end) shared by every phase. It runs at normal priority
//!    for the baseline, then at nice 19 for the serve phases, as `gatelog serve` runs its
//!    managed server (`clickhouse.managed_nice`).
//! 2. Baseline: `bench/http_requests_equivalent.sql` in database `bench_baseline`; the clients
//!    POST every body to `INSERT INTO bench_baseline.http_requests_json FORMAT JSONEachRow`
//!    (`Content-Encoding: gzip`, `input_format_skip_unknown_fields=1`). ClickHouse answers an
//!    insert once it is stored, so events/s = records / (first post → last answer).
//! 3. (a) `gatelog serve` with `[index] enabled = false`, its own database, data dir and
//!    token, and `[clickhouse] sync_data_dir` set to the shared server's tables (so its sink
//!    syncs them before the spool lets records go, as for a managed server); the clients POST every body to `/v1/logpush/http_requests` (429/503 retried after
//!    `Retry-After` and counted). End-to-end = first post → the spool holds the highest
//!    acknowledged `spool_seq` and `gatelog_sink_lag_records{sink="clickhouse"}` is 0 on
//!    `/metrics` (polled every 50 ms; the sink acknowledges the spool after ClickHouse answered
//!    the insert). Acks = first post → last 2xx.
//! 4. (b) The same with the default config (ClickHouse + tantivy): end-to-end also waits for
//!    `gatelog_sink_lag_records{sink="index"}` = 0 (the index sink acknowledges after its
//!    commit). `gatelog_written_decisions_total{sink}` is reported next to ClickHouse's
//!    `count()` of `decisions`, as a cross-check.
//! 5. Latency: a fresh serve with the default config; the latency bodies are posted
//!    open-loop (body i at i / rate, each in its own task, so a slow answer delays nothing
//!    that follows: no coordinated omission) at half of (b)'s end-to-end events/s; latency is
//!    scheduled send → 2xx (including any Retry-After waits). p50/p99 are over the requests
//!    sent after the first 2 s (a fresh server faults in its memory and starts threads during
//!    those); the warm-up requests and p99 over every request are printed on the next line.
//!    p99 is nearest-rank: over 500 requests, the fifth slowest; the maximum is printed too.
//! 6. Peak RSS: `VmHWM` of each serve process, read before it is stopped.
//!
//! Between phases the bench waits for ClickHouse's merges to finish and runs `sync`. Every
//! process it starts is stopped on the way out, on errors too (drop guards).
#![allow(clippy::print_stdout)] // a benchmark: its output is the point

#[path = "serve/input.rs"]
mod input;
#[path = "serve/load.rs"]
mod load;
#[path = "serve/procs.rs"]
mod procs;
#[path = "serve/report.rs"]
mod report;

use anyhow::Context;
use gatelog_e2e::{Serve, ServeSpec, count, free_port, http_client, query};
use load::{Endpoint, Outcome};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-serve-token-0123456789abcdef";
const NO_INDEX: &str = "[index]\nenabled = false\n";
/// ClickHouse's nice value in the serve phases: what `gatelog serve` gives its managed server
/// by default (`clickhouse.managed_nice`). The baseline runs it at 0.
const SERVE_CLICKHOUSE_NICE: i32 = 19;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench serve: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench serve failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The bench's settings, from `BENCH_*` variables.
#[derive(Debug)]
pub struct Settings {
    pub records: usize,
    pub batch_lines: usize,
    pub clients: usize,
    pub input: Option<PathBuf>,
    /// Extra `gatelog.toml` text for every serve phase (`BENCH_CONFIG`).
    pub config: String,
    pub latency_records: usize,
    /// Only the latency phase, at this many events/s (`BENCH_LATENCY_RATE`).
    pub latency_only: Option<f64>,
}

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => {
            v.trim().parse().ok().filter(|n| *n > 0).with_context(|| format!("{name}={v:?} is not a positive number"))
        }
        Err(_) => Ok(default),
    }
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        Ok(Settings {
            records: env_number("BENCH_RECORDS", 200_000)?,
            batch_lines: env_number("BENCH_BATCH_LINES", 2000)?,
            clients: env_number("BENCH_CLIENTS", 8)?,
            latency_records: env_number("BENCH_LATENCY_RECORDS", 1_000_000)?,
            input: std::env::var_os("BENCH_INPUT").filter(|v| !v.is_empty()).map(PathBuf::from),
            config: std::env::var("BENCH_CONFIG").map(|c| c.replace("\\n", "\n") + "\n").unwrap_or_default(),
            latency_only: match std::env::var("BENCH_LATENCY_RATE") {
                Ok(v) => Some(
                    v.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|r| *r > 0.0)
                        .with_context(|| format!("BENCH_LATENCY_RATE={v:?} is not a positive rate"))?,
                ),
                Err(_) => None,
            },
        })
    }
}

/// What the phases share.
#[derive(Debug)]
struct Bench {
    settings: Settings,
    /// The throughput phases' bodies (and the baseline's).
    bodies: Arc<Vec<Vec<u8>>>,
    records: usize,
    /// The latency phase's own bodies.
    latency_bodies: Arc<Vec<Vec<u8>>>,
    ch_url: String,
    /// The serve phases' `[clickhouse] sync_data_dir`: they sync the shared server's tables
    /// before the spool lets records go, as `gatelog serve` does for its managed server.
    ch_tables: PathBuf,
    work: PathBuf,
    client: reqwest::Client,
}

/// One `gatelog serve` phase.
#[derive(Debug)]
pub struct ServeRun {
    pub acks: Outcome,
    /// First post → every required sink stored everything.
    pub end_to_end: Duration,
    /// `gatelog_written_decisions_total{sink}` at the end.
    pub written: Vec<(String, Option<f64>)>,
    /// `count()` of the phase's `decisions` table.
    pub rows: u64,
    pub peak_rss: Option<u64>,
    pub fsync: procs::Fsyncs,
}

/// How a serve phase posts.
#[derive(Debug, Clone, Copy)]
enum Load {
    Closed {
        clients: usize,
    },
    /// The latency bodies, at this rate.
    Open {
        bodies_per_second: f64,
    },
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let load_at_start = procs::load_average();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);

    // A latency-only run needs no throughput bodies.
    let records = if settings.latency_only.is_some() { 0 } else { settings.records };
    let (input, latency_records, batch_lines) =
        (settings.input.clone(), settings.latency_records, settings.batch_lines);
    let mut prepared =
        tokio::task::spawn_blocking(move || input::prepare(input.as_deref(), records, latency_records, batch_lines))
            .await??;
    for (name, set) in [("throughput", &prepared.throughput), ("latency", &prepared.latency)] {
        eprintln!(
            "bench serve: {name}: {} records in {} gzip bodies ({:.1} MB gzip)",
            set.records,
            set.bodies.len(),
            set.gzip_bytes as f64 / 1e6
        );
    }
    eprintln!("bench serve: building gatelog (release)");
    let gatelog = tokio::task::spawn_blocking(gatelog_e2e::gatelog_release_bin).await?;

    let bench_data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/data");
    std::fs::create_dir_all(&bench_data).with_context(|| format!("cannot create {}", bench_data.display()))?;
    let work =
        tempfile::Builder::new().prefix("serve-").tempdir_in(&bench_data).context("cannot create the work folder")?;
    // Dropped before `work`: ClickHouse stops before its folder is removed.
    let clickhouse = procs::ClickHouseProcess::start(gatelog, &work.path().join("clickhouse")).await?;
    let bench = Bench {
        bodies: Arc::new(std::mem::take(&mut prepared.throughput.bodies)),
        records: prepared.throughput.records,
        latency_bodies: Arc::new(std::mem::take(&mut prepared.latency.bodies)),
        settings,
        ch_url: clickhouse.url.clone(),
        ch_tables: clickhouse.tables_dir(),
        work: work.path().to_owned(),
        client: http_client(),
    };

    let lines_per_body = prepared.latency.records as f64 / bench.latency_bodies.len() as f64;
    if let Some(rate) = bench.settings.latency_only {
        eprintln!("bench serve: latency only, at {rate:.0} events/s (BENCH_LATENCY_RATE)");
        clickhouse.renice(SERVE_CLICKHOUSE_NICE)?;
        let latency =
            serve_phase(&bench, "bench_serve_latency", true, Load::Open { bodies_per_second: rate / lines_per_body })
                .await?;
        drop(bench.client);
        drop(clickhouse);
        drop(work);
        report::print_latency(&bench.settings, &prepared.latency, &latency, rate);
        return Ok(());
    }
    eprintln!("bench serve: baseline (ClickHouse JSONEachRow)");
    let baseline = baseline(&bench).await?;
    clickhouse.renice(SERVE_CLICKHOUSE_NICE)?;
    eprintln!("bench serve: (a) serve, ClickHouse sink only");
    let sink_only =
        serve_phase(&bench, "bench_serve_a", false, Load::Closed { clients: bench.settings.clients }).await?;
    eprintln!("bench serve: (b) serve, ClickHouse + index");
    let with_index =
        serve_phase(&bench, "bench_serve_b", true, Load::Closed { clients: bench.settings.clients }).await?;
    let latency_rate = bench.records as f64 / with_index.end_to_end.as_secs_f64() / 2.0;
    eprintln!("bench serve: latency at {latency_rate:.0} events/s (half of (b) end-to-end)");
    let latency = serve_phase(
        &bench,
        "bench_serve_latency",
        true,
        Load::Open { bodies_per_second: latency_rate / lines_per_body },
    )
    .await?;

    // Idle keep-alive connections first (ClickHouse waits for them on SIGTERM), then the
    // server, then its folder.
    drop(bench.client);
    drop(clickhouse);
    drop(work);
    report::print(&report::Report {
        settings: &bench.settings,
        prepared: &prepared,
        load_at_start,
        cores,
        baseline: &baseline,
        sink_only: &sink_only,
        with_index: &with_index,
        latency: &latency,
        latency_rate,
    });
    Ok(())
}

/// ClickHouse's own ingest of the same bodies with the same concurrency.
async fn baseline(bench: &Bench) -> anyhow::Result<(Outcome, u64)> {
    let sql =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/http_requests_equivalent.sql"))
            .context("bench/http_requests_equivalent.sql")?;
    query(&bench.ch_url, "CREATE DATABASE bench_baseline");
    query(&bench.ch_url, &sql.replace("{db}", "bench_baseline"));
    procs::settle(&bench.ch_url).await;
    let endpoint = Endpoint {
        url: format!(
            "{}/?query=INSERT%20INTO%20bench_baseline.http_requests_json%20FORMAT%20JSONEachRow&input_format_skip_unknown_fields=1",
            bench.ch_url
        ),
        token: None,
        retry_too_many_parts: true,
    };
    let outcome = load::closed_loop(&bench.client, &endpoint, &bench.bodies, bench.settings.clients).await?;
    let rows = count(&bench.ch_url, "SELECT count() FROM bench_baseline.http_requests_json");
    Ok((outcome, rows))
}

/// `config` (`BENCH_CONFIG`) with `sync_data_dir = dir` in its `[clickhouse]` table (added
/// when it has none; TOML allows a table once).
fn with_sync_data_dir(config: &str, dir: &Path) -> String {
    let line = format!("sync_data_dir = {:?}\n", dir.to_string_lossy());
    match config.find("[clickhouse]\n") {
        Some(at) => {
            let after = at + "[clickhouse]\n".len();
            format!("{}{line}{}", &config[..after], &config[after..])
        }
        None => format!("[clickhouse]\n{line}{config}"),
    }
}

/// A fresh `gatelog serve` (release) in database `db` under its own data dir: post every
/// body, wait until the sinks stored everything, read its peak RSS, stop it.
async fn serve_phase(bench: &Bench, db: &str, index: bool, load: Load) -> anyhow::Result<ServeRun> {
    if !procs::settle(&bench.ch_url).await {
        eprintln!("bench serve: warning: ClickHouse still merging after 600 s; starting {db} anyway");
    }
    let data_dir = bench.work.join(db);
    let text = format!(
        "{}{}",
        if index { "" } else { NO_INDEX },
        with_sync_data_dir(&bench.settings.config, &bench.ch_tables)
    );
    let path = bench.work.join(format!("{db}.toml"));
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let config = Some(path);
    let spec = ServeSpec {
        data_dir: data_dir.clone(),
        port: free_port(),
        clickhouse_url: bench.ch_url.clone(),
        database: db.to_owned(),
        token: TOKEN.to_owned(),
        config,
        release: true,
    };
    let mut serve = Serve::start(&spec).await;
    let pid = procs::serve_pid(&data_dir);
    let endpoint = Endpoint {
        url: format!("{}/v1/logpush/http_requests", spec.base_url()),
        token: Some(TOKEN.to_owned()),
        retry_too_many_parts: false,
    };
    let sinks: &[&str] = if index { &["clickhouse", "index"] } else { &["clickhouse"] };

    let started = Instant::now();
    let posted = match load {
        Load::Closed { clients } => load::closed_loop(&bench.client, &endpoint, &bench.bodies, clients).await,
        Load::Open { bodies_per_second } => {
            load::open_loop(&bench.client, &endpoint, &bench.latency_bodies, bodies_per_second).await
        }
    };
    let with_log =
        |e: anyhow::Error, serve: &Serve| e.context(format!("{db}; gatelog serve log:\n{}", serve.log_tail(30)));
    let acks = posted.map_err(|e| with_log(e, &serve))?;
    let stored = procs::wait_stored(&bench.client, &spec.base_url(), sinks, acks.max_seq, Duration::from_secs(600))
        .await
        .map_err(|e| with_log(e, &serve))?;
    let peak_rss = pid.and_then(procs::peak_rss);
    let rows = count(&bench.ch_url, &format!("SELECT count() FROM {db}.decisions"));
    if serve.terminate(Duration::from_secs(20)).await.is_none() {
        eprintln!("bench serve: {db}: gatelog serve did not stop within 20 s of SIGTERM; killed");
    }
    if std::env::var_os("GATELOG_E2E_SERVE_LOG").is_some() {
        let phase = db.trim_start_matches("bench_serve_");
        let kept = bench.work.join(format!("../serve-{phase}.log"));
        if let Err(e) = std::fs::copy(data_dir.join("serve.log"), &kept) {
            eprintln!("bench serve: cannot keep {db}'s log as {}: {e}", kept.display());
        }
        if !acks.timeline.is_empty() {
            let path = bench.work.join(format!("../answers-{phase}.tsv"));
            let lines: String = acks.timeline.iter().map(|s| s.tsv() + "\n").collect();
            if let Err(e) = std::fs::write(&path, format!("body\tseq\tdue_unix\tlatency_ms\n{lines}")) {
                eprintln!("bench serve: cannot write {}: {e}", path.display());
            }
        }
    }
    Ok(ServeRun { acks, end_to_end: stored.at - started, written: stored.written, rows, peak_rss, fsync: stored.fsync })
}
