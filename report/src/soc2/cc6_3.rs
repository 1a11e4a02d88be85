//! CC6.3, role-based access and its review: per principal and role held (a decision's
//! `roles`), how much it was used, on how many resources, and when last; against the policy's
//! grants (`resources` patterns, `*` a wildcard), the grants nobody used in the period and
//! the principals holding a role they never exercised; the review sheet reviewers complete
//! (`gatelog review import`); and the reviews imported in the period.

use super::access::{glob, reconcile_count, when};
use super::{Ctx, PolicyFacts, Soc2Error, tables};
use crate::table::{Cell, Column, Section, Table};
use gatelog_model::IpeRecord;
use gatelog_store::read::PendingReconciliation;
use gatelog_store::read::evidence::access::ROLE_USAGE;
use gatelog_store::read::evidence::access::RoleUsageRow;
use std::collections::{BTreeMap, BTreeSet};

/// One principal × role of the period.
#[derive(Debug, Default)]
struct Usage {
    events: u64,
    allowed: u64,
    resources: u64,
    first_ms: i64,
    last_ms: i64,
    /// `None`: the policy does not say what the role grants.
    exercised: Option<bool>,
}

/// What one role's grants are, if the policy names the role.
fn grants<'a>(policy: Option<&'a PolicyFacts>, role: &str) -> Option<&'a [String]> {
    policy?.roles.iter().find(|r| r.role == role).map(|r| r.resources.as_slice())
}

