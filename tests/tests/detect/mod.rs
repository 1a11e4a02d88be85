//! Generated worlds for the detection tests: every Logpush dataset of `gen_samples.py` for one
//! seed and window, posted to `gatelog serve` as Logpush would deliver it (each dataset's
//! records of a 10-minute window in one batch, windows in time order), and the planted
//! anomalies read from the generator's summaries.
#![allow(dead_code)]

use gatelog_e2e::http_client;
use gatelog_model::UnixMillis;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const DATASETS: [&str; 7] = [
    "workers_trace_events",
    "http_requests",
    "firewall_events",
    "access_requests",
    "audit_logs",
    "audit_logs_v2",
    "gateway_http",
];
const WINDOW_MS: i64 = 10 * 60_000;
/// The time field of each dataset's records.
const TIME_FIELDS: [&str; 6] =
    ["EventTimestampMs", "EdgeStartTimestamp", "Datetime", "CreatedAt", "When", "ActionTimestamp"];

/// A planted anomaly: the rule that must find it and who/what the alert must name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Plant {
    pub kind: String,
    pub rule: &'static str,
    pub principals: BTreeSet<String>,
    pub ips: BTreeSet<String>,
}

pub fn rule_for(kind: &str) -> &'static str {
    match kind {
        "runaway_select" => "runaway_select",
        "new_country_offhours" => "new_country",
        "deny_burst" => "deny_burst_ip",
        "offhours_privileged_change" => "privileged_change",
        "dlp_exfil" => "dlp_exfil",
        other => panic!("the generator planted an unknown kind {other:?}; teach the test about it"),
    }
}

/// One batch to post: a dataset's records of one window.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub dataset: &'static str,
    pub body: Vec<u8>,
}

/// A generated world: its deliveries in time order and what was planted.
#[derive(Debug)]
pub struct World {
    pub deliveries: Vec<Delivery>,
    pub plants: Vec<Plant>,
}

fn generator() -> PathBuf {
    let shared = std::env::var_os("GATELOG_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("formats/gen_samples.py")
}

fn strings(v: &serde_json::Value) -> BTreeSet<String> {
    match v {
        serde_json::Value::String(s) => BTreeSet::from([s.to_ascii_lowercase()]),
        serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str()).map(str::to_ascii_lowercase).collect(),
        _ => BTreeSet::new(),
    }
}

/// Generates every dataset of the world (`anomalies`: `default` or `none`) into `dir`.
pub fn generate(dir: &Path, seed: u64, start: &str, hours: u32, count: u32, anomalies: &str) -> World {
    let mut windows: BTreeMap<(i64, usize), Vec<u8>> = BTreeMap::new();
    let mut plants = BTreeSet::new();
    for (i, dataset) in DATASETS.iter().enumerate() {
        let out = dir.join(format!("{dataset}-{anomalies}.ndjson"));
        let summary = dir.join(format!("{dataset}-{anomalies}.json"));
        let status = Command::new("python3")
            .arg(generator())
            .args(["--dataset", dataset, "--seed", &seed.to_string(), "--start", start])
            .args(["--hours", &hours.to_string(), "--count", &count.to_string(), "--anomalies", anomalies])
            .arg("--out")
            .arg(&out)
            .arg("--summary-out")
            .arg(&summary)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("python3 runs gen_samples.py");
        assert!(status.success(), "gen_samples.py --dataset {dataset} failed");
        let text = std::fs::read_to_string(&out).expect("generated file");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("generated lines are JSON");
            let time = TIME_FIELDS
                .iter()
                .find_map(|f| v.get(*f).and_then(|t| UnixMillis::from_json(t).ok()))
                .unwrap_or_else(|| panic!("{dataset}: no time field in {line}"));
            let body = windows.entry((time.0.div_euclid(WINDOW_MS), i)).or_default();
            body.extend_from_slice(line.as_bytes());
            body.push(b'\n');
        }
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("summary JSON");
        for (kind, p) in summary["planted"].as_object().into_iter().flatten() {
            let mut principals = strings(&p["principal"]);
            principals.extend(strings(&p["principals"]));
            let mut ips = strings(&p["ip"]);
            ips.extend(strings(&p["ip_candidates"]));
            plants.insert(Plant { kind: kind.clone(), rule: rule_for(kind), principals, ips });
        }
    }
    let deliveries = windows.into_iter().map(|((_, i), body)| Delivery { dataset: DATASETS[i], body }).collect();
    World { deliveries, plants: plants.into_iter().collect() }
}

