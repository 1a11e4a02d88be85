//! `gatelog demo` with its own managed ClickHouse (serving the samples over HTTP, then
//! serving until SIGTERM; again with the port busy and `--exit-after-ingest`), and
//! `gatelog sql dump`.

use gatelog_e2e::{describe, free_port, gatelog, gatelog_bin, http_client, metric, samples_dir};
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DATASETS: [&str; 8] = [
    "http_requests",
    "firewall_events",
    "access_requests",
    "audit_logs",
    "audit_logs_v2",
    "gateway_http",
    "workers_trace_events",
    "tail",
];

/// A running `gatelog demo` whose stdout lines arrive on a channel; killed on drop.
struct Demo {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    stdout: String,
}

impl Demo {
    fn start(samples: &Path, data_dir: &Path, port: u16) -> Demo {
        let mut child = Command::new(gatelog_bin())
            .arg("demo")
            .arg("--samples")
            .arg(samples)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("GATELOG_LOG", "warn")
            .env_remove("GATELOG_CLICKHOUSE_URL")
            .env_remove("GATELOG_CONFIG")
            .env_remove("GATELOG_INGEST_TOKENS")
            .env_remove("GATELOG_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run gatelog demo");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo { child: Some(child), lines, stdout: String::new() }
    }

    /// Collects stdout until a line containing `marker` (bounded by `limit`).
    fn read_until(&mut self, marker: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push_str(&line);
                    self.stdout.push('\n');
                    if line.contains(marker) {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {marker:?} from gatelog demo within {limit:?}; stdout so far:\n{}", self.stdout);
    }

    /// SIGTERM, then the exit status (SIGKILL and panic after `limit`).
    async fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
                    self.stdout.push_str(&line);
                    self.stdout.push('\n');
                }
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("gatelog demo did not stop within {limit:?} of SIGTERM");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn assert_no_process_uses(data_dir: &Path) {
    let ps = Command::new("pgrep").args(["-fa", data_dir.to_str().expect("utf-8 path")]).output().expect("pgrep");
    assert!(ps.stdout.is_empty(), "a process outlived the demo: {}", String::from_utf8_lossy(&ps.stdout));
}

/// The `curl -H … 'URL'` search lines the demo printed, as URLs.
fn search_urls(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.contains("Authorization: Bearer $TOKEN"))
        .filter_map(|l| l.rsplit_once(" '").map(|(_, url)| url.trim_end_matches('\'').to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_posts_every_dataset_over_http_serves_until_sigterm_and_leaves_no_server_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let samples = samples_dir();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    let mut demo = Demo::start(&samples, &data_dir, port);
    demo.read_until("serving until Ctrl-C", Duration::from_secs(180));
    let stdout = demo.stdout.clone();
    for dataset in DATASETS {
        assert!(stdout.contains(dataset), "{dataset} missing from the demo's output:\n{stdout}");
    }
    assert!(stdout.contains(&format!("serving on {base}")), "{stdout}");
    assert!(stdout.contains("POST /v1/tail"), "tail deliveries went over HTTP: {stdout}");
    assert!(stdout.contains("the validation probe → 200, 1 probe, stored nowhere"), "{stdout}");
    assert!(stdout.contains(" 0 dead letters, "), "{stdout}");
    for url in [format!("{base}/healthz"), format!("{base}/metrics")] {
        assert!(stdout.contains(&url), "{url} not printed:\n{stdout}");
    }
    assert!(stdout.contains("gatelog search --data-dir"), "{stdout}");
    assert!(stdout.contains("curl 'http://127.0.0.1:"), "the ClickHouse query examples: {stdout}");
    // The sample period's SOC 2 report: written, signed with a key made for the demo, verified
    // by the demo itself, and again here with the command it printed.
    assert!(stdout.contains("verified: the signature and all "), "{stdout}");
    let verify_line = stdout.lines().find_map(|l| l.trim().strip_prefix("verify: gatelog ")).expect("a verify command");
    let verify_args: Vec<&str> = verify_line.split_whitespace().collect();
    let verified = gatelog_e2e::gatelog(&verify_args);
    assert!(verified.status.success(), "{}", gatelog_e2e::describe(&verified));
    assert!(stdout.contains("open the report: file:///"), "{stdout}");
    // Where the alert e-mails went: .eml files under the data dir (no SMTP server configured),
    // one per mail the demo counts.
    let outbox = data_dir.join("outbox");
    let mails = stdout
        .lines()
        .find_map(|l| l.split_once("e-mail to on-call: ").map(|(_, rest)| rest.to_owned()))
        .unwrap_or_else(|| panic!("the demo does not say where alert mails went:\n{stdout}"));
    assert!(mails.contains(&format!("written as .eml files under {}", outbox.display())), "{mails}");
    let counted: usize = mails.split_whitespace().next().and_then(|n| n.parse().ok()).expect("a count of mails");
    let digests: usize =
        mails.split(" and ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    let files = std::fs::read_dir(&outbox)
        .map(|d| d.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "eml")).count())
        .unwrap_or(0);
    assert_eq!(files, counted + digests, "{mails}");

    // The printed URLs work while the demo serves, with the printed token.
    let token = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("TOKEN="))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no generated token printed:\n{stdout}"))
        .to_owned();
    let client = http_client();
    let urls = search_urls(&stdout);
    assert_eq!(urls.len(), 2, "a deny search and a principal's denies: {stdout}");
    for url in &urls {
        let response = client.get(url).bearer_auth(&token).send().await.expect("search");
        assert_eq!(response.status().as_u16(), 200, "{url}");
        let page: serde_json::Value =
            serde_json::from_str(&response.text().await.expect("search body")).expect("search json");
        let hits = page["hits"].as_array().expect("hits");
        assert!(!hits.is_empty(), "{url} found nothing");
        assert!(hits.iter().all(|h| h["decision"] == "deny"), "{url}: {page}");
    }
    let unauthorised = client.get(&urls[0]).send().await.expect("search");
    assert_eq!(unauthorised.status().as_u16(), 401, "search needs the token");
    assert_eq!(client.get(format!("{base}/healthz")).send().await.expect("healthz").status().as_u16(), 200);

