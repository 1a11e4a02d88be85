//! Decision flooding: oversized fields are cut with a marker; the spill file stays within
//! `decisions.spill_max_bytes` (drops counted, logged, in `/metrics`); torn and corrupt
//! spill records are detected and never replayed while the intact ones are, exactly once;
//! the per-source rate limit answers 429 with `Retry-After` before authentication (and the
//! client address comes from a header only through a trusted proxy); and every request
//! that is refused, routed or not, has its decision.

#![allow(clippy::unwrap_used)]

#[path = "support/edge.rs"]
mod edge;
mod support;

use edge::*;
use gatelog_model::{AccessDecision, Decision};
use gatelog_proxy::emit::bound::MARKER;
use gatelog_proxy::server::{Shared, router};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use support::*;
use tower::ServiceExt;

fn shared_with(text: &str, sink: Arc<MemorySink>) -> Arc<Shared> {
    in_process(text, Some(sink)).0
}

async fn call(shared: &Arc<Shared>, req: http::Request<axum::body::Body>) -> (u16, http::HeaderMap) {
    let resp = router(shared.clone()).oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    http_body_util::BodyExt::collect(body).await.unwrap();
    (parts.status.as_u16(), parts.headers)
}

fn assert_bounded(d: &AccessDecision) {
    let json = serde_json::to_string(d).unwrap();
    assert!(json.len() < 96 * 1024, "a decision of {} bytes", json.len());
    for (name, v, max) in [
        ("user_agent", &d.user_agent, 512),
        ("host", &d.host, 256),
        ("path", &d.path, 2048),
        ("resource", &d.resource, 2048),
        ("reason", &d.reason, 2048),
        ("principal", &d.principal, 512),
        ("query", &d.query, 64 * 1024),
    ] {
        assert!(v.len() <= max, "{name}: {} bytes", v.len());
    }
}

#[tokio::test]
async fn oversized_fields_are_cut_with_a_marker() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[[bi.routes]]\nname = \"m\"\nprefix = \"/bi/metabase/\"\nupstream = \"http://127.0.0.1:3000\"\n",
        config_toml(ISSUER, "http://127.0.0.1:1", dir.path(), "")
    );
    let sink = Arc::new(MemorySink::default());
    let shared = shared_with(&text, sink.clone());
    let ua = "Mozilla/5.0 ".repeat(5_000); // 60 KB
    let long_email = format!("{}@example.com", "a".repeat(20_000));
    let t = token(&long_email, &["analysts"]);
    let bearer = format!("Bearer {}", token("ana@example.com", &["analysts"]));
    let reqs = vec![
        // Unauthenticated, with a 60 KB User-Agent and a long Host.
        http::Request::post("/").header("user-agent", &ua).header("host", "h".repeat(4000)).body("SELECT 1".into()),
        // An unrouted 8 KB path.
        http::Request::get(format!("/{}", "segment/".repeat(1000))).header("user-agent", &ua).body("".into()),
        // A BI path that is refused with the path in the reason.
        http::Request::get(format!("/bi/metabase/admin/{}", "x".repeat(6000)))
            .header("authorization", &bearer)
            .header("user-agent", &ua)
            .body("".into()),
        // A 200 KB query (within max_query_size) that is allowed.
        http::Request::post("/")
            .header("authorization", &bearer)
            .header("user-agent", &ua)
            .body(format!("SELECT 1 -- {}", "q".repeat(200_000)).into()),
        // A principal whose email is 20 KB.
        http::Request::post("/").header("authorization", format!("Bearer {t}")).body("SELECT 1".into()),
    ];
    let n = reqs.len();
    for r in reqs {
        call(&shared, r.unwrap()).await;
    }
    shared.emitter.shutdown().await;
    let decisions = sink.decisions();
    assert_eq!(decisions.len(), n, "one decision each");
    for d in &decisions {
        assert_bounded(d);
    }
    assert!(decisions[0].user_agent.contains(MARKER) && decisions[0].user_agent.ends_with(" bytes]"));
    assert!(decisions[0].host.contains(MARKER));
    assert!(decisions[1].path.contains(MARKER) && decisions[1].status == 404);
    assert!(decisions[2].reason.contains(MARKER) || decisions[2].path.contains(MARKER), "{:?}", decisions[2]);
    assert!(decisions[3].query.contains(MARKER) && decisions[3].decision == Decision::Allow);
    assert_eq!(
        decisions[3].query_fingerprint,
        gatelog_model::query::fingerprint(&format!("SELECT 1 -- {}", "q".repeat(200_000)))
    );
    assert!(decisions[4].principal.contains(MARKER));
    assert!(shared.metrics.render().contains("gatelog_proxy_decision_fields_truncated_total"));
}

