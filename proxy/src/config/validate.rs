//! Loading and validation of a [`ProxyConfig`]: everything serde cannot check, each
//! message naming its key.

use super::{BiRoute, ConfigError, ProxyConfig, RoleConfig, invalid};
use crate::guard::{SAFE_TABLE_FUNCTIONS, StatementKind, table_function_safe};
use crate::http_path;
use crate::net::{Cidr, UpstreamBase};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Paths the proxy answers itself; no BI route may take them.
pub(crate) const RESERVED_PATHS: &[&str] = &["/", "/ping", "/healthz", "/metrics"];

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
        UpstreamBase::parse(&self.clickhouse.url).map_err(|m| invalid("clickhouse.url", m))?;
        for (k, d) in [
            ("stalled_client_timeout", self.clickhouse.stalled_client_timeout),
            ("kill_timeout", self.clickhouse.kill_timeout),
        ] {
            if d < Duration::from_secs(1) {
                return Err(invalid(format!("clickhouse.{k}"), "expected at least 1s"));
            }
        }
        self.clickhouse.password.check_shape("clickhouse.password")?;
        for p in &self.clickhouse.pass_params {
            if crate::forward::is_forbidden_param(p) {
                return Err(invalid("clickhouse.pass_params", format!("`{p}` may not be passed through")));
            }
        }
        let names = gatelog_identity::config::validate_issuers(&self.issuers, "issuers")?;
        gatelog_identity::config::validate_mappings(&self.role_mappings, "role_mappings", &names, |role| {
            if self.roles.contains_key(role) { Ok(()) } else { Err(format!("no role `{role}` in [roles]")) }
        })?;
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
        if self.decisions.spill_max_bytes.as_u64() < 64 * 1024 {
            return Err(invalid("decisions.spill_max_bytes", "expected at least 64 KiB"));
        }
        if self.decisions.max_query_bytes.as_u64() < 1024 {
            return Err(invalid("decisions.max_query_bytes", "expected at least 1 KiB"));
        }
        self.validate_bi()?;
        self.validate_ingress()
    }

    fn validate_bi(&self) -> Result<(), ConfigError> {
        for (k, h) in [("bi.principal_header", &self.bi.principal_header), ("bi.roles_header", &self.bi.roles_header)] {
            if let Some(h) = h {
                header_name(k, h)?;
                if ["authorization", "cookie", "host", "connection"].iter().any(|n| h.eq_ignore_ascii_case(n)) {
                    return Err(invalid(k, format!("`{h}` cannot carry the identity")));
                }
            }
        }
        let mut prefixes = std::collections::BTreeSet::new();
        for (i, r) in self.bi.routes.iter().enumerate() {
            let key = format!("bi.routes[{i}].prefix");
            route_prefix(&key, r)?;
            if !prefixes.insert(r.prefix.to_ascii_lowercase()) {
                return Err(invalid(key, format!("`{}` is the prefix of another route", r.prefix)));
            }
            UpstreamBase::parse(&r.upstream).map_err(|m| invalid(format!("bi.routes[{i}].upstream"), m))?;
        }
        for (name, role) in &self.roles {
            for (k, prefixes) in [("http_allow", &role.http_allow), ("http_deny", &role.http_deny)] {
                for p in prefixes {
                    let key = format!("roles.{name}.{k}");
                    let bare = p.trim_end_matches('*');
                    if http_path::normalize(bare).as_deref() != Ok(bare) {
                        return Err(invalid(key, format!("`{p}` is not a normalised path (no //, ., .., %, ;, \\)")));
                    }
                    let insensitive = self.bi.routes.iter().any(|r| {
                        r.case_insensitive && http_path::lowercase(bare).starts_with(&r.prefix.to_ascii_lowercase())
                    });
                    if insensitive && http_path::lowercase(bare) != bare {
                        return Err(invalid(
                            key,
                            format!("`{p}` is under a case_insensitive route: write it in lower case"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_ingress(&self) -> Result<(), ConfigError> {
        let ingress = &self.ingress;
        for t in &ingress.trusted_proxies {
            Cidr::parse(t).map_err(|m| invalid("ingress.trusted_proxies", m))?;
        }
        if let Some(h) = &ingress.client_ip_header {
            header_name("ingress.client_ip_header", h)?;
            if ingress.trusted_proxies.is_empty() {
                return Err(invalid(
                    "ingress.client_ip_header",
                    "set ingress.trusted_proxies too: the header is believed only from them",
                ));
            }
        }
        Ok(())
    }
}

fn header_name(key: &str, name: &str) -> Result<(), ConfigError> {
    http::HeaderName::try_from(name).map(|_| ()).map_err(|_| invalid(key, format!("`{name}` is not a header name")))
}

/// A route prefix starts and ends with `/`, is in normal form and takes no reserved path.
fn route_prefix(key: &str, r: &BiRoute) -> Result<(), ConfigError> {
    let p = &r.prefix;
    if !p.starts_with('/') || !p.ends_with('/') || p == "/" {
        return Err(invalid(key, format!("`{p}` must start and end with / (like /bi/metabase/)")));
    }
    if http_path::normalize(p).as_deref() != Ok(p.as_str()) {
        return Err(invalid(key, format!("`{p}` is not a normalised path (no //, ., .., %, ;, \\)")));
    }
    if r.case_insensitive && http_path::lowercase(p) != *p {
        return Err(invalid(key, format!("`{p}` is a case_insensitive route: write it in lower case")));
    }
    let bare = p.trim_end_matches('/').to_ascii_lowercase();
    if RESERVED_PATHS.iter().any(|r| r.trim_end_matches('/') == bare) {
        return Err(invalid(key, format!("`{p}` is the proxy's own path")));
    }
    Ok(())
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
        if !table_function_safe(&f.to_ascii_lowercase()) {
            return Err(invalid(
                key("table_functions"),
                format!(
                    "`{f}` can read outside the policy and can never be allowed (allowed: {})",
                    SAFE_TABLE_FUNCTIONS.join(", ")
                ),
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
    fn edge_keys_are_checked_with_their_key_named() {
        let issuer = "[[issuers]]\nname=\"x\"\nissuer=\"https://i\"\naudiences=[\"a\"]\n";
        for (text, key) in [
            (format!("{issuer}max_token_lifetime = \"10s\"\n"), "issuers[0].max_token_lifetime"),
            (format!("{issuer}max_token_lifetime = \"400d\"\n"), "issuers[0].max_token_lifetime"),
            (format!("{issuer}cookie = \"a;b\"\n"), "issuers[0].cookie"),
            (format!("{issuer}header = \"bad header\"\n"), "issuers[0].header"),
            (format!("{issuer}header = \"Cookie\"\n"), "issuers[0].header"),
            ("[ingress]\ntrusted_proxies = [\"10.0.0.0/40\"]\n".to_owned(), "ingress.trusted_proxies"),
            ("[ingress]\nclient_ip_header = \"x-real-ip\"\n".to_owned(), "ingress.client_ip_header"),
            ("[decisions]\nspill_max_bytes = \"1 KiB\"\n".to_owned(), "decisions.spill_max_bytes"),
            ("[decisions]\nmax_query_bytes = \"10 B\"\n".to_owned(), "decisions.max_query_bytes"),
            ("[clickhouse]\nkill_timeout = \"0s\"\n".to_owned(), "clickhouse.kill_timeout"),
            ("[clickhouse]\nstalled_client_timeout = \"500ms\"\n".to_owned(), "clickhouse.stalled_client_timeout"),
            ("[clickhouse]\nurl = \"http://u:p@127.0.0.1:8123\"\n".to_owned(), "clickhouse.url"),
        ] {
            let err = ProxyConfig::parse(&text).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{key}:")), "{text} => {err}");
        }
        let err = ProxyConfig::parse(&format!("{issuer}email_verified = \"maybe\"\n")).unwrap_err().to_string();
        assert!(err.contains("email_verified") || err.contains("unknown variant"), "{err}");
        let c = ProxyConfig::parse(&format!("{issuer}email_verified = \"required\"\n")).unwrap();
        assert_eq!(c.issuers[0].email_verified, crate::config::EmailVerified::Required);
        assert_eq!(c.issuers[0].max_token_lifetime, Duration::from_secs(86_400));
        assert_eq!(c.ingress.per_ip_requests_per_minute, 6000);
        assert_eq!(c.decisions.spill_max_bytes, ByteSize::gib(1));
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