    // Both sinks' metrics, after the posts: everything stored and indexed, nothing behind
    // (once they took in the audit records of the searches just made: bounded wait).
    let mut metrics = String::new();
    for _ in 0..300 {
        metrics = client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("metrics");
        let caught_up = ["clickhouse", "index"]
            .iter()
            .all(|sink| metric(&metrics, "gatelog_sink_lag_records", &[("sink", sink)]) == Some(0.0));
        if caught_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let written = |sink| metric(&metrics, "gatelog_written_decisions_total", &[("sink", sink)]).unwrap_or(-1.0);
    assert!(written("index") > 6000.0 && written("index") == written("clickhouse"), "{metrics}");
    for dataset in DATASETS {
        let indexed = metric(&metrics, "gatelog_indexed_documents_total", &[("dataset", dataset)]).unwrap_or(0.0);
        assert!(indexed > 0.0, "no documents indexed for {dataset}:\n{metrics}");
    }
    for sink in ["clickhouse", "index"] {
        assert_eq!(metric(&metrics, "gatelog_sink_lag_records", &[("sink", sink)]), Some(0.0), "{metrics}");
        assert_eq!(metric(&metrics, "gatelog_sink_lag_seconds", &[("sink", sink)]), Some(0.0), "{metrics}");
    }
    assert!(metric(&metrics, "gatelog_sink_commits_total", &[("sink", "index")]).unwrap_or(0.0) >= 1.0, "{metrics}");

    let status = demo.terminate(Duration::from_secs(60)).await;
    assert!(status.success(), "demo exit after SIGTERM: {status}\n{}", demo.stdout);
    assert!(demo.stdout.contains("stopping: draining the spool"), "{}", demo.stdout);
    assert_no_process_uses(&data_dir);

    // Again on the same data dir with the port taken: another port, nothing new stored, exits.
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).expect("take the port");
    let args = [
        "demo",
        "--samples",
        samples.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--exit-after-ingest",
    ];
    let again = gatelog(&args);
    assert!(again.status.success(), "{}", describe(&again));
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains(&format!("(127.0.0.1:{port} is in use, so the demo listens on")), "{}", describe(&again));
    assert!(stdout.contains("ClickHouse sink: 0 batches written"), "{}", describe(&again));
    assert!(!stdout.contains("serving until Ctrl-C"), "{}", describe(&again));
    assert_no_process_uses(&data_dir);
}

#[test]
fn sql_dump_renders_both_profiles() {
    for profile in ["legacy", "modern"] {
        let out = gatelog(&["sql", "dump", "--profile", profile, "--database", "audit"]);
        assert!(out.status.success(), "{}", describe(&out));
        let sql = String::from_utf8_lossy(&out.stdout);
        for table in ["decisions", "raw_records", "dead_letters", "ingest_batches", "access_log"] {
            assert!(sql.contains(&format!("audit.{table}")), "{profile}: {table} missing");
        }
        let modern_types = sql.contains("DateTime64") || sql.contains("LowCardinality");
        assert_eq!(modern_types, profile == "modern", "{profile} uses the wrong column types");
    }
}
