//! Slow, idle and too many clients against the real `gatelog serve`, and SIGTERM with them
//! open. Printed: how long after it opened (or went quiet) the server closed each kind of
//! connection, what normal clients got meanwhile, and how long the process took to exit.
//! Checked: each kind is closed within the limit that applies to it (plus slack for a
//! loaded machine), normal clients get 200 throughout, and the exit is bounded by
//! `server.drain_timeout`, even with waiting connections a minute from their timeouts and
//! bodies that keep pace (busy until shutdown cuts them, never acknowledged). Before this,
//! 50 slowloris and 1,000 idle connections stayed open for 90 s and SIGTERM waited 60 s for
//! them.

use gatelog_e2e::edge::{post_head, read_to_end};
use gatelog_e2e::{Serve, ServeSpec, free_port, gzip, http_client, http_requests_sample, metric, unique_http_requests};
use gatelog_store::testing::TestClickHouse;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

const TOKEN: &str = "connections-test-token-0123456789";
const HEADER: Duration = Duration::from_secs(2);
const IDLE: Duration = Duration::from_secs(3);
const BODY: Duration = Duration::from_secs(2);
const DRAIN: Duration = Duration::from_secs(3);
/// Scheduling on a loaded 2-core machine, the watchdog's grace to flush, the test's own
/// reading: what a close may come later than its limit.
const SLACK: Duration = Duration::from_secs(6);

/// The server's limits; `waits` is its header and idle timeout (`HEADER`, `IDLE`, or longer
/// so that waiting connections are still open when SIGTERM comes).
fn config(max_connections: usize, waits: Option<Duration>) -> String {
    let (header, idle) = waits.map_or((HEADER, IDLE), |w| (w, w));
    format!(
        "[server]\nheader_read_timeout = \"{}s\"\nidle_timeout = \"{}s\"\nbody_read_timeout = \"2s\"\n\
         min_body_rate = \"1 KiB\"\ndrain_timeout = \"3s\"\nmax_connections = {max_connections}\n",
        header.as_secs(),
        idle.as_secs()
    )
}

