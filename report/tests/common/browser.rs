//! Opening a page in Debian's headless Chromium with a net log: what the page itself
//! requested (and whether it failed), console errors, a screenshot and an A4 PDF. Shared by
//! the renderer's test and the end-to-end report test (`tests/tests/report_soc2.rs`).
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// What the page itself asked the network for, read from Chromium's net log: requests whose
/// network isolation key is the page's own site (`file://`), as opposed to the browser's
/// background traffic (update checks, clock sync), which has none. Returns each such URL and
/// whether it failed.
pub fn page_requests(netlog: &Path) -> Vec<(String, bool)> {
    let log: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(netlog).unwrap()).unwrap();
    let event_id = |name: &str| log["constants"]["logEventTypes"][name].as_u64().unwrap();
    let start_job = event_id("URL_REQUEST_START_JOB");
    let mut page: BTreeMap<u64, String> = BTreeMap::new();
    let mut failed = std::collections::BTreeSet::new();
    for e in log["events"].as_array().unwrap() {
        let source = e["source"]["id"].as_u64().unwrap_or(0);
        let params = &e["params"];
        if e["type"].as_u64() == Some(start_job)
            && params["network_isolation_key"].as_str().is_some_and(|k| k.starts_with("file://"))
        {
            page.insert(source, params["url"].as_str().unwrap_or_default().to_owned());
        }
        if params["net_error"].as_i64().is_some_and(|n| n < 0) {
            failed.insert(source);
        }
    }
    page.into_iter().map(|(source, url)| (url, failed.contains(&source))).collect()
}

/// Opens `page` in headless Chromium twice (a screenshot, then an A4 PDF) with a net log;
/// returns the page's own requests and the console errors Chromium logged.
pub fn open_in_chromium(page: &Path, screenshot: &Path, pdf: &Path) -> (Vec<(String, bool)>, Vec<String>) {
    let mut requests = Vec::new();
    let mut errors = Vec::new();
    for output in [format!("--screenshot={}", screenshot.display()), format!("--print-to-pdf={}", pdf.display())] {
        let profile = tempfile::tempdir().unwrap();
        let netlog = profile.path().join("netlog.json");
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--no-first-run",
                "--no-pdf-header-footer",
                "--hide-scrollbars",
                "--window-size=1240,1754",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().join("profile").display()))
            .arg(format!("--log-net-log={}", netlog.display()))
            .arg(output)
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium is not installed: apt-get install chromium (./x deps does)");
        assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr);
        errors.extend(
            stderr
                .lines()
                .filter(|l| l.contains(":CONSOLE") || l.contains("Refused to") || l.contains("net::ERR"))
                .map(str::to_owned),
        );
        requests.extend(page_requests(&netlog));
    }
    (requests, errors)
}