pub async fn section(ctx: &Ctx<'_>) -> Result<Section, Soc2Error> {
    let period = ctx.input.period;
    let filter = ctx.population_filter();
    let catalog = ctx.reader.catalog();
    let policy = ctx.input.policy.as_ref();
    let fetched = ctx.reader.fetch(&catalog.role_usage(period, &filter)?).await?;
    let ipe = fetched.ipe;
    let covered: u64 = fetched.rows.iter().map(|r| r.events_first_role).sum();
    let item = PendingReconciliation::new(
        "role_usage_events_match_decisions",
        "the events the usage covers (each counted under the first of its roles)",
        covered,
        filter.clone(),
    )
    .with_condition(ROLE_USAGE, Vec::new());
    ctx.reconcile_item_later(&["cc6.3-usage"], item);

    let mut usage: BTreeMap<(String, String), Usage> = BTreeMap::new();
    for r in &fetched.rows {
        let u = usage.entry((r.principal.clone(), r.role.clone())).or_default();
        u.events += r.events;
        u.allowed += r.allowed;
        u.resources += 1;
        u.first_ms = if u.first_ms == 0 { r.first_ms } else { u.first_ms.min(r.first_ms) };
        u.last_ms = u.last_ms.max(r.last_ms);
        if let Some(patterns) = grants(policy, &r.role) {
            let hit = r.allowed > 0 && patterns.iter().any(|p| glob(p, &r.resource));
            u.exercised = Some(u.exercised.unwrap_or(false) || hit);
        }
    }
    let mut paragraphs = vec![format!(
        "{} principal × role pairs were active in the period (a role counts as held when the deciding \
         component recorded it on the principal's decision). For each: its events, allowed events, \
         distinct resources and first and last use. Limits: a role held but never used to make a request \
         does not appear in the decisions; the identity provider's group memberships are the complete list.",
        usage.len()
    )];
    let mut out = vec![usage_table(&usage, ipe.clone())];

    match policy {
        None => paragraphs.push(
            "No access policy was supplied, so usage is not compared with what each role grants (unused \
             grants, roles never exercised). Supply the proxy's configuration to include that comparison."
                .to_owned(),
        ),
        Some(p) => {
            let (grant_table, unused) = grant_table(p, &fetched.rows, ipe.clone());
            let unexercised: Vec<Vec<Cell>> = usage
                .iter()
                .filter(|(_, u)| u.exercised == Some(false))
                .map(|((principal, role), u)| {
                    vec![
                        Cell::from(principal.as_str()),
                        Cell::from(role.as_str()),
                        Cell::UInt(u.events),
                        when(u.last_ms),
                    ]
                })
                .collect();
            paragraphs.push(format!(
                "Against the policy ({}): {unused} of the {} granted resource patterns were not used by any \
                 allowed request in the period, and {} principals hold a role they never exercised (no \
                 allowed request on a resource that role grants). Both are candidates for removal in the \
                 review below.",
                p.path,
                grant_table.rows.len(),
                unexercised.len()
            ));
            out.push(grant_table);
            out.push(Table {
                id: "cc6.3-unexercised-roles".to_owned(),
                title: "Principals holding a role they never exercised".to_owned(),
                description: "Principal × role pairs with no allowed request on a resource the role grants.".to_owned(),
                columns: vec![
                    Column::new("principal", "who"),
                    Column::new("role", "the role held"),
                    Column::new("events", "their events under the role (none allowed on its grants)"),
                    Column::new("last_used", "their last event under the role"),
                ],
                rows: unexercised,
                ipe: ipe.clone(),
                sample: None,
                spilled: None,
            });
        }
    }
    paragraphs.push(
        "The review sheet (csv/cc6.3-review-sheet.csv) lists every principal × role pair with its usage. \
         Reviewers fill in decision (keep or remove), a rationale (required for remove), reviewer and \
         reviewed_at, and record it with `gatelog review import SHEET.csv`; the recorded review then \
         appears below in the report of the period it was imported in."
            .to_owned(),
    );
    out.push(review_sheet(&usage, ipe));

    let reviews = ctx.reader.fetch(&catalog.access_reviews(period)?).await?;
    let mut review_ipe = reviews.ipe;
    reconcile_count(
        ctx,
        &mut review_ipe,
        "reviews_match_access_reviews",
        "the review rows shown",
        reviews.rows.len() as u64,
        catalog.access_review_count(period)?,
    )
    .await?;
    let mut sheets: BTreeMap<(String, String), (u64, u64, BTreeSet<String>)> = BTreeMap::new();
    for r in &reviews.rows {
        let s = sheets.entry((r.review_id.clone(), r.sheet_sha256.clone())).or_default();
        if r.decision == "remove" {
            s.1 += 1;
        } else {
            s.0 += 1;
        }
        s.2.insert(r.reviewer.clone());
    }
    if sheets.is_empty() {
        paragraphs.push("No access review was imported in the period.".to_owned());
    }
    for ((id, sha), (keep, remove, reviewers)) in &sheets {
        paragraphs.push(format!(
            "Access review {id} (sheet SHA-256 {sha}): {keep} kept, {remove} to remove, reviewed by {}.",
            reviewers.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    out.push(tables::from_rows(
        "cc6.3-reviews",
        "Access reviews imported in the period",
        "Every row of the completed review sheets recorded by `gatelog review import` in the period, each once.",
        &[
            ("review_id", "SHA-256 of the review's decided rows"),
            ("principal", "who"),
            ("role", "the role reviewed"),
            ("decision", "keep or remove"),
            ("rationale", "why"),
            ("reviewer", "who decided"),
            ("reviewed_at_ms", "when they decided"),
            ("imported_at_ms", "when the sheet was recorded"),
            ("sheet_sha256", "SHA-256 of the sheet file as imported"),
        ],
        &reviews.rows,
        review_ipe,
    )?);
    Ok(Section {
        id: "cc6.3".to_owned(),
        title: "CC6.3 Role-based access and access review".to_owned(),
        paragraphs,
        tables: out,
    })
}

fn usage_table(usage: &BTreeMap<(String, String), Usage>, ipe: IpeRecord) -> Table {
    let rows = usage
        .iter()
        .map(|((principal, role), u)| {
            vec![
                Cell::from(principal.as_str()),
                Cell::from(role.as_str()),
                Cell::UInt(u.events),
                Cell::UInt(u.allowed),
                Cell::UInt(u.resources),
                when(u.first_ms),
                when(u.last_ms),
                u.exercised.map_or(Cell::Null, Cell::Bool),
            ]
        })
        .collect();
    Table {
        id: "cc6.3-usage".to_owned(),
        title: "Usage per principal and role".to_owned(),
        description: "Aggregated from the query's rows (one per principal, role and resource).".to_owned(),
        columns: vec![
            Column::new("principal", "who"),
            Column::new("role", "a role they held"),
            Column::new("events", "their events while holding it"),
            Column::new("allowed", "of which allowed"),
            Column::new("resources_used", "distinct resources reached"),
            Column::new("first_used", "first event (UTC)"),
            Column::new("last_used", "last event (UTC)"),
            Column::new("exercised", "an allowed request on a resource the role grants (empty: not in the policy)"),
        ],
        rows,
        ipe,
        sample: None,
        spilled: None,
    }
}

/// Per role and granted pattern: allowed events on matching resources under that role, by
/// how many principals, and when last; and how many patterns went unused.
fn grant_table(p: &PolicyFacts, rows: &[RoleUsageRow], ipe: IpeRecord) -> (Table, usize) {
    let mut out = Vec::new();
    let mut unused = 0;
    for grant in &p.roles {
        for pattern in &grant.resources {
            let hits: Vec<&RoleUsageRow> =
                rows.iter().filter(|r| r.role == grant.role && r.allowed > 0 && glob(pattern, &r.resource)).collect();
            let events: u64 = hits.iter().map(|r| r.allowed).sum();
            let principals: BTreeSet<&str> = hits.iter().map(|r| r.principal.as_str()).collect();
            let last = hits.iter().map(|r| r.last_ms).max().unwrap_or(0);
            if events == 0 {
                unused += 1;
            }
            out.push(vec![
                Cell::from(grant.role.as_str()),
                Cell::from(pattern.as_str()),
                Cell::UInt(events),
                Cell::UInt(principals.len() as u64),
                when(last),
                Cell::Bool(events == 0),
            ]);
        }
    }
    let table = Table {
        id: "cc6.3-grant-usage".to_owned(),
        title: "What each role grants against what was used".to_owned(),
        description: format!("Each resource pattern of the policy {} against the period's usage.", p.path),
        columns: vec![
            Column::new("role", "the role"),
            Column::new("resource_pattern", "a resource pattern it grants (`*`: any run of characters)"),
            Column::new("allowed_events", "allowed requests under the role on a matching resource"),
            Column::new("principals", "distinct principals who made them"),
            Column::new("last_used", "the last of them (UTC)"),
            Column::new("unused", "no use in the period"),
        ],
        rows: out,
        ipe,
        sample: None,
        spilled: None,
    };
    (table, unused)
}

fn review_sheet(usage: &BTreeMap<(String, String), Usage>, ipe: IpeRecord) -> Table {
    let rows = usage
        .iter()
        .map(|((principal, role), u)| {
            let mut row = vec![
                Cell::from(principal.as_str()),
                Cell::from(role.as_str()),
                Cell::UInt(u.events),
                when(u.last_ms),
                u.exercised.map_or(Cell::Null, Cell::Bool),
            ];
            row.extend(std::iter::repeat_n(Cell::Null, 4));
            row
        })
        .collect();
    Table {
        id: "cc6.3-review-sheet".to_owned(),
        title: "Access review sheet".to_owned(),
        description: "To complete: decision (keep or remove), rationale (required for remove), reviewer and \
                      reviewed_at (RFC 3339 or YYYY-MM-DD); then `gatelog review import` it."
            .to_owned(),
        columns: vec![
            Column::new("principal", "who"),
            Column::new("role", "the role held"),
            Column::new("events", "events in the period while holding it"),
            Column::new("last_used", "last event (UTC)"),
            Column::new("exercised", "used on what the role grants (empty: not in the policy)"),
            Column::new("decision", "reviewer: keep or remove"),
            Column::new("rationale", "reviewer: why (required for remove)"),
            Column::new("reviewer", "reviewer: who"),
            Column::new("reviewed_at", "reviewer: when"),
        ],
        rows,
        ipe,
        sample: None,
        spilled: None,
    }
}
