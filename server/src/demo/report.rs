//! What the demo prints once the data is stored: decisions by dataset and outcome, and the
//! URLs and commands to try on the running server.

use std::fmt::Write as _;
use std::path::Path;

/// Decisions by dataset and outcome, as a small table, then the other tables' counts.
pub fn render_summary(summary: &gatelog_store::StoreSummary) -> String {
    let mut datasets: Vec<&str> = summary.decisions.iter().map(|d| d.dataset.as_str()).collect();
    datasets.dedup();
    let outcomes = gatelog_model::Decision::ALL;
    let mut out = format!("  {:<22}", "dataset");
    for o in outcomes {
        let _ = write!(out, "{:>10}", o.as_str());
    }
    out.push_str(&format!("{:>10}\n", "total"));
    for dataset in datasets {
        let _ = write!(out, "  {dataset:<22}");
        let mut total = 0;
        for o in outcomes {
            let n: u64 = summary
                .decisions
                .iter()
                .filter(|d| d.dataset == dataset && d.decision == o.as_str())
                .map(|d| d.count)
                .sum();
            total += n;
            let _ = write!(out, "{n:>10}");
        }
        let _ = writeln!(out, "{total:>10}");
    }
    let _ = writeln!(
        out,
        "\n  {} decisions, {} raw records, {} dead letters, {} batches",
        summary.total_decisions(),
        summary.raw_records,
        summary.dead_letters,
        summary.batches
    );
    out
}

/// The alerts detection raised on the samples: how many per rule, with the latest summary
/// of each rule, and the command that lists them.
pub fn render_alerts(alerts: &[gatelog_model::Alert], data_dir: &Path) -> String {
    let mut out = String::new();
    if alerts.is_empty() {
        let _ = writeln!(
            out,
            "
detection raised no alert on this data"
        );
        return out;
    }
    let mut by_rule: std::collections::BTreeMap<&str, (u64, gatelog_model::Severity, &str)> =
        std::collections::BTreeMap::new();
    for a in alerts {
        let entry = by_rule.entry(a.rule_id.as_str()).or_insert((0, a.severity, a.summary.as_str()));
        entry.0 += 1;
        entry.1 = entry.1.max(a.severity);
    }
    let _ = writeln!(
        out,
        "
detection raised {} alerts (the samples' planted anomalies, among others):
",
        alerts.len()
    );
    let _ = writeln!(out, "  {:<22} {:>6}  {:<8}  for example", "rule", "alerts", "severity");
    for (rule, (n, severity, summary)) in by_rule {
        let _ = writeln!(out, "  {rule:<22} {n:>6}  {:<8}  {summary}", severity.as_str());
    }
    let data_dir = shell_quote(&data_dir.display().to_string());
    let _ = writeln!(
        out,
        "
  gatelog alerts list --data-dir {data_dir}        # then: gatelog alerts show ID"
    );
    out
}

/// Where to look next.
#[derive(Debug)]
pub struct Links<'a> {
    /// `http://ADDR` of the receiver.
    pub base: &'a str,
    /// The ingest token to print, or `None` when it is the user's own (never printed).
    pub generated_ingest: Option<&'a str>,
    /// The reading roles' tokens generated for this run, the viewer's first.
    pub role_tokens: &'a [(gatelog_edge::auth::Role, String)],
    /// Full search URLs and the query each one runs.
    pub searches: Vec<(String, String)>,
    pub data_dir: &'a Path,
    /// Without credentials (shown through `RedactedUrl` all the same).
    pub clickhouse_url: &'a str,
    /// The user to name in the `curl` lines when ClickHouse needs a login (curl asks for the
    /// password); `None` for `default` without one.
    pub clickhouse_user: Option<&'a str>,
    pub database: &'a str,
}

