//! `gatelog demo`: managed ClickHouse, the sample data of every dataset, and what was stored.

use crate::backfill;
use crate::cli::DemoArgs;
use crate::clickhouse::Target;
use anyhow::Context;
use gatelog_ingest::Dataset;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::resolve(&args.store)?;
    let files = sample_files(&args.samples)?;
    let target = Target::connect(&config).await?;
    let result = async {
        let totals = backfill::ingest_with(&target.store, &config, &files).await?;
        let summary = target.store.summary().await.context("cannot read back what was stored")?;
        anyhow::Ok((totals, summary))
    }
    .await;
    let (totals, summary) = match result {
        Ok(v) => v,
        Err(e) => {
            target.shutdown().await;
            return Err(e);
        }
    };

    let mut out = String::new();
    let _ = writeln!(out, "\ningested {} sample files from {}\n", files.len(), args.samples.display());
    out.push_str(&totals.render());
    let _ = writeln!(out, "\nstored in ClickHouse ({}), database `{}`:\n", target.url, config.clickhouse.database);
    out.push_str(&render_summary(&summary));
    let _ = writeln!(
        out,
        "  (Tail deliveries and workers_trace_events describe the same Worker invocations: their\n   decisions share event ids and are stored once; FINAL shows them deduplicated.)"
    );
    let db = &config.clickhouse.database;
    let _ = writeln!(out, "\nquery it, for example:");
    let _ = writeln!(
        out,
        "  curl '{}/' --data-binary \"SELECT principal, count() AS denies FROM {db}.decisions WHERE decision = 'deny' AND principal != '' GROUP BY principal ORDER BY denies DESC LIMIT 5\"",
        target.url
    );
    let _ = writeln!(
        out,
        "  curl '{}/' --data-binary \"SELECT dataset, decision, count() FROM {db}.decisions FINAL GROUP BY dataset, decision ORDER BY dataset, decision FORMAT PrettyCompact\"",
        target.url
    );
    crate::print_stdout(&out)?;

    if args.keep_running && target.is_managed() {
        crate::print_stdout("\nmanaged ClickHouse keeps running; press Ctrl-C to stop it.\n")?;
        crate::clickhouse::wait_for_shutdown_signal().await;
    } else if !target.is_managed() {
        // An external server stays up by itself.
    } else {
        crate::print_stdout("\n(run with --keep-running to keep managed ClickHouse up for these queries)\n")?;
    }
    target.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Every sample file whose name says its dataset; clean variants duplicate the main files.
fn sample_files(dir: &std::path::Path) -> anyhow::Result<Vec<(PathBuf, Dataset)>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!("cannot read the sample folder {} (pass --samples DIR)", dir.display())
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("cannot list {}", dir.display()))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let is_data = name.ends_with(".ndjson") || name.ends_with(".ndjson.gz") || name.ends_with(".txt.gz");
        if !is_data || name.contains("_clean") {
            continue;
        }
        let dataset = if name.starts_with("validation_probe") {
            Some(Dataset::HttpRequests) // a probe arrives on a job's own URL; it is stored nowhere
        } else {
            Dataset::from_file_name(&path)
        };
        if let Some(dataset) = dataset {
            files.push((path, dataset));
        }
    }
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no sample files (*.ndjson, *.ndjson.gz) in {}", dir.display());
    Ok(files)
}

/// Decisions by dataset and outcome, as a small table, then the other tables' counts.
fn render_summary(summary: &gatelog_store::StoreSummary) -> String {
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
