//! What the CC6 sections share: access populations as tables (streamed, with a seeded
//! sample), reconciliations against the store's own independent counts, and the `*`
//! patterns of a policy's grants.

use super::{Ctx, Soc2Error};
use crate::sample::{Frequency, Risk};
use crate::table::{Cell, Column, Table};
use gatelog_model::{IpeRecord, Reconciliation, UnixMillis};
use gatelog_store::read::evidence::access::AccessEventRow;
use gatelog_store::read::{EventCount, ReadQuery};

/// The columns of an access population ([`AccessEventRow`]), `finding` described as given.
pub fn event_columns(finding: &str) -> Vec<Column> {
    [
        ("event_key", "tenant/event_id: the event's unique id, by which the sample is drawn"),
        ("time_ms", "when the decision was made (UTC)"),
        ("dataset", "the Cloudflare dataset or gatelog source"),
        ("decision", "allow, deny, challenge, log or error"),
        ("principal", "who (e-mail, service token or empty for anonymous)"),
        ("roles", "the roles the principal held when the decision was made"),
        ("resource", "what was reached"),
        ("action", "statement kind, HTTP method or login/logout"),
        ("client_ip", "the client's address"),
        ("country", "the client's country"),
        ("status", "the HTTP status answered"),
        ("auth_method", "how the principal authenticated"),
        ("policy", "the rule that decided"),
        ("reason", "why, as the deciding component stated it"),
        ("finding", finding),
    ]
    .iter()
    .map(|(n, d)| Column::new(n, d))
    .collect()
}

fn event_cells(r: AccessEventRow) -> Vec<Cell> {
    vec![
        Cell::Text(r.event_key),
        Cell::Text(UnixMillis(r.time_ms).to_rfc3339()),
        Cell::Text(r.dataset),
        Cell::Text(r.decision),
        Cell::Text(r.principal),
        Cell::Text(r.roles.join(", ")),
        Cell::Text(r.resource),
        Cell::Text(r.action),
        Cell::Text(r.client_ip),
        Cell::Text(r.country),
        Cell::UInt(u64::from(r.status)),
        Cell::Text(r.auth_method),
        Cell::Text(r.policy),
        Cell::Text(r.reason),
        Cell::Text(r.finding),
    ]
}

/// Runs a population query, one row at a time, into a table (its IPE record the query's).
pub async fn event_population(
    ctx: &Ctx<'_>,
    q: ReadQuery<AccessEventRow>,
    id: &str,
    title: &str,
    description: &str,
    finding: &str,
) -> Result<Table, Soc2Error> {
    let mut stream = ctx.reader.stream(q)?;
    let mut rows = Vec::new();
    while let Some(row) = stream.next().await? {
        rows.push(event_cells(row));
    }
    let ipe = stream.finish()?;
    Ok(Table {
        id: id.to_owned(),
        title: title.to_owned(),
        description: description.to_owned(),
        columns: event_columns(finding),
        rows,
        ipe,
        sample: None,
    })
}

/// The sample of an access population: each row is one occurrence of an automated control
/// (an access decision), so the "many times a day" size, at the lower risk.
pub fn event_sample(ctx: &Ctx<'_>, population: &Table, id: &str) -> Result<Table, Soc2Error> {
    Ok(population.sample(id, "event_key", &ctx.input.seed, Frequency::Recurring, Risk::Lower)?)
}

/// Compares `figure` with the count `q` takes independently and appends the result to
/// `ipe` (a mismatch is a failed reconciliation, not an error).
pub async fn reconcile_count(
    ctx: &Ctx<'_>,
    ipe: &mut IpeRecord,
    name: &str,
    what: &str,
    figure: u64,
    q: ReadQuery<EventCount>,
) -> Result<Reconciliation, Soc2Error> {
    let counted = ctx.reader.fetch(&q).await?;
    let actual = counted.rows.first().map_or(0, |r| r.events);
    let r = Reconciliation {
        name: name.to_owned(),
        description: format!(
            "{what} against the same count taken independently from {}.{} ({}: each event's copy \
             found by GROUP BY tenant, event_id and argMax of its position, without FINAL)",
            counted.ipe.database,
            q.table().rsplit('.').next().unwrap_or_default(),
            q.name()
        ),
        expected: figure.to_string(),
        actual: actual.to_string(),
        sql: Some(counted.ipe.sql),
        passed: figure == actual,
    };
    ipe.reconciliations.push(r.clone());
    Ok(r)
}

/// Whether `pattern` (`*` matches any run of characters, everything else itself) matches
/// all of `text`.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// RFC 3339 text of an instant, empty for none (0).
pub fn when(ms: i64) -> Cell {
    if ms == 0 { Cell::Null } else { Cell::Text(UnixMillis(ms).to_rfc3339()) }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_match_whole_texts() {
        assert!(glob("clickhouse:analytics.*", "clickhouse:analytics.events"));
        assert!(!glob("clickhouse:analytics.*", "clickhouse:finance.payroll"));
        assert!(glob("clickhouse:analytics.events", "clickhouse:analytics.events"));
        assert!(!glob("clickhouse:analytics.events", "clickhouse:analytics.events2"));
        assert!(glob("https://*/admin/*", "https://bi.example.com/admin/users"));
        assert!(!glob("https://*/admin/*", "https://bi.example.com/reports"));
        assert!(glob("*", ""));
        assert!(!glob("a*a", "a"));
        assert!(glob("a*b*c", "aXbYbZc"));
    }
}
