//! Support for gatelog's end-to-end tests (in `tests/tests/`): the real `gatelog` binary,
//! built once per test process, the shared sample data, and small ClickHouse helpers.
//!
//! The tests run the binary as a user would, against a real `clickhouse-server` started by
//! `gatelog_store::testing` (one server and one database per test).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod edge;
pub mod routes;
pub mod webdriver;

/// The `gatelog` binary of this workspace, built (or found fresh) by cargo on first use.
pub fn gatelog_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_gatelog(false))
}

/// The `gatelog` binary built with the release profile (`GATELOG_CRASH_RELEASE=1` in the
/// crash test; debug builds already optimise their dependencies).
pub fn gatelog_release_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| build_gatelog(true))
}

fn build_gatelog(release: bool) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let build = escargot::CargoBuild::new().manifest_path(manifest).package("gatelog").bin("gatelog");
    let build = if release { build.release() } else { build };
    let built = build.run().unwrap_or_else(|e| panic!("cannot build the gatelog binary (release: {release}): {e}"));
    built.path().to_path_buf()
}

/// Runs `gatelog ARGS…` to completion.
pub fn gatelog(args: &[&str]) -> Output {
    Command::new(gatelog_bin())
        .args(args)
        .env("GATELOG_LOG", "warn")
        .env_remove("GATELOG_CLICKHOUSE_URL")
        .env_remove("GATELOG_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run gatelog: {e}"))
}

/// stdout + stderr of a finished command, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `shared/formats/samples`, beside the repository (override with `GATELOG_SHARED`).
pub fn samples_dir() -> PathBuf {
    let shared = std::env::var_os("GATELOG_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let dir = shared.join("formats/samples");
    assert!(
        dir.join("http_requests.ndjson").is_file(),
        "sample data not found in {} (set GATELOG_SHARED to the folder holding formats/samples)",
        dir.display()
    );
    dir
}

/// Runs one SQL statement over ClickHouse's HTTP interface and returns the body, trimmed.
pub fn query(url: &str, sql: &str) -> String {
    let output = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--data-binary", "@-", url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(sql.as_bytes())?;
            }
            child.wait_with_output()
        })
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    assert!(output.status.success(), "query failed: {sql}\n{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A `SELECT` that returns one number.
pub fn count(url: &str, sql: &str) -> u64 {
    let text = query(url, sql);
    text.parse().unwrap_or_else(|_| panic!("{sql} returned {text:?}, not a number"))
}

/// An HTTP client for the tests (installs rustls' ring provider first, which reqwest's
/// `rustls-no-provider` build needs even for plain HTTP).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("http client")
}

/// A free loopback TCP port (bound, read, released: good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

/// The viewer token [`Serve::start`] registers beside the ingest token `token` (the ingest
/// role reads nothing, so searches use this one).
pub fn read_token(token: &str) -> String {
    format!("{token}-viewer")
}