fn spill_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join(gatelog_proxy::emit::spill::FILE_NAME)
}

#[tokio::test]
async fn the_spill_is_bounded_and_drops_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_toml(ISSUER, "http://127.0.0.1:1", dir.path(), "spill_max_bytes = \"64 KiB\"\nbatch_size = 10\n");
    let sink = Arc::new(MemorySink::default());
    sink.fail.store(true, Ordering::SeqCst);
    let shared = shared_with(&text, sink.clone());
    let n = 300;
    for i in 0..n {
        let req = http::Request::post("/")
            .header("user-agent", format!("ua-{i}-{}", "u".repeat(400)))
            .body("SELECT 1".into());
        call(&shared, req.unwrap()).await;
    }
    shared.emitter.shutdown().await;
    let size = std::fs::metadata(spill_path(dir.path())).unwrap().len();
    assert!(size <= 64 * 1024, "spill of {size} bytes");
    let dropped = shared.metrics.dropped_total();
    assert!(dropped > 0, "300 decisions of ~1 KB cannot all fit in 64 KiB");
    let metrics = shared.metrics.render();
    assert!(
        metrics.contains(&format!("gatelog_proxy_decisions_dropped_total{{reason=\"spill_full\"}} {dropped}")),
        "{metrics}"
    );
    // The pipeline is back: what was kept is delivered once; kept + dropped = all.
    sink.fail.store(false, Ordering::SeqCst);
    let again = shared_with(&text, sink.clone());
    call(&again, http::Request::post("/").body("SELECT 1".into()).unwrap()).await;
    again.emitter.shutdown().await;
    let delivered = sink.decisions();
    let ids: std::collections::BTreeSet<_> = delivered.iter().map(|d| d.event_id.clone()).collect();
    assert_eq!(ids.len(), delivered.len(), "nothing twice");
    assert_eq!(delivered.len() as u64 + dropped, n as u64 + 1);
}

#[tokio::test]
async fn corrupt_and_torn_spill_records_are_reported_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_toml(ISSUER, "http://127.0.0.1:1", dir.path(), "");
    let sink = Arc::new(MemorySink::default());
    sink.fail.store(true, Ordering::SeqCst);
    let shared = shared_with(&text, sink.clone());
    for i in 0..12 {
        let req = http::Request::post("/").header("user-agent", format!("client-{i:02}")).body("SELECT 1".into());
        call(&shared, req.unwrap()).await;
    }
    shared.emitter.shutdown().await;
    let path = spill_path(dir.path());
    let original = std::fs::read(&path).unwrap();
    let lines: Vec<Vec<u8>> = original.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    assert_eq!(lines.len(), 12);
    // The damage, one kind per line; lines 0, 6, 8, 9 and 10 stay intact.
    let mut damaged = Vec::new();
    let flip = |line: &[u8], at: usize| {
        let mut l = line.to_vec();
        l[at] ^= 0x01;
        l
    };
    damaged.push(lines[0].clone());
    damaged.push(flip(&lines[1], 40)); // a byte of the JSON
    damaged.push(flip(&lines[2], 3)); // a digit of the checksum
    damaged.push({
        let mut l = lines[3].clone(); // a character deleted
        l.remove(30);
        l
    });
    damaged.push(lines[4][9..].to_vec()); // the record without its checksum (the old format)
    damaged.push(lines[5].replace_client("client-05", "client-99")); // a value changed
    damaged.push(lines[6].clone());
    damaged.push(b"garbage that is no record\n".to_vec());
    damaged.push(lines[8].clone());
    damaged.push(lines[9].clone());
    damaged.push(lines[10].clone());
    damaged.push(lines[11][..lines[11].len() / 2].to_vec()); // torn: a crash mid-append
    std::fs::write(&path, damaged.concat()).unwrap();

    sink.fail.store(false, Ordering::SeqCst);
    let again = shared_with(&text, sink.clone());
    call(&again, http::Request::post("/").header("user-agent", "after-restart").body("SELECT 1".into()).unwrap()).await;
    again.emitter.shutdown().await;
    let agents: Vec<String> = sink.decisions().iter().map(|d| d.user_agent.clone()).collect();
    assert_eq!(agents, ["client-00", "client-06", "client-08", "client-09", "client-10", "after-restart"]);
    assert_eq!(again.metrics.spill_corrupt_count(), 7, "6 corrupt + 1 torn reported");
    let m = again.metrics.render();
    assert!(m.contains("gatelog_proxy_spill_bad_records_total{kind=\"checksum\"} 6"), "{m}");
    assert!(m.contains("gatelog_proxy_spill_bad_records_total{kind=\"torn\"} 1"), "{m}");
}

