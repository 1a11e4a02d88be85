//! CC7.2, monitoring operates: the detector catalogue in force, what ran in the period per
//! rule and version (failed runs with their cause), every canary run, and ingest
//! completeness per dataset (from the batches) and per dataset and zone (from the events).

use super::{Ctx, INTERNAL_DATASETS, Soc2Error, tables};
use crate::sample::{Frequency, Risk};
use crate::table::{Section, Table};
use gatelog_model::{IpeRecord, Reconciliation};
use gatelog_store::read::{Coverage, coverage, gaps_reconciliation};
use serde::Serialize;

/// A count from a population against the same count taken another way.
pub(crate) fn tally_check(name: &str, description: &str, figure: u64, counted: u64, sql: &str) -> Reconciliation {
    Reconciliation {
        name: name.to_owned(),
        description: description.to_owned(),
        expected: figure.to_string(),
        actual: counted.to_string(),
        sql: Some(sql.to_owned()),
        passed: figure == counted,
    }
}

pub async fn section(ctx: &Ctx<'_>) -> Result<Section, Soc2Error> {
    let period = ctx.input.period;
    let reader = &ctx.reader;
    let c = reader.catalog();
    let mut paragraphs = vec![
        "Monitoring operates when its detectors run on schedule over the data, its canaries (synthetic \
         events gatelog sends through its own ingest) raise an alert within their deadline, and the data \
         arrives. The tables below evidence each, for the period."
            .to_owned(),
    ];
    let mut out: Vec<Table> = Vec::new();

    // The catalogue, as the caller read it from gatelog's configuration.
    let detectors = &ctx.input.detectors;
    out.push(tables::from_rows(
        "cc7.2-detectors",
        "Detector catalogue in force",
        "The detectors configured when this report was made, with the SHA-256 of each definition. It is \
         the catalogue as of the report, not as of every moment of the period: changes in the period are \
         in CC8.1.",
        &[
            ("id", "detector (rule) id"),
            ("version", "its version"),
            ("kind", "streaming, scheduled (SQL rule) or sigma"),
            ("severity", "severity of its alerts"),
            ("description", "what it detects"),
            ("definition_sha256", "SHA-256 of its definition"),
        ],
        detectors,
        tables::computed("the detector catalogue of gatelog's configuration", ctx.input.as_of, detectors.len() as u64),
    )?);

    // Runs per rule and version, counted once per run id, reconciled with uniqExact(run_id).
    let runs = reader.fetch(&c.runs_by_version(period)?).await?;
    let counted = reader.fetch(&c.run_count(period)?).await?;
    let total: u64 = runs.rows.iter().map(|r| r.runs).sum();
    let failed_total: u64 = runs.rows.iter().map(|r| r.failed_runs).sum();
    let mut ipe = runs.ipe;
    ipe.reconciliations.push(tally_check(
        "runs_counted_once",
        "the runs of the table (summed) against uniqExact(run_id) of detector_runs started in the period",
        total,
        counted.rows.first().map_or(0, |r| r.n),
        &counted.ipe.sql,
    ));
    let scheduled: Vec<&str> = detectors.iter().filter(|d| d.kind == "scheduled").map(|d| d.id.as_str()).collect();
    let idle: Vec<&str> = scheduled.iter().copied().filter(|id| !runs.rows.iter().any(|r| r.rule_id == *id)).collect();
    paragraphs.push(format!(
        "{total} detector runs started in the period, {failed_total} of them failed. {}",
        if idle.is_empty() {
            "Every scheduled rule of the catalogue ran in the period.".to_owned()
        } else {
            format!("Scheduled rules of the catalogue with no run in the period: {}.", idle.join(", "))
        }
    ));
    out.push(tables::from_rows(
        "cc7.2-runs",
        "Detector runs in the period, per rule and version",
        "From detector_runs, each run once (by run_id). A streaming run is a checkpoint of the engine \
         over the events it judged; a scheduled run is one window of a SQL rule. Windows are event time.",
        &[
            ("kind", "streaming, warmup, scheduled or manual"),
            ("rule_id", "the rule (streaming: the engine's rule set)"),
            ("rule_version", "its version (streaming: a hash of the rule set and config)"),
            ("runs", "runs started in the period"),
            ("ok_runs", "runs that ended ok"),
            ("failed_runs", "runs that failed"),
            ("window_from_ms", "oldest event time covered"),
            ("window_to_ms", "newest event time covered"),
            ("covered_seconds", "sum of the runs' window lengths"),
            ("rows_scanned", "rows the runs read"),
            ("findings", "findings the runs produced"),
            ("first_run_ms", "first run started"),
            ("last_run_ms", "last run started"),
        ],
        &runs.rows,
        ipe,
    )?);

    let failed = reader.fetch(&c.failed_runs(period)?).await?;
    let mut ipe = failed.ipe;
    ipe.reconciliations.push(Reconciliation {
        name: "failed_runs_match_the_runs_table".to_owned(),
        description: "the failed runs listed against the failed runs of table cc7.2-runs".to_owned(),
        expected: failed_total.to_string(),
        actual: failed.rows.len().to_string(),
        sql: None,
        passed: failed_total == failed.rows.len() as u64,
    });
    out.push(tables::from_rows(
        "cc7.2-failed-runs",
        "Failed detector runs, with their cause",
        "Every run of the period that did not end ok. A failed scheduled window is retried; its retry \
         is another run.",
        &[
            ("run_id", "the run"),
            ("kind", "kind"),
            ("rule_id", "rule"),
            ("rule_version", "version"),
            ("window_start_ms", "window start (event time)"),
            ("window_end_ms", "window end"),
            ("started_at_ms", "when it started"),
            ("duration_ms", "how long it ran, milliseconds"),
            ("error", "the cause, as recorded"),
        ],
        &failed.rows,
        ipe,
    )?);

    let (canaries, canary_paragraph) = canary_tables(ctx).await?;
    paragraphs.push(canary_paragraph);
    out.extend(canaries);

    let (completeness, completeness_paragraphs) = completeness_tables(ctx).await?;
    paragraphs.extend(completeness_paragraphs);
    out.extend(completeness);
    Ok(Section {
        id: "cc7.2".to_owned(),
        title: "CC7.2 Monitoring of system components".to_owned(),
        paragraphs,
        tables: out,
    })
}

