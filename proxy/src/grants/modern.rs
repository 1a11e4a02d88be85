//! ClickHouse with SQL access control (20.5 and later; wildcard grants `db.prefix*` need
//! 24.x): per user, `CREATE USER`/`ALTER USER` (password, hosts, `readonly = 2` for users
//! that only read), `REVOKE ALL` then the `GRANT`s of its roles' allow globs, `REVOKE ALL`
//! on the tables all of them deny, `CREATE TEMPORARY TABLE` for table functions, and
//! `KILL QUERY` for the proxy's own user. Running it again resets these users to it.

use super::{Grants, Target, UserPlan};
use crate::guard::StatementKind;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// `name` as a ClickHouse identifier.
fn quote(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain { name.to_owned() } else { format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`")) }
}

/// What a target is called in a GRANT.
fn on(target: &Target) -> String {
    match target {
        Target::All => "*.*".to_owned(),
        Target::Database { name, prefix: false } => format!("{}.*", quote(name)),
        Target::Database { name, prefix: true } => format!("{}*.*", quote(name)),
        Target::Table { database, name, prefix } => {
            format!("{}.{}{}", quote(database), quote(name), if *prefix { "*" } else { "" })
        }
    }
}

/// The privileges a user's statement kinds need on its tables.
fn privileges(kinds: &BTreeSet<StatementKind>, whole_database: bool) -> Vec<&'static str> {
    let mut out = BTreeSet::new();
    for kind in kinds {
        let p: &[&str] = match kind {
            StatementKind::Select | StatementKind::Explain => &["SELECT"],
            StatementKind::Show | StatementKind::Describe => &["SHOW TABLES", "SHOW COLUMNS"],
            StatementKind::Insert => &["INSERT"],
            StatementKind::Create if whole_database => &["CREATE TABLE", "CREATE VIEW", "CREATE DATABASE"],
            StatementKind::Create => &["CREATE TABLE", "CREATE VIEW"],
            StatementKind::Drop if whole_database => &["DROP TABLE", "DROP VIEW", "DROP DICTIONARY", "DROP DATABASE"],
            StatementKind::Drop => &["DROP TABLE", "DROP VIEW", "DROP DICTIONARY"],
            StatementKind::Alter => &["ALTER"],
            StatementKind::Update => &["ALTER UPDATE"],
            StatementKind::Delete => &["ALTER DELETE"],
            StatementKind::Truncate => &["TRUNCATE"],
            StatementKind::Optimize => &["OPTIMIZE"],
            // RENAME TABLE needs SELECT and DROP TABLE on the source, CREATE TABLE and INSERT
            // on the destination.
            StatementKind::Rename => &["SELECT", "DROP TABLE", "CREATE TABLE", "INSERT"],
            StatementKind::Set | StatementKind::Use | StatementKind::Other => &[],
        };
        out.extend(p.iter().copied());
    }
    out.into_iter().collect()
}

pub fn render(users: &[UserPlan], networks: &[String], grants: &mut Grants) {
    let mut body = String::new();
    let hosts = networks
        .iter()
        .map(|n| if n == "::/0" { "ANY".to_owned() } else { format!("IP '{n}'") })
        .collect::<Vec<_>>()
        .join(", ");
    for user in users {
        let u = quote(&user.name);
        let roles = if user.roles.is_empty() { "no role".to_owned() } else { user.roles.join(", ") };
        let _ = writeln!(body, "\n-- {}: {roles}{}", user.name, if user.kills { "; the proxy's own user" } else { "" });
        let settings = if user.read_only() && !user.kills { " SETTINGS readonly = 2" } else { "" };
        match &user.password_sha256 {
            Some(hex) => {
                let auth = format!("IDENTIFIED WITH sha256_hash BY '{hex}' HOST {hosts}");
                let _ = writeln!(body, "CREATE USER IF NOT EXISTS {u} {auth};");
                let _ = writeln!(body, "ALTER USER {u} {auth}{settings};");
            }
            None => {
                let _ = writeln!(body, "-- the user must exist already (no passwords were read)");
                if !settings.is_empty() {
                    let _ = writeln!(body, "ALTER USER {u}{settings};");
                }
            }
        }
        let _ = writeln!(body, "REVOKE ALL ON *.* FROM {u};");
        for (glob, key) in &user.allow {
            let Some(target) = Target::parse(glob) else {
                grants.warnings.push(format!(
                    "{key} `{glob}` cannot be written as a grant: user {} gets nothing for it",
                    user.name
                ));
                continue;
            };
            let whole = matches!(target, Target::Database { prefix: false, .. } | Target::All);
            let privileges = privileges(&user.statements, whole);
            if !privileges.is_empty() {
                let _ = writeln!(body, "GRANT {} ON {} TO {u};", privileges.join(", "), on(&target));
            }
        }
        for glob in &user.deny {
            match Target::parse(glob) {
                Some(target) => {
                    let _ = writeln!(body, "REVOKE ALL ON {} FROM {u};", on(&target));
                }
                None => grants.warnings.push(format!(
                    "deny `{glob}` of user {} cannot be written as a revoke: the guard alone enforces it",
                    user.name
                )),
            }
        }
        if user.table_functions {
            let _ = writeln!(body, "GRANT CREATE TEMPORARY TABLE ON *.* TO {u};");
        }
        if user.kills {
            let _ = writeln!(body, "GRANT KILL QUERY ON *.* TO {u};");
        }
    }
    let mut text = String::from(
        "-- Generated by `gatelog proxy grants --server modern`. Run it as a user with access\n\
         -- management (clickhouse-client --multiquery < grants.sql); running it again resets\n\
         -- these users' rights to what the policy gives them.\n",
    );
    for w in &grants.warnings {
        let _ = writeln!(text, "-- warning: {w}");
    }
    text.push_str(&body);
    grants.text = text;
}
