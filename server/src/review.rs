//! `gatelog review import SHEET.csv`: checks a completed access review sheet
//! (`gatelog_report::soc2::review::parse_sheet`) and records it in `access_reviews`
//! (`Store::record_access_review`), then prints what was recorded. With managed ClickHouse it
//! uses the server `gatelog serve` runs under the data dir.

use crate::cli::ReviewCommand;
use crate::clickhouse::Target;
use anyhow::Context;
use gatelog_model::{Clock, SystemClock, UnixMillis};
use gatelog_store::reviews::ReviewRecorded;
use gatelog_store::sql::reviews::AccessReviewRow;
use std::collections::BTreeSet;
use std::process::ExitCode;

pub async fn run(command: ReviewCommand) -> anyhow::Result<ExitCode> {
    let ReviewCommand::Import(args) = command;
    let name = args.sheet.display().to_string();
    let bytes = std::fs::read(&args.sheet).with_context(|| format!("cannot read {name}"))?;
    let rows = gatelog_report::soc2::review::parse_sheet(&name, &bytes, SystemClock.now())?;
    let config = crate::config::resolve(&args.store)?;
    let target = Target::connect_beside_serve(&config).await?;
    let recorded = target.store.record_access_review(&rows).await;
    target.shutdown().await;
    crate::print_stdout(&summary(&rows, recorded?))?;
    Ok(ExitCode::SUCCESS)
}

/// What was recorded (or found already recorded), in a few lines.
fn summary(rows: &[AccessReviewRow], recorded: ReviewRecorded) -> String {
    let Some(first) = rows.first() else {
        return "nothing to record\n".to_owned();
    };
    let remove = rows.iter().filter(|r| r.decision == "remove").count();
    let reviewers: BTreeSet<&str> = rows.iter().map(|r| r.reviewer.as_str()).collect();
    let head = match recorded {
        ReviewRecorded::Stored { rows } => format!("recorded access review {} ({rows} rows)", first.review_id),
        ReviewRecorded::AlreadyStored { rows, imported_at_ms } => format!(
            "access review {} was already recorded at {} ({rows} rows); nothing stored",
            first.review_id,
            UnixMillis(imported_at_ms).to_rfc3339()
        ),
    };
    format!(
        "{head}\n  sheet sha256: {}\n  keep: {}, remove: {remove}\n  reviewers: {}\n",
        first.sheet_sha256,
        rows.len() - remove,
        reviewers.into_iter().collect::<Vec<_>>().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_whether_anything_was_stored() {
        let row = |decision: &str, reviewer: &str| AccessReviewRow {
            review_id: "r1".into(),
            decision: decision.into(),
            reviewer: reviewer.into(),
            sheet_sha256: "s1".into(),
            ..AccessReviewRow::default()
        };
        let rows = [row("keep", "b"), row("remove", "a"), row("keep", "a")];
        let stored = summary(&rows, ReviewRecorded::Stored { rows: 3 });
        assert!(stored.starts_with("recorded access review r1 (3 rows)"), "{stored}");
        assert!(stored.contains("keep: 2, remove: 1") && stored.contains("reviewers: a, b"), "{stored}");
        let again = summary(&rows, ReviewRecorded::AlreadyStored { rows: 3, imported_at_ms: 0 });
        assert!(again.contains("already recorded at 1970-01-01T00:00:00.000Z") && again.contains("nothing stored"));
    }
}
