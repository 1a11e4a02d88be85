//! The load generators: a closed loop (N clients, each posting its next body as soon as the
//! last one was answered) for throughput, and an open loop (one request every 1/rate
//! seconds, whatever the answers do) for latency, plus the retrying POST they share.

use anyhow::{Context, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long one body may keep being answered 429/503 before the bench gives up.
const RETRY_LIMIT: Duration = Duration::from_secs(300);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Where and how to POST the bodies.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    /// `Authorization: Bearer` token (gatelog), if any.
    pub token: Option<String>,
    /// Also retry ClickHouse's 500 "Too many parts" (after 1 s), counted as a retry.
    pub retry_too_many_parts: bool,
}

/// What one run of posts gave.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Per body: from its start (closed loop) or its scheduled start (open loop) to its 2xx.
    /// The open loop keeps them in sending order.
    pub latencies: Vec<Duration>,
    /// Open loop: the first requests, sent in the first [`WARM_UP`] (in `latencies` too).
    pub warm_up: usize,
    /// 429/503 (or "Too many parts") answers, each retried after its `Retry-After`.
    pub retries: u64,
    /// Sum of the `decisions` field of gatelog's answers (0 for ClickHouse).
    pub decisions: u64,
    /// Highest `spool_seq` in gatelog's answers.
    pub max_seq: u64,
    /// From the first post to the last 2xx.
    pub wall: Duration,
    /// Open loop: every request in sending order, to be read next to the server's log.
    pub timeline: Vec<Sent>,
}

/// One open-loop request: when it was due and what came of it.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub body: usize,
    /// Its `spool_seq`, the key of its `receiver: batch spooled` log line.
    pub seq: u64,
    /// When it was due, Unix seconds (the server log's clock).
    pub due_unix: f64,
    pub latency: Duration,
}

impl Sent {
    /// A tab-separated line: body, seq, due (Unix s), latency (ms).
    pub fn tsv(&self) -> String {
        format!("{}\t{}\t{:.6}\t{:.3}", self.body, self.seq, self.due_unix, self.latency.as_secs_f64() * 1000.0)
    }
}

impl Outcome {
    fn add(&mut self, latency: Duration, answer: Answer) {
        self.latencies.push(latency);
        self.retries += answer.retries;
        self.decisions += answer.decisions;
        self.max_seq = self.max_seq.max(answer.seq);
    }
}

#[derive(Debug, Default)]
struct Answer {
    retries: u64,
    decisions: u64,
    seq: u64,
}

/// `clients` concurrent clients post every body once, each taking the next unsent body.
pub async fn closed_loop(
    client: &reqwest::Client,
    to: &Endpoint,
    bodies: &Arc<Vec<Vec<u8>>>,
    clients: usize,
) -> anyhow::Result<Outcome> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, to, bodies, next) = (client.clone(), to.clone(), bodies.clone(), next.clone());
        tasks.spawn(async move {
            let mut outcome = Outcome::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { return Ok::<_, anyhow::Error>(outcome) };
                let sent = Instant::now();
                let answer = post(&client, &to, body).await.with_context(|| format!("body {i}"))?;
                outcome.add(sent.elapsed(), answer);
            }
        });
    }
    let mut total = Outcome::default();
    while let Some(joined) = tasks.join_next().await {
        let part = joined.context("client task panicked")??;
        total.latencies.extend(part.latencies);
        total.retries += part.retries;
        total.decisions += part.decisions;
        total.max_seq = total.max_seq.max(part.max_seq);
    }
    total.wall = started.elapsed();
    Ok(total)
}

/// The open loop's first seconds: a fresh server faults in its memory and starts its
/// threads while answering them, so they are reported apart from the steady state.
pub const WARM_UP: Duration = Duration::from_secs(2);

