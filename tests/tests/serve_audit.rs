//! gatelog audits itself, through the real binary and ClickHouse 18.16: reads of the
//! evidence (a viewer's search and alert list, an ingest token refused on a read route, a
//! request without a token) each become a record in `access_log`, allowed or denied, with who,
//! what, from where and why; `decisions` holds only what was posted, so every population
//! stays what it was; an auditor reads the trail at `GET /v1/audit`, a viewer may not; no
//! record holds a token.

use gatelog_e2e::{Serve, ServeSpec, count, free_port, gzip, http_client, read_token, sha256_hex, wait_for_sinks};
use gatelog_store::testing::TestClickHouse;
use std::time::Duration;

const TOKEN: &str = "audit-test-ingest-token-0123456789";
const AUDITOR: &str = "audit-test-auditor-token-0123456789";

async fn get(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = http_client().get(format!("{base}{path}")).header("user-agent", "audit-e2e/1");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.timeout(Duration::from_secs(10)).send().await.expect("request");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_of_the_evidence_is_recorded_apart_from_the_decisions() {
    let ch = TestClickHouse::start().await.expect("clickhouse");
    let db = ch.database().to_owned();
    let data = tempfile::tempdir().expect("tempdir");
    let config = data.path().join("gatelog.toml");
    std::fs::write(
        &config,
        format!("[[auth.tokens]]\nname = \"auditor-anna\"\nrole = \"auditor\"\nsha256 = \"{}\"\n", sha256_hex(AUDITOR)),
    )
    .expect("config");
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
    let _server = Serve::start(&spec).await;

    // Two decisions posted as the proxy would.
    let body = "{\"event_id\":\"audit-e2e-1\",\"principal\":\"carol@example.com\",\"decision\":\"allow\"}\n\
                {\"event_id\":\"audit-e2e-2\",\"principal\":\"dave@example.com\",\"decision\":\"deny\"}\n";
    let posted = http_client()
        .post(format!("{base}/v1/decisions"))
        .bearer_auth(TOKEN)
        .header("content-encoding", "gzip")
        .body(gzip(body.as_bytes()))
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status().as_u16(), 200);

    let viewer = read_token(TOKEN);
    assert_eq!(get(&base, "/v1/search?q=principal:carol", Some(&viewer)).await.0, 200);
    assert_eq!(get(&base, "/v1/alerts?limit=5", Some(&viewer)).await.0, 200);
    assert_eq!(get(&base, "/v1/search?q=x", Some(TOKEN)).await.0, 403, "the ingest role reads nothing");
    assert_eq!(get(&base, "/v1/search?q=x", None).await.0, 401);
    assert_eq!(get(&base, "/v1/audit", Some(&viewer)).await.0, 403, "a viewer may not read the trail");
    wait_for_sinks(&base, Duration::from_secs(60)).await;

    // The auditor's view: the five reads above (and the auditor's own reads, as they come).
    let mut entries = Vec::new();
    for _ in 0..100 {
        let (status, text) = get(&base, "/v1/audit?limit=1000", Some(AUDITOR)).await;
        assert_eq!(status, 200, "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        entries = json["entries"].as_array().cloned().unwrap_or_default();
        if entries.iter().filter(|e| e["principal"] != "auditor-anna").count() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let find = |principal: &str, path: &str| {
        entries
            .iter()
            .find(|e| e["principal"] == principal && e["path"] == path)
            .unwrap_or_else(|| panic!("no record of {principal} on {path}: {entries:#?}"))
            .clone()
    };
    let search = find("e2e-viewer", "/v1/search");
    assert_eq!((search["decision"].as_str(), search["status"].as_u64()), (Some("allow"), Some(200)));
    assert_eq!(search["query"], "q=principal:carol");
    assert_eq!((search["client_ip"].as_str(), search["user_agent"].as_str()), (Some("127.0.0.1"), Some("audit-e2e/1")));
    assert_eq!(find("e2e-viewer", "/v1/alerts")["decision"], "allow");
    let refused = find("e2e-viewer", "/v1/audit");
    assert_eq!((refused["decision"].as_str(), refused["status"].as_u64()), (Some("deny"), Some(403)));
    let ingest = entries.iter().find(|e| e["status"] == 403 && e["roles"][0] == "ingest").expect("the ingest refusal");
    assert_eq!(ingest["reason"], "403 role ingest may not use this route");
    let anonymous = entries.iter().find(|e| e["status"] == 401).expect("the request without a token");
    assert_eq!((anonymous["principal"].as_str(), anonymous["decision"].as_str()), (Some(""), Some("deny")));
    let text = serde_json::to_string(&entries).expect("json");
    for secret in [TOKEN, AUDITOR, viewer.as_str()] {
        assert!(!text.contains(secret), "a token in the audit trail");
    }

    // The posted decisions are the only decisions; the reads are in `access_log` only.
    let url = ch.url();
    assert_eq!(count(&url, &format!("SELECT count() FROM {db}.decisions FINAL")), 2);
    assert_eq!(count(&url, &format!("SELECT count() FROM {db}.decisions WHERE source = 'gatelog'")), 0);
    assert!(count(&url, &format!("SELECT count() FROM {db}.access_log FINAL")) >= 5);
    let (_, hits) = get(&base, "/v1/search?q=dataset:gatelog", Some(&viewer)).await;
    assert!(hits.contains("\"hits\":[]"), "reads are not indexed: {hits}");
}
