//! Policy dry-run: `gatelog proxy check --config proxy.toml --role ROLE --sql "SQL"`.
//! The same guard and policy the proxy runs, without identity, ClickHouse or emission.

use crate::config::ProxyConfig;
use crate::guard;
use crate::policy::{Limits, Policy};
use serde::Serialize;

/// The dry-run's answer. `Display` is the human text; `exit_code` is 0 allow, 1 deny,
/// 2 when the configuration itself is unusable.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// `allow`, `deny` or `error` (configuration error).
    pub decision: String,
    pub role: String,
    pub rule: String,
    pub reason: String,
    /// The statement kind, when the SQL parsed.
    pub statement: Option<String>,
    pub database: String,
    pub tables: Vec<String>,
    pub table_functions: Vec<String>,
    /// The role's limits (present when the role exists).
    pub limits: Option<Limits>,
    /// What the proxy would send to ClickHouse as settings for an allowed query.
    pub clickhouse_settings: Vec<(String, String)>,
    /// The SQL the proxy would forward (rendered by the guard from what it checked).
    pub forwarded: Option<String>,
}

impl CheckReport {
    pub fn exit_code(&self) -> i32 {
        match self.decision.as_str() {
            "allow" => 0,
            "deny" => 1,
            _ => 2,
        }
    }

    pub fn allowed(&self) -> bool {
        self.decision == "allow"
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "decision: {}", self.decision.to_uppercase())?;
        writeln!(f, "role:     {}", self.role)?;
        writeln!(f, "rule:     {}", self.rule)?;
        writeln!(f, "reason:   {}", self.reason)?;
        if let Some(s) = &self.statement {
            writeln!(f, "statement: {s}")?;
        }
        writeln!(f, "database: {}", self.database)?;
        let list = |v: &[String]| if v.is_empty() { "(none)".to_owned() } else { v.join(", ") };
        writeln!(f, "tables:   {}", list(&self.tables))?;
        writeln!(f, "table functions: {}", list(&self.table_functions))?;
        if let Some(l) = &self.limits {
            let rate = l.requests_per_minute.map_or("unlimited".to_owned(), |n| format!("{n}/min"));
            let conc = l.max_concurrent_queries.map_or("unlimited".to_owned(), |n| n.to_string());
            writeln!(f, "limits:   requests {rate}, concurrent queries {conc}")?;
        }
        if self.clickhouse_settings.is_empty() {
            writeln!(f, "clickhouse settings: (none)")?;
        } else {
            let s: Vec<String> = self.clickhouse_settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(f, "clickhouse settings: {}", s.join(" "))?;
        }
        if let Some(sql) = &self.forwarded {
            writeln!(f, "forwarded: {sql}")?;
        }
        Ok(())
    }
}

/// Decides `sql` for `role` as the proxy would (with `database` as the request's
/// `database` parameter).
pub fn check(config: &ProxyConfig, role: &str, sql: &str, database: Option<&str>) -> CheckReport {
    let mut report = CheckReport {
        decision: "deny".into(),
        role: role.to_owned(),
        rule: String::new(),
        reason: String::new(),
        statement: None,
        database: String::new(),
        tables: Vec::new(),
        table_functions: Vec::new(),
        limits: None,
        clickhouse_settings: Vec::new(),
        forwarded: None,
    };
    let policy = match config.validate().and_then(|()| Policy::compile_without_secrets(config)) {
        Ok(p) => p,
        Err(e) => {
            report.decision = "error".into();
            report.rule = "config".into();
            report.reason = e.to_string();
            return report;
        }
    };
    let roles = vec![role.to_owned()];
    report.database = policy.default_database(&roles, database);
    let Some(role_policy) = policy.role(role) else {
        report.rule = format!("roles.{role}");
        report.reason = format!("role {role} is not defined (default deny)");
        return report;
    };
    report.limits = Some(role_policy.limits.clone());
    match guard::analyze(sql, &report.database) {
        Err(rejection) => {
            report.rule = rejection.rule().to_owned();
            report.reason = rejection.to_string();
        }
        Ok(analysis) => {
            report.statement = Some(analysis.kind.as_str().to_owned());
            report.tables = analysis.tables.iter().map(|t| t.to_string()).collect();
            report.table_functions = analysis.table_functions.clone();
            let verdict = policy.evaluate_sql(&roles, &analysis);
            report.rule = verdict.rule;
            report.reason = verdict.reason;
            if verdict.allowed {
                report.decision = "allow".into();
                report.forwarded = Some(analysis.sql.clone());
                report.clickhouse_settings =
                    role_policy.limits.clickhouse_settings().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                if role_policy.read_only() {
                    report.clickhouse_settings.push(("readonly".into(), "2".into()));
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_deny_and_config_error() {
        let c = ProxyConfig::parse(
            "[roles.analyst]\nallow=[\"analytics.*\"]\ndeny=[\"analytics.salaries\"]\ndefault_database=\"analytics\"\nmax_rows_to_read=1000\n",
        )
        .unwrap();
        let r = check(&c, "analyst", "SELECT * FROM events", None);
        assert_eq!(r.exit_code(), 0, "{r}");
        assert!(r.to_string().contains("max_rows_to_read=1000"));
        assert_eq!(r.tables, ["analytics.events"]);
        let r = check(&c, "analyst", "SELECT * FROM salaries", None);
        assert_eq!((r.exit_code(), r.rule.as_str()), (1, "roles.analyst.deny[0]"));
        let r = check(&c, "nobody", "SELECT 1", None);
        assert_eq!(r.exit_code(), 1);
        let mut bad = c.clone();
        bad.roles.get_mut("analyst").unwrap().max_rows_to_read = Some(0);
        assert_eq!(check(&bad, "analyst", "SELECT 1", None).exit_code(), 2);
    }

    #[test]
    fn the_shipped_example_works() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/proxy.toml");
        let c = ProxyConfig::load(&path).unwrap();
        assert_eq!(check(&c, "analyst", "SELECT count() FROM analytics.events", None).exit_code(), 0);
        assert_eq!(check(&c, "analyst", "SELECT count() FROM events", None).exit_code(), 0);
        let r = check(&c, "analyst", "SELECT * FROM analytics.salaries", None);
        assert_eq!((r.exit_code(), r.rule.as_str()), (1, "roles.analyst.deny[0]"));
        assert_eq!(check(&c, "analyst", "DROP TABLE analytics.events", None).exit_code(), 1);
        assert_eq!(check(&c, "admin", "DROP TABLE analytics.events", None).exit_code(), 0);
        assert_eq!(check(&c, "admin", "SELECT * FROM url('http://x', CSV, 'a String')", None).exit_code(), 1);
        // What runs is what was checked: the forwarded SQL, not the client's text.
        let r = check(&c, "analyst", "SELECT count() -- why\nFROM `events`", None);
        assert_eq!(r.forwarded.as_deref(), Some("SELECT count() FROM `events`"));
        assert!(r.to_string().contains("forwarded: SELECT count() FROM `events`"), "{r}");
    }
}
