//! `gatelog report soc2` end to end, on a generated world (another seed and window than the
//! bundled samples) posted to the real binary and stored in ClickHouse 18.16, with Tail and
//! Logpush copies of the same invocations and re-delivered records in differently cut batches:
//! - two runs over the same period give the same bytes, bundle included; the report prints the
//!   command that regenerates it;
//! - `gatelog verify` accepts the bundle, and so does `ssh-keygen -Y verify` on its manifest,
//!   as README tells auditors;
//! - the scope's count equals the test's own count from ClickHouse, and every reconciliation
//!   in the report passed;
//! - `GET /v1/reports/soc2` gives an auditor the same bundle, refuses a viewer, and its HTML
//!   opens in headless Chromium with no request beyond itself (screenshot under
//!   `target/report-artifacts/`).

#[path = "../../report/tests/common/browser.rs"]
mod browser;
#[path = "detect/mod.rs"]
mod detect;

use gatelog_e2e::{Serve, ServeSpec, count, describe, free_port, gatelog, http_client, read_token, sha256_hex};
use gatelog_store::testing::TestClickHouse;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "report-e2e-ingest-token-0123456789";
const AUDITOR: &str = "report-e2e-auditor-token-0123456789";
const FROM: &str = "2026-05-11T00:00:00Z";
const TO: &str = "2026-05-11T08:00:00Z";

fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("prefix").display().to_string();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip");
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).expect("entry");
        let mut b = Vec::new();
        f.read_to_end(&mut b).expect("read entry");
        out.insert(f.name().expect("utf-8 name").to_string(), b);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_reproducible_verifiable_and_served_to_auditors() {
    let ch = TestClickHouse::start().await.expect("clickhouse");
    let (url, db) = (ch.url(), ch.database().to_owned());
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("gatelog");
    let keys = gatelog(&["keys", "init", "--data-dir", data.to_str().expect("utf-8")]);
    assert!(keys.status.success(), "{}", describe(&keys));
    let config = dir.path().join("gatelog.toml");
    std::fs::write(
        &config,
        format!("[[auth.tokens]]\nname = \"auditor-anna\"\nrole = \"auditor\"\nsha256 = \"{}\"\n", sha256_hex(AUDITOR)),
    )
    .expect("config");
    let spec = ServeSpec {
        data_dir: data.clone(),
        port: free_port(),
        clickhouse_url: url.clone(),
        database: db.clone(),
        token: TOKEN.to_owned(),
        config: Some(config.clone()),
        release: false,
    };
    let base = spec.base_url();
    let _server = Serve::start(&spec).await;

    // A world of every dataset (Worker trace events and http_requests: two copies of each
    // invocation), then one http_requests delivery again, cut in two: the same records in
    // other batches, duplicates ClickHouse has not merged.
    let world = detect::generate(dir.path(), 5150, "2026-05-11T00:00:00Z", 6, 400, "default");
    let client = http_client();
    for d in &world.deliveries {
        assert!(detect::post(&client, &base, TOKEN, d).await, "serve stopped answering");
    }
    let again = world.deliveries.iter().find(|d| d.dataset == "http_requests").expect("an http_requests delivery");
    let text = String::from_utf8(again.body.clone()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = lines.split_at(lines.len() / 2);
    for half in [a, b] {
        let body = detect::Delivery { dataset: "http_requests", body: format!("{}\n", half.join("\n")).into_bytes() };
        assert!(detect::post(&client, &base, TOKEN, &body).await);
    }
    gatelog_e2e::wait_for_sinks(&base, Duration::from_secs(120)).await;
    let raw_rows = count(&url, &format!("SELECT count() FROM {db}.decisions"));
    let events = count(&url, &format!("SELECT count() FROM {db}.decisions FINAL"));
    assert!(raw_rows > events, "the test needs unmerged duplicates ({raw_rows} rows, {events} events)");

    // Two runs, the same bytes.
    let store_args =
        ["--clickhouse-url", &url, "--clickhouse-database", &db, "--data-dir", data.to_str().expect("utf-8")];
    let run = |out: &Path| {
        let mut args = vec!["report", "soc2", "--from", FROM, "--to", TO, "--no-progress", "--out"];
        args.push(out.to_str().expect("utf-8"));
        args.extend(store_args);
        let o = gatelog(&args);
        assert!(o.status.success(), "{}", describe(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let printed = run(&first);
    run(&second);
    let (a, b) = (files_of(&first), files_of(&second));
    assert!(a.contains_key("report.html") && a.contains_key("report.json") && a.contains_key("report.md"), "{a:?}");
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs between two runs over the same data");
    }
    assert!(printed.contains("regenerate: gatelog report soc2 --from"), "{printed}");
    assert!(!printed.contains("reconciliations: 0 of"), "{printed}");

    // Every reconciliation passed, and the scope's count is ClickHouse's own.
    let report: serde_json::Value = serde_json::from_slice(&a["report.json"]).expect("json");
    assert_eq!(report["schema"], "gatelog.report/1");
    let mut checks = 0;
    for section in report["report"]["sections"].as_array().expect("sections") {
        for table in section["tables"].as_array().expect("tables") {
            for r in table["ipe"]["reconciliations"].as_array().expect("reconciliations") {
                checks += 1;
                assert_eq!(r["passed"], true, "{}: {r}", table["id"]);
            }
        }
    }
    assert!(checks >= 1);
    let scope = &report["report"]["sections"][0]["tables"][0];
    let total: u64 = scope["rows"].as_array().expect("rows").iter().map(|r| r[2].as_u64().expect("count")).sum();
    let own = count(
        &url,
        &format!(
            "SELECT count() FROM {db}.decisions FINAL WHERE time >= toDateTime('2026-05-11 00:00:00', 'UTC') \
             AND time < toDateTime('2026-05-11 08:00:00', 'UTC') AND dataset NOT IN ('gatelog', 'gatelog_canary')"
        ),
    );
    assert_eq!(total, own, "the scope's events against decisions FINAL");
    assert!(own > 0);

    // The bundle verifies with gatelog, and its manifest with ssh-keygen.
    let bundle_name = a.keys().find(|k| k.ends_with(".zip")).expect("a bundle").clone();
    let bundle = first.join(&bundle_name);
    let public = data.join("keys/signing.pub");
    let v = gatelog(&["verify", bundle.to_str().expect("utf-8"), "--public-key", public.to_str().expect("utf-8")]);
    assert_eq!(v.status.code(), Some(0), "{}", describe(&v));
    let inside = unzip(&a[&bundle_name]);
    let check = dir.path().join("ssh");
    std::fs::create_dir_all(&check).expect("mkdir");
    std::fs::write(check.join("manifest.json"), &inside["manifest.json"]).expect("write");
    std::fs::write(check.join("manifest.json.sig"), &inside["manifest.json.sig"]).expect("write");
    let ssh = std::process::Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(data.join("keys/allowed_signers"))
        .args(["-I", "gatelog", "-n", "gatelog-bundle", "-s"])
        .arg(check.join("manifest.json.sig"))
        .stdin(std::fs::File::open(check.join("manifest.json")).expect("open"))
        .output()
        .expect("ssh-keygen is installed (openssh-client)");
    assert!(ssh.status.success(), "{}", describe(&ssh));
    let manifest: serde_json::Value = serde_json::from_slice(&inside["manifest.json"]).expect("manifest");
    let listed: Vec<&str> =
        manifest["files"].as_array().expect("files").iter().filter_map(|f| f["path"].as_str()).collect();
    assert!(listed.contains(&"report.html") && listed.iter().any(|p| p.starts_with("csv/")), "{listed:?}");

    // The route: an auditor gets the same bundle (same period, as-of and seed), a viewer none.
    let as_of = report["report"]["parameters"]["as_of"].as_str().expect("as_of").to_owned();
    let path = format!("/v1/reports/soc2?from={FROM}&to={TO}&as_of={as_of}");
    let get = |token: String, format: &'static str| {
        let client = client.clone();
        let url = format!("{base}{path}&format={format}");
        async move {
            let r = client.get(url).bearer_auth(token).timeout(Duration::from_secs(120)).send().await.expect("get");
            let status = r.status().as_u16();
            let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            (status, ct, r.bytes().await.expect("body").to_vec())
        }
    };
    let (status, ct, zip) = get(AUDITOR.to_owned(), "zip").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&zip));
    assert_eq!(ct, "application/zip");
    assert!(zip == a[&bundle_name], "the route's bundle differs from the command line's");
    let (status, ct, html) = get(AUDITOR.to_owned(), "html").await;
    assert_eq!((status, ct.as_str()), (200, "text/html; charset=utf-8"));
    assert!(html == a["report.html"]);
    assert_eq!(get(read_token(TOKEN), "html").await.0, 403, "a viewer may not read reports");
    let (status, _, body) = get(AUDITOR.to_owned(), "pdf").await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));

    // The real report in headless Chromium: nothing requested beyond the file itself.
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/report-artifacts");
    std::fs::create_dir_all(&artifacts).expect("mkdir");
    let page = artifacts.join("soc2-report.html");
    std::fs::write(&page, &a["report.html"]).expect("write");
    let (requests, errors) =
        browser::open_in_chromium(&page, &artifacts.join("soc2-report.png"), &artifacts.join("soc2-report.pdf"));
    let outside: Vec<_> = requests.iter().filter(|(u, failed)| *failed || !u.starts_with("file://")).collect();
    assert!(outside.is_empty(), "the report made external or failed requests: {outside:?}");
    assert!(errors.is_empty(), "console or network errors: {errors:#?}");
}
