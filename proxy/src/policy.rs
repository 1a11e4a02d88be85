//! Role policy, compiled from [`ProxyConfig`]: which roles a principal has, which tables,
//! statement kinds, table functions and BI paths each role may use, and its limits.
//!
//! Evaluation is default-deny. Within and across a principal's roles, an explicit deny
//! (a `deny` glob that matches a table, an `http_deny` prefix) wins over any allow. Without
//! explicit denies, the first role (in role-mapping order) that allows everything decides,
//! and its limits and ClickHouse credentials apply.

use crate::config::{ConfigError, ProxyConfig, RoleMapping, Secret};
use crate::guard::{Analysis, Rejection, StatementKind, TableName};
use crate::identity::Identity;
use gatelog_identity::cache::{Lru, key_of};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Limits of one role. ClickHouse enforces the first four as settings the client cannot
/// override; the proxy enforces the rate and concurrency limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    #[serde(with = "humantime_serde")]
    pub max_execution_time: Option<Duration>,
    pub max_rows_to_read: Option<u64>,
    pub max_bytes_to_read: Option<u64>,
    pub max_result_rows: Option<u64>,
    pub requests_per_minute: Option<u32>,
    pub max_concurrent_queries: Option<u32>,
}

impl Limits {
    /// The ClickHouse settings that carry these limits, with the policy key of each.
    pub fn clickhouse_settings(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(d) = self.max_execution_time {
            out.push(("max_execution_time", d.as_secs().max(1).to_string()));
        }
        if let Some(n) = self.max_rows_to_read {
            out.push(("max_rows_to_read", n.to_string()));
        }
        if let Some(n) = self.max_bytes_to_read {
            out.push(("max_bytes_to_read", n.to_string()));
        }
        if let Some(n) = self.max_result_rows {
            out.push(("max_result_rows", n.to_string()));
        }
        out
    }
}

/// One role, compiled.
#[derive(Debug, Clone)]
pub struct RolePolicy {
    pub name: String,
    allow: Vec<String>,
    deny: Vec<String>,
    pub statements: BTreeSet<StatementKind>,
    table_functions: BTreeSet<String>,
    pub default_database: Option<String>,
    pub limits: Limits,
    http_allow: Vec<String>,
    http_deny: Vec<String>,
    pub clickhouse_user: String,
    pub clickhouse_password: Secret,
}

impl RolePolicy {
    /// Whether every statement this role may run only reads (ClickHouse then also gets
    /// `readonly=2` as a second line of defence).
    pub fn read_only(&self) -> bool {
        self.statements.iter().all(|k| k.is_read_only())
    }
}

/// The outcome of a policy evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub allowed: bool,
    /// The role that decided (for allows: whose limits and credentials apply).
    pub role: Option<String>,
    /// The rule that decided, e.g. `roles.analyst.deny[0]` or `guard.settings`.
    pub rule: String,
    pub reason: String,
    /// An explicit deny (as opposed to default deny).
    #[serde(skip)]
    explicit: bool,
}

impl Verdict {
    pub fn deny(rule: impl Into<String>, reason: impl Into<String>) -> Self {
        Verdict { allowed: false, role: None, rule: rule.into(), reason: reason.into(), explicit: true }
    }
}

/// What the guard and the policy said about one SQL text for one role set and database.
pub type SqlOutcome = Result<(Analysis, Verdict), Rejection>;

/// SQL outcomes cached per policy; beyond this the least recently used are dropped.
pub const SQL_CACHE_CAPACITY: usize = 2048;
/// Longer SQL texts are analysed every time (bounds the cache's memory).
pub const SQL_CACHE_MAX_LEN: usize = 8 * 1024;

/// Outcomes keyed by SHA-256 of (roles in order, database, SQL text): everything the guard
/// ([`crate::guard::analyze`]: SQL, database) and [`Policy::evaluate_sql`] (roles, the
/// analysis, this policy) depend on. It belongs to one compiled policy, so a reload, which
/// compiles a new one, starts empty; a clone starts empty too.
struct SqlCache(Mutex<Lru<Arc<SqlOutcome>>>);

