//! Bad input over the real `gatelog serve`: every malformed request gets its documented
//! status, nothing bad poisons the receiver (a good batch still gets 200 after each), and at
//! the end ClickHouse holds exactly the good records plus the dead letters the answers
//! announced.

use gatelog_e2e::{
    Serve, ServeSpec, assert_stored_once, count, free_port, generated_ray_id, gzip, http_client, http_requests_sample,
    samples_dir, unique_http_requests, wait_for_sinks,
};
use gatelog_store::testing::TestClickHouse;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

const TOKEN: &str = "bad-input-test-token-0123456789";
const PREFIX: &str = "bad0";
const GOOD_LINES: usize = 20;

/// 16 MiB inflated at most, so a bomb is cheap to build.
const CONFIG: &str = r#"
[receiver]
max_decompressed_bytes = "16 MiB"
"#;

struct Client {
    http: reqwest::Client,
    url: String,
    lines: Vec<String>,
    /// Next generated record number.
    next: usize,
    /// RayIDs of every good record sent and acknowledged.
    good: HashSet<String>,
    /// Dead letters the answers announced.
    dead_letters: u64,
}

struct Answer {
    status: u16,
    json: Value,
}

impl Client {
    async fn post_with(&self, body: Vec<u8>, token: &str, gzip_header: bool) -> Answer {
        let mut request = self.http.post(&self.url).bearer_auth(token).body(body).timeout(Duration::from_secs(60));
        if gzip_header {
            request = request.header("Content-Encoding", "gzip");
        }
        let response = request.send().await.expect("gatelog answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, json }
    }

    async fn post(&mut self, body: Vec<u8>, gzip_header: bool) -> Answer {
        let answer = self.post_with(body, TOKEN, gzip_header).await;
        self.dead_letters += answer.json["dead_letters"].as_u64().unwrap_or(0);
        answer
    }

    /// `n` fresh good lines (NDJSON), remembered as required once acknowledged.
    fn good_lines(&mut self, n: usize) -> (Vec<u8>, Vec<String>) {
        let range = self.next..self.next + n;
        self.next += n;
        let rays = range.clone().map(|i| generated_ray_id(PREFIX, i)).collect();
        (unique_http_requests(&self.lines, range, PREFIX), rays)
    }

    /// A good gzip batch must still get 200 (after `what`).
    async fn good_batch_after(&mut self, what: &str) {
        let (body, rays) = self.good_lines(GOOD_LINES);
        let a = self.post(gzip(&body), true).await;
        assert_eq!(a.status, 200, "a good batch after {what}: {}", a.json);
        assert_eq!(a.json["decisions"], GOOD_LINES, "{}", a.json);
        self.good.extend(rays);
    }

    /// Good lines around `bad` in one body: 200, bad lines become dead letters.
    async fn mixed(&mut self, bad: &[u8], what: &str, gzipped: bool) -> Answer {
        let (mut body, rays) = self.good_lines(5);
        body.extend_from_slice(bad);
        if !bad.ends_with(b"\n") {
            body.push(b'\n');
        }
        let (more, more_rays) = self.good_lines(5);
        body.extend_from_slice(&more);
        let body = if gzipped { gzip(&body) } else { body };
        let a = self.post(body, gzipped).await;
        assert_eq!(a.status, 200, "{what} between good lines: {}", a.json);
        assert_eq!(a.json["decisions"], 10, "{what}: {}", a.json);
        assert!(a.json["dead_letters"].as_u64().unwrap_or(0) >= 1, "{what}: {}", a.json);
        self.good.extend(rays);
        self.good.extend(more_rays);
        a
    }
}

fn message(a: &Answer) -> String {
    a.json["error"]["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_status_and_never_poisons_the_receiver() {
    gatelog_e2e::gatelog_bin();
    let ch = TestClickHouse::start().await.expect("managed clickhouse");
    let db = ch.database().to_owned();
    let data = tempfile::tempdir().expect("tempdir");
    let config = data.path().join("gatelog.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let spec = ServeSpec {
        data_dir: data.path().join("gatelog"),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: db.clone(),
        token: TOKEN.to_owned(),
        config: Some(config),
        release: false,
    };
    let base = spec.base_url();
    let mut server = Serve::start(&spec).await;
    let mut c = Client {
        http: http_client(),
        url: format!("{base}/v1/logpush/http_requests"),
        lines: http_requests_sample(),
        next: 0,
        good: HashSet::new(),
        dead_letters: 0,
    };
    c.good_batch_after("start-up").await;

    // Truncated gzip: 400 naming the truncation, nothing spooled.
    let (body, _) = c.good_lines(50);
    let gz = gzip(&body);
    let a = c.post(gz[..gz.len() / 2].to_vec(), true).await;
    assert_eq!(a.status, 400, "truncated gzip: {}", a.json);
    assert!(message(&a).contains("truncated"), "{}", a.json);
    assert!(a.json.get("batch_id").is_none(), "nothing spooled: {}", a.json);
    c.good_batch_after("truncated gzip").await;

    // Gzip bomb: 24 MiB of zeros in ~24 KiB, past max_decompressed_bytes (16 MiB): 413.
    let bomb = gzip(&vec![0u8; 24 << 20]);
    assert!(bomb.len() < 1 << 20);
    let a = c.post(bomb, true).await;
    assert_eq!(a.status, 413, "gzip bomb: {}", a.json);
    c.good_batch_after("gzip bomb").await;

    // Invalid UTF-8 lines between good ones: 200, each one a dead letter.
    let a = c.mixed(b"{\"RayID\":\"\xff\xfe\xfd\"}\n\xc3\x28 not utf-8 \x80\n", "invalid UTF-8", true).await;
    assert_eq!(a.json["dead_letters"], 2, "{}", a.json);
    c.good_batch_after("invalid UTF-8").await;

    // A 10 MB single line: alone 400 (kept as a dead letter); next to good lines 200.
    let mut big = b"{\"RayID\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 10_000_000));
    big.extend_from_slice(b"\"}\n");
    let a = c.post(gzip(&big), true).await;
    assert_eq!(a.status, 400, "a 10 MB line alone: {}", a.json);
    assert!(message(&a).contains("line 1"), "names the line: {}", a.json);
    c.good_batch_after("a 10 MB line alone").await;
    let a = c.mixed(&big, "a 10 MB line", true).await;
    assert_eq!(a.json["dead_letters"], 1, "{}", a.json);
    c.good_batch_after("a 10 MB line between good lines").await;

    // Wrong token: 401 before the body counts, nothing spooled.
    let (body, _) = c.good_lines(5);
    let a = c.post_with(gzip(&body), "wrong-token-wrong-token", true).await;
    assert_eq!(a.status, 401, "wrong token: {}", a.json);
    c.good_batch_after("a wrong token").await;

    // Empty body: 400.
    let a = c.post(Vec::new(), false).await;
    assert_eq!(a.status, 400, "empty body: {}", a.json);
    c.good_batch_after("an empty body").await;

    // A JSON array on the Logpush route: 400 naming line 1.
    let array = format!("[{}]", c.lines[0..3].join(","));
    let a = c.post(array.into_bytes(), false).await;
    assert_eq!(a.status, 400, "JSON array: {}", a.json);
    assert!(message(&a).contains("line 1"), "names line 1: {}", a.json);
    c.good_batch_after("a JSON array").await;

    // Encodings the receiver cannot read: 415 naming them, nothing spooled. gzip, x-gzip and
    // identity are read (the body is sniffed by its magic bytes in any case).
    let (body, _) = c.good_lines(5);
    for encoding in ["br", "deflate", "zstd", "compress", "snappy", "gzip, gzip", "gzip, br"] {
        let response = c
            .http
            .post(&c.url)
            .bearer_auth(TOKEN)
            .header("Content-Encoding", encoding)
            .body(body.clone())
            .send()
            .await
            .expect("answer");
        let status = response.status().as_u16();
        let text = response.text().await.expect("text");
        assert_eq!(status, 415, "Content-Encoding {encoding}: {text}");
        let named = encoding.rsplit(", ").next().unwrap_or(encoding);
        assert!(text.contains(named) || text.contains("more than once"), "names {encoding}: {text}");
    }
    for encoding in ["gzip", "x-gzip", "GZIP", "identity", "gzip, identity"] {
        let (body, rays) = c.good_lines(5);
        let response = c
            .http
            .post(&c.url)
            .bearer_auth(TOKEN)
            .header("Content-Encoding", encoding)
            .body(gzip(&body))
            .send()
            .await
            .expect("answer");
        assert_eq!(
            response.status().as_u16(),
            200,
            "Content-Encoding {encoding}: {}",
            response.text().await.unwrap_or_default()
        );
        c.good.extend(rays);
    }
    c.good_batch_after("unsupported encodings").await;

    // The Logpush validation probe: 200, nothing stored.
    let probe = std::fs::read(samples_dir().join("validation_probe.test.txt.gz")).expect("probe");
    let a = c.post(probe, false).await;
    assert_eq!(a.status, 200, "validation probe: {}", a.json);
    assert_eq!(a.json["probes"], 1, "{}", a.json);
    assert_eq!(a.json["decisions"].as_u64().unwrap_or(0), 0, "{}", a.json);
    c.good_batch_after("the validation probe").await;

    assert!(server.is_running(), "{}", server.log_tail(40));
    wait_for_sinks(&base, Duration::from_secs(120)).await;
    let stored = assert_stored_once(&ch.url(), &db, &base, TOKEN, &c.good, &[PREFIX]).await;
    assert_eq!(stored as usize, c.good.len(), "ClickHouse holds exactly the good records");
    let raw = count(&ch.url(), &format!("SELECT sum(length(event_lines)) FROM {db}.raw_batches"));
    assert_eq!(raw as usize, c.good.len(), "one line of a stored body per good line");
    let dead = count(&ch.url(), &format!("SELECT count() FROM {db}.dead_letters"));
    assert_eq!(dead, c.dead_letters, "the dead letters the answers announced, no more");
    eprintln!("bad input test: {stored} good records and {dead} dead letters stored");
    server.terminate(Duration::from_secs(20)).await;
}