/// Posts one delivery until a 2xx (connection errors and 429/503 retried, bounded);
/// false when the server stayed unreachable.
pub async fn post(client: &reqwest::Client, base_url: &str, token: &str, d: &Delivery) -> bool {
    let url = format!("{base_url}/v1/logpush/{}", d.dataset);
    for _ in 0..100 {
        let sent = client
            .post(&url)
            .bearer_auth(token)
            .header("Content-Type", "application/x-ndjson")
            .body(d.body.clone())
            .timeout(std::time::Duration::from_secs(20))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) if r.status().as_u16() == 429 || r.status().as_u16() == 503 => {}
            Ok(r) => panic!("{url} answered {}: {}", r.status(), r.text().await.unwrap_or_default()),
            Err(_) => {}
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// Posts every delivery in order.
pub async fn post_all(base_url: &str, token: &str, deliveries: &[Delivery]) {
    post_counting(base_url, token, deliveries, &std::sync::atomic::AtomicUsize::new(0)).await;
}

/// Posts every delivery in order, counting those answered 2xx in `posted`.
pub async fn post_counting(
    base_url: &str,
    token: &str,
    deliveries: &[Delivery],
    posted: &std::sync::atomic::AtomicUsize,
) {
    let client = http_client();
    for d in deliveries {
        assert!(post(&client, base_url, token, d).await, "{base_url} stayed unreachable");
        posted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An alert as `gatelog alerts list --json` prints it.
#[derive(Debug, Clone)]
pub struct ListedAlert {
    pub alert_id: String,
    pub rule_id: String,
    pub principal: String,
    pub client_ip: String,
    pub state: String,
    pub count: u64,
}

/// `gatelog alerts list --json` against ClickHouse at `url`, database `db`.
pub fn list_alerts(url: &str, db: &str, data_dir: &Path, extra: &[&str]) -> Vec<ListedAlert> {
    let dir = data_dir.to_string_lossy().into_owned();
    let mut args = vec!["alerts", "list", "--json", "--limit", "100000", "--clickhouse-url", url];
    args.extend(["--clickhouse-database", db, "--data-dir", &dir]);
    args.extend(extra);
    let out = gatelog_e2e::gatelog(&args);
    assert!(out.status.success(), "alerts list failed:\n{}", gatelog_e2e::describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON alert per line");
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            ListedAlert {
                alert_id: s("alert_id"),
                rule_id: s("rule_id"),
                principal: s("principal").to_ascii_lowercase(),
                client_ip: s("client_ip").to_ascii_lowercase(),
                state: s("state"),
                count: v["count"].as_u64().unwrap_or(0),
            }
        })
        .collect()
}

/// The alerts that report `plant`: its rule, naming one of its principals (a deny burst is
/// about its IP) and one of its IPs where it has them.
pub fn reporting<'a>(alerts: &'a [ListedAlert], plant: &Plant) -> Vec<&'a ListedAlert> {
    alerts
        .iter()
        .filter(|a| {
            a.rule_id == plant.rule
                && (plant.kind == "deny_burst"
                    || plant.principals.is_empty()
                    || plant.principals.contains(&a.principal))
                && (plant.ips.is_empty() || plant.ips.contains(&a.client_ip))
        })
        .collect()
}
