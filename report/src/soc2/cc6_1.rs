//! CC6.1, logical access: the access policy in force (the proxy's policy file: where it was
//! read, its SHA-256, its text, the identity issuers it accepts, how claims map to roles, and
//! the role → permission matrix), and the population of decisions made for principals
//! holding a privileged role, reconciled and sampled.

use super::access::{EventPopulation, event_population};
use super::{Ctx, PolicyFacts, Soc2Error, tables};
use crate::table::{Cell, Column, Section, Table};
use gatelog_store::read::DecisionFilter;

pub async fn section(ctx: &Ctx<'_>) -> Result<Section, Soc2Error> {
    let mut paragraphs = Vec::new();
    let mut out = Vec::new();
    match &ctx.input.policy {
        Some(policy) => {
            paragraphs.push(format!(
                "The access policy in force when this report was made: {} (SHA-256 {}). The tables below \
                 state its identity issuers, how identity claims map to roles, and what each role may \
                 reach; the file's text follows line by line. This is the policy as read at the time of \
                 the report: its changes during the period are evidenced under CC8.1.",
                policy.path, policy.sha256
            ));
            out.extend(policy_tables(ctx, policy));
        }
        None => paragraphs.push(
            "No access policy was supplied to this report, so the policy in force is not evidenced here. \
             Run `gatelog report soc2 --policy proxy.toml` (or set `report.proxy_policy` in gatelog.toml) \
             to include the policy file, its SHA-256, its issuers and its role → permission matrix."
                .to_owned(),
        ),
    }
    let roles = &ctx.input.privileged_roles;
    if roles.is_empty() {
        paragraphs.push(
            "No privileged roles were named (`--privileged-role ROLE`), so no privileged-access population \
             is shown."
                .to_owned(),
        );
    } else {
        let filter = DecisionFilter { roles_any: roles.clone(), ..ctx.population_filter() };
        let period = ctx.input.period;
        let q = ctx.reader.catalog().access_events(period, &filter)?;
        let description = format!(
            "Every access decision of the period (allowed or not) whose principal held one of the \
             privileged roles {} at the time, each event once. The roles are those the deciding \
             component recorded on the decision.",
            roles.join(", ")
        );
        let what = EventPopulation {
            id: "cc6.1-privileged-decisions",
            title: "Decisions for principals holding a privileged role",
            description: &description,
            finding: "(not used in this population)",
            sample_id: "cc6.1-privileged-sample",
        };
        let (population, sample) = event_population(ctx, q, what, &mut |_| {}).await?;
        ctx.reconcile_later(
            &population.id,
            "population_count_matches_decisions",
            "the population's rows",
            population.total_rows(),
            filter,
        );
        paragraphs.push(format!(
            "{} decisions were made for principals holding a privileged role ({}). The population is \
             reconciled against an independent count of the same events; the sample lets the auditor \
             inspect individual decisions against the policy above.",
            population.total_rows(),
            roles.join(", ")
        ));
        out.push(population);
        out.push(sample);
    }
    Ok(Section {
        id: "cc6.1".to_owned(),
        title: "CC6.1 Logical access: policy and privileged access".to_owned(),
        paragraphs,
        tables: out,
    })
}

fn computed_table(
    ctx: &Ctx<'_>,
    id: &str,
    title: &str,
    description: &str,
    columns: &[(&str, &str)],
    rows: Vec<Vec<Cell>>,
    what: &str,
) -> Table {
    let ipe = tables::computed(what, ctx.input.as_of, rows.len() as u64);
    Table {
        id: id.to_owned(),
        title: title.to_owned(),
        description: description.to_owned(),
        columns: columns.iter().map(|(n, d)| Column::new(n, d)).collect(),
        rows,
        ipe,
        sample: None,
        spilled: None,
    }
}

fn policy_tables(ctx: &Ctx<'_>, p: &PolicyFacts) -> Vec<Table> {
    let what = format!("read from the policy file {} (SHA-256 {})", p.path, p.sha256);
    let mut facts = vec![
        vec![Cell::from("path"), Cell::from(p.path.as_str())],
        vec![Cell::from("sha256"), Cell::from(p.sha256.as_str())],
    ];
    facts.extend(p.issuers.iter().map(|i| vec![Cell::from("issuer"), Cell::from(i.as_str())]));
    facts.extend(p.role_mappings.iter().map(|m| vec![Cell::from("role_mapping"), Cell::from(m.as_str())]));
    let matrix = p
        .roles
        .iter()
        .map(|r| {
            vec![
                Cell::from(r.role.as_str()),
                Cell::Text(r.resources.join(", ")),
                Cell::Text(r.actions.join(", ")),
                Cell::Text(r.limits.join("; ")),
            ]
        })
        .collect();
    let text = p.text.lines().enumerate().map(|(i, line)| vec![Cell::UInt(i as u64 + 1), Cell::from(line)]).collect();
    vec![
        computed_table(
            ctx,
            "cc6.1-policy",
            "The access policy in force",
            "The policy file, its SHA-256 (recompute it with `sha256sum`), the identity issuers it accepts \
             and its claim → role mappings.",
            &[("property", "what the row states"), ("value", "as the policy states it")],
            facts,
            &what,
        ),
        computed_table(
            ctx,
            "cc6.1-permission-matrix",
            "Role → permission matrix",
            "Per role: the resources it may reach (`*` matches any run of characters), the statement kinds \
             or methods it may use, and its limits, as the proxy enforces them.",
            &[
                ("role", "the role"),
                ("resources", "resource patterns it may reach"),
                ("actions", "statement kinds or HTTP methods"),
                ("limits", "its limits"),
            ],
            matrix,
            &what,
        ),
        computed_table(
            ctx,
            "cc6.1-policy-text",
            "The policy file's text",
            "The file line by line, as hashed above.",
            &[("line", "line number"), ("text", "the line")],
            text,
            &what,
        ),
    ]
}
