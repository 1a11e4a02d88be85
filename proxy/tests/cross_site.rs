//! Cross-site requests on the SQL route, and GETs that must stay read-only, against a real
//! ClickHouse 18.16: a browser's `CF_Authorization` cookie is not a credential there; what
//! browsers mark as cross-site (`Sec-Fetch-Site`, a foreign or `null` `Origin`) is refused
//! even with a header credential (Cloudflare Access injects one from the cookie); and an
//! admin's GET that would write is refused by the proxy, and, forwarded as a GET, would be
//! refused by ClickHouse too. Checked by what ClickHouse holds afterwards and by what an
//! upstream standing in for ClickHouse received.

#![allow(clippy::unwrap_used)]

#[path = "support/edge.rs"]
mod edge;
mod support;

use edge::*;
use gatelog_proxy::forward;
use gatelog_proxy::net::UpstreamBase;
use gatelog_store::testing::TestClickHouse;
use http::Method;
use jsonwebtoken::Algorithm;
use std::sync::Arc;
use support::*;

fn admin() -> String {
    sign(&claims(ISSUER, NOW, "root@corp.test", &["admins"]), "rsa", Algorithm::RS256, Some("rsa-1"))
}

fn cf_admin() -> String {
    let mut c = claims(&format!("{ISSUER}/cf"), NOW, "root@corp.test", &["admins"]);
    c.insert("aud".into(), serde_json::json!(["cf-aud"]));
    sign(&c, "rsa", Algorithm::RS256, Some("rsa-1"))
}

fn enc(sql: &str) -> String {
    form_urlencoded::byte_serialize(sql.as_bytes()).collect()
}

async fn exists(ch_url: &str, table: &str) -> bool {
    ch_exec(ch_url, &format!("EXISTS TABLE default.{table}")).await.trim() == "1"
}

/// One raw request; returns (status, head, body).
async fn ask(
    proxy: &Running,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut h = headers.to_vec();
    h.push(("Connection", "close"));
    let mut s = send_raw(proxy.addr, &raw_request(method, target, &h, body)).await;
    let raw = read_some(&mut s, usize::MAX).await;
    let (status, head) = head_of(&raw);
    let text = String::from_utf8_lossy(&raw);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, head, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_requests_and_get_writes_are_refused() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let ch_url = ch.url();
    let dir = tempfile::tempdir().unwrap();
    let proxy = Running::start(&config_toml(ISSUER, &ch_url, dir.path(), ""), None).await;
    let bearer = format!("Bearer {}", admin());
    let cf = cf_admin();
    let create = |t: &str| format!("CREATE TABLE default.{t} (a UInt8) ENGINE = Memory");

    // The admin's cookie alone, as a cross-site form or navigation would carry it: 401.
    let cookie = format!("CF_Authorization={cf}");
    for (method, target, body) in [
        ("GET", format!("/?query={}", enc(&create("csrf_get_cookie"))), String::new()),
        ("POST", "/".to_owned(), create("csrf_post_cookie")),
        ("POST", "/".to_owned(), format!("query={}", enc(&create("csrf_form_cookie")))),
    ] {
        let (status, _, body) = ask(&proxy, method, &target, &[("Cookie", &cookie)], &body).await;
        assert_eq!(status, 401, "{method} {target}: {body}");
        assert!(body.contains("headers only"), "{body}");
    }

    // A header credential (what Cloudflare Access injects from that cookie) on a request the
    // browser marks as cross-site: 403, whatever the method.
    let cf_header = ("Cf-Access-Jwt-Assertion", cf.as_str());
    let shapes: Vec<Vec<(&str, &str)>> = vec![
        vec![cf_header, ("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Mode", "navigate")],
        vec![cf_header, ("Sec-Fetch-Site", "same-site")],
        vec![cf_header, ("Origin", "https://evil.example")],
        vec![cf_header, ("Origin", "null")],
        vec![("Authorization", &bearer), ("Origin", "http://proxy.test.evil.example")],
        vec![("Authorization", &bearer), ("Sec-Fetch-Site", "cross-site")],
    ];
    for (i, headers) in shapes.iter().enumerate() {
        for (method, target, body) in [
            ("GET", format!("/?query={}", enc(&create(&format!("csrf_x{i}_get")))), String::new()),
            ("POST", "/".to_owned(), create(&format!("csrf_x{i}_post"))),
        ] {
            let (status, _, body) = ask(&proxy, method, &target, headers, &body).await;
            assert_eq!(status, 403, "{headers:?} {method}: {body}");
            assert!(body.contains("\"rule\":\"cross_site\""), "{body}");
        }
    }

    // Without fetch metadata (an old browser, a link followed): a GET still cannot write,
    // however it is spelled; the proxy refuses before ClickHouse would.
    let writes = [
        create("csrf_nav_create"),
        "DROP TABLE IF EXISTS default.keep_me".to_owned(),
        "INSERT INTO default.keep_me VALUES (1)".to_owned(),
        "ALTER TABLE default.keep_me DELETE WHERE 1".to_owned(),
        "TRUNCATE TABLE default.keep_me".to_owned(),
        "RENAME TABLE default.keep_me TO default.gone".to_owned(),
    ];
    ch_exec(&ch_url, "CREATE TABLE default.keep_me (a UInt8) ENGINE = MergeTree ORDER BY a").await;
    ch_exec(&ch_url, "INSERT INTO default.keep_me VALUES (7)").await;
    for sql in &writes {
        for headers in [vec![cf_header], vec![("Authorization", bearer.as_str())]] {
            let (status, _, body) = ask(&proxy, "GET", &format!("/?query={}", enc(sql)), &headers, "").await;
            assert_eq!(status, 403, "GET {sql}: {body}");
            assert!(!body.contains("\"rule\":\"clickhouse\""), "refused by the proxy, not left to ClickHouse: {body}");
        }
    }
    assert_eq!(ch_exec(&ch_url, "SELECT a FROM default.keep_me").await, "7\n", "nothing a GET sent changed it");
    assert!(!exists(&ch_url, "gone").await);
    for t in ["csrf_get_cookie", "csrf_post_cookie", "csrf_form_cookie", "csrf_nav_create"] {
        assert!(!exists(&ch_url, t).await, "{t} was created");
    }
    for i in 0..shapes.len() {
        assert!(
            !exists(&ch_url, &format!("csrf_x{i}_get")).await && !exists(&ch_url, &format!("csrf_x{i}_post")).await
        );
    }

    // Reads by GET work; the same admin may write by POST from a non-browser client.
    let (status, _, body) = ask(&proxy, "GET", "/?query=SELECT%20a%20FROM%20default.keep_me", &[cf_header], "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\n7\n"), "{body:?}"); // chunked: "2\r\n7\n\r\n0…"
    let (status, _, body) = ask(&proxy, "POST", "/", &[("Authorization", &bearer)], &create("made_by_post")).await;
    assert_eq!(status, 200, "{body}");
    assert!(exists(&ch_url, "made_by_post").await);

    // Were the proxy's own GET check gone, ClickHouse would still refuse: the request the
    // proxy builds for a GET is a GET, which ClickHouse runs read-only (even for a user that
    // may write, even with the settings the proxy adds).
    let base = UpstreamBase::parse(&ch_url).unwrap();
    let upstream = forward::HyperUpstream::new(std::time::Duration::from_secs(5));
    let params = vec![("max_execution_time".to_owned(), "5".to_owned()), ("query_id".to_owned(), "csrf-1".to_owned())];
    for sql in &writes {
        let req = forward::clickhouse_request(&base, &Method::GET, &params, sql.clone(), "default", "").unwrap();
        assert_eq!(req.method(), Method::GET);
        let resp = forward::Upstream::send(&upstream, req).await.unwrap();
        let status = resp.status();
        let text = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&text);
        assert!(!status.is_success() && text.contains("readonly"), "{sql}: {status} {text}");
        assert_eq!(forward::classify_error(&text).code, "forbidden", "{text}");
    }
    assert_eq!(ch_exec(&ch_url, "SELECT a FROM default.keep_me").await, "7\n");
    assert!(!exists(&ch_url, "csrf_nav_create").await);

    proxy.stop().await;
    ch.stop().await.unwrap();
}

