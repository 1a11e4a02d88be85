//! Processes and what the bench reads from them: the shared managed ClickHouse (stopped on
//! drop), the serve process's peak RSS, the load average, and `/metrics` until the sinks
//! have stored everything.

use anyhow::{Context, bail};
use gatelog_e2e::{metric, metric_samples};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `gatelog clickhouse run --data-dir DIR --url-file FILE`: one managed ClickHouse for every
/// phase. Stopped with SIGTERM on drop (gatelog then stops the server, killing it after its
/// own 15 s stop timeout, so the wait is bounded).
#[derive(Debug)]
pub struct ClickHouseProcess {
    child: Option<Child>,
    pub url: String,
    log: PathBuf,
    data_dir: PathBuf,
}

impl ClickHouseProcess {
    /// Where the server keeps its tables (what `gatelog serve` syncs for a managed server).
    pub fn tables_dir(&self) -> PathBuf {
        self.data_dir.join("clickhouse/data")
    }

    pub async fn start(gatelog: &Path, data_dir: &Path) -> anyhow::Result<ClickHouseProcess> {
        std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        let url_file = data_dir.join("clickhouse.url");
        let log = data_dir.join("clickhouse.out");
        // At normal priority for the baseline; see `renice`.
        let config = data_dir.join("gatelog.toml");
        std::fs::write(&config, "[clickhouse]\nmanaged_nice = 0\n")
            .with_context(|| format!("cannot write {}", config.display()))?;
        let out = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new(gatelog)
            .args(["clickhouse", "run", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--url-file")
            .arg(&url_file)
            .env("GATELOG_LOG", "warn")
            .env_remove("GATELOG_CLICKHOUSE_URL")
            .env_remove("GATELOG_CONFIG")
            .env_remove("GATELOG_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("cannot run gatelog clickhouse run")?;
        let mut process =
            ClickHouseProcess { child: Some(child), url: String::new(), log, data_dir: data_dir.to_owned() };
        let started = Instant::now();
        loop {
            if let Some(url) = std::fs::read_to_string(&url_file).ok().filter(|u| !u.trim().is_empty()) {
                process.url = url.trim().to_owned();
                return Ok(process);
            }
            if let Some(child) = process.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("gatelog clickhouse run exited ({status}):\n{}", process.log_text());
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!("managed ClickHouse did not start within 120 s:\n{}", process.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Gives every thread of the `clickhouse-server` process the nice value `nice` (threads
    /// it starts later inherit it from their creator): the serve phases run ClickHouse at
    /// the priority `gatelog serve` gives its managed server (`clickhouse.managed_nice`),
    /// the baseline at the normal one.
    pub fn renice(&self, nice: i32) -> anyhow::Result<()> {
        // The server's command line names its config under the canonical data dir.
        let needle = std::fs::canonicalize(&self.data_dir)?.to_string_lossy().into_owned();
        let server = std::fs::read_dir("/proc")?.flatten().find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = String::from_utf8_lossy(&std::fs::read(entry.path().join("cmdline")).ok()?).into_owned();
            (cmdline.contains("clickhouse-server") && cmdline.contains(&needle)).then_some(pid)
        });
        let pid = server.context("the clickhouse-server process was not found")?;
        let tids: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))?
            .flatten()
            .map(|t| t.file_name().to_string_lossy().into_owned())
            .collect();
        let status = Command::new("renice")
            .args(["-n", &nice.to_string(), "-p"])
            .args(&tids)
            .stdout(Stdio::null())
            .status()
            .context("cannot run renice")?;
        if !status.success() {
            bail!("renice -n {nice} of clickhouse-server's {} threads failed ({status})", tids.len());
        }
        Ok(())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ClickHouseProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }
}

/// The pid of the `gatelog serve` whose command line names `data_dir` (the e2e `Serve`
/// helper does not expose its child's pid).
pub fn serve_pid(data_dir: &Path) -> Option<u32> {
    let needle = data_dir.to_string_lossy();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        (args.iter().any(|a| a == "serve") && args.iter().any(|a| *a == needle)).then_some(pid)
    })
}

/// Peak resident set size (`VmHWM`) of a process, in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The kernel's writeback settings (`vm.dirty_*`), which shape the ack latency's tail: every
/// `dirty_writeback_centisecs` the flusher writes out what was written without fsync
/// (ClickHouse's parts) more than `dirty_expire_centisecs` ago, and the spool's next
/// `fdatasync` waits behind it (README, "Running next to ClickHouse").
pub fn writeback_settings() -> String {
    ["dirty_writeback_centisecs", "dirty_expire_centisecs", "dirty_background_ratio", "dirty_background_bytes"]
        .iter()
        .map(|name| {
            let value = std::fs::read_to_string(format!("/proc/sys/vm/{name}")).unwrap_or_else(|_| "?".into());
            format!("{name}={}", value.trim())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits (bounded, 600 s) until ClickHouse has no merges running, then writes every dirty
/// page out (`sync`), so one phase's background work (or a previous run's, whose hundreds of
/// MB the kernel would otherwise flush during the next phase) does not slow the next.
/// Returns whether it settled.
pub async fn settle(ch_url: &str) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(600) {
        if gatelog_e2e::count(ch_url, "SELECT count() FROM system.merges") == 0 {
            if let Err(e) = tokio::process::Command::new("sync").status().await {
                eprintln!("bench serve: cannot run sync ({e}); dirty pages may be written during the next phase");
            }
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// What `/metrics` said when the sinks had stored everything.
#[derive(Debug)]
pub struct Stored {
    /// When the scrape that showed it was answered.
    pub at: Instant,
    /// `gatelog_written_decisions_total{sink}` per required sink, if the family exists.
    pub written: Vec<(String, Option<f64>)>,
    pub fsync: Fsyncs,
}

/// The spool's fsync histogram at the end of a phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fsyncs {
    pub count: f64,
    pub mean: Duration,
    /// Upper bounds of the buckets holding the 50th and 99th percentile.
    pub p50_bound: Option<f64>,
    pub p99_bound: Option<f64>,
}

impl Fsyncs {
    fn from_metrics(text: &str) -> Fsyncs {
        let count = metric(text, "gatelog_spool_fsync_seconds_count", &[]).unwrap_or(0.0);
        let sum = metric(text, "gatelog_spool_fsync_seconds_sum", &[]).unwrap_or(0.0);
        // Cumulative buckets, in the order /metrics lists them.
        let buckets: Vec<(f64, f64)> = metric_samples(text, "gatelog_spool_fsync_seconds_bucket")
            .into_iter()
            .filter_map(|(key, v)| {
                let le = key.split("le=\"").nth(1)?.split('"').next()?;
                Some((if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? }, v))
            })
            .collect();
        let bound = |q: f64| buckets.iter().find(|(_, c)| *c >= q * count).map(|(le, _)| *le);
        Fsyncs {
            count,
            mean: if count > 0.0 { Duration::from_secs_f64(sum / count) } else { Duration::ZERO },
            p50_bound: bound(0.5),
            p99_bound: bound(0.99),
        }
    }
}

/// Polls `/metrics` every 50 ms (bounded by `limit`) until the spool holds record `max_seq`
/// and every sink in `sinks` has acknowledged it (`gatelog_sink_lag_records{sink}` = 0): the
/// ClickHouse sink acknowledges after ClickHouse answered the insert, the index sink after
/// its commit. `gatelog_written_decisions_total` is only reported, not waited on.
pub async fn wait_stored(
    client: &reqwest::Client,
    base_url: &str,
    sinks: &[&str],
    max_seq: u64,
    limit: Duration,
) -> anyhow::Result<Stored> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < limit {
        let scraped = client.get(format!("{base_url}/metrics")).timeout(Duration::from_secs(10)).send().await;
        if let Ok(response) = scraped
            && let Ok(text) = response.text().await
        {
            let at = Instant::now();
            let head = metric(&text, "gatelog_spool_last_seq", &[]).unwrap_or(0.0);
            let caught_up =
                sinks.iter().all(|s| metric(&text, "gatelog_sink_lag_records", &[("sink", s)]) == Some(0.0));
            if head >= max_seq as f64 && caught_up {
                let written = sinks
                    .iter()
                    .map(|s| (s.to_string(), metric(&text, "gatelog_written_decisions_total", &[("sink", s)])))
                    .collect();
                return Ok(Stored { at, written, fsync: Fsyncs::from_metrics(&text) });
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lags = metric_samples(&last, "gatelog_sink_lag_records");
    bail!("the sinks {sinks:?} did not store spool record {max_seq} within {limit:?}; lags: {lags:?}")
}