impl SqlCache {
    fn new() -> Self {
        SqlCache(Mutex::new(Lru::new(SQL_CACHE_CAPACITY)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru<Arc<SqlOutcome>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clone for SqlCache {
    fn clone(&self) -> Self {
        SqlCache::new()
    }
}

impl std::fmt::Debug for SqlCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlCache").field("entries", &self.lock().len()).finish()
    }
}

/// All roles and mappings.
#[derive(Debug, Clone)]
pub struct Policy {
    roles: BTreeMap<String, RolePolicy>,
    mappings: Vec<RoleMapping>,
    sql_cache: SqlCache,
}

/// Glob match with `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn table_glob_match(glob: &str, table: &TableName) -> bool {
    match glob.split_once('.') {
        Some((d, t)) => glob_match(d, &table.database) && glob_match(t, &table.table),
        None => glob_match(glob, &table.table),
    }
}

/// Whether a deny glob covers `table`. A whole database (`db.*`: `DROP DATABASE db`) that a
/// statement changes holds every table in it, so a deny of any of them covers it.
fn deny_covers(glob: &str, table: &TableName, changes: bool) -> bool {
    if changes && table.table == "*" {
        return match glob.split_once('.') {
            Some((d, _)) => glob_match(d, &table.database),
            None => true,
        };
    }
    table_glob_match(glob, table)
}

/// A path prefix rule: `/a/b/` matches `/a/b/…`; a trailing `*` is allowed and ignored.
fn path_match(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('*');
    path.starts_with(prefix) || (prefix.ends_with('/') && path == prefix.trim_end_matches('/'))
}

impl Policy {
    /// Compiles the roles and mappings of a validated config, reading its secrets.
    pub fn compile(config: &ProxyConfig) -> Result<Policy, ConfigError> {
        Self::build(config, true)
    }

    /// Compiles without reading secrets (for the dry-run, which never talks to ClickHouse).
    pub fn compile_without_secrets(config: &ProxyConfig) -> Result<Policy, ConfigError> {
        Self::build(config, false)
    }

    fn build(config: &ProxyConfig, secrets: bool) -> Result<Policy, ConfigError> {
        let resolve =
            |s: &crate::config::SecretRef, key: &str| if secrets { s.resolve(key) } else { Ok(Secret::default()) };
        let default_password = resolve(&config.clickhouse.password, "clickhouse.password")?;
        let mut roles = BTreeMap::new();
        for (name, r) in &config.roles {
            let statements = r.statements.iter().filter_map(|s| StatementKind::parse(s)).collect();
            let to_u64 = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok());
            let to_u32 = |v: Option<i64>| v.and_then(|n| u32::try_from(n).ok());
            let password = match &r.clickhouse_password {
                Some(p) => resolve(p, &format!("roles.{name}.clickhouse_password"))?,
                None => default_password.clone(),
            };
            roles.insert(
                name.clone(),
                RolePolicy {
                    name: name.clone(),
                    allow: r.allow.clone(),
                    deny: r.deny.clone(),
                    statements,
                    table_functions: r.table_functions.iter().map(|f| f.to_ascii_lowercase()).collect(),
                    default_database: r.default_database.clone(),
                    limits: Limits {
                        max_execution_time: r.max_execution_time,
                        max_rows_to_read: to_u64(r.max_rows_to_read),
                        max_bytes_to_read: r.max_bytes_to_read.map(|b| b.as_u64()),
                        max_result_rows: to_u64(r.max_result_rows),
                        requests_per_minute: to_u32(r.requests_per_minute),
                        max_concurrent_queries: to_u32(r.max_concurrent_queries),
                    },
                    http_allow: r.http_allow.clone(),
                    http_deny: r.http_deny.clone(),
                    clickhouse_user: r.clickhouse_user.clone().unwrap_or_else(|| config.clickhouse.user.clone()),
                    clickhouse_password: password,
                },
            );
        }
        Ok(Policy { roles, mappings: config.role_mappings.clone(), sql_cache: SqlCache::new() })
    }

    pub fn role(&self, name: &str) -> Option<&RolePolicy> {
        self.roles.get(name)
    }

