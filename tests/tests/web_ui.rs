//! The dashboard at `/` of the real `gatelog serve`, in Debian's headless Chromium, with a
//! generated world loaded (every Logpush dataset, planted anomalies, seed and window of its
//! own, ending a few hours before now so the default window shows it):
//!
//! - every page loads with no console error (a CSP violation is one) and no failed request,
//!   and renders at 390 px wide without sideways scrolling;
//! - the login page turns a pasted token into a session; a page without one sends the
//!   browser to the login page and back;
//! - the overview draws the decisions over time as a chart, lists top principals and the
//!   datasets' ingest;
//! - a search finds the newest denial from a planted IP, which ClickHouse names, and its event
//!   page shows its original line exactly as the generator wrote it;
//! - a responder acknowledges then resolves an alert by clicking, and ClickHouse holds both
//!   transitions by that responder; a viewer sees no such buttons;
//! - an auditor generates the report of a period, sees it verified, downloads the bundle, and
//!   `gatelog verify` accepts it against the server's public key;
//! - the page reads are in gatelog's own audit trail, by the session's principal.
//!
//! Screenshots go to `target/web-artifacts/web_ui/`.

mod detect;

use gatelog_e2e::webdriver::Browser;
use gatelog_e2e::{Serve, ServeSpec, count, free_port, gatelog, query, read_token, sha256_hex, wait_for_sinks};
use gatelog_model::UnixMillis;
use gatelog_store::testing::{TestClickHouse, random_database};
use std::path::Path;
use std::time::Duration;

const INGEST: &str = "web-ui-ingest-token-0123456789";
const RESPONDER: &str = "web-ui-responder-token-0123456789";
const AUDITOR: &str = "web-ui-auditor-token-0123456789";
const SEED: u64 = 7311;
const HOUR_MS: i64 = 3_600_000;

/// Every page must load cleanly and fit a phone.
async fn check_page(browser: &Browser, name: &str) {
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "{name}: console errors {errors:?}");
    let failed = browser.failed_requests().await;
    assert!(failed.is_empty(), "{name}: failed requests {failed:?}");
    browser.set_size(1280, 1800).await;
    browser.screenshot(name).await;
    browser.set_size(390, 844).await;
    if browser.scrolls_horizontally().await {
        let wide = browser
            .execute(
                "const w = document.documentElement.clientWidth; return [...document.querySelectorAll('body *')]\
                 .filter(e => e.getBoundingClientRect().right > w + 1).slice(0, 5)\
                 .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));",
                vec![],
            )
            .await;
        panic!("{name} scrolls sideways at 390 px; too wide: {wide}");
    }
    browser.screenshot(&format!("{name}-390")).await;
    browser.set_size(1280, 900).await;
}

/// The text of the first element matching `css`, read in one step (a page that reloads
/// itself cannot make it stale).
async fn text_now(browser: &Browser, css: &str) -> Option<String> {
    let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;";
    browser.execute(script, vec![serde_json::json!(css)]).await.as_str().map(str::to_owned)
}

