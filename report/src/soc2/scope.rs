//! The report's first section: what period it covers, with which parameters, and every event
//! of the period by dataset and outcome, reconciled against an independent count, so each
//! later population can be read against the whole.

use super::{Ctx, INTERNAL_DATASETS, Soc2Error, tables};
use crate::table::Section;
use gatelog_store::read::DecisionCount;

pub async fn section(ctx: &Ctx<'_>) -> Result<Section, Soc2Error> {
    let period = ctx.input.period;
    let counts = ctx.reader.fetch(&ctx.reader.catalog().decision_counts(period)?).await?;
    let ipe = counts.ipe;
    let rows: Vec<DecisionCount> =
        counts.rows.into_iter().filter(|r| !INTERNAL_DATASETS.contains(&r.dataset.as_str())).collect();
    let total: u64 = rows.iter().map(|r| r.count).sum();
    ctx.reconcile_later(
        "scope-events-by-dataset",
        "events_by_dataset_total_matches_decisions",
        "the sum of the events by dataset and outcome (gatelog's own datasets left out)",
        total,
        ctx.population_filter(),
    );
    let table = tables::from_rows(
        "scope-events-by-dataset",
        "Events of the period by dataset and outcome",
        "Each event counted once: the Tail and Logpush copies of one Worker invocation, re-delivered \
         records and rows ClickHouse has not merged yet are one event. gatelog's own datasets \
         (canaries, the audit trail of reads) are left out.",
        &[
            ("dataset", "the Cloudflare dataset or gatelog source"),
            ("decision", "allow, deny, challenge, log or error"),
            ("count", "events"),
        ],
        &rows,
        ipe,
    )?;
    Ok(Section {
        id: "scope".to_owned(),
        title: "Scope of this report".to_owned(),
        paragraphs: vec![
            format!(
                "Period: events whose time is in {period} (UTC). Data as of {}: every query below ran \
                 against the store as it stood then, and its record shows that time.",
                ctx.input.as_of.to_rfc3339()
            ),
            format!("{total} events in the period."),
            format!("Regenerate this report byte for byte: {}", ctx.input.regenerate),
        ],
        tables: vec![table],
    })
}
