//! CC6.6, the system boundary: what the firewall, WAF and Gateway did (by dataset, outcome,
//! rule and WAF source), the denies by client address, country and network (the top values
//! and the totals, reconciled), and the authentication failures (Access logins denied,
//! answers 401, the proxy refusing a request without a valid identity), reconciled and
//! sampled.

use super::access::{self, EventPopulation, event_population};
use super::{Ctx, Soc2Error, tables};
use crate::table::{Cell, Column, Section, Table};
use gatelog_model::{Decision, IpeRecord};
use gatelog_store::read::DecisionFilter;
use gatelog_store::read::PendingReconciliation;
use gatelog_store::read::evidence::access::SourceCountRow;
use gatelog_store::read::evidence::access::{AUTH_FAILURE, BOUNDARY};
use std::collections::BTreeMap;

/// How many values of each source dimension are listed one by one.
pub const TOP: usize = 20;

pub async fn section(ctx: &Ctx<'_>) -> Result<Section, Soc2Error> {
    let period = ctx.input.period;
    let filter = ctx.population_filter();
    let catalog = ctx.reader.catalog();
    let mut paragraphs = Vec::new();
    let mut out = Vec::new();

    let actions = ctx.reader.fetch(&catalog.boundary_actions(period, &filter)?).await?;
    let ipe = actions.ipe;
    let total: u64 = actions.rows.iter().map(|r| r.events).sum();
    let item =
        PendingReconciliation::new("boundary_total_matches_decisions", "the sum of the events", total, filter.clone())
            .with_condition(BOUNDARY, Vec::new());
    ctx.reconcile_item_later(&["cc6.6-boundary-actions"], item);
    paragraphs.push(format!(
        "{total} firewall and WAF events (firewall_events, every action) and Gateway denials (gateway_http) \
         in the period, by outcome, rule and WAF source. They evidence that the boundary controls \
         operated; the rules' configuration itself is evidenced under CC8.1. Limits: only the datasets \
         Logpush delivered are covered (see the ingest completeness under CC7.2)."
    ));
    out.push(tables::from_rows(
        "cc6.6-boundary-actions",
        "Firewall, WAF and Gateway actions",
        "Each event once, by dataset, outcome (block → deny, challenges → challenge, log), rule and WAF source.",
        &[
            ("dataset", "firewall_events or gateway_http"),
            ("decision", "the action as an outcome"),
            ("rule", "the rule id (or Gateway policy)"),
            ("waf_source", "the Cloudflare product that acted (firewallrules, waf, ratelimit, …), when stated"),
            ("events", "events"),
        ],
        &actions.rows,
        ipe,
    )?);

    let denies = DecisionFilter { decisions: vec![Decision::Deny], ..filter.clone() };
    let sources = ctx.reader.fetch(&catalog.events_by_source(period, &denies)?).await?;
    let ipe = sources.ipe;
    let mut by_dim: BTreeMap<String, Vec<SourceCountRow>> = BTreeMap::new();
    for r in sources.rows {
        by_dim.entry(r.dimension.clone()).or_default().push(r);
    }
    let mut deny_total = 0;
    for (dim, rows) in &by_dim {
        let sum: u64 = rows.iter().map(|r| r.events).sum();
        deny_total = sum;
        ctx.reconcile_later(
            "cc6.6-denies-by-source",
            &format!("denies_by_{dim}_total_matches_decisions"),
            &format!("the denies by {dim}, summed"),
            sum,
            denies.clone(),
        );
    }
    if by_dim.is_empty() {
        ctx.reconcile_later("cc6.6-denies-by-source", "no_denies_matches_decisions", "no denies", 0, denies.clone());
    }
    paragraphs.push(format!(
        "{deny_total} requests were denied in the period (every dataset). The table lists, per client \
         address, country and network (ASN), the {TOP} sources with the most denies, then the rest \
         together and the total; each total is reconciled against an independent count of the denies."
    ));
    out.push(source_table(&by_dim, ipe));

    let q = catalog.auth_failures(period, &filter)?;
    let what = EventPopulation {
        id: "cc6.6-auth-failures",
        title: "Authentication failures",
        description: "Every authentication failure of the period, each once: logins Cloudflare Access denied \
             (access_requests), requests answered 401, and requests the proxy refused for want of a valid \
             identity (rule identity).",
        finding: "access_login_denied, answered_401 or proxy_identity_refused",
        sample_id: "cc6.6-auth-failures-sample",
    };
    // By kind, dataset and method: every row, not a spilled table's preview.
    let names = access::event_columns("");
    let col = |name: &str| names.iter().position(|c| c.name == name).unwrap_or(0);
    let (finding, dataset, method) = (col("finding"), col("dataset"), col("auth_method"));
    let mut kinds: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut observe = |row: &[Cell]| {
        *kinds.entry((row[finding].display(), row[dataset].display(), row[method].display())).or_default() += 1;
    };
    let (population, sample) = event_population(ctx, q, what, &mut observe).await?;
    let n = population.total_rows();
    let item =
        PendingReconciliation::new("population_count_matches_decisions", "the population's rows", n, filter.clone())
            .with_condition(AUTH_FAILURE, Vec::new());
    ctx.reconcile_item_later(&[population.id.as_str()], item);
    let kinds = kinds_table(kinds, &population);
    paragraphs.push(format!(
        "{n} authentication failures in the period, by kind, dataset and authentication method in the \
         summary, each in the population, with a sample. Repeated failures for one principal or from \
         one address are what the detection rules alert on (CC7.2)."
    ));
    out.push(kinds);
    out.push(population);
    out.push(sample);
    Ok(Section { id: "cc6.6".to_owned(), title: "CC6.6 The system boundary".to_owned(), paragraphs, tables: out })
}

