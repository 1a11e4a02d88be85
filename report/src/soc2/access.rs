//! What the CC6 sections share: access populations as tables (streamed, with a seeded
//! sample), reconciliations against the store's own independent counts, and the `*`
//! patterns of a policy's grants.

use super::population::{self, Population, SampleOf};
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

/// What one population is: its table id, title, description, what its `finding` column says,
/// and its sample's id.
#[derive(Debug, Clone, Copy)]
pub struct EventPopulation<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub finding: &'a str,
    pub sample_id: &'a str,
}

/// Streams a population query into a table and its seeded sample: each row is one
/// occurrence of an automated control (an access decision), so the "many times a day" size,
/// at the lower risk. A population too large to hold spills to its CSV
/// ([`super::population`]); `observe` sees every row (the table may keep only a preview).
pub async fn event_population(
    ctx: &Ctx<'_>,
    q: ReadQuery<AccessEventRow>,
    what: EventPopulation<'_>,
    observe: &mut (dyn FnMut(&[Cell]) + Send),
) -> Result<(Table, Table), Soc2Error> {
    let EventPopulation { id, title, description, finding, sample_id } = what;
    let columns = event_columns(finding);
    let named: Vec<(&str, &str)> = columns.iter().map(|c| (c.name.as_str(), c.description.as_str())).collect();
    let spec = Population {
        id,
        title,
        description,
        columns: &named,
        id_column: "event_key",
        sample: Some(SampleOf { id: sample_id, frequency: Some(Frequency::Recurring), risk: Risk::Lower }),
    };
    let (table, sample) = population::stream_observed(ctx, spec, q, observe).await?;
    let sample = sample.ok_or_else(|| Soc2Error::Internal(format!("{id}: no sample drawn")))?;
    Ok((table, sample))
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
