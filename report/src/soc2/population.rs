//! Populations of any size: a read query streamed row by row into a [`Table`], with its
//! seeded sample drawn on the way (the lowest ranks kept in a bounded set), so a population of
//! millions of events never has to be held whole. Up to [`SPILL_ROWS`] rows the table holds
//! every row, as any other; beyond, the rows go to a CSV file in the report's spill folder
//! (the bytes the CSV rendering would give), the table keeps the first [`PREVIEW_ROWS`] for
//! the HTML and Markdown, and `Table::spilled` says where the rest is.

use super::{Ctx, Soc2Error, tables};
use crate::render::csv::Writer;
use crate::sample::{self, Frequency, Risk};
use crate::table::{Cell, Spilled, Table};
use gatelog_store::read::{ReadQuery, ReadRow};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufWriter;

/// Rows a population table holds before it spills to a file.
pub const SPILL_ROWS: usize = 20_000;
/// Rows a spilled population keeps for the HTML and Markdown renderings.
pub const PREVIEW_ROWS: usize = 200;
/// The largest sample [`sample::sample_size`] asks for.
const MAX_SAMPLE: usize = 60;

/// What a population is and how its sample is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Population<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    /// Columns as the query names them, with what they mean.
    pub columns: &'a [(&'a str, &'a str)],
    /// The column whose value identifies a row (unique in the population).
    pub id_column: &'a str,
    /// Draw a sample too.
    pub sample: Option<SampleOf<'a>>,
}

/// How a streamed population's sample is drawn.
#[derive(Debug, Clone, Copy)]
pub struct SampleOf<'a> {
    /// The sample table's id.
    pub id: &'a str,
    /// How often the control operates; `None`: inferred from the population's size.
    pub frequency: Option<Frequency>,
    pub risk: Risk,
}

/// Streams `query` into the population table and its sample (when asked for).
pub async fn stream<R: ReadRow + Serialize>(
    ctx: &Ctx<'_>,
    spec: Population<'_>,
    query: ReadQuery<R>,
) -> Result<(Table, Option<Table>), Soc2Error> {
    stream_observed(ctx, spec, query, &mut |_| {}).await
}

/// [`stream`], showing `observe` every row as it passes (for figures over the whole
/// population, which a spilled table no longer holds).
pub async fn stream_observed<R: ReadRow + Serialize>(
    ctx: &Ctx<'_>,
    spec: Population<'_>,
    query: ReadQuery<R>,
    observe: &mut (dyn FnMut(&[Cell]) + Send),
) -> Result<(Table, Option<Table>), Soc2Error> {
    let id_index = spec
        .columns
        .iter()
        .position(|(c, _)| *c == spec.id_column)
        .ok_or_else(|| Soc2Error::Internal(format!("{}: no id column {}", spec.id, spec.id_column)))?;
    let seed = ctx.input.seed.as_str();
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    let mut spill: Option<(Writer<BufWriter<std::fs::File>>, std::path::PathBuf)> = None;
    let mut lowest: BTreeMap<([u8; 32], String), Vec<Cell>> = BTreeMap::new();
    // Ids seen, as the first 8 bytes of their rank (SHA-256(seed ‖ id)): a repeat is a bug.
    let mut seen: BTreeSet<u64> = BTreeSet::new();
    let mut count: u64 = 0;
    let mut stream = ctx.reader.stream(query)?;
    while let Some(row) = stream.next().await? {
        let value = serde_json::to_value(&row).map_err(|e| Soc2Error::Internal(format!("{}: {e}", spec.id)))?;
        let cells: Vec<Cell> = spec
            .columns
            .iter()
            .map(|(name, _)| tables::cell(name, value.get(*name).unwrap_or(&serde_json::Value::Null)))
            .collect();
        let id = cells[id_index].display();
        observe(&cells);
        count += 1;
        if spec.sample.is_some() {
            let rank = sample::rank(seed, &id);
            let mut head = [0u8; 8];
            head.copy_from_slice(&rank[..8]);
            if !seen.insert(u64::from_be_bytes(head)) {
                return Err(Soc2Error::Internal(format!(
                    "{}: id {id:?} appears twice; sampled ids must be unique",
                    spec.id
                )));
            }
            let worst = lowest.keys().next_back().cloned();
            if lowest.len() < MAX_SAMPLE || worst.as_ref().is_some_and(|w| (rank, id.as_str()) < (w.0, w.1.as_str())) {
                lowest.insert((rank, id), cells.clone());
                if lowest.len() > MAX_SAMPLE {
                    lowest.pop_last();
                }
            }
        }
        match &mut spill {
            Some((w, _)) => w.row(&cells)?,
            None if rows.len() < SPILL_ROWS => rows.push(cells),
            None => {
                let path = ctx.spill_dir.join(format!("{}.csv", spec.id));
                let file = std::fs::File::create(&path)
                    .map_err(|e| Soc2Error::Internal(format!("cannot create {}: {e}", path.display())))?;
                let mut w = Writer::new(spec.id, BufWriter::new(file), spec.columns.iter().map(|(c, _)| *c))?;
                for r in &rows {
                    w.row(r)?;
                }
                w.row(&cells)?;
                rows.truncate(PREVIEW_ROWS);
                spill = Some((w, path));
            }
        }
    }
    let ipe = stream.finish()?;
    let mut table =
        tables::from_rows::<serde_json::Value>(spec.id, spec.title, spec.description, spec.columns, &[], ipe)?;
    table.rows = rows;
    if let Some((w, path)) = spill {
        let mut out = w.finish()?;
        std::io::Write::flush(&mut out)
            .map_err(|e| Soc2Error::Internal(format!("cannot write {}: {e}", path.display())))?;
        table.spilled = Some(Spilled { rows: count, path });
    }
    let Some(of) = spec.sample else { return Ok((table, None)) };
    let frequency = of.frequency.unwrap_or_else(|| Frequency::from_population(count));
    let size = usize::try_from(sample::sample_size(frequency, of.risk, count)).unwrap_or(MAX_SAMPLE);
    let picked: Vec<(String, Vec<Cell>)> =
        lowest.into_iter().take(size).map(|((rank, _), cells)| (hex::encode(rank), cells)).collect();
    let sample = table.sample_of(of.id, spec.id_column, seed, frequency, of.risk, picked)?;
    Ok((table, Some(sample)))
}