/// How long until the server closed a connection, from `from` (`None`: still open at `limit`).
async fn closed_after(stream: &mut TcpStream, from: Instant, limit: Duration) -> Option<Duration> {
    let mut buf = vec![0u8; 4096];
    loop {
        let left = limit.saturating_sub(from.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(from.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// A connection that never sends a byte.
async fn idle(addr: String) -> Option<Duration> {
    let mut stream = TcpStream::connect(&addr).await.ok()?;
    closed_after(&mut stream, Instant::now(), Duration::from_secs(90)).await
}

/// A client that sends a request head one byte every 300 ms, forever.
async fn slowloris(addr: String) -> Option<Duration> {
    let stream = TcpStream::connect(&addr).await.ok()?;
    let started = Instant::now();
    let (mut read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        let head = b"POST /v1/logpush/http_requests HTTP/1.1\r\nHost: x\r\n".iter().chain(b"X-Pad: ".iter().cycle());
        for byte in head {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut buf = vec![0u8; 1024];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(90).saturating_sub(started.elapsed()), read.read(&mut buf)).await
        {
            Ok(Ok(0) | Err(_)) => break Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => break None,
        }
    };
    trickle.abort();
    closed
}

/// A keep-alive client that sends one request, reads the answer, then goes quiet: how long
/// after the answer the server closed it.
async fn quiet_after_one(addr: String) -> Option<Duration> {
    let mut stream = TcpStream::connect(&addr).await.ok()?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.ok()?;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1024];
    while !got.ends_with(b"ok") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
    closed_after(&mut stream, Instant::now(), Duration::from_secs(90)).await
}

/// A body of 1 MiB sent at 200 bytes a second (or stopping after 300 bytes): the status the
/// server answered and when.
async fn slow_body(addr: String, stop: bool) -> (u16, Duration) {
    let stream = TcpStream::connect(&addr).await.expect("connect");
    let started = Instant::now();
    let (mut read, mut write) = stream.into_split();
    let head = post_head("/v1/logpush/http_requests", TOKEN, Some(1 << 20), &[]);
    let writer = tokio::spawn(async move {
        let _ = write.write_all(head.as_bytes()).await;
        for i in 0..10_000 {
            if stop && i == 3 {
                tokio::time::sleep(Duration::from_secs(90)).await;
            }
            if write.write_all(&[b'{'; 100]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let answer = read_to_end(&mut read, Duration::from_secs(90)).await;
    writer.abort();
    (answer.status, started.elapsed())
}

/// A body that keeps pace (8 KiB/s, above `min_body_rate`) and would take 17 minutes to end:
/// busy until shutdown cuts it. When the server closed the connection, and what it answered.
async fn paced_body(addr: String) -> (Instant, u16) {
    let stream = TcpStream::connect(&addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let head = post_head("/v1/logpush/http_requests", TOKEN, Some(8 << 20), &[]);
    let writer = tokio::spawn(async move {
        let _ = write.write_all(head.as_bytes()).await;
        for _ in 0..2048 {
            if write.write_all(&[b'{'; 4096]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let answer = read_to_end(&mut read, Duration::from_secs(120)).await;
    writer.abort();
    (Instant::now(), answer.status)
}

/// Posts good batches every 100 ms until `stop`: statuses and latencies.
async fn normal_client(
    base: String,
    stop: tokio::sync::watch::Receiver<bool>,
    prefix: &'static str,
) -> Vec<(u16, Duration)> {
    let client = http_client();
    let lines = http_requests_sample();
    let mut out = Vec::new();
    let mut n = 0;
    while !*stop.borrow() {
        let body = gzip(&unique_http_requests(&lines, n..n + 10, prefix));
        n += 10;
        let started = Instant::now();
        let status = match client
            .post(format!("{base}/v1/logpush/http_requests"))
            .bearer_auth(TOKEN)
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        out.push((status, started.elapsed()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out
}

fn summary(label: &str, times: &[Option<Duration>], limit: Duration) -> Duration {
    let open = times.iter().filter(|t| t.is_none()).count();
    let mut closed: Vec<Duration> = times.iter().flatten().copied().collect();
    closed.sort_unstable();
    let max = closed.last().copied().unwrap_or_default();
    let median = closed.get(closed.len() / 2).copied().unwrap_or_default();
    eprintln!(
        "{label}: {} closed by the server, median after {:.2} s, last after {:.2} s (limit {:.1} s); {open} still open after 90 s",
        closed.len(),
        median.as_secs_f64(),
        max.as_secs_f64(),
        limit.as_secs_f64()
    );
    assert_eq!(open, 0, "{label}: {open} connections stayed open");
    max
}

fn report_normal(label: &str, results: &[(u16, Duration)]) {
    let mut latencies: Vec<Duration> = results.iter().map(|(_, d)| *d).collect();
    latencies.sort_unstable();
    let p50 = latencies.get(latencies.len() / 2).copied().unwrap_or_default();
    let max = latencies.last().copied().unwrap_or_default();
    let failed: Vec<u16> = results.iter().map(|(s, _)| *s).filter(|s| *s != 200).collect();
    eprintln!(
        "{label}: {} batches by a normal client, p50 {:.1} ms, max {:.1} ms, not 200: {failed:?}",
        results.len(),
        p50.as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0
    );
    assert!(results.len() >= 5, "{label}: the normal client got too few answers");
    assert!(failed.is_empty(), "{label}: normal clients were refused: {failed:?}");
}

async fn metrics_text(base: &str) -> String {
    http_client().get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("text")
}

struct Setup {
    ch: TestClickHouse,
    data: tempfile::TempDir,
}

impl Setup {
    async fn serve(&self, max_connections: usize, waits: Option<Duration>) -> (Serve, ServeSpec) {
        let path = self.data.path().join(format!("gatelog-{max_connections}-{waits:?}.toml"));
        std::fs::write(&path, config(max_connections, waits)).expect("config");
        let spec = ServeSpec {
            data_dir: self.data.path().join("gatelog"),
            port: free_port(),
            clickhouse_url: self.ch.url(),
            database: self.ch.database().to_owned(),
            token: TOKEN.to_owned(),
            config: Some(path),
            release: false,
        };
        (Serve::start(&spec).await, spec)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_too_many_clients_are_dropped_and_shutdown_is_bounded() {
    gatelog_e2e::gatelog_bin();
    let setup = Setup {
        ch: TestClickHouse::start().await.expect("managed clickhouse"),
        data: tempfile::tempdir().expect("tempdir"),
    };

    // 1. Timeouts, with room for every connection: 1,000 idle, 50 slowloris, 20 quiet
    //    keep-alive clients, 5 slow and 2 stalled bodies, while a normal client posts.
    let (mut server, spec) = setup.serve(4096, None).await;
    let addr = format!("127.0.0.1:{}", spec.port);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let normal = tokio::spawn(normal_client(spec.base_url(), stop_rx, "con1"));
    let mut idles = JoinSet::new();
    for _ in 0..1000 {
        idles.spawn(idle(addr.clone()));
    }
    let mut lorises = JoinSet::new();
    for _ in 0..50 {
        lorises.spawn(slowloris(addr.clone()));
    }
    let mut quiet = JoinSet::new();
    for _ in 0..20 {
        quiet.spawn(quiet_after_one(addr.clone()));
    }
    let mut bodies = JoinSet::new();
    for i in 0..7 {
        bodies.spawn(slow_body(addr.clone(), i >= 5));
    }
    let idle_times = idles.join_all().await;
    let loris_times = lorises.join_all().await;
    let quiet_times = quiet.join_all().await;
    let body_answers = bodies.join_all().await;
    let _ = stop_tx.send(true);
    let normal_results = normal.await.expect("normal client");
    assert!(summary("1000 idle connections", &idle_times, HEADER) <= HEADER + SLACK);
    assert!(summary("50 slowloris connections", &loris_times, HEADER) <= HEADER + SLACK);
    assert!(summary("20 keep-alive connections gone quiet", &quiet_times, IDLE) <= IDLE + SLACK);
    for (status, after) in &body_answers {
        eprintln!(
            "slow or stalled body: {status} after {:.2} s (body_read_timeout 2 s, min_body_rate 1 KiB/s)",
            after.as_secs_f64()
        );
        assert_eq!(*status, 408, "a body at 200 bytes/s, or stalled");
        assert!(*after <= BODY * 2 + SLACK, "the slow body held on for {after:?}");
    }
    report_normal("during the timeouts", &normal_results);
    let text = metrics_text(&spec.base_url()).await;
    for reason in ["header_timeout", "idle_timeout", "body_timeout"] {
        let n = metric(&text, "gatelog_http_connections_dropped_total", &[("reason", reason)]).unwrap_or(0.0);
        eprintln!("gatelog_http_connections_dropped_total{{reason=\"{reason}\"}} {n}");
        assert!(n > 0.0, "{reason} counted");
    }
    server.terminate(Duration::from_secs(30)).await;

    // 2. The cap: 64 connections, 500 idle ones and 50 slowloris arriving: the longest-waiting
    //    are evicted for new ones, and the normal client is served all along.
    let (mut server, spec) = setup.serve(64, None).await;
    let addr = format!("127.0.0.1:{}", spec.port);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let normal = tokio::spawn(normal_client(spec.base_url(), stop_rx, "con2"));
    let mut flood = JoinSet::new();
    for i in 0..550 {
        let addr = addr.clone();
        flood.spawn(async move { if i % 11 == 0 { slowloris(addr).await } else { idle(addr).await } });
    }
    let flood_times = flood.join_all().await;
    let _ = stop_tx.send(true);
    let normal_results = normal.await.expect("normal client");
    summary("550 idle and slowloris connections against max_connections = 64", &flood_times, HEADER);
    report_normal("during the flood", &normal_results);
    let text = metrics_text(&spec.base_url()).await;
    let evicted = metric(&text, "gatelog_http_connections_dropped_total", &[("reason", "evicted")]).unwrap_or(0.0);
    eprintln!("gatelog_http_connections_dropped_total{{reason=\"evicted\"}} {evicted}");
    assert!(evicted > 0.0, "the cap evicted waiting connections");

    // 3. SIGTERM with connections of every kind open, waiting ones with a minute left on
    //    their header and idle timeouts, and bodies that keep pace (busy until shutdown):
    //    bounded by drain_timeout, a clean exit, nothing unfinished acknowledged.
    let (mut server, spec) = {
        server.terminate(Duration::from_secs(30)).await;
        setup.serve(4096, Some(Duration::from_secs(60))).await
    };
    let addr = format!("127.0.0.1:{}", spec.port);
    let mut paced = JoinSet::new();
    for _ in 0..5 {
        paced.spawn(paced_body(addr.clone()));
    }
    // Past body_read_timeout: only drain_timeout can end them now.
    tokio::time::sleep(BODY + Duration::from_millis(500)).await;
    assert_eq!(paced.len(), 5, "a body that keeps pace is not cut off");
    let mut open = JoinSet::new();
    for i in 0..300 {
        let addr = addr.clone();
        open.spawn(async move {
            match i % 30 {
                0 => slowloris(addr).await,
                1 => quiet_after_one(addr).await,
                2 => Some(slow_body(addr, i % 60 == 2).await.1),
                _ => idle(addr).await,
            }
        });
    }
    let started = Instant::now();
    let open_now = loop {
        let open = metric(&metrics_text(&spec.base_url()).await, "gatelog_http_connections_open", &[]).unwrap_or(0.0);
        if open >= 305.0 || started.elapsed() > Duration::from_secs(30) {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let started = Instant::now();
    let status = server.terminate(Duration::from_secs(60)).await;
    let took = started.elapsed();
    let paced = paced.join_all().await;
    let cut = paced.iter().map(|(at, _)| at.saturating_duration_since(started)).max().unwrap_or_default();
    let answers: Vec<u16> = paced.iter().map(|(_, status)| *status).collect();
    eprintln!(
        "SIGTERM with {open_now} connections open (idle, quiet keep-alive, slowloris, slow bodies, 5 bodies keeping \
         pace): exited {status:?} after {:.2} s (drain_timeout {:.0} s); the busy bodies were cut {:.2} s after \
         SIGTERM (answers {answers:?}, 0 = none: nothing of them was acknowledged)",
        took.as_secs_f64(),
        DRAIN.as_secs_f64(),
        cut.as_secs_f64()
    );
    assert!(open_now >= 305.0, "only {open_now} connections were open");
    assert!(status.is_some_and(|s| s.success()), "exit status {status:?}:\n{}", server.log_tail(30));
    assert!(took <= DRAIN + SLACK, "shutdown took {took:?}");
    assert!(answers.iter().all(|s| *s != 200), "an unfinished body was acknowledged: {answers:?}");
    let waiting = open.join_all().await;
    let still_open = waiting.iter().filter(|t| t.is_none()).count();
    assert_eq!(still_open, 0, "{still_open} connections outlived the server");
}