/// Every canary run of the period, reconciled, with a seeded sample, and what they show.
async fn canary_tables(ctx: &Ctx<'_>) -> Result<(Vec<Table>, String), Soc2Error> {
    let (reader, period) = (&ctx.reader, ctx.input.period);
    let runs = reader.fetch(&reader.catalog().canary_runs(period)?).await?;
    let counted = reader.fetch(&reader.catalog().canary_run_count(period)?).await?;
    let n = runs.rows.len() as u64;
    let mut ipe = runs.ipe;
    ipe.reconciliations.push(tally_check(
        "canary_runs_counted_once",
        "the canary runs listed against uniqExact(run_id) of canary_runs sent in the period (without FINAL)",
        n,
        counted.rows.first().map_or(0, |r| r.n),
        &counted.ipe.sql,
    ));
    let of = |o: &str| runs.rows.iter().filter(|r| r.outcome == o).count();
    let ok = of("ok");
    let mut latencies: Vec<i64> = runs.rows.iter().filter(|r| r.outcome == "ok").map(|r| r.latency_ms).collect();
    latencies.sort_unstable();
    let share = if n == 0 { "no runs".to_owned() } else { format!("{:.1}% ok", 100.0 * ok as f64 / n as f64) };
    let latency = match (latencies.get(latencies.len() / 2), latencies.last()) {
        (Some(median), Some(max)) => {
            format!(" Latency from sending to the stored alert: median {median} ms, longest {max} ms.")
        }
        _ => String::new(),
    };
    let paragraph = format!(
        "Canaries: {n} runs in the period, {share}: {ok} ok, {} missed (no alert within the deadline), {} failed to \
         send, {} interrupted (serve stopped during the run).{latency} A missed or unsent canary opens a paging \
         alert of its own (missed_alert_id).",
        of("missed"),
        of("failed_to_send"),
        of("interrupted")
    );
    let table = tables::from_rows(
        "cc7.2-canaries",
        "Canary runs in the period",
        "Every canary run sent in the period, each once: the synthetic event, the alert it raised and \
         when, or why not.",
        &[
            ("run_id", "the run"),
            ("sent_at_ms", "when the canary event was accepted (or the attempt failed)"),
            ("deadline_ms", "the deadline for its alert, milliseconds"),
            ("outcome", "ok, missed, failed_to_send or interrupted"),
            ("alert_id", "the alert it raised"),
            ("alert_at_ms", "when that alert was first stored"),
            ("latency_ms", "milliseconds from sending to the stored alert (-1: none)"),
            ("error", "why it failed"),
            ("missed_alert_id", "the paging alert a miss opened"),
        ],
        &runs.rows,
        ipe,
    )?;
    let sample = table.sample("cc7.2-canaries-sample", "run_id", &ctx.input.seed, Frequency::Recurring, Risk::Lower)?;
    Ok((vec![table, sample], paragraph))
}