trait ReplaceClient {
    fn replace_client(&self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceClient for Vec<u8> {
    fn replace_client(&self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(self.clone()).unwrap().replace(from, to).into_bytes()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_are_rate_limited_before_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let base = config_toml(ISSUER, "http://127.0.0.1:1", dir.path(), "");
    let proxy = Running::start(&format!("{base}\n[ingress]\nper_ip_requests_per_minute = 30\n"), None).await;
    let bearer = format!("Bearer {}", token("ana@example.com", &["analysts"]));
    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    // Unauthenticated, badly authenticated, unrouted and cross-site requests all count.
    for i in 0..45 {
        let (method, target, headers): (&str, String, Vec<(&str, &str)>) = match i % 4 {
            0 => ("POST", "/".into(), vec![]),
            1 => ("POST", "/".into(), vec![("Authorization", "Bearer not.a.token")]),
            2 => ("GET", format!("/no/route/{i}"), vec![]),
            _ => ("POST", "/".into(), vec![("Authorization", bearer.as_str()), ("Sec-Fetch-Site", "cross-site")]),
        };
        let mut h = headers.clone();
        h.push(("Connection", "close"));
        let mut s = send_raw(proxy.addr, &raw_request(method, &target, &h, "SELECT 1")).await;
        let (status, head) = head_of(&read_some(&mut s, usize::MAX).await);
        statuses.push(status);
        if status == 429 {
            retry_after.push(header_in(&head, "retry-after").unwrap().parse::<u64>().unwrap());
        }
    }
    assert!(statuses[..30].iter().all(|s| *s != 429), "{statuses:?}");
    assert!(statuses[30..].iter().all(|s| *s == 429), "{statuses:?}");
    assert!(retry_after.iter().all(|r| (1..=60).contains(r)), "{retry_after:?}");
    let decisions = proxy.decisions(45).await;
    assert_eq!(decisions.len(), 45, "every request has its decision, the 429s too");
    let limited: Vec<_> = decisions.iter().filter(|d| d.status == 429).collect();
    assert_eq!(limited.len(), 15);
    assert!(limited.iter().all(|d| d.policy == "ingress.per_ip_requests_per_minute" && d.decision == Decision::Deny));
    assert!(limited.iter().all(|d| d.principal.is_empty()), "decided before identity");
    // Probes are not limited and make no decision.
    let mut s = send_raw(proxy.addr, &raw_request("GET", "/healthz", &[("Connection", "close")], "")).await;
    assert_eq!(head_of(&read_some(&mut s, usize::MAX).await).0, 200);
    let mut s = send_raw(proxy.addr, &raw_request("GET", "/metrics", &[("Connection", "close")], "")).await;
    let metrics = String::from_utf8(read_some(&mut s, usize::MAX).await).unwrap();
    assert!(metrics.contains("gatelog_proxy_rate_limited_total{scope=\"source\"} 15"), "{metrics}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_addresses_come_from_a_header_only_through_trusted_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let base = config_toml(ISSUER, "http://127.0.0.1:1", dir.path(), "");
    let ingress = |trusted: &str| {
        format!(
            "{base}\n[ingress]\nper_ip_requests_per_minute = 5\nclient_ip_header = \"x-real-ip\"\ntrusted_proxies = [\"{trusted}\"]\n"
        )
    };
    let ask = |addr, ip: String| async move {
        let mut s = send_raw(addr, &raw_request("GET", "/x", &[("X-Real-IP", &ip), ("Connection", "close")], "")).await;
        head_of(&read_some(&mut s, usize::MAX).await).0
    };
    // Through a trusted proxy (loopback here): one bucket per forwarded address.
    let proxy = Running::start(&ingress("127.0.0.0/8"), None).await;
    for i in 0..20 {
        assert_eq!(ask(proxy.addr, format!("203.0.113.{i}")).await, 404);
    }
    let same: Vec<u16> = futures_util::future::join_all((0..7).map(|_| ask(proxy.addr, "198.51.100.7".into()))).await;
    assert_eq!(same.iter().filter(|s| **s == 429).count(), 2, "{same:?}");
    let d = proxy.decisions(27).await;
    assert!(d.iter().any(|d| d.client_ip == "203.0.113.19"), "the decision records the forwarded address");
    proxy.stop().await;
    // From a peer that is not a trusted proxy, the header changes nothing.
    let proxy = Running::start(&ingress("10.0.0.0/8"), None).await;
    let spoofed: Vec<u16> =
        futures_util::future::join_all((0..7).map(|i| ask(proxy.addr, format!("203.0.113.{i}")))).await;
    assert_eq!(spoofed.iter().filter(|s| **s == 429).count(), 2, "{spoofed:?}");
    assert!(proxy.decisions(7).await.iter().all(|d| d.client_ip == "127.0.0.1"));
    proxy.stop().await;
}
