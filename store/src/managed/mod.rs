//! [`ManagedClickHouse`]: gatelog's own `clickhouse-server`, when no `clickhouse.url` is set.
//!
//! Layout under `<data_dir>/clickhouse/`: `config.xml`, `users.xml` (rewritten at every
//! start), `users.d/` (only with [`ManagedOptions::users_d`]), `data/`, `tmp/`, `log/`
//! (`clickhouse-server.log`, `clickhouse-server.err.log`, `stdout.log`). The server listens
//! on free loopback ports only, runs in its own process group (a terminal's Ctrl-C reaches
//! gatelog, which then stops it), and by default a watchdog kills it if this process dies
//! without stopping it (e.g. `kill -9`).
//!
//! [`ManagedOptions::nice`] starts the server at a lower CPU priority. gatelog sets it for
//! `gatelog serve`, where the same cores answer Logpush: the receiver's acknowledgements wait
//! on CPU, while ClickHouse's inserts and merges can wait (the spool holds the difference).

mod config;

pub use config::ManagedUser;

use config::{ServerFiles, config_xml, takes_direct_io, users_xml, valid_user_name};
use std::fs;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const BINARY: &str = "clickhouse-server";

/// The server's `<path>` under `root` (`config.xml` names the same folder).
fn tables_dir(root: &Path) -> PathBuf {
    root.join("data")
}
const PORT_ATTEMPTS: u32 = 3;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ManagedOptions {
    /// The `clickhouse-server` binary; `None` searches `PATH`, `/usr/sbin`, `/usr/bin`.
    pub binary: Option<PathBuf>,
    /// Bound on start-up, until `SELECT 1` answers.
    pub startup_timeout: Duration,
    /// Bound on a graceful stop (SIGTERM) before SIGKILL.
    pub stop_timeout: Duration,
    /// The server's log level (`warning`, `information`, `debug`, `trace`).
    pub log_level: String,
    /// Users besides `default` (no password, loopback only).
    pub users: Vec<ManagedUser>,
    /// Files for `users.d/` next to the generated `users.xml` (name, XML), which ClickHouse
    /// merges into it: profiles and users as an administrator would add them (e.g. what
    /// `gatelog proxy grants --server legacy` prints).
    pub users_d: Vec<(String, String)>,
    /// Kill the server if this process dies without stopping it.
    pub watchdog: bool,
    /// The server's nice value, 0 (unchanged) to 19 (lowest priority): it runs at this
    /// priority relative to gatelog, every thread of it (Linux threads inherit the value).
    pub nice: i32,
}

impl Default for ManagedOptions {
    fn default() -> Self {
        ManagedOptions {
            binary: None,
            startup_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(15),
            log_level: "warning".to_owned(),
            users: Vec::new(),
            users_d: Vec::new(),
            watchdog: true,
            nice: 0,
        }
    }
}

/// Why the managed server could not be started or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagedError {
    #[error(
        "clickhouse-server not found; install it with `apt-get install -y clickhouse-server` (looked for {searched})"
    )]
    NotFound { searched: String },
    #[error("a clickhouse-server{} is already running on {dir}; stop it or choose another data dir", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyRunning { dir: PathBuf, pid: Option<u32> },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error("invalid managed clickhouse option: {0}")]
    InvalidOption(String),
    #[error("clickhouse-server exited during start-up ({status}); last lines of its logs:\n{log_tail}")]
    Exited { status: String, log_tail: String },
    #[error("clickhouse-server did not answer `SELECT 1` within {waited:?}; last lines of its logs:\n{log_tail}")]
    StartTimeout { waited: Duration, log_tail: String },
    #[error("no free loopback ports after {attempts} attempts; last lines of its logs:\n{log_tail}")]
    NoFreePorts { attempts: u32, log_tail: String },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ManagedError + 'a {
    move |source| ManagedError::Io { what, path: path.to_owned(), source }
}

/// A running `clickhouse-server` owned by this process. Stopped by [`ManagedClickHouse::stop`],
/// or killed on drop.
#[derive(Debug)]
pub struct ManagedClickHouse {
    child: Option<Child>,
    watchdog: Option<Child>,
    root: PathBuf,
    http_port: u16,
    tcp_port: u16,
    stop_timeout: Duration,
    startup: Duration,
}

/// Finds the server binary: the explicit path, else `PATH`, `/usr/sbin`, `/usr/bin`.
pub fn find_binary(explicit: Option<&Path>) -> Result<PathBuf, ManagedError> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(ManagedError::NotFound { searched: path.display().to_string() })
        };
    }
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.push(PathBuf::from("/usr/sbin"));
    dirs.push(PathBuf::from("/usr/bin"));
    for dir in &dirs {
        let candidate = dir.join(BINARY);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(ManagedError::NotFound { searched: format!("{BINARY} in PATH, /usr/sbin and /usr/bin") })
}

fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The pid in the server's `status` file, if that process is alive.
fn running_pid(status_file: &Path) -> Option<u32> {
    let text = fs::read_to_string(status_file).ok()?;
    let pid: u32 = text.lines().find_map(|l| l.strip_prefix("PID:"))?.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmdline).contains("clickhouse").then_some(pid)
}

/// The last `lines` lines of a file (reads at most its last 64 KiB).
fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The HTTP URL of the managed server another gatelog process runs under `data_dir` (e.g.
/// `gatelog serve`), if one runs: read from its status file (a live pid) and its generated
/// config. Lets a CLI command use it instead of failing with [`ManagedError::AlreadyRunning`].
pub fn running_url(data_dir: &Path) -> Option<String> {
    let root = fs::canonicalize(data_dir.join("clickhouse")).ok()?;
    running_pid(&tables_dir(&root).join("status"))?;
    let config = fs::read_to_string(root.join("config.xml")).ok()?;
    let port: u16 = config.split("<http_port>").nth(1)?.split("</http_port>").next()?.trim().parse().ok()?;
    Some(format!("http://127.0.0.1:{port}"))
}

impl ManagedClickHouse {
    /// Starts `clickhouse-server` with a generated config under `<data_dir>/clickhouse/` on
    /// free loopback ports and waits until it answers `SELECT 1`.
    pub async fn start(data_dir: &Path, opts: ManagedOptions) -> Result<Self, ManagedError> {
        let binary = find_binary(opts.binary.as_deref())?;
        if let Some(bad) = opts.users.iter().find(|u| !valid_user_name(&u.name) || u.name == "default") {
            return Err(ManagedError::InvalidOption(format!("user name {:?} is not allowed", bad.name)));
        }
        if !(0..=19).contains(&opts.nice) {
            return Err(ManagedError::InvalidOption(format!("nice must be between 0 and 19, got {}", opts.nice)));
        }
        let root = data_dir.join("clickhouse");
        for sub in ["data", "tmp", "log", "user_files", "format_schemas"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
        }
        let root = fs::canonicalize(&root).map_err(io_err("cannot resolve", &root))?;
        let status_file = tables_dir(&root).join("status");
        if let Some(pid) = running_pid(&status_file) {
            return Err(ManagedError::AlreadyRunning { dir: root, pid: Some(pid) });
        }
        let direct_io_merges = match takes_direct_io(&tables_dir(&root)) {
            Ok(()) => true,
            Err(error) => {
                tracing::info!(dir = %root.display(), %error, "managed clickhouse: the data dir refuses O_DIRECT; merges go through the page cache");
                false
            }
        };
        let users_path = root.join("users.xml");
        fs::write(&users_path, users_xml(&opts.users)).map_err(io_err("cannot write", &users_path))?;
        if !opts.users_d.is_empty() {
            let dir = root.join("users.d");
            fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
            for (name, xml) in &opts.users_d {
                if name.contains('/') || !name.ends_with(".xml") {
                    return Err(ManagedError::InvalidOption(format!(
                        "users.d file {name:?} must be a plain *.xml name"
                    )));
                }
                let path = dir.join(name);
                fs::write(&path, xml).map_err(io_err("cannot write", &path))?;
            }
        }

        let started = Instant::now();
        let mut last_tail = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let ports = free_port().and_then(|a| free_port().map(|b| (a, b)));
            let (http_port, tcp_port) = ports.map_err(io_err("cannot pick a free port on", Path::new("127.0.0.1")))?;
            if http_port == tcp_port {
                continue;
            }
            let display_name = format!("gatelog-{}-{}", std::process::id(), fastrand::u64(..));
            let files = ServerFiles {
                root: &root,
                http_port,
                tcp_port,
                display_name: &display_name,
                log_level: &opts.log_level,
                direct_io_merges,
            };
            let config_path = root.join("config.xml");
            fs::write(&config_path, config_xml(&files)).map_err(io_err("cannot write", &config_path))?;
            let stdout_path = root.join("log/stdout.log");
            let stdout = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&stdout_path)
                .map_err(io_err("cannot open", &stdout_path))?;
            let stderr = stdout.try_clone().map_err(io_err("cannot open", &stdout_path))?;
            let mut command = Command::new(&binary);
            command
                .arg(format!("--config-file={}", config_path.display()))
                .current_dir(&root)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .process_group(0);
            let child = spawn_with_nice(command, opts.nice).map_err(io_err("cannot run", &binary))?;
            let pid = child.id();
            let mut server = ManagedClickHouse {
                child: Some(child),
                watchdog: None,
                root: root.clone(),
                http_port,
                tcp_port,
                stop_timeout: opts.stop_timeout,
                startup: Duration::ZERO,
            };
            if opts.watchdog {
                server.watchdog = spawn_watchdog(pid);
            }
            match server.wait_ready(&display_name, started, opts.startup_timeout).await {
                Ok(()) => {
                    server.startup = started.elapsed();
                    tracing::info!(url = %server.url(), pid, startup_ms = u64::try_from(server.startup.as_millis()).unwrap_or(u64::MAX), dir = %root.display(), "managed clickhouse started");
                    return Ok(server);
                }
                Err(Retry::Ports(log)) => {
                    tracing::warn!(http_port, tcp_port, "port taken while starting clickhouse; retrying");
                    last_tail = log;
                    drop(server);
                }
                Err(Retry::Fatal(err)) => return Err(err),
            }
        }
        Err(ManagedError::NoFreePorts { attempts: PORT_ATTEMPTS, log_tail: last_tail })
    }

    async fn wait_ready(&mut self, display_name: &str, started: Instant, limit: Duration) -> Result<(), Retry> {
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log_tail = self.log_tail(30);
                if log_tail.contains("Address already in use") {
                    return Err(Retry::Ports(log_tail));
                }
                if log_tail.contains("Cannot lock file") {
                    let pid = running_pid(&self.tables_dir().join("status"));
                    return Err(Retry::Fatal(ManagedError::AlreadyRunning { dir: self.root.clone(), pid }));
                }
                return Err(Retry::Fatal(ManagedError::Exited { status: status.to_string(), log_tail }));
            }
            if probe(self.http_port, display_name).await {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(Retry::Fatal(ManagedError::StartTimeout {
                    waited: started.elapsed(),
                    log_tail: self.log_tail(30),
                }));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The native protocol port (for `clickhouse-client --port`).
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `<data_dir>/clickhouse`.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// `<data_dir>/clickhouse/data`: the server's `<path>`, where its tables live.
    pub fn tables_dir(&self) -> PathBuf {
        tables_dir(&self.root)
    }

    /// How long start-up took (spawn to first answer).
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The last lines of the server's error log and stdout/stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        let err = tail(&self.root.join("log/clickhouse-server.err.log"), lines);
        let out = tail(&self.root.join("log/stdout.log"), lines);
        format!("{err}\n{out}").trim().to_owned()
    }

    /// Stops the server: SIGTERM, up to `stop_timeout` for a clean shutdown, then SIGKILL.
    pub async fn stop(&mut self) -> Result<(), ManagedError> {
        self.stop_watchdog();
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        if matches!(child.try_wait(), Ok(None)) {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            let deadline = Instant::now() + self.stop_timeout;
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    tracing::info!(pid, "managed clickhouse stopped");
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tracing::warn!(pid, timeout = ?self.stop_timeout, "managed clickhouse ignored SIGTERM; killing it");
        }
        let _ = child.kill();
        child.wait().map_err(io_err("cannot wait for", &self.root))?;
        Ok(())
    }

    fn stop_watchdog(&mut self) {
        if let Some(mut dog) = self.watchdog.take() {
            // The watchdog leads its own process group: kill the shell and its `sleep`.
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", dog.id())]).status();
            let _ = dog.kill();
            let _ = dog.wait();
        }
    }
}

