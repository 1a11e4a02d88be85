//! A ClickHouse URL with credentials, against a real ClickHouse 18.16 user with a password:
//! `gatelog serve`, `gatelog ingest` and `gatelog demo` log in with them (a wrong password is
//! refused by ClickHouse, so it was sent), refuse them when `--clickhouse-user` says
//! otherwise, and never print the password: not in debug logs, errors, `/metrics` or the
//! demo's output. Before this, the URL was printed 30 times and its password not used.

use gatelog_e2e::{
    count, free_port, gatelog_bin, gzip, http_client, http_requests_sample, samples_dir, unique_http_requests,
    wait_for_sinks,
};
use gatelog_store::managed::{ManagedOptions, ManagedUser};
use gatelog_store::testing::TestClickHouse;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "gatelog_writer";
/// `:`, `@` and `/` must be percent-encoded in a URL: the decoding is tested too.
const PASSWORD: &str = "s3cr3t:p@ss/w0rd";
const PASSWORD_IN_URL: &str = "s3cr3t%3Ap%40ss%2Fw0rd";
const TOKEN: &str = "credentials-test-token-0123456789";

/// Neither spelling of the password, nor a piece of it.
fn assert_no_secret(what: &str, text: &str) {
    for secret in [PASSWORD, PASSWORD_IN_URL, "s3cr3t", "w0rd"] {
        assert!(!text.contains(secret), "{what} shows the password ({secret:?}):\n{text}");
    }
}

/// `http://USER:PASSWORD@127.0.0.1:PORT` for a server at `url`.
fn with_credentials(url: &str, password: &str) -> String {
    url.replacen("http://", &format!("http://{USER}:{password}@"), 1)
}

/// `gatelog ARGS…` at debug level, stdout and stderr into `log`.
fn spawn(args: &[&str], log: &Path) -> Child {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log");
    let err = out.try_clone().expect("log");
    Command::new(gatelog_bin())
        .args(args)
        .env("GATELOG_LOG", "debug")
        .env_remove("GATELOG_CLICKHOUSE_URL")
        .env_remove("GATELOG_CONFIG")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("gatelog runs")
}

/// Runs to completion (bounded): exit status and output.
async fn run(args: &[&str], log: &Path) -> (std::process::ExitStatus, String) {
    let mut child = spawn(args, log);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("gatelog {args:?} did not finish:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (status, std::fs::read_to_string(log).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_credentials_are_used_refused_on_conflict_and_never_printed() {
    gatelog_bin();
    let user = ManagedUser { name: USER.into(), password: PASSWORD.into(), readonly: false };
    let ch = TestClickHouse::start_with(ManagedOptions { users: vec![user], ..ManagedOptions::default() })
        .await
        .expect("managed clickhouse");
    let db = ch.database().to_owned();
    let url = with_credentials(&ch.url(), PASSWORD_IN_URL);
    let data = tempfile::tempdir().expect("tempdir");

    // serve logs in with the URL's credentials and stores what it is sent.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let serve_log = data.path().join("serve.log");
    let data_dir = data.path().join("serve");
    let serve_args = [
        "serve",
        "--data-dir",
        data_dir.to_str().expect("utf-8"),
        "--listen",
        &listen,
        "--clickhouse-url",
        &url,
        "--clickhouse-database",
        &db,
        "--ingest-token",
        TOKEN,
    ];
    let mut serve = spawn(&serve_args, &serve_log);
    let base = format!("http://{listen}");
    let client = http_client();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.map(|r| r.status().is_success()).ok() != Some(true) {
        assert!(
            serve.try_wait().expect("wait").is_none(),
            "serve exited:\n{}",
            std::fs::read_to_string(&serve_log).unwrap_or_default()
        );
        assert!(started.elapsed() < Duration::from_secs(60), "serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = gzip(&unique_http_requests(&http_requests_sample(), 0..50, "cred"));
    let answer = client
        .post(format!("{base}/v1/logpush/http_requests"))
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 200);
    let metrics = wait_for_sinks(&base, Duration::from_secs(120)).await;
    assert_no_secret("/metrics", &metrics);
    assert_eq!(count(&ch.url(), &format!("SELECT count() FROM {db}.decisions")), 50);
    let _ = Command::new("kill").args(["-TERM", &serve.id().to_string()]).status();
    let status = serve.wait().expect("serve exits");
    let log = std::fs::read_to_string(&serve_log).unwrap_or_default();
    assert!(status.success(), "serve: {status}\n{log}");
    assert!(log.contains(USER), "the debug log names the user it logs in as:\n{log}");
    assert_no_secret("serve's debug log", &log);
    eprintln!(
        "serve at debug level: {} log lines, none with the password; 50 decisions stored as {USER}",
        log.lines().count()
    );

    // A wrong password in the URL is sent, so ClickHouse refuses it; the error shows none.
    let wrong = with_credentials(&ch.url(), "wrong-pass-123");
    let mut args = serve_args;
    args[6] = &wrong;
    let (status, output) = run(&args, &data.path().join("wrong.log")).await;
    assert!(!status.success(), "a wrong password must not connect:\n{output}");
    assert!(output.contains("cannot use ClickHouse at http://127.0.0.1"), "{output}");
    assert!(!output.contains("wrong-pass-123"), "the wrong password is printed:\n{output}");
    eprintln!("wrong password: {}", output.lines().rev().find(|l| l.starts_with("error")).unwrap_or_default());

    // The URL says one user, --clickhouse-user another: refused before anything starts.
    let conflict = [&serve_args[..], &["--clickhouse-user", "someone_else"]].concat();
    let (status, output) = run(&conflict, &data.path().join("conflict.log")).await;
    assert!(!status.success(), "{output}");
    assert!(output.contains(&format!("clickhouse.url: http://{USER}:***@127.0.0.1")), "{output}");
    assert!(output.contains("clickhouse.user"), "{output}");
    assert_no_secret("the conflict error", &output);

    // gatelog ingest and gatelog demo: the same login, the same silence.
    let file = samples_dir().join("http_requests.ndjson");
    let ingest_dir = data.path().join("ingest");
    let (status, output) = run(
        &[
            "ingest",
            "--data-dir",
            ingest_dir.to_str().expect("utf-8"),
            "--clickhouse-url",
            &url,
            "--clickhouse-database",
            &db,
            file.to_str().expect("utf-8"),
        ],
        &data.path().join("ingest.log"),
    )
    .await;
    assert!(status.success(), "ingest:\n{output}");
    assert_no_secret("gatelog ingest", &output);
    let demo_dir = data.path().join("demo");
    let demo_listen = format!("127.0.0.1:{}", free_port());
    let (status, output) = run(
        &[
            "demo",
            "--samples",
            samples_dir().to_str().expect("utf-8"),
            "--data-dir",
            demo_dir.to_str().expect("utf-8"),
            "--listen",
            &demo_listen,
            "--clickhouse-url",
            &url,
            "--clickhouse-database",
            &db,
            "--exit-after-ingest",
        ],
        &data.path().join("demo.log"),
    )
    .await;
    assert!(status.success(), "demo:\n{output}");
    assert_no_secret("gatelog demo", &output);
    assert!(
        output.contains(&format!("curl -u {USER} 'http://127.0.0.1")),
        "the demo's SQL hints name the user:\n{output}"
    );
}
