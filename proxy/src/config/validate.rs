//! Loading and validation of a [`ProxyConfig`]: everything serde cannot check, each
//! message naming its key.

use super::{ConfigError, ProxyConfig, RoleConfig, invalid};
use crate::guard::{DANGEROUS_TABLE_FUNCTIONS, StatementKind};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MAX_LEEWAY: Duration = Duration::from_secs(300);

impl ProxyConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<ProxyConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_owned(), message },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<ProxyConfig, ConfigError> {
        let config: ProxyConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: PathBuf::from("<config>"), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks everything serde cannot; the first problem is returned, naming its key.
    /// Secrets are only checked for shape here; they are read when the proxy starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.clickhouse.url.starts_with("http://") && !self.clickhouse.url.starts_with("https://") {
            return Err(invalid("clickhouse.url", "expected an http:// or https:// URL"));
        }
        self.clickhouse.password.check_shape("clickhouse.password")?;
        for p in &self.clickhouse.pass_params {
            if crate::forward::is_forbidden_param(p) {
                return Err(invalid("clickhouse.pass_params", format!("`{p}` may not be passed through")));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, iss) in self.issuers.iter().enumerate() {
            let key = format!("issuers[{i}]");
            if iss.name.is_empty() || !names.insert(iss.name.clone()) {
                return Err(invalid(format!("{key}.name"), "expected a unique, non-empty name"));
            }
            if iss.issuer.is_empty() {
                return Err(invalid(format!("{key}.issuer"), "expected the issuer URL"));
            }
            if iss.audiences.is_empty() {
                return Err(invalid(format!("{key}.audiences"), "expected at least one audience"));
            }
            if iss.algorithms.is_empty() {
                return Err(invalid(format!("{key}.algorithms"), "expected at least one algorithm"));
            }
            for alg in &iss.algorithms {
                crate::identity::jwt::parse_algorithm(alg).map_err(|m| invalid(format!("{key}.algorithms"), m))?;
            }
            if iss.leeway > MAX_LEEWAY {
                return Err(invalid(format!("{key}.leeway"), "at most 5m"));
            }
            if iss.principal_claims.is_empty() {
                return Err(invalid(format!("{key}.principal_claims"), "expected at least one claim"));
            }
        }
        for (i, m) in self.role_mappings.iter().enumerate() {
            let key = format!("role_mappings[{i}]");
            if !self.roles.contains_key(&m.role) {
                return Err(invalid(format!("{key}.role"), format!("no role `{}` in [roles]", m.role)));
            }
            if let Some(iss) = &m.issuer
                && !names.contains(iss)
            {
                return Err(invalid(format!("{key}.issuer"), format!("no issuer named `{iss}`")));
            }
            if m.groups.is_empty() && m.email_domains.is_empty() && m.subjects.is_empty() {
                return Err(invalid(key, "expected groups, email_domains or subjects"));
            }
        }
        for (name, role) in &self.roles {
            validate_role(name, role)?;
        }
        if self.decisions.buffer == 0 {
            return Err(invalid("decisions.buffer", "expected a positive integer"));
        }
        if self.decisions.batch_size == 0 {
            return Err(invalid("decisions.batch_size", "expected a positive integer"));
        }
        self.decisions.token.check_shape("decisions.token")?;
        for (i, r) in self.bi.routes.iter().enumerate() {
            if !r.prefix.starts_with('/') || r.prefix == "/" {
                return Err(invalid(format!("bi.routes[{i}].prefix"), "expected a path like /bi/metabase/"));
            }
            if !r.upstream.starts_with("http://") && !r.upstream.starts_with("https://") {
                return Err(invalid(format!("bi.routes[{i}].upstream"), "expected an http:// URL"));
            }
        }
        Ok(())
    }
}