/// What ClickHouse receives for a client's GET and POST: a GET stays a GET, with the SQL in
/// `query` and no body; a POST stays a POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_is_forwarded_as_a_get() {
    let fake_clickhouse = RecordingServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let upstream: Arc<dyn forward::Upstream> = Arc::new(forward::HyperUpstream::new(std::time::Duration::from_secs(5)));
    let config = config_toml(ISSUER, &format!("http://{}", fake_clickhouse.addr), dir.path(), "");
    let proxy = Running::start(&config, Some(upstream)).await;
    let bearer = format!("Bearer {}", token("ana@example.com", &["analysts"]));
    let (status, ..) = ask(&proxy, "GET", "/?query=SELECT%201", &[("Authorization", &bearer)], "").await;
    assert_eq!(status, 200);
    let (status, ..) = ask(&proxy, "POST", "/", &[("Authorization", &bearer)], "SELECT 2").await;
    assert_eq!(status, 200);
    let seen: Vec<Seen> = fake_clickhouse.requests().into_iter().filter(|s| !s.body.contains("version()")).collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].uri.starts_with("GET /?") && seen[0].uri.contains("query=SELECT"), "{}", seen[0].uri);
    assert_eq!(seen[0].body, "");
    assert!(seen[1].uri.starts_with("POST /?") && !seen[1].uri.contains("query="), "{}", seen[1].uri);
    assert_eq!(seen[1].body, "SELECT 2");
    // Methods other than GET and POST: 405 with Allow, and a decision.
    let (status, head, _) = ask(&proxy, "PUT", "/", &[("Authorization", &bearer)], "SELECT 3").await;
    assert_eq!(status, 405);
    assert_eq!(header_in(&head, "allow").as_deref(), Some("GET, POST"));
    let d = proxy.decision(&header_in(&head, "x-gatelog-decision-id").unwrap()).await;
    assert_eq!((d.status, d.action.as_str()), (405, "PUT"));
    proxy.stop().await;
}