fn source_table(by_dim: &BTreeMap<String, Vec<SourceCountRow>>, ipe: IpeRecord) -> Table {
    let mut rows = Vec::new();
    for (dim, values) in by_dim {
        // Already ordered by events, most first, then value.
        for r in values.iter().take(TOP) {
            rows.push(vec![Cell::from(dim.as_str()), Cell::from(r.value.as_str()), Cell::UInt(r.events)]);
        }
        if values.len() > TOP {
            let rest: u64 = values[TOP..].iter().map(|r| r.events).sum();
            let label = format!("(the other {} values)", values.len() - TOP);
            rows.push(vec![Cell::from(dim.as_str()), Cell::Text(label), Cell::UInt(rest)]);
        }
        let total: u64 = values.iter().map(|r| r.events).sum();
        rows.push(vec![Cell::from(dim.as_str()), Cell::from("(total)"), Cell::UInt(total)]);
    }
    Table {
        id: "cc6.6-denies-by-source".to_owned(),
        title: "Denies by client address, country and network".to_owned(),
        description: format!(
            "Per dimension, the {TOP} values with the most denies, the other values together, and the total \
             (an empty value: not recorded by the dataset)."
        ),
        columns: vec![
            Column::new("dimension", "client_ip, country or asn"),
            Column::new("value", "the address, country code or ASN"),
            Column::new("denies", "denied requests"),
        ],
        rows,
        ipe,
        sample: None,
        spilled: None,
    }
}

/// The population's rows by finding, dataset and authentication method.
fn kinds_table(counts: BTreeMap<(String, String, String), u64>, population: &Table) -> Table {
    Table {
        id: "cc6.6-auth-failures-by-kind".to_owned(),
        title: "Authentication failures by kind".to_owned(),
        description: "The population below, counted by kind, dataset and authentication method.".to_owned(),
        columns: vec![
            Column::new("kind", "access_login_denied, answered_401 or proxy_identity_refused"),
            Column::new("dataset", "the dataset that recorded it"),
            Column::new("auth_method", "the authentication method, when recorded"),
            Column::new("events", "failures"),
        ],
        rows: counts
            .into_iter()
            .map(|((k, d, m), n)| vec![Cell::Text(k), Cell::Text(d), Cell::Text(m), Cell::UInt(n)])
            .collect(),
        ipe: population.ipe.clone(),
        sample: None,
        spilled: None,
    }
}
