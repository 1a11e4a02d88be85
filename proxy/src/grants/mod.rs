//! `gatelog proxy grants`: ClickHouse's own restrictions for the users the proxy's roles run
//! as, mirroring the policy, so that a guard mistake is not a leak.
//!
//! - [`plan`]: from the configuration, one [`UserPlan`] per ClickHouse user: the roles that
//!   run as it, what they may touch (allow globs less the denies every one of them shares),
//!   whether all of them only read, whether it is the proxy's own user (which kills the
//!   queries of clients that leave), and its password's SHA-256.
//! - [`legacy`]: ClickHouse 18.16–20.x `users.d/` XML: `allow_databases` and `readonly`,
//!   which is all 18.16 can enforce (databases, not tables; `system` is always readable).
//! - [`modern`]: SQL for servers with access control: users, `GRANT`s per table glob,
//!   `REVOKE`s for denied tables, `readonly` for read-only users, `KILL QUERY` for the proxy.
//!
//! Globs ClickHouse cannot express (`a?c`, `*.t`, a table glob without a database) are
//! left out and reported: the server then refuses what the guard would allow, never the
//! other way round.

pub mod legacy;
pub mod modern;

use crate::config::{ConfigError, ProxyConfig, RoleConfig, invalid};
use crate::guard::StatementKind;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Which server generation to write for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// 18.16 to 20.x: `users.d` XML.
    Legacy,
    /// 20.5 and later: SQL access control.
    Modern,
}

/// What to write and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub server: Server,
    /// Read the secrets and write their SHA-256; without, users are left to be created.
    pub passwords: bool,
    /// Addresses the proxy connects from (CIDRs or IPs); empty: loopback when ClickHouse is
    /// on loopback, else any (with a warning).
    pub networks: Vec<String>,
}

/// The output: the text to apply, and what could not be mirrored.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub text: String,
    pub warnings: Vec<String>,
}

/// One ClickHouse user and what it may do.
#[derive(Debug, Clone)]
pub struct UserPlan {
    pub name: String,
    /// The roles that run as this user, by name.
    pub roles: Vec<String>,
    /// Statement kinds any of them may run.
    pub statements: BTreeSet<StatementKind>,
    /// Table globs any of them may touch (with the key they come from).
    pub allow: Vec<(String, String)>,
    /// Table globs every one of them denies.
    pub deny: Vec<String>,
    pub table_functions: bool,
    /// The proxy's own user: it kills the queries of clients that go away.
    pub kills: bool,
    /// SHA-256 of the password, hex; `None` without passwords.
    pub password_sha256: Option<String>,
}

impl UserPlan {
    /// Whether every role running as this user only reads.
    pub fn read_only(&self) -> bool {
        self.statements.iter().all(|k| k.is_read_only())
    }
}

/// A table glob split into what ClickHouse can name: `db.*`, `db.t`, `db.prefix*`,
/// `db_prefix*.*`, `*.*`; `None` for anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    /// A database by name or name prefix (`prefix*`), every table.
    Database {
        name: String,
        prefix: bool,
    },
    /// A table by name or name prefix in a database named exactly.
    Table {
        database: String,
        name: String,
        prefix: bool,
    },
}

impl Target {
    pub fn parse(glob: &str) -> Option<Target> {
        let (db, table) = glob.split_once('.')?;
        let plain = |s: &str| !s.is_empty() && !s.contains(['*', '?']);
        let prefixed = |s: &str| s.strip_suffix('*').filter(|p| plain(p)).map(str::to_owned);
        match (db, table) {
            ("*", "*") => Some(Target::All),
            (d, "*") if plain(d) => Some(Target::Database { name: d.to_owned(), prefix: false }),
            (d, "*") => prefixed(d).map(|name| Target::Database { name, prefix: true }),
            (d, t) if plain(d) && plain(t) => {
                Some(Target::Table { database: d.to_owned(), name: t.to_owned(), prefix: false })
            }
            (d, t) if plain(d) => prefixed(t).map(|name| Target::Table { database: d.to_owned(), name, prefix: true }),
            _ => None,
        }
    }

