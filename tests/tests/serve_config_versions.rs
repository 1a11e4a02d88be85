//! Change evidence (CC8.1) in `gatelog serve` against real ClickHouse 18.16: at start, every
//! Sigma file of `detect.sigma_dir` and the policy file of `report.proxy_policy` is recorded
//! in `config_versions`; a restart after the policy was edited records exactly its new
//! version (with its text and who), and none of the unchanged Sigma files again.

use gatelog_e2e::{Serve, ServeSpec, count, free_port, query};
use gatelog_store::testing::{TestClickHouse, random_database};
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "config-versions-token-0123456789";

#[allow(clippy::unwrap_used)]
fn copy_sigma_examples(to: &Path) -> u64 {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/sigma/examples");
    std::fs::create_dir_all(to).unwrap();
    let mut n = 0;
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        n += 1;
    }
    n
}

/// Waits (bounded) until `config_versions` holds `rows` rows.
async fn wait_for_rows(url: &str, database: &str, rows: u64) {
    let sql = format!("SELECT count() FROM {database}.config_versions FINAL");
    let exists =
        format!("SELECT count() FROM system.tables WHERE database = '{database}' AND name = 'config_versions'");
    for _ in 0..300 {
        if count(url, &exists) == 1 && count(url, &sql) >= rows {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("config_versions did not reach {rows} rows; it has {}", count(url, &sql));
}

#[tokio::test]
#[allow(clippy::unwrap_used)]
async fn serve_records_each_new_version_of_its_files_once() {
    let mut ch = TestClickHouse::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let sigma_dir = tmp.path().join("sigma");
    let sigma_files = copy_sigma_examples(&sigma_dir);
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, "[roles.analyst]\nmax_rows = 10\n").unwrap();
    let config = tmp.path().join("gatelog.toml");
    std::fs::write(
        &config,
        format!("[detect]\nsigma_dir = {:?}\n\n[report]\nproxy_policy = {:?}\n", sigma_dir, policy),
    )
    .unwrap();
    let database = random_database();
    let spec = ServeSpec {
        data_dir: tmp.path().join("data"),
        port: free_port(),
        clickhouse_url: ch.url(),
        database: database.clone(),
        token: TOKEN.to_owned(),
        config: Some(config),
        release: false,
    };
    let url = ch.url();

    let mut serve = Serve::start(&spec).await;
    wait_for_rows(&url, &database, sigma_files + 1).await;
    assert!(serve.terminate(Duration::from_secs(30)).await.is_some(), "{}", serve.log_tail(30));

    // Restarted after the policy was edited: the policy's new version is recorded, in the same
    // check as the unchanged Sigma files, which are not recorded again.
    std::fs::write(&policy, "[roles.analyst]\nmax_rows = 99\n").unwrap();
    let mut serve = Serve::start(&spec).await;
    wait_for_rows(&url, &database, sigma_files + 2).await;
    assert!(serve.terminate(Duration::from_secs(30)).await.is_some(), "{}", serve.log_tail(30));
    let by_kind = query(
        &url,
        &format!("SELECT kind, count() FROM {database}.config_versions FINAL GROUP BY kind ORDER BY kind FORMAT TSV"),
    );
    assert_eq!(by_kind, format!("policy\t2\nsigma\t{sigma_files}"));
    let latest = query(
        &url,
        &format!(
            "SELECT content, recorded_by FROM {database}.config_versions FINAL WHERE kind = 'policy' \
             ORDER BY recorded_at_ms DESC LIMIT 1 FORMAT TSV"
        ),
    );
    let (content, who) = latest.split_once('\t').unwrap();
    assert_eq!(content, "[roles.analyst]\\nmax_rows = 99\\n");
    assert!(who.contains('@'), "{who}");

    ch.stop().await.unwrap();
}