/// Waits (bounded) until `css`'s text is `expected`.
async fn wait_text(browser: &Browser, css: &str, expected: &str) {
    for _ in 0..50 {
        if text_now(browser, css).await.as_deref() == Some(expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{css} never read {expected:?} on {}", browser.current_url().await);
}

/// Forgets what the browser logged so far (a refused page logs its status as an error).
async fn drain(browser: &Browser) {
    let _ = browser.console_errors().await;
    let _ = browser.failed_requests().await;
}

async fn log_in(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/login")).await;
    browser.type_into("#token", token).await;
    browser.click("#login").await;
    assert!(browser.wait_for("nav").await.is_some(), "no page after logging in: {}", browser.current_url().await);
}

async fn log_out(browser: &Browser) {
    browser.click("button.link").await;
    assert!(browser.wait_for("#token").await.is_some(), "logging out did not lead to the login page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium() {
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-artifacts/web_ui");
    let ch = TestClickHouse::start().await.expect("managed clickhouse");
    let db = random_database();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");

    // A world of its own, ending 6 h before now.
    let now = gatelog_model::Clock::now(&gatelog_model::SystemClock);
    let start = UnixMillis((now.0 - 30 * HOUR_MS).div_euclid(HOUR_MS) * HOUR_MS).to_rfc3339();
    let start = format!("{}Z", &start[..19]);
    let world = detect::generate(tmp.path(), SEED, &start, 24, 200, "default");
    let planted = world.plants.iter().find(|p| p.rule == "deny_burst_ip").expect("a deny burst is planted");

    // The signing key, and the roles the pages need (the viewer comes with `Serve`).
    let out = gatelog(&["keys", "init", "--data-dir", &data.to_string_lossy()]);
    assert!(out.status.success(), "{}", gatelog_e2e::describe(&out));
    let config = tmp.path().join("gatelog.toml");
    let mut toml = String::new();
    for (name, role, token) in [("web-responder", "responder", RESPONDER), ("web-auditor", "auditor", AUDITOR)] {
        toml.push_str(&format!(
            "[[auth.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            sha256_hex(token)
        ));
    }
    std::fs::write(&config, toml).expect("config");
    let spec = ServeSpec {
        data_dir: data.clone(),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: db.clone(),
        token: INGEST.to_owned(),
        config: Some(config),
        release: false,
    };
    let base = spec.base_url();
    let mut serve = Serve::start(&spec).await;
    detect::post_all(&base, INGEST, &world.deliveries).await;
    wait_for_sinks(&base, Duration::from_secs(180)).await;
    let open_alerts = count(&ch.url(), &format!("SELECT count() FROM {db}.alerts"));
    assert!(open_alerts > 0, "detection raised no alert on the planted world");

    let browser = Browser::start(&artifacts).await;

    // No session: the login page, then back where the browser was going.
    browser.goto(&format!("{base}/alerts")).await;
    assert!(browser.current_url().await.contains("/login?next=%2Falerts"), "{}", browser.current_url().await);
    check_page(&browser, "login").await;
    browser.type_into("#token", "not-a-token").await;
    browser.click("#login").await;
    assert!(browser.text("#message").await.contains("not known"), "a wrong token is refused");
    drain(&browser).await;
    browser.type_into("#token", &read_token(INGEST)).await;
    browser.click("#login").await;
    assert!(browser.wait_for("nav").await.is_some());
    assert!(browser.current_url().await.ends_with("/alerts"), "{}", browser.current_url().await);

    // The overview of the last 24 h: a real chart, the principals, the datasets.
    browser.goto(&format!("{base}/")).await;
    let bars = browser.find_all("#chart svg rect").await;
    assert!(bars.len() > 10, "the chart has {} bars", bars.len());
    assert!(browser.find_all("#chart svg rect.deny").await.len() > 1, "no denials drawn");
    let datasets = browser.text("#datasets").await;
    for dataset in ["http_requests", "access_requests", "gateway_http"] {
        assert!(datasets.contains(dataset), "{dataset} missing from the ingest table: {datasets}");
    }
    check_page(&browser, "overview").await;

    // Search: the newest denial from the planted IP is the first hit, and its event page
    // shows the line as received.
    let ip = planted.ips.iter().next().expect("the burst's IP");
    let sql = format!(
        "SELECT event_id, dataset FROM {db}.decisions FINAL WHERE client_ip = '{ip}' AND decision = 'deny' \
         ORDER BY time_ms DESC, event_id DESC LIMIT 1 FORMAT TSV"
    );
    let newest = query(&ch.url(), &sql);
    let mut cols = newest.trim().split('\t');
    let (event_id, dataset) = (cols.next().unwrap_or_default(), cols.next().unwrap_or_default());
    assert!(!event_id.is_empty(), "ClickHouse has no denial from {ip}");
    browser.goto(&format!("{base}/search")).await;
    browser.type_into("#q", &format!("decision:deny AND client_ip:\"{ip}\"")).await;
    browser.click("#go").await;
    let first = browser.wait_for("#hits a.hit").await.expect("a hit");
    let href = browser.attribute(&first, "href").await.unwrap_or_default();
    assert!(href.ends_with(&format!("/events/{event_id}")), "first hit {href}, ClickHouse's newest {event_id}");
    check_page(&browser, "search").await;
    // A query the index cannot parse is explained, not a failure.
    browser.goto(&format!("{base}/search?q=nosuchfield%3Ax")).await;
    assert!(
        text_now(&browser, "#message").await.is_some_and(|m| m.contains("nosuchfield")),
        "a bad query is not explained"
    );
    // The next page by cursor continues after the first page's last hit.
    browser.goto(&format!("{base}/search?q=decision%3Aallow")).await;
    let first_page = text_now(&browser, "#hits").await.unwrap_or_default();
    browser.click("#next").await;
    assert!(browser.wait_for("#hits a.hit").await.is_some(), "no second page");
    let second_page = text_now(&browser, "#hits").await.unwrap_or_default();
    assert_ne!(first_page, second_page, "the second page repeats the first");
    let q = format!("decision:deny AND client_ip:\"{ip}\"");
    let url = reqwest::Url::parse_with_params(&format!("{base}/search"), &[("q", q.as_str())]).expect("url");
    browser.goto(url.as_str()).await;
    browser.click("#hits a.hit").await;
    // The line shown is one of the generated file's lines, as written, naming the IP.
    let generated = std::fs::read_to_string(tmp.path().join(format!("{dataset}-default.ndjson")))
        .unwrap_or_else(|e| panic!("the generated {dataset} file: {e}"));
    let shown = text_now(&browser, "#raw").await.expect("the original line");
    assert!(shown.contains(ip.as_str()), "{shown}");
    assert!(generated.lines().any(|l| l.trim() == shown.trim()), "not a line as generated: {shown}");
    assert!(browser.text("#fields").await.contains(event_id));
    check_page(&browser, "event").await;

    // The principal page of the planted burst's principal, if it names one; else the first
    // top principal.
    browser.goto(&format!("{base}/")).await;
    browser.click("table a[href^='/principal']").await;
    assert!(browser.wait_for("#dim-country").await.is_some());
    assert!(browser.find_all("#dim-country tr").await.len() >= 2, "no country for the principal");
    check_page(&browser, "principal").await;

    // A viewer sees alerts but cannot act on them.
    browser.goto(&format!("{base}/alerts?state=open")).await;
    check_page(&browser, "alerts").await;
    browser.click("#alerts a[href^='/alerts/']").await;
    assert!(browser.wait_for("#state").await.is_some());
    assert!(browser.find_all("#ack").await.is_empty(), "a viewer is offered the acknowledgement");
    let alert_url = browser.current_url().await;
    let alert_id = alert_url.rsplit('/').next().unwrap_or_default().to_owned();
    log_out(&browser).await;

    // A responder acknowledges, then resolves, by clicking.
    log_in(&browser, &base, RESPONDER).await;
    browser.goto(&alert_url).await;
    assert_eq!(browser.text("#state").await, "open");
    check_page(&browser, "alert").await;
    browser.click("#ack").await;
    wait_text(&browser, "#state", "acknowledged").await;
    let by = |action: &str| {
        count(
            &ch.url(),
            &format!(
                "SELECT count() FROM {db}.alert_events WHERE alert_id = '{alert_id}' AND action = '{action}' AND actor = 'web-responder'"
            ),
        )
    };
    assert_eq!(by("ack"), 1, "the acknowledgement is not in ClickHouse");
    browser
        .execute("document.getElementById('disposition-choice').value = 'false_positive'; return true;", vec![])
        .await;
    browser.click("#resolve").await;
    wait_text(&browser, "#state", "resolved").await;
    assert_eq!(browser.text("#disposition").await, "false_positive");
    assert_eq!(by("resolve"), 1, "the resolution is not in ClickHouse");
    let disposition = query(
        &ch.url(),
        &format!(
            "SELECT disposition FROM {db}.alert_events WHERE alert_id = '{alert_id}' AND action = 'resolve' FORMAT TSV"
        ),
    );
    assert_eq!(disposition.trim(), "false_positive");
    // Reports need the auditor role.
    browser.goto(&format!("{base}/reports")).await;
    assert!(browser.text("#message").await.contains("auditor"), "a responder reached the reports");
    drain(&browser).await;
    log_out(&browser).await;

    // An auditor generates a report, sees it verified and downloads the bundle.
    log_in(&browser, &base, AUDITOR).await;
    browser.goto(&format!("{base}/reports")).await;
    check_page(&browser, "reports").await;
    browser.click("#generate").await;
    let mut verdict = None;
    for _ in 0..600 {
        if let Some(v) = text_now(&browser, "#verdict").await {
            verdict = Some(v);
            break;
        }
        if let Some(p) = text_now(&browser, "#progress.error").await {
            panic!("the report failed: {p}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let verdict = verdict.expect("the report was not done in time");
    assert!(verdict.starts_with("OK"), "{verdict}");
    check_page(&browser, "report").await;
    browser.click("#bundle").await;
    let bundle = browser.downloaded(".zip").await;
    let public = data.join("keys/signing.pub");
    let out = gatelog(&["verify", &bundle.to_string_lossy(), "--public-key", &public.to_string_lossy()]);
    assert!(out.status.success(), "gatelog verify: {}", gatelog_e2e::describe(&out));
    // Chromium logs a navigation that became a download as aborted; the file is checked above.
    drain(&browser).await;
    browser.click("#html").await;
    assert!(browser.wait_for("h1").await.is_some());
    let (errors, failed) = (browser.console_errors().await, browser.failed_requests().await);
    assert!(errors.is_empty() && failed.is_empty(), "the report page: {errors:?} {failed:?}");
    // Wide evidence tables scroll inside their own block, never the whole report.
    for (width, height) in [(1280, 900), (390, 844)] {
        browser.set_size(width, height).await;
        assert!(!browser.scrolls_horizontally().await, "the SOC 2 report scrolls sideways at {width} px");
    }
    browser.quit().await;

    // Every page read is in the audit trail, by who read it (stored as the sinks catch up).
    let audited = |principal: &str, resource: &str| {
        count(
            &ch.url(),
            &format!(
                "SELECT count() FROM {db}.access_log FINAL WHERE principal = '{principal}' AND resource = '{resource}'"
            ),
        )
    };
    let expected =
        [("e2e-viewer", "/", 1), ("web-responder", "/alerts/{id}/ack", 1), ("web-auditor", "/reports/{id}/{file}", 2)];
    for _ in 0..120 {
        if expected.iter().all(|(p, r, n)| audited(p, r) >= *n) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let trail = query(
        &ch.url(),
        &format!(
            "SELECT principal, resource, count() FROM {db}.access_log FINAL \
             GROUP BY principal, resource ORDER BY principal, resource FORMAT TSV"
        ),
    );
    for (principal, resource, n) in expected {
        assert!(audited(principal, resource) >= n, "{principal}'s reads of {resource} are not audited:\n{trail}");
    }
    assert_eq!(audited("web-responder", "/alerts/{id}/ack"), 1, "one acknowledgement, one record:\n{trail}");
    serve.terminate(Duration::from_secs(30)).await;
}