    /// The roles an identity maps to, in mapping order, without duplicates.
    pub fn roles_for(&self, identity: &Identity) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let domain = identity.email.as_deref().and_then(|e| e.rsplit_once('@')).map(|(_, d)| d.to_ascii_lowercase());
        for m in &self.mappings {
            if m.issuer.as_ref().is_some_and(|i| *i != identity.issuer) {
                continue;
            }
            let hit = m.groups.iter().any(|g| identity.groups.contains(g))
                || domain.as_ref().is_some_and(|d| m.email_domains.iter().any(|x| x.eq_ignore_ascii_case(d)))
                || m.subjects.iter().any(|s| *s == identity.subject || Some(s) == identity.email.as_ref());
            if hit && !out.contains(&m.role) {
                out.push(m.role.clone());
            }
        }
        out
    }

    /// The database unqualified tables resolve against for this request.
    pub fn default_database(&self, roles: &[String], requested: Option<&str>) -> String {
        if let Some(db) = requested.filter(|d| !d.is_empty()) {
            return db.to_owned();
        }
        roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .find_map(|r| r.default_database.clone())
            .unwrap_or_else(|| "default".to_owned())
    }

    /// Runs the guard on `sql` (unqualified names resolving against `database`) and, if it
    /// accepts, decides it for `roles`; cached per (roles, database, SQL text) in this policy.
    pub fn check_sql(&self, roles: &[String], database: &str, sql: &str) -> Arc<SqlOutcome> {
        let compute = || {
            let analysis = crate::guard::analyze(sql, database)?;
            let verdict = self.evaluate_sql(roles, &analysis);
            Ok((analysis, verdict))
        };
        if sql.len() > SQL_CACHE_MAX_LEN {
            return Arc::new(compute());
        }
        let mut parts: Vec<&[u8]> = Vec::with_capacity(roles.len() + 3);
        let count = (roles.len() as u64).to_le_bytes();
        parts.push(&count);
        parts.extend(roles.iter().map(|r| r.as_bytes()));
        parts.push(database.as_bytes());
        parts.push(sql.as_bytes());
        let key = key_of(&parts);
        if let Some(hit) = self.sql_cache.lock().get(&key) {
            return hit.clone();
        }
        let outcome = Arc::new(compute());
        self.sql_cache.lock().insert(key, outcome.clone());
        outcome
    }

    /// Entries in the SQL outcome cache.
    pub fn cached_sql(&self) -> usize {
        self.sql_cache.lock().len()
    }

    /// Decides a SQL request already analysed by the guard.
    pub fn evaluate_sql(&self, roles: &[String], analysis: &Analysis) -> Verdict {
        let verdicts: Vec<Verdict> = roles.iter().map(|r| self.evaluate_sql_role(r, analysis)).collect();
        combine(verdicts)
    }

    fn evaluate_sql_role(&self, role_name: &str, a: &Analysis) -> Verdict {
        let Some(role) = self.roles.get(role_name) else {
            return default_deny(format!("roles.{role_name}"), format!("role {role_name} is not defined"));
        };
        let rule = |k: &str| format!("roles.{role_name}.{k}");
        let changes = !a.kind.is_read_only();
        for table in &a.tables {
            if let Some(i) = role.deny.iter().position(|g| deny_covers(g, table, changes)) {
                let mut v = Verdict::deny(
                    rule(&format!("deny[{i}]")),
                    format!("table {table} is denied to role {role_name} by `{}`", role.deny[i]),
                );
                v.role = Some(role_name.to_owned());
                return v;
            }
        }
        if !role.statements.contains(&a.kind) {
            let allowed: Vec<&str> = role.statements.iter().map(|k| k.as_str()).collect();
            return default_deny(
                rule("statements"),
                format!(
                    "{} statements are not allowed for role {role_name} (allowed: {})",
                    a.kind.as_str(),
                    allowed.join(", ")
                ),
            );
        }
        if let Some(f) = a.table_functions.iter().find(|f| !role.table_functions.contains(*f)) {
            return default_deny(
                rule("table_functions"),
                format!("table function {f}() is not allowed for role {role_name}"),
            );
        }
        if let Some(t) = a.tables.iter().find(|t| !role.allow.iter().any(|g| table_glob_match(g, t))) {
            return default_deny(
                rule("allow"),
                format!("no allow rule of role {role_name} covers table {t} (default deny)"),
            );
        }
        let what = if a.tables.is_empty() {
            "no tables".to_owned()
        } else {
            a.tables.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
        };
        Verdict {
            allowed: true,
            role: Some(role_name.to_owned()),
            rule: if a.tables.is_empty() { rule("statements") } else { rule("allow") },
            reason: format!("role {role_name} may {} {what}", a.kind.as_str()),
            explicit: false,
        }
    }

    /// Decides a BI request for `path`.
    pub fn evaluate_http(&self, roles: &[String], path: &str) -> Verdict {
        let verdicts = roles
            .iter()
            .map(|name| {
                let Some(role) = self.roles.get(name) else {
                    return default_deny(format!("roles.{name}"), format!("role {name} is not defined"));
                };
                if let Some(i) = role.http_deny.iter().position(|p| path_match(p, path)) {
                    let mut v = Verdict::deny(
                        format!("roles.{name}.http_deny[{i}]"),
                        format!("path {path} is denied to role {name}"),
                    );
                    v.role = Some(name.clone());
                    return v;
                }
                match role.http_allow.iter().position(|p| path_match(p, path)) {
                    Some(i) => Verdict {
                        allowed: true,
                        role: Some(name.clone()),
                        rule: format!("roles.{name}.http_allow[{i}]"),
                        reason: format!("role {name} may open {path}"),
                        explicit: false,
                    },
                    None => default_deny(
                        format!("roles.{name}.http_allow"),
                        format!("no http_allow prefix of role {name} covers {path} (default deny)"),
                    ),
                }
            })
            .collect();
        combine(verdicts)
    }
}

