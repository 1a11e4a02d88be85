//! CC6.2, registration and de-registration: the principals first seen in the period (their
//! first event ever stored, looking back over all history), with when and from where; and,
//! given the identity provider's export (`--users`), the users' decisions before their start,
//! after their end, or by users the export does not list.

use super::access::{self, EventPopulation, event_population, reconcile_count};
use super::{Ctx, Soc2Error, tables};
use crate::table::Cell;
use crate::table::Section;
use gatelog_store::read::evidence::access::UserBounds;
use gatelog_store::read::{Catalog, PendingReconciliation};
use std::collections::BTreeMap;

pub async fn section(ctx: &Ctx<'_>) -> Result<Section, Soc2Error> {
    let period = ctx.input.period;
    let filter = ctx.population_filter();
    let catalog = ctx.reader.catalog();
    let mut paragraphs = Vec::new();
    let mut out = Vec::new();

    let seen = ctx.reader.fetch(&catalog.first_seen_principals(period, &filter)?).await?;
    let mut ipe = seen.ipe;
    let n = seen.rows.len() as u64;
    reconcile_count(
        ctx,
        &mut ipe,
        "first_seen_count_matches_decisions",
        "the number of principals first seen",
        n,
        catalog.first_seen_count(period, &filter)?,
    )
    .await?;
    paragraphs.push(format!(
        "{n} principals made their first stored request in the period: no event of theirs is stored \
         before it. Each is shown with its first event's time, address, country, network, dataset and \
         authentication method. A principal first seen here should have been provisioned (CC6.2) before \
         that time; match this list against the provisioning records. Limits: \"first\" is relative to \
         the history the store still holds (retention may have dropped older events), and an anonymous \
         request has no principal."
    ));
    out.push(tables::from_rows(
        "cc6.2-first-seen",
        "Principals first seen in the period",
        "Principals whose first event ever stored falls in the period (gatelog's own datasets left out).",
        &[
            ("principal", "who"),
            ("first_ms", "their first event (UTC)"),
            ("first_client_ip", "its client address"),
            ("first_country", "its country"),
            ("first_asn", "its network (ASN)"),
            ("first_dataset", "the dataset that recorded it"),
            ("first_auth_method", "how they authenticated"),
            ("events", "their events in the period"),
        ],
        &seen.rows,
        ipe,
    )?);

    match &ctx.input.users {
        None => paragraphs.push(
            "No identity provider export was supplied, so access before a user's start or after their end \
             is not evidenced here. Export the users (`principal,start,end`, RFC 3339 or dates, an empty end \
             for active users) and pass it with `--users users.csv`."
                .to_owned(),
        ),
        Some(users) => {
            let bounds: Vec<UserBounds> = users
                .iter()
                .map(|u| UserBounds { principal: u.principal.clone(), start: u.start, end: u.end })
                .collect();
            let q = catalog.user_window_violations(period, &filter, &bounds)?;
            let what = EventPopulation {
                id: "cc6.2-access-outside-window",
                title: "Users' access outside their employment window",
                description: "Every decision of the period for a user principal (principal_type user) made before \
                     the start or at or after the end the identity provider's export states, or for a user \
                     the export does not list; each event once, allowed or not.",
                finding: "before_start, after_end or not_in_export",
                sample_id: "cc6.2-access-outside-window-sample",
            };
            // By finding: events, and how many of them were allowed (every row, not a preview).
            let mut by: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            let finding = access::event_columns("").len() - 1;
            let mut observe = |row: &[Cell]| {
                let slot = by.entry(row[finding].display()).or_default();
                slot.0 += 1;
                if row[3].display() == "allow" {
                    slot.1 += 1;
                }
            };
            let (population, sample) = event_population(ctx, q, what, &mut observe).await?;
            let figure = population.total_rows();
            let (condition, params) = Catalog::user_window_condition(&bounds);
            let item = PendingReconciliation::new(
                "window_population_matches_decisions",
                "the population's rows",
                figure,
                filter.clone(),
            )
            .with_condition(&condition, params);
            ctx.reconcile_item_later(&[population.id.as_str()], item);
            let counts: Vec<String> =
                by.iter().map(|(f, (n, allowed))| format!("{f}: {n} ({allowed} allowed)")).collect();
            paragraphs.push(format!(
                "The identity provider's export lists {} users. {} decisions fall outside a user's window{}. \
                 An allowed decision after a user's end is an exception to investigate (access not \
                 removed on time); denied ones show the removal worked. Limits: only decisions whose \
                 principal is a user are compared; the export's own accuracy is not evidenced here.",
                users.len(),
                figure,
                if counts.is_empty() { String::new() } else { format!(" ({})", counts.join(", ")) }
            ));
            out.push(population);
            out.push(sample);
        }
    }
    Ok(Section {
        id: "cc6.2".to_owned(),
        title: "CC6.2 Registration and removal of users".to_owned(),
        paragraphs,
        tables: out,
    })
}
