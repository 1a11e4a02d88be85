//! Change evidence in `gatelog serve` (SOC 2 CC8.1): once gatelog's ClickHouse is connected,
//! every rule file of `detect.rules_dir` (`*.toml`), every Sigma file of `detect.sigma_dir`
//! (`*.yml`, `*.yaml`) and the proxy policy file of `report.proxy_policy` is recorded in
//! `config_versions` when its SHA-256 differs from the one recorded last under its kind and
//! name (`Store::record_changed_config_versions`). Rule and Sigma files are read at start (the
//! set serve runs with); the policy file again every [`POLICY_CHECK`], since the proxy reads
//! it on its own. `recorded_by` is `user@host` of this process: who ran serve when the
//! change was noticed, not necessarily who made it.

use crate::config::Config;
use anyhow::Context;
use gatelog_model::{Clock, sha256_hex};
use gatelog_store::Store;
use gatelog_store::sql::config_versions::ConfigVersion;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the proxy policy file is checked again.
pub const POLICY_CHECK: Duration = Duration::from_secs(60);

/// The files to record: `(kind, path)`, rule and Sigma files sorted by name.
pub fn files(config: &Config, with_rules: bool) -> anyhow::Result<Vec<(&'static str, PathBuf)>> {
    let mut out = Vec::new();
    if with_rules {
        if let Some(dir) = &config.detect.rules_dir {
            out.extend(listed(dir, &["toml"], "detect.rules_dir")?.into_iter().map(|p| ("rule", p)));
        }
        if let Some(dir) = &config.detect.sigma_dir {
            out.extend(listed(dir, &["yml", "yaml"], "detect.sigma_dir")?.into_iter().map(|p| ("sigma", p)));
        }
    }
    if let Some(policy) = &config.report.proxy_policy {
        out.push(("policy", policy.clone()));
    }
    Ok(out)
}

fn listed(dir: &Path, extensions: &[&str], key: &str) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("{key}: cannot read {}", dir.display()))?;
    let mut out: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("{key}: cannot read {}", dir.display()))?.path();
        let wanted = path.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.contains(&e));
        if wanted && path.is_file() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// `user@host` of this process (`USER`/`LOGNAME`, the kernel's host name).
pub fn recorded_by() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".to_owned());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{user}@{host}")
}

/// The versions of `files` as they are now, recorded at `at_ms` by `who`.
pub fn read_versions(files: &[(&'static str, PathBuf)], at_ms: i64, who: &str) -> anyhow::Result<Vec<ConfigVersion>> {
    files
        .iter()
        .map(|(kind, path)| {
            let key = match *kind {
                "rule" => "detect.rules_dir",
                "sigma" => "detect.sigma_dir",
                _ => "report.proxy_policy",
            };
            let bytes = std::fs::read(path).with_context(|| format!("{key}: cannot read {}", path.display()))?;
            let name =
                path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
            Ok(ConfigVersion {
                kind: (*kind).to_owned(),
                name,
                path: path.display().to_string(),
                sha256: sha256_hex(&bytes),
                content: String::from_utf8_lossy(&bytes).into_owned(),
                recorded_at_ms: at_ms,
                recorded_by: who.to_owned(),
                ..ConfigVersion::default()
            })
        })
        .collect()
}

/// Records the changed ones of `files` now; logs what it recorded.
pub async fn record(store: &Store, files: &[(&'static str, PathBuf)], clock: &dyn Clock) -> anyhow::Result<usize> {
    let versions = read_versions(files, clock.now().0, &recorded_by())?;
    let recorded = store.record_changed_config_versions(versions).await?;
    for v in &recorded {
        tracing::info!(kind = %v.kind, path = %v.path, sha256 = %v.sha256, "recorded a new config version");
    }
    Ok(recorded.len())
}

/// The running recorder.
#[derive(Debug)]
pub struct ConfigVersions {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ConfigVersions {
    /// Starts recording, or `None` when there is nothing to record. The files are listed
    /// (and the policy file read) now, so a missing one stops serve at start.
    pub fn start(
        config: &Config,
        mut stores: watch::Receiver<Option<Store>>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Option<ConfigVersions>> {
        let at_start = files(config, true)?;
        if at_start.is_empty() {
            return Ok(None);
        }
        read_versions(&at_start, 0, "")?;
        let policy = files(config, false)?;
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let store = loop {
                if let Some(store) = stores.borrow_and_update().clone() {
                    break store;
                }
                tokio::select! {
                    changed = stores.changed() => if changed.is_err() { return },
                    _ = stop_rx.changed() => return,
                }
            };
            let mut pending = at_start;
            loop {
                if let Err(e) = record(&store, &pending, clock.as_ref()).await {
                    // Tried again at the next check: a version is never lost, only recorded later.
                    tracing::warn!(error = %format!("{e:#}"), "cannot record config versions");
                } else {
                    pending.clone_from(&policy);
                }
                if pending.is_empty() {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(POLICY_CHECK) => {}
                    _ = stop_rx.changed() => return,
                }
            }
        });
        Ok(Some(ConfigVersions { stop, task }))
    }

    pub async fn stop(self) {
        super::background::stop_job(&self.stop, self.task, None).await;
    }
}