/// Posts body `i` at `start + i / per_second`, each in its own task, so a slow answer delays
/// no later request (no coordinated omission); latency counts from the scheduled time.
pub async fn open_loop(
    client: &reqwest::Client,
    to: &Endpoint,
    bodies: &Arc<Vec<Vec<u8>>>,
    per_second: f64,
) -> anyhow::Result<Outcome> {
    let interval = Duration::from_secs_f64(1.0 / per_second);
    let started = Instant::now();
    // Wall time only to name when the slowest were sent, next to the server log's timestamps.
    #[allow(clippy::disallowed_methods)]
    let started_wall = std::time::SystemTime::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..bodies.len() {
        let at = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(at.into()).await;
        let (client, to, bodies) = (client.clone(), to.clone(), bodies.clone());
        tasks.spawn(async move {
            let answer = post(&client, &to, &bodies[i]).await.with_context(|| format!("body {i}"))?;
            Ok::<_, anyhow::Error>((i, at.elapsed(), answer))
        });
    }
    let mut answered = Vec::with_capacity(bodies.len());
    while let Some(joined) = tasks.join_next().await {
        answered.push(joined.context("request task panicked")??);
    }
    answered.sort_unstable_by_key(|(i, _, _)| *i);
    let timeline: Vec<Sent> = answered
        .iter()
        .map(|(i, latency, answer)| {
            let due = started_wall + interval.mul_f64(*i as f64);
            let due_unix = due.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
            Sent { body: *i, seq: answer.seq, due_unix, latency: *latency }
        })
        .collect();
    // The slowest answers with their spool sequence numbers, to find them in the server's log
    // (`receiver: batch spooled ... seq=N read_ms map_ms spool_ms` at debug level).
    let mut slowest = timeline.clone();
    slowest.sort_unstable_by_key(|s| std::cmp::Reverse(s.latency));
    let named: Vec<String> = slowest
        .iter()
        .take(3)
        .map(|s| {
            format!(
                "body {} (spool seq {}, due at {:.6}) {:.1} ms",
                s.body,
                s.seq,
                s.due_unix,
                s.latency.as_secs_f64() * 1000.0
            )
        })
        .collect();
    eprintln!("bench serve: slowest answers: {}", named.join(", "));
    let mut total = Outcome::default();
    for (_, latency, answer) in answered {
        total.add(latency, answer);
    }
    total.warm_up = ((WARM_UP.as_secs_f64() * per_second).ceil() as usize).min(bodies.len());
    total.wall = started.elapsed();
    total.timeline = timeline;
    Ok(total)
}

/// One body until a 2xx: 429/503 are retried after `Retry-After` (1 s if absent); any other
/// answer is an error naming the status and body.
async fn post(client: &reqwest::Client, to: &Endpoint, body: &[u8]) -> anyhow::Result<Answer> {
    let started = Instant::now();
    let mut retries = 0;
    loop {
        let mut request = client
            .post(&to.url)
            .header("Content-Encoding", "gzip")
            .header("Content-Type", "application/x-ndjson")
            .timeout(REQUEST_TIMEOUT)
            .body(body.to_vec());
        if let Some(token) = &to.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| format!("POST {}", to.url))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::from_secs(1), Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(parse_answer(&text, retries));
        }
        let backpressure = status.as_u16() == 429 || status.as_u16() == 503;
        let too_many_parts = to.retry_too_many_parts && text.contains("Too many parts");
        if !(backpressure || too_many_parts) {
            bail!("{} answered {status}: {}", to.url, text.trim());
        }
        if started.elapsed() + retry_after > RETRY_LIMIT {
            bail!("{} still answering {status} after {:?} of retries: {}", to.url, started.elapsed(), text.trim());
        }
        retries += 1;
        tokio::time::sleep(retry_after).await;
    }
}

/// gatelog's 200 body (`{"decisions":…,"spool_seq":…}`); ClickHouse answers with nothing.
fn parse_answer(text: &str, retries: u64) -> Answer {
    let json: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    Answer { retries, decisions: json["decisions"].as_u64().unwrap_or(0), seq: json["spool_seq"].as_u64().unwrap_or(0) }
}

/// Nearest-rank percentile (`p` in 0..=100) of unsorted samples.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