/// `value` quoted for a POSIX shell when it needs it.
fn shell_quote(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:@=+,".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

pub fn render_links(l: &Links<'_>) -> String {
    let mut out = String::new();
    let base = l.base;
    let _ = writeln!(out, "\ntry it, while the demo serves on {base}:");
    if let Some((role, token)) = l.role_tokens.first() {
        let _ = writeln!(out, "  TOKEN={token}   # a {role} token generated for this run (search, alerts; read-only)");
    }
    let others: Vec<String> = l.role_tokens.iter().skip(1).map(|(role, token)| format!("{role} {token}")).collect();
    let ingest = match l.generated_ingest {
        Some(token) => format!("ingest {token}"),
        None => "ingest: one of yours (receiver.tokens / --ingest-token)".to_owned(),
    };
    let _ = writeln!(out, "  # also for this run: {}; {ingest}", others.join(", "));
    let _ = writeln!(out, "  # lasting tokens: gatelog tokens new --role viewer|responder|auditor|admin|ingest");
    let _ = writeln!(
        out,
        "  dashboard: open {base}/ and paste a token above (viewer reads, responder acknowledges alerts, auditor makes reports, admin all)"
    );
    let _ = writeln!(out, "  curl {base}/healthz");
    let _ = writeln!(out, "  curl {base}/metrics          # receiver, spool, and both sinks (gatelog_sink_*)");
    for (url, _) in &l.searches {
        let _ = writeln!(out, "  curl -H \"Authorization: Bearer $TOKEN\" '{url}'");
    }
    let data_dir = shell_quote(&l.data_dir.display().to_string());
    for (_, q) in l.searches.iter().rev().take(1) {
        let _ = writeln!(out, "  gatelog search --data-dir {data_dir} {}", shell_quote(q));
    }
    let (url, db) = (gatelog_model::RedactedUrl::new(l.clickhouse_url.trim_end_matches('/')), l.database);
    let login = l.clickhouse_user.map(|user| format!("-u {} ", shell_quote(user))).unwrap_or_default();
    let _ = writeln!(out, "\nquery ClickHouse directly, for example:");
    let _ = writeln!(
        out,
        "  curl {login}'{url}/' --data-binary \"SELECT principal, count() AS denies FROM {db}.decisions WHERE decision = 'deny' AND principal != '' GROUP BY principal ORDER BY denies DESC LIMIT 5\""
    );
    let _ = writeln!(
        out,
        "  curl {login}'{url}/' --data-binary \"SELECT dataset, decision, count() FROM {db}.decisions FINAL GROUP BY dataset, decision ORDER BY dataset, decision FORMAT PrettyCompact\""
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_only_when_needed() {
        assert_eq!(shell_quote("decision:deny"), "decision:deny");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn links_never_print_a_configured_token() {
        let roles = [
            (gatelog_edge::auth::Role::Viewer, "demo-v".to_owned()),
            (gatelog_edge::auth::Role::Admin, "demo-a".to_owned()),
        ];
        let links = Links {
            base: "http://127.0.0.1:8080",
            generated_ingest: None,
            role_tokens: &roles,
            searches: vec![("http://127.0.0.1:8080/v1/search?q=decision%3Adeny".into(), "decision:deny".into())],
            data_dir: Path::new("/tmp/demo data"),
            clickhouse_url: "http://127.0.0.1:9000",
            clickhouse_user: None,
            database: "gatelog",
        };
        let text = render_links(&links);
        assert!(text.contains("  TOKEN=demo-v   # a viewer token"), "{text}");
        assert!(text.contains("admin demo-a; ingest: one of yours"), "{text}");
        assert!(text.contains("gatelog search --data-dir '/tmp/demo data' decision:deny"), "{text}");
        assert!(
            text.contains(
                "curl -H \"Authorization: Bearer $TOKEN\" 'http://127.0.0.1:8080/v1/search?q=decision%3Adeny'"
            ),
            "{text}"
        );
        let with_login = render_links(&Links {
            clickhouse_url: "http://writer:hunter22@ch:8123",
            clickhouse_user: Some("writer"),
            ..links
        });
        assert!(with_login.contains("curl -u writer 'http://writer:***@ch:8123/'"), "{with_login}");
        assert!(!with_login.contains("hunter22"), "{with_login}");
    }
}