/// Spawns `command` from a short-lived thread whose nice value is `nice`: a child process
/// inherits the spawning thread's value (Linux keeps it per thread), so the server and all
/// its threads start at it, without racing the server's own thread creation.
fn spawn_with_nice(mut command: Command, nice: i32) -> io::Result<Child> {
    if nice == 0 {
        return command.spawn();
    }
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let tid = rustix::thread::gettid();
                if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
                    tracing::warn!(nice, error = %e, "cannot lower managed clickhouse's priority; it runs at gatelog's");
                }
                command.spawn()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the thread spawning clickhouse-server panicked")))
    })
}

enum Retry {
    Ports(String),
    Fatal(ManagedError),
}

/// A shell that SIGKILLs the server once this process is gone.
fn spawn_watchdog(server_pid: u32) -> Option<Child> {
    let script = r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -KILL "$2" 2>/dev/null"#;
    Command::new("sh")
        .args(["-c", script, "gatelog-clickhouse-watchdog", &std::process::id().to_string(), &server_pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| tracing::warn!(error = %e, "cannot start the clickhouse watchdog"))
        .ok()
}

/// `SELECT 1` over plain HTTP, accepted only from our server (its display name header).
async fn probe(port: u16, display_name: &str) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.ok()?;
        let request = "GET /?query=SELECT%201 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response);
        let ok = text.starts_with("HTTP/1.") && text.lines().next().is_some_and(|l| l.contains(" 200 "));
        let ours = text.contains(display_name);
        Some(ok && ours && text.trim_end().ends_with('1'))
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), attempt).await, Ok(Some(true)))
}

impl Drop for ManagedClickHouse {
    fn drop(&mut self) {
        self.stop_watchdog();
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                tracing::warn!(pid = child.id(), "managed clickhouse dropped without stop(); killing it");
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}