/// One dataset's completeness, as the report prints it.
#[derive(Serialize)]
struct CoverageRow<'a> {
    dataset: &'a str,
    batches: u64,
    decisions: u64,
    dead_letters: u64,
    first_received_ms: i64,
    last_received_ms: i64,
    gaps: usize,
    gap_list: Vec<String>,
}

fn coverage_row(c: &Coverage) -> CoverageRow<'_> {
    CoverageRow {
        dataset: &c.dataset,
        batches: c.batches,
        decisions: c.decisions,
        dead_letters: c.dead_letters,
        first_received_ms: c.first_received.map_or(0, |t| t.0),
        last_received_ms: c.last_received.map_or(0, |t| t.0),
        gaps: c.gaps.len(),
        gap_list: c.gaps.iter().map(|g| format!("{} – {}", g.from.to_rfc3339(), g.to.to_rfc3339())).collect(),
    }
}

/// Completeness per dataset (batches) and per dataset and zone (events).
async fn completeness_tables(ctx: &Ctx<'_>) -> Result<(Vec<Table>, Vec<String>), Soc2Error> {
    let (reader, input) = (&ctx.reader, ctx.input);
    let period = input.period;
    let batches = reader.ingest_batches(period).await?;
    let external: Vec<_> =
        batches.rows.iter().filter(|b| !INTERNAL_DATASETS.contains(&b.dataset.as_str())).cloned().collect();
    let expected: Vec<&str> = input.expected_datasets.iter().map(String::as_str).collect();
    let per_dataset = coverage(period, &external, &expected, input.max_silence);
    let mut ipe: IpeRecord = batches.ipe;
    ipe.reconciliations.push(gaps_reconciliation(&per_dataset, input.max_silence));
    let rows: Vec<CoverageRow<'_>> = per_dataset.iter().map(coverage_row).collect();
    let gaps: usize = rows.iter().map(|r| r.gaps).sum();
    let by_dataset = tables::from_rows(
        "cc7.2-ingest-completeness",
        "Ingest completeness per dataset",
        "Computed from the batches of ingest_batches received in the period (each batch once; gatelog's \
         own datasets left out): what each dataset delivered and every silence between arrivals longer \
         than the allowed one. Datasets expected to arrive continuously are listed even when nothing came.",
        &[
            ("dataset", "the dataset"),
            ("batches", "batches received"),
            ("decisions", "events they held"),
            ("dead_letters", "lines that could not be parsed"),
            ("first_received_ms", "first arrival"),
            ("last_received_ms", "last arrival"),
            ("gaps", "silences longer than allowed"),
            ("gap_list", "each silence, from – to"),
        ],
        &rows,
        ipe,
    )?;
    let silence_minutes = input.max_silence.as_secs().div_ceil(60).max(1);
    let exclude: Vec<String> = INTERNAL_DATASETS.iter().map(|d| (*d).to_owned()).collect();
    let zones = reader.fetch(&reader.catalog().zone_activity(period, &exclude, silence_minutes)?).await?;
    let events: u64 = zones.rows.iter().map(|z| z.events).sum();
    let silent_zones = zones.rows.iter().filter(|z| z.silences > 0).count();
    let mut ipe = zones.ipe;
    reader
        .reconcile(
            &mut ipe,
            "zone_events_total_matches_decisions",
            "the sum of the events per dataset and zone",
            events,
            period,
            &ctx.population_filter(),
        )
        .await?;
    let by_zone = tables::from_rows(
        "cc7.2-zone-activity",
        "Events per dataset and zone, with silences",
        "Batches carry no zone (their origin is the ingest route or file), so completeness per zone is \
         read from the events' zone column: per dataset and zone, the events of the period (each once) \
         and the silences, in whole UTC minutes, between minutes that had an event (from the period's \
         start and to its end) longer than the allowed silence. A quiet zone is not necessarily a gap in \
         delivery, and a zone that sent nothing in the whole period does not appear.",
        &[
            ("dataset", "the dataset"),
            ("zone", "the Cloudflare zone (empty: the dataset has none)"),
            ("events", "events in the period"),
            ("first_ms", "first event"),
            ("last_ms", "last event"),
            ("silences", "silences longer than allowed"),
            ("longest_silence_minutes", "the longest silence, minutes"),
        ],
        &zones.rows,
        ipe,
    )?;
    let paragraphs = vec![format!(
        "Completeness: {} datasets, {gaps} silences longer than {} minutes between batches; {} zones of {} \
         had a silence between events longer than that. Zone comes from the events' zone column \
         (ingest_batches.origin is the route or file a batch came through, not a zone).",
        rows.len(),
        silence_minutes,
        silent_zones,
        zones.rows.len()
    )];
    Ok((vec![by_dataset, by_zone], paragraphs))
}