fn default_deny(rule: String, reason: String) -> Verdict {
    Verdict { allowed: false, role: None, rule, reason, explicit: false }
}

/// Deny wins: an explicit deny from any role decides; otherwise the first allow; otherwise
/// the first role's default deny.
fn combine(verdicts: Vec<Verdict>) -> Verdict {
    if let Some(v) = verdicts.iter().find(|v| !v.allowed && v.explicit) {
        return v.clone();
    }
    if let Some(v) = verdicts.iter().find(|v| v.allowed) {
        return v.clone();
    }
    verdicts.into_iter().next().unwrap_or_else(|| {
        default_deny("role_mappings".into(), "no role is mapped to this principal (default deny)".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::analyze;

    fn policy() -> Policy {
        let c = ProxyConfig::parse(
            r#"
[roles.analyst]
allow = ["analytics.*"]
deny = ["analytics.salaries"]
default_database = "analytics"
max_rows_to_read = 1000
[roles.ops]
allow = ["system.*", "analytics.*"]
statements = ["select", "show"]
"#,
        )
        .unwrap();
        Policy::compile(&c).unwrap()
    }

    fn eval(roles: &[&str], sql: &str) -> Verdict {
        let p = policy();
        let roles: Vec<String> = roles.iter().map(|s| s.to_string()).collect();
        let db = p.default_database(&roles, None);
        p.evaluate_sql(&roles, &analyze(sql, &db).unwrap())
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cached_outcomes_match_uncached_ones_and_are_keyed_by_everything() {
        let p = policy();
        let cases: &[(&[&str], &str, &str)] = &[
            (&["analyst"], "analytics", "SELECT * FROM events"),
            (&["analyst"], "analytics", "SELECT * FROM salaries"),
            (&["analyst"], "other", "SELECT * FROM salaries"),
            (&["ops"], "analytics", "SELECT * FROM salaries"),
            (&["ops", "analyst"], "analytics", "SELECT * FROM salaries"),
            (&["analyst", "ops"], "system", "SELECT * FROM tables"),
            (&["ops", "analyst"], "system", "SELECT * FROM tables"),
            (&["analyst"], "analytics", "SELECT 1 SETTINGS max_rows_to_read = 0"),
            (&["analyst"], "analytics", "INSERT INTO events VALUES (1)"),
        ];
        // Twice: the second round is served from the cache and must say the same.
        for round in 0..2 {
            for (roles, db, sql) in cases {
                let roles = strings(roles);
                let uncached = analyze(sql, db).map(|a| {
                    let v = p.evaluate_sql(&roles, &a);
                    (a, v)
                });
                assert_eq!(*p.check_sql(&roles, db, sql), uncached, "round {round}: {roles:?} {db} {sql}");
            }
        }
        assert_eq!(p.cached_sql(), cases.len());
        // The database and the role set change the key.
        let a = p.check_sql(&strings(&["analyst"]), "analytics", "SELECT * FROM salaries");
        let b = p.check_sql(&strings(&["analyst"]), "other", "SELECT * FROM salaries");
        assert_eq!(a.as_ref().as_ref().unwrap().1.rule, "roles.analyst.deny[0]");
        assert_eq!(b.as_ref().as_ref().unwrap().1.rule, "roles.analyst.allow");
        let c = p.check_sql(&strings(&["ops"]), "analytics", "SELECT * FROM salaries");
        assert!(c.as_ref().as_ref().unwrap().1.allowed);
    }

    #[test]
    fn sql_cache_is_bounded_and_skips_long_texts() {
        let p = policy();
        let roles = strings(&["analyst"]);
        for i in 0..SQL_CACHE_CAPACITY + 10 {
            let _ = p.check_sql(&roles, "analytics", &format!("SELECT {i}"));
        }
        assert_eq!(p.cached_sql(), SQL_CACHE_CAPACITY);
        let long = format!("SELECT 1 {}", " ".repeat(SQL_CACHE_MAX_LEN));
        let fresh = policy();
        assert!(fresh.check_sql(&roles, "analytics", &long).is_ok());
        assert_eq!(fresh.cached_sql(), 0);
    }

    #[test]
    fn a_recompiled_or_cloned_policy_starts_with_an_empty_cache() {
        let p = policy();
        let roles = strings(&["analyst"]);
        assert!(p.check_sql(&roles, "analytics", "SELECT * FROM events").as_ref().as_ref().unwrap().1.allowed);
        assert_eq!(p.cached_sql(), 1);
        assert_eq!(p.clone().cached_sql(), 0);
        // A reload that denies the table: the new policy decides afresh.
        let c =
            ProxyConfig::parse("[roles.analyst]\nallow = [\"analytics.*\"]\ndeny = [\"analytics.events\"]\n").unwrap();
        let reloaded = Policy::compile(&c).unwrap();
        assert_eq!(reloaded.cached_sql(), 0);
        assert!(!reloaded.check_sql(&roles, "analytics", "SELECT * FROM events").as_ref().as_ref().unwrap().1.allowed);
    }

    #[test]
    fn globs() {
        assert!(glob_match("analytics*", "analytics_2024"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a?c", "ac"));
        assert!(table_glob_match("analytics.*", &TableName { database: "analytics".into(), table: "x".into() }));
        assert!(!table_glob_match("analytics.*", &TableName { database: "analyticsx".into(), table: "x".into() }));
    }

    #[test]
    fn deny_wins_and_default_deny() {
        assert!(eval(&["analyst"], "SELECT * FROM events").allowed);
        let v = eval(&["analyst"], "SELECT * FROM events JOIN salaries USING (id)");
        assert_eq!((v.allowed, v.rule.as_str()), (false, "roles.analyst.deny[0]"));
        // ops allows it, but analyst's explicit deny wins.
        assert!(!eval(&["ops", "analyst"], "SELECT * FROM analytics.salaries").allowed);
        let v = eval(&["analyst"], "SELECT * FROM system.tables");
        assert_eq!(v.rule, "roles.analyst.allow");
        assert!(eval(&["analyst", "ops"], "SELECT * FROM system.tables").allowed);
        assert!(!eval(&[], "SELECT 1").allowed);
        assert_eq!(eval(&["analyst"], "INSERT INTO events VALUES (1)").rule, "roles.analyst.statements");
    }

    #[test]
    fn a_whole_database_holds_its_denied_tables() {
        let c = ProxyConfig::parse(
            "[roles.owner]\nallow = [\"analytics.*\"]\ndeny = [\"analytics.salaries\"]\nstatements = [\"select\", \"show\", \"drop\"]\n",
        )
        .unwrap();
        let p = Policy::compile(&c).unwrap();
        let roles = strings(&["owner"]);
        let decide = |sql: &str| p.evaluate_sql(&roles, &analyze(sql, "analytics").unwrap());
        // Dropping the database drops the denied table in it.
        let v = decide("DROP DATABASE analytics");
        assert_eq!((v.allowed, v.rule.as_str()), (false, "roles.owner.deny[0]"));
        assert!(decide("DROP TABLE analytics.events").allowed);
        // Listing the database's tables names the denied one, which SHOW has always done.
        assert!(decide("SHOW TABLES FROM analytics").allowed);
    }
}