/// The SHA-256 of `token`, lowercase hex (what `[auth]` keeps).
pub fn sha256_hex(token: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// How to run `gatelog serve`; [`Serve::start`] runs it.
#[derive(Debug, Clone)]
pub struct ServeSpec {
    pub data_dir: PathBuf,
    pub port: u16,
    /// Empty: no `--clickhouse-url`, so gatelog runs managed ClickHouse under the data dir.
    pub clickhouse_url: String,
    pub database: String,
    pub token: String,
    /// `--config FILE`, if any.
    pub config: Option<PathBuf>,
    /// Run [`gatelog_release_bin`] instead of the debug build.
    pub release: bool,
}

impl ServeSpec {
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A running `gatelog serve`, killed (SIGKILL) and reaped on drop. Its stdout and stderr
/// go to `<data_dir>/serve.log` (appended across restarts), at level `warn` unless
/// `GATELOG_E2E_SERVE_LOG` names another filter (e.g. `gatelog_ingest=debug`).
#[derive(Debug)]
pub struct Serve {
    child: Option<std::process::Child>,
    log: PathBuf,
}

impl Serve {
    /// Starts the server and waits (bounded, 60 s) until `/healthz` answers 200. `spec.token`
    /// is its ingest token; [`read_token`] of it is a viewer token, in a tokens file under the
    /// data dir (`--tokens-file`).
    pub async fn start(spec: &ServeSpec) -> Serve {
        let log = spec.data_dir.join("serve.log");
        std::fs::create_dir_all(&spec.data_dir).expect("data dir");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("serve log");
        let err = out.try_clone().expect("serve log");
        let listen = format!("127.0.0.1:{}", spec.port);
        let tokens = spec.data_dir.join("e2e-tokens.toml");
        let entry = format!(
            "[[tokens]]\nname = \"e2e-viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
            sha256_hex(&read_token(&spec.token))
        );
        std::fs::write(&tokens, entry).expect("tokens file");
        let mut cmd = Command::new(if spec.release { gatelog_release_bin() } else { gatelog_bin() });
        cmd.arg("serve");
        if let Some(config) = &spec.config {
            cmd.arg("--config").arg(config);
        }
        if !spec.clickhouse_url.is_empty() {
            cmd.args(["--clickhouse-url", &spec.clickhouse_url]);
        }
        cmd.arg("--data-dir")
            .arg(&spec.data_dir)
            .args(["--listen", &listen])
            .args(["--clickhouse-database", &spec.database])
            .args(["--ingest-token", &spec.token])
            .arg("--tokens-file")
            .arg(&tokens)
            .env("GATELOG_LOG", std::env::var("GATELOG_E2E_SERVE_LOG").unwrap_or_else(|_| "warn".to_owned()))
            .env_remove("GATELOG_CLICKHOUSE_URL")
            .env_remove("GATELOG_CONFIG")
            .env_remove("GATELOG_LISTEN")
            .env_remove("GATELOG_INGEST_TOKENS")
            .env_remove("GATELOG_TOKENS_FILE")
            .env_remove("GATELOG_DATA_DIR")
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run gatelog serve: {e}"));
        let mut serve = Serve { child: Some(child), log };
        let client = http_client();
        let health = format!("{}/healthz", spec.base_url());
        let started = std::time::Instant::now();
        loop {
            if let Some(child) = serve.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("gatelog serve exited during start-up ({status}):\n{}", serve.log_tail(40));
            }
            if let Ok(r) = client.get(&health).timeout(std::time::Duration::from_secs(2)).send().await
                && r.status().is_success()
            {
                return serve;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "gatelog serve did not answer /healthz within 60 s:\n{}",
                serve.log_tail(40)
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for a graceful exit; SIGKILL after `limit`.
    pub async fn terminate(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Sends SIGTERM and returns how long the process took to exit, or `None` if it was still
    /// running after `limit` (then it is killed).
    pub async fn time_to_exit(&mut self, limit: std::time::Duration) -> Option<std::time::Duration> {
        let started = std::time::Instant::now();
        self.terminate(limit).await.map(|_| started.elapsed())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `gatelog serve` with `config` (a `gatelog.toml` text) and ingest token `ingest`
/// against an unreachable ClickHouse, expecting it to refuse to start; returns its stderr.
pub fn serve_refusal(config: &str, ingest: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gatelog.toml");
    std::fs::write(&file, config).expect("config");
    let data = dir.path().join("data");
    let out = gatelog(&[
        "serve",
        "--config",
        file.to_str().expect("utf-8"),
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--clickhouse-url",
        &format!("http://127.0.0.1:{}", free_port()),
        "--ingest-token",
        ingest,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "serve started with a config it should refuse:\n{stderr}");
    stderr
}

/// `GET {base_url}{path}`: the status and the body (0 and the error when it does not answer).
pub async fn get(base_url: &str, path: &str) -> (u16, String) {
    match http_client().get(format!("{base_url}{path}")).timeout(std::time::Duration::from_secs(10)).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Polls `GET {base_url}{path}` every 100 ms until `done(status, body)`, at most `limit`;
/// returns the last answer and how long it took, or panics with it.
pub async fn wait_until(
    base_url: &str,
    path: &str,
    limit: std::time::Duration,
    mut done: impl FnMut(u16, &str) -> bool,
) -> (u16, String, std::time::Duration) {
    let started = std::time::Instant::now();
    loop {
        let (status, body) = get(base_url, path).await;
        if done(status, &body) {
            return (status, body, started.elapsed());
        }
        assert!(started.elapsed() < limit, "{path} did not turn as expected within {limit:?}; last: {status} {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// One Prometheus sample from `/metrics` text: the value of `name{labels}` where every
/// `label="value"` in `labels` matches (`labels` empty: the unlabelled sample).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        let (metric_name, rest) = match key.split_once('{') {
            Some((n, rest)) => (n, rest),
            None => (key, ""),
        };
        if metric_name != name {
            return None;
        }
        if labels.is_empty() != rest.is_empty() {
            return None;
        }
        labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))).then(|| value.parse().ok())?
    })
}

/// All samples of `name` (any labels).
pub fn metric_samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            let metric_name = key.split_once('{').map_or(key, |(n, _)| n);
            (metric_name == name).then(|| (key.to_owned(), value.parse().unwrap_or(f64::NAN)))
        })
        .collect()
}

/// Waits (bounded by `limit`) until the spool's last record is stored by every sink (every
/// `gatelog_sink_lag_records` is 0 and both sinks are registered). Returns the last
/// `/metrics` text; panics with it on timeout.
pub async fn wait_for_sinks(base_url: &str, limit: std::time::Duration) -> String {
    let client = http_client();
    let started = std::time::Instant::now();
    let mut last = String::new();
    while started.elapsed() < limit {
        if let Ok(r) = client.get(format!("{base_url}/metrics")).timeout(std::time::Duration::from_secs(5)).send().await
            && let Ok(text) = r.text().await
        {
            let lags = metric_samples(&text, "gatelog_sink_lag_records");
            if lags.len() >= 2 && lags.iter().all(|(_, v)| *v == 0.0) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("the sinks did not catch up within {limit:?}; last metrics:\n{last}");
}

/// Pages through `/v1/search?q=…&limit=1000` until `next_cursor` is null and returns every
/// hit's `event_id` in order (duplicates kept, so callers can count them). `token` is the
/// server's ingest token ([`ServeSpec::token`]); the search presents its [`read_token`].
pub async fn search_all(base_url: &str, token: &str, q: &str) -> Vec<String> {
    let token = &read_token(token);
    let client = http_client();
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..100_000 {
        let mut params = vec![("q", q.to_owned()), ("limit", "1000".to_owned())];
        if let Some(c) = &cursor {
            params.push(("cursor", c.clone()));
        }
        let url = reqwest::Url::parse_with_params(&format!("{base_url}/v1/search"), &params).expect("search url");
        let response = client
            .get(url)
            .bearer_auth(token)
            .timeout(std::time::Duration::from_secs(60))
            .send()
            .await
            .unwrap_or_else(|e| panic!("search page {page}: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "search page {page}: {status} {body}");
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("search page {page}: {e}: {body}"));
        let hits = json["hits"].as_array().unwrap_or_else(|| panic!("no hits array: {body}"));
        ids.extend(hits.iter().map(|h| h["event_id"].as_str().expect("event_id").to_owned()));
        match json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
    panic!("search did not end after 100000 pages");
}

/// A loopback TCP forwarder standing in for ClickHouse's HTTP port, so gatelog keeps one
/// URL while the test stops ClickHouse and starts it again (on another port). Without a
/// backend, connections are accepted and closed at once. Changing the backend also closes
/// every connection it was carrying, as a server that goes away takes its connections with
/// it: otherwise a client's keep-alive connection, reused before ClickHouse's
/// `keep_alive_timeout` (3 s) runs out, would carry writes through an "outage" for as long as
/// they keep coming. Stops on drop.
#[derive(Debug)]
pub struct Forwarder {
    port: u16,
    backend: tokio::sync::watch::Sender<Option<std::net::SocketAddr>>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    /// Listens on a free loopback port, forwarding to `backend`.
    pub async fn start(backend: Option<std::net::SocketAddr>) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("forwarder bind");
        let port = listener.local_addr().expect("forwarder address").port();
        let (backend, _) = tokio::sync::watch::channel(backend);
        let shared = backend.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                // Marks the backend it reads as seen: the next change closes the connection.
                let mut changed = shared.subscribe();
                let Some(target) = *changed.borrow_and_update() else {
                    drop(inbound);
                    continue;
                };
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = changed.changed() => {}
                        }
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Forwarder { port, backend, task }
    }

    /// `http://127.0.0.1:<port>`: the URL to give gatelog.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where new connections go (`None`: refused by closing them); the connections it was
    /// carrying are closed.
    pub fn set_backend(&self, backend: Option<std::net::SocketAddr>) {
        self.backend.send_replace(backend);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The lines of `http_requests_5000.ndjson.gz`.
pub fn http_requests_sample() -> Vec<String> {
    use std::io::Read;
    let path = samples_dir().join("http_requests_5000.ndjson.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("sample file"))
        .read_to_string(&mut text)
        .expect("sample is gzip text");
    text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

/// The RayID given to generated record `n` under `prefix` (4 hex digits): 16 hex digits.
pub fn generated_ray_id(prefix: &str, n: usize) -> String {
    format!("{prefix}{n:012x}")
}

/// Records `range` as NDJSON built from `lines` (cycled), each with its RayID replaced by
/// [`generated_ray_id`], so every record has its own event id.
pub fn unique_http_requests(lines: &[String], range: std::ops::Range<usize>, prefix: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for n in range {
        let line = &lines[n % lines.len()];
        let at = line.find("\"RayID\":\"").expect("every sample line has a RayID") + 9;
        assert!(line[at..at + 16].bytes().all(|c| c.is_ascii_hexdigit()), "RayID is 16 hex digits");
        out.extend_from_slice(&line.as_bytes()[..at]);
        out.extend_from_slice(generated_ray_id(prefix, n).as_bytes());
        out.extend_from_slice(&line.as_bytes()[at + 16..]);
        out.push(b'\n');
    }
    out
}

/// gzip at the fastest level.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

/// Checks that ClickHouse and the index hold every decision at most once, that
/// `required_rays` are all in ClickHouse, that every stored RayID starts with one of
/// `allowed_prefixes`, and that the index holds exactly ClickHouse's decisions. Returns the
/// number of decisions.
pub async fn assert_stored_once(
    ch_url: &str,
    db: &str,
    base_url: &str,
    token: &str,
    required_rays: &std::collections::HashSet<String>,
    allowed_prefixes: &[&str],
) -> u64 {
    use std::collections::{BTreeSet, HashSet};
    let figures: Vec<u64> = query(
        ch_url,
        &format!("SELECT count(), uniqExact(event_id), uniqExact(ray_id) FROM {db}.decisions FORMAT TSV"),
    )
    .split('\t')
    .map(|v| v.parse().expect("a number"))
    .collect();
    assert_eq!(figures[0], figures[1], "decisions stored twice (count, uniq event_id, uniq ray_id): {figures:?}");
    assert_eq!(figures[0], figures[2], "a RayID stored twice (count, uniq event_id, uniq ray_id): {figures:?}");
    let stored: HashSet<String> =
        query(ch_url, &format!("SELECT ray_id FROM {db}.decisions FORMAT TSV")).lines().map(str::to_owned).collect();
    let missing: Vec<&String> = required_rays.iter().filter(|r| !stored.contains(*r)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records missing from ClickHouse, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let foreign: Vec<&String> = stored.iter().filter(|r| !allowed_prefixes.iter().any(|p| r.starts_with(p))).collect();
    assert!(foreign.is_empty(), "ClickHouse holds records nobody sent: {:?}", &foreign[..foreign.len().min(5)]);
    // Each batch's body once (`raw_batches`), naming each of its decisions' lines.
    let bodies = count(ch_url, &format!("SELECT count() FROM {db}.raw_batches"));
    let bodies_unique = count(ch_url, &format!("SELECT uniqExact(batch_id) FROM {db}.raw_batches"));
    assert_eq!(bodies, bodies_unique, "a batch's body stored twice");
    let lines = count(ch_url, &format!("SELECT sum(length(event_ids)) FROM {db}.raw_batches"));
    // These tests send http_requests only: one decision per record, each in one batch.
    assert_eq!(lines, figures[0], "decisions and the lines raw_batches names differ: a batch was half written");
    let unmarked = count(
        ch_url,
        &format!("SELECT count() FROM {db}.decisions WHERE batch_id NOT IN (SELECT batch_id FROM {db}.ingest_batches)"),
    );
    assert_eq!(unmarked, 0, "decisions of batches without an ingest_batches marker");

    let indexed = search_all(base_url, token, "").await;
    let unique: BTreeSet<&str> = indexed.iter().map(String::as_str).collect();
    assert_eq!(indexed.len(), unique.len(), "the index returns some decisions twice");
    let ids_text = query(ch_url, &format!("SELECT event_id FROM {db}.decisions FORMAT TSV"));
    let ids: BTreeSet<&str> = ids_text.lines().collect();
    assert_eq!(unique.len(), ids.len(), "index and ClickHouse disagree on the number of decisions");
    assert!(unique == ids, "index and ClickHouse hold different decisions");
    figures[0]
}
