//! The change side of the store: versions of rule, Sigma and policy files recorded in
//! `config_versions` ([`crate::sql::config_versions`] has the SQL and why).

use crate::sql::config_versions::{ConfigVersion, ConfigVersionQueries, LatestVersion, version_row};
use crate::store::with_retries;
use crate::{Store, StoreError};

impl Store {
    fn config_version_queries(&self) -> ConfigVersionQueries {
        ConfigVersionQueries::new(&self.inner.options)
    }

    /// Records versions (each sealed with its id; one recorded twice is one row).
    pub async fn record_config_versions(&self, versions: &[ConfigVersion]) -> Result<(), StoreError> {
        if versions.is_empty() {
            return Ok(());
        }
        let q = self.config_version_queries();
        let rows: Vec<String> = versions.iter().map(|v| version_row(&v.clone().seal())).collect();
        let sql = format!("{}{}", q.insert, rows.join(", "));
        let table = self.qualified("config_versions");
        with_retries(&self.inner.config, "insert", || self.execute("INSERT", &table, &sql)).await
    }

    /// Per kind and name, the hash recorded last.
    pub async fn latest_config_versions(&self) -> Result<Vec<LatestVersion>, StoreError> {
        let sql = self.config_version_queries().latest;
        self.fetch_all("SELECT", &self.qualified("config_versions"), &sql).await
    }
}

impl Store {
    /// Records each of `candidates` whose SHA-256 differs from the one recorded last under its
    /// kind and name (or that has none), and returns those recorded: a file unchanged since
    /// the last record is not recorded again.
    pub async fn record_changed_config_versions(
        &self,
        candidates: Vec<ConfigVersion>,
    ) -> Result<Vec<ConfigVersion>, StoreError> {
        let latest = self.latest_config_versions().await?;
        let changed: Vec<ConfigVersion> = candidates
            .into_iter()
            .filter(|c| !latest.iter().any(|l| l.kind == c.kind && l.name == c.name && l.sha256 == c.sha256))
            .map(ConfigVersion::seal)
            .collect();
        self.record_config_versions(&changed).await?;
        Ok(changed)
    }
}