    /// The database named exactly, if any.
    pub fn database(&self) -> Option<&str> {
        match self {
            Target::Database { name, prefix: false } | Target::Table { database: name, .. } => Some(name),
            _ => None,
        }
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The users of a validated configuration, the proxy's own first.
pub fn plan(config: &ProxyConfig, passwords: bool) -> Result<Vec<UserPlan>, ConfigError> {
    config.validate()?;
    let own = &config.clickhouse.user;
    let mut by_user: BTreeMap<&str, Vec<(&String, &RoleConfig)>> = BTreeMap::new();
    by_user.entry(own.as_str()).or_default();
    for (name, role) in &config.roles {
        by_user.entry(role.clickhouse_user.as_deref().unwrap_or(own)).or_default().push((name, role));
    }
    let mut users = Vec::new();
    for (user, roles) in by_user {
        let mut plan = UserPlan {
            name: user.to_owned(),
            roles: roles.iter().map(|(n, _)| (*n).clone()).collect(),
            statements: BTreeSet::new(),
            allow: Vec::new(),
            deny: Vec::new(),
            table_functions: false,
            kills: user == own,
            password_sha256: None,
        };
        for (name, role) in &roles {
            plan.statements.extend(role.statements.iter().filter_map(|s| StatementKind::parse(s)));
            for (i, glob) in role.allow.iter().enumerate() {
                if !plan.allow.iter().any(|(g, _)| g == glob) {
                    plan.allow.push((glob.clone(), format!("roles.{name}.allow[{i}]")));
                }
            }
            plan.table_functions |= !role.table_functions.is_empty();
        }
        if let Some((_, first)) = roles.first() {
            plan.deny = first.deny.iter().filter(|g| roles.iter().all(|(_, r)| r.deny.contains(g))).cloned().collect();
        }
        if passwords {
            let secret = match roles.iter().find_map(|(n, r)| r.clickhouse_password.as_ref().map(|p| (n, p))) {
                Some((name, p)) => p.resolve(&format!("roles.{name}.clickhouse_password"))?,
                None => config.clickhouse.password.resolve("clickhouse.password")?,
            };
            plan.password_sha256 = Some(sha256_hex(secret.expose()));
        }
        users.push(plan);
    }
    users.sort_by_key(|u| !u.kills);
    Ok(users)
}

/// Renders the grants for `config`.
pub fn render(config: &ProxyConfig, options: &Options) -> Result<Grants, ConfigError> {
    let users = plan(config, options.passwords)?;
    let networks = networks(config, &options.networks)?;
    let mut grants = Grants::default();
    for user in &users {
        if options.server == Server::Legacy && user.kills && !user.roles.is_empty() && user.read_only() {
            grants.warnings.push(format!(
                "roles {} run as the proxy's own user {} (clickhouse.user), which kills other users' \
                 queries and so cannot be readonly on 18.16; give them a clickhouse_user of their own",
                user.roles.join(", "),
                user.name
            ));
        }
        if user.password_sha256.as_deref() == Some(&sha256_hex("")) {
            grants.warnings.push(format!("user {} has an empty password", user.name));
        }
    }
    if options.networks.is_empty() && !networks.loopback {
        grants.warnings.push(
            "clickhouse.url is not on loopback: the users accept connections from anywhere; \
             name the proxy's addresses with --network"
                .into(),
        );
    }
    match options.server {
        Server::Legacy => legacy::render(&users, &networks.addresses, &mut grants)?,
        Server::Modern => modern::render(&users, &networks.addresses, &mut grants),
    }
    Ok(grants)
}

/// Where the proxy connects from.
struct Networks {
    addresses: Vec<String>,
    loopback: bool,
}

fn networks(config: &ProxyConfig, given: &[String]) -> Result<Networks, ConfigError> {
    for n in given {
        let ip = n.split_once('/').map_or(n.as_str(), |(ip, _)| ip);
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid("--network", format!("`{n}` is not an IP address or CIDR")));
        }
    }
    if !given.is_empty() {
        return Ok(Networks { addresses: given.to_vec(), loopback: false });
    }
    let host = config
        .clickhouse
        .url
        .split_once("://")
        .map_or(config.clickhouse.url.as_str(), |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let host = host.rsplit_once(':').filter(|(h, _)| !h.is_empty()).map_or(host, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let addresses = if loopback { vec!["127.0.0.1".into(), "::1".into()] } else { vec!["::/0".into()] };
    Ok(Networks { addresses, loopback })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_clickhouse_can_name() {
        assert_eq!(Target::parse("*.*"), Some(Target::All));
        assert_eq!(Target::parse("a.*"), Some(Target::Database { name: "a".into(), prefix: false }));
        assert_eq!(Target::parse("a*.*"), Some(Target::Database { name: "a".into(), prefix: true }));
        assert_eq!(Target::parse("a.t"), Some(Target::Table { database: "a".into(), name: "t".into(), prefix: false }));
        assert_eq!(Target::parse("a.t*"), Some(Target::Table { database: "a".into(), name: "t".into(), prefix: true }));
        for glob in ["t", "*.t", "a?.*", "a.t?x", "a*b.*", "a.*b", "a*.t"] {
            assert_eq!(Target::parse(glob), None, "{glob}");
        }
    }

    #[test]
    fn users_gather_their_roles() {
        let c = ProxyConfig::parse(
            r#"
[clickhouse]
user = "proxy"
password = { value = "p" }
[roles.analyst]
allow = ["analytics.*"]
deny = ["analytics.salaries", "analytics.hr"]
clickhouse_user = "reader"
clickhouse_password = { value = "r" }
[roles.bi]
allow = ["analytics.*"]
deny = ["analytics.salaries"]
clickhouse_user = "reader"
[roles.admin]
allow = ["*.*"]
statements = ["select", "insert", "drop"]
"#,
        )
        .unwrap();
        let users = plan(&c, true).unwrap();
        assert_eq!(users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["proxy", "reader"]);
        let (proxy, reader) = (&users[0], &users[1]);
        assert!(proxy.kills && !proxy.read_only() && proxy.roles == ["admin"]);
        assert!(!reader.kills && reader.read_only());
        // Only the deny both roles share: bi may read analytics.hr.
        assert_eq!(reader.deny, ["analytics.salaries"]);
        assert_eq!(reader.password_sha256.as_deref(), Some(sha256_hex("r").as_str()));
    }
}