fn validate_role(name: &str, role: &RoleConfig) -> Result<(), ConfigError> {
    let key = |k: &str| format!("roles.{name}.{k}");
    for (k, v) in [
        ("max_rows_to_read", role.max_rows_to_read),
        ("max_result_rows", role.max_result_rows),
        ("requests_per_minute", role.requests_per_minute),
        ("max_concurrent_queries", role.max_concurrent_queries),
    ] {
        if matches!(v, Some(n) if n <= 0) {
            return Err(invalid(key(k), "expected a positive integer"));
        }
    }
    if matches!(role.max_bytes_to_read, Some(b) if b.as_u64() == 0) {
        return Err(invalid(key("max_bytes_to_read"), "expected a positive size"));
    }
    if matches!(role.max_execution_time, Some(d) if d.as_secs() == 0) {
        return Err(invalid(key("max_execution_time"), "expected at least 1s"));
    }
    if role.statements.is_empty() {
        return Err(invalid(key("statements"), "expected at least one statement kind"));
    }
    for s in &role.statements {
        match StatementKind::parse(s) {
            Some(k) if k.configurable() => {}
            Some(_) => return Err(invalid(key("statements"), format!("`{s}` can never be allowed"))),
            None => return Err(invalid(key("statements"), format!("unknown statement kind `{s}`"))),
        }
    }
    for f in &role.table_functions {
        if DANGEROUS_TABLE_FUNCTIONS.contains(&f.to_ascii_lowercase().as_str()) {
            return Err(invalid(
                key("table_functions"),
                format!("`{f}` reaches outside ClickHouse and can never be allowed"),
            ));
        }
    }
    for (k, globs) in [("allow", &role.allow), ("deny", &role.deny)] {
        for g in globs {
            if g.is_empty() || g.split('.').count() > 2 {
                return Err(invalid(key(k), format!("`{g}` is not a table glob like `db.*` or `db.table`")));
            }
        }
    }
    for (k, prefixes) in [("http_allow", &role.http_allow), ("http_deny", &role.http_deny)] {
        if let Some(p) = prefixes.iter().find(|p| !p.starts_with('/')) {
            return Err(invalid(key(k), format!("`{p}` is not a path prefix starting with /")));
        }
    }
    if let Some(pw) = &role.clickhouse_password {
        pw.check_shape(&key("clickhouse_password"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretRef;
    use bytesize::ByteSize;

    #[test]
    fn messages_name_the_key() {
        let err = ProxyConfig::parse("[roles.analyst]\nallow = [\"analytics.*\"]\nmax_rows_to_read = 0\n").unwrap_err();
        assert_eq!(err.to_string(), "roles.analyst.max_rows_to_read: expected a positive integer");
        let err = ProxyConfig::parse("[roles.analyst]\nallow = [\"a.*\"]\nstatements = [\"set\"]\n").unwrap_err();
        assert!(err.to_string().starts_with("roles.analyst.statements:"), "{err}");
        let err = ProxyConfig::parse("[roles.a]\ntable_functions = [\"url\"]\n").unwrap_err();
        assert!(err.to_string().starts_with("roles.a.table_functions:"), "{err}");
        let err = ProxyConfig::parse("[roles.a]\nmax_rowz = 1\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `max_rowz`"), "{err}");
        let err = ProxyConfig::parse(
            "[[issuers]]\nname=\"x\"\nissuer=\"https://i\"\naudiences=[\"a\"]\nalgorithms=[\"HS256\"]\n",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("issuers[0].algorithms:"), "{err}");
    }

    #[test]
    fn defaults_and_units() {
        let c = ProxyConfig::parse(
            "[roles.a]\nallow=[\"analytics.*\"]\nmax_execution_time=\"30s\"\nmax_bytes_to_read=\"1 GiB\"\n",
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8124");
        let r = &c.roles["a"];
        assert_eq!(r.max_execution_time, Some(Duration::from_secs(30)));
        assert_eq!(r.max_bytes_to_read, Some(ByteSize::gib(1)));
        assert_eq!(r.statements, vec!["select".to_string()]);
    }

    #[test]
    fn secrets_are_redacted() {
        let s = SecretRef { value: Some("hunter2".into()), ..Default::default() };
        assert!(!format!("{s:?}").contains("hunter2"));
        let r = s.resolve("k").unwrap();
        assert!(!format!("{r:?}").contains("hunter2"));
        assert_eq!(r.expose(), "hunter2");
        let both = SecretRef { value: Some("a".into()), env: Some("B".into()), file: None };
        assert!(both.resolve("clickhouse.password").unwrap_err().to_string().starts_with("clickhouse.password:"));
    }
}
