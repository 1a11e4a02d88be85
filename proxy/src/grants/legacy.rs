//! ClickHouse 18.16–20.x: a `users.d/` file (ClickHouse merges every `*.xml` there into
//! `users.xml`) with a profile per kind of user and the users themselves.
//!
//! What 18.16 can enforce: `allow_databases` (though `system` stays readable to every user)
//! and `readonly`. Read-only users get `readonly = 2`: no writes, no change of `readonly`,
//! but the settings the proxy sends (its limits) still apply. The proxy's own user may not
//! be read-only: 18.16 lets a read-only user kill only its own queries.

use super::{Grants, Target, UserPlan};
use crate::config::{ConfigError, invalid};
use std::collections::BTreeSet;
use std::fmt::Write as _;

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A user name usable as an element name in users.xml.
fn element_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The databases a user may be limited to, or `None` when some allow glob needs more.
fn databases(user: &UserPlan, grants: &mut Grants) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for (glob, key) in &user.allow {
        match Target::parse(glob).as_ref().and_then(Target::database) {
            Some(db) => {
                out.insert(db.to_owned());
            }
            None => {
                if Target::parse(glob) != Some(Target::All) {
                    grants.warnings.push(format!(
                        "{key} `{glob}` names no single database: user {} is not limited to databases",
                        user.name
                    ));
                }
                return None;
            }
        }
    }
    Some(out)
}

pub fn render(users: &[UserPlan], networks: &[String], grants: &mut Grants) -> Result<(), ConfigError> {
    let mut profiles = String::new();
    let mut body = String::new();
    let mut needs = BTreeSet::new();
    for user in users {
        if !element_name(&user.name) {
            return Err(invalid(
                "clickhouse.user",
                format!("`{}` cannot be a user in users.xml (letters, digits, _ and - only)", user.name),
            ));
        }
        let read_only = user.read_only() && !user.kills;
        let profile = if read_only { "gatelog_proxy_readonly" } else { "gatelog_proxy_write" };
        needs.insert(profile);
        let roles = if user.roles.is_empty() { "no role".to_owned() } else { user.roles.join(", ") };
        let what = if user.kills { "; the proxy's own user: it kills the queries of clients that left" } else { "" };
        let _ = writeln!(body, "        <!-- roles: {}{what} -->", xml_escape(&roles).replace("--", "- -"));
        let _ = writeln!(body, "        <{}>", user.name);
        match &user.password_sha256 {
            Some(hex) => {
                let _ = writeln!(body, "            <password_sha256_hex>{hex}</password_sha256_hex>");
            }
            None => {
                let _ = writeln!(body, "            <!-- password: kept from the user's existing definition -->");
            }
        }
        let _ = writeln!(body, "            <networks>");
        for n in networks {
            let _ = writeln!(body, "                <ip>{}</ip>", xml_escape(n));
        }
        let _ = writeln!(body, "            </networks>");
        let _ = writeln!(body, "            <profile>{profile}</profile>");
        let _ = writeln!(body, "            <quota>default</quota>");
        let dbs = if user.roles.is_empty() {
            // Only the proxy's user, for KILL QUERY: system alone.
            Some(BTreeSet::from(["system".to_owned()]))
        } else {
            databases(user, grants)
        };
        if let Some(dbs) = dbs {
            let _ = writeln!(body, "            <allow_databases>");
            for db in &dbs {
                let _ = writeln!(body, "                <database>{}</database>", xml_escape(db));
            }
            let _ = writeln!(body, "            </allow_databases>");
        }
        let _ = writeln!(body, "        </{}>", user.name);
        let tables: Vec<String> = user
            .deny
            .iter()
            .map(|d| format!("deny {d}"))
            .chain(
                user.allow
                    .iter()
                    .filter(|(g, _)| matches!(Target::parse(g), Some(Target::Table { .. })))
                    .map(|(g, _)| format!("allow {g}")),
            )
            .collect();
        if !tables.is_empty() {
            grants.warnings.push(format!(
                "user {}: 18.16 limits databases, not tables; {} stay the guard's alone",
                user.name,
                tables.join(", ")
            ));
        }
    }
    for profile in needs {
        let readonly = if profile == "gatelog_proxy_readonly" { 2 } else { 0 };
        let _ = writeln!(profiles, "        <{profile}><readonly>{readonly}</readonly></{profile}>");
    }
    let mut text = String::new();
    let _ = writeln!(text, "<?xml version=\"1.0\"?>");
    let _ = writeln!(
        text,
        "<!-- Generated by gatelog proxy grants (legacy): put it in ClickHouse's users.d/ folder\n     \
         (e.g. /etc/clickhouse-server/users.d/gatelog-proxy.xml); ClickHouse reloads it by itself.\n     \
         18.16 restricts users by database (system is always readable) and by readonly; the\n     \
         table rules of the policy are enforced by the proxy's guard. -->"
    );
    for w in &grants.warnings {
        // `--` cannot appear inside an XML comment.
        let _ = writeln!(text, "<!-- warning: {} -->", xml_escape(w).replace("--", "- -"));
    }
    let _ = writeln!(
        text,
        "<yandex>\n    <profiles>\n{profiles}    </profiles>\n    <users>\n{body}    </users>\n</yandex>"
    );
    grants.text = text;
    Ok(())
}
