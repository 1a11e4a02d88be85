//! `gatelog report soc2`: the evidence this data supports, criterion by criterion, as one
//! [`Report`] every renderer and the bundle take.
//!
//! [`generate`] runs each section's queries against the store through a [`Reader`] whose
//! clock is fixed at the report's `as_of` (so the same period over the same data gives the
//! same bytes), and builds its tables with their IPE records, reconciliations and seeded
//! samples. Sections:
//! - [`scope`]: the period, the parameters, every event of the period by dataset and outcome,
//!   reconciled against an independent count.
//! - one module per criterion group (CC6.x access, CC7.x operations, CC8.1 change), each a
//!   `pub async fn … (ctx: &Ctx<'_>) -> Result<Section, Soc2Error>`.
//!
//! Module map: [`input`] (what the caller supplies), [`tables`] (rows → tables), [`scope`],
//! [`output`] (the files and the signed bundle of a generated report), [`population`] (a
//! population of any size streamed into a table and its seeded sample). Operations and
//! change: [`cc7_2`], [`cc7_3`], [`cc7_4`], [`cc8_1`], and [`diff`] (CC8.1's line diff).

pub mod access;
pub mod cc6_1;
pub mod cc6_2;
pub mod cc6_3;
pub mod cc6_6;
pub mod cc7_2;
pub mod cc7_3;
pub mod cc7_4;
pub mod cc8_1;
pub mod diff;
pub mod input;
pub mod output;
pub mod population;
pub mod review;
pub mod scope;
pub mod tables;
pub mod users;

pub use input::{DetectorFacts, INTERNAL_DATASETS, PolicyFacts, RoleGrants, Soc2Input, UserWindow};

use crate::table::{Report, Section, TableError};
use gatelog_model::FixedClock;
use gatelog_store::read::{DecisionFilter, PendingReconciliation, Reader};
use gatelog_store::{Store, StoreError};
use std::sync::Arc;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Soc2Error {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Table(#[from] TableError),
    #[error("{0}")]
    Render(#[from] crate::render::RenderError),
    /// Bad input from the caller (a users export, a policy), named.
    #[error("{0}")]
    Input(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Told as each section starts, for a progress bar.
pub trait Progress: Send + Sync {
    fn section(&self, index: usize, total: usize, id: &str);
}

/// No progress shown.
#[derive(Debug)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn section(&self, _index: usize, _total: usize, _id: &str) {}
}

/// What every section's builder gets.
pub struct Ctx<'a> {
    pub reader: Reader,
    pub input: &'a Soc2Input,
    /// Where populations too large to hold are written ([`population`]); the caller keeps it
    /// until the report's files are written or bundled.
    pub spill_dir: &'a std::path::Path,
    /// Figures to reconcile once every section is built, in one pass ([`Ctx::reconcile_later`]).
    pending: std::sync::Mutex<Vec<(Vec<String>, PendingReconciliation)>>,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("database", &self.reader.catalog()).field("input", &self.input).finish()
    }
}

impl<'a> Ctx<'a> {
    /// A context for sections over `reader` (its clock fixed at `input.as_of`).
    pub fn new(reader: Reader, input: &'a Soc2Input, spill_dir: &'a std::path::Path) -> Self {
        Ctx { reader, input, spill_dir, pending: std::sync::Mutex::new(Vec::new()) }
    }

    /// Reconciles `figure` (a number table `table_id` shows) against the independent count of
    /// the period's events passing `filter`, after every section is built: [`generate`] runs
    /// all of them in one query (one grouping of the period's events, however many figures)
    /// and adds each result to its table's record. `name` is the check's name, `what` says
    /// what the figure is.
    pub fn reconcile_later(&self, table_id: &str, name: &str, what: &str, figure: u64, filter: DecisionFilter) {
        self.reconcile_item_later(&[table_id], PendingReconciliation::new(name, what, figure, filter));
    }

    /// [`Ctx::reconcile_later`] of any pending item (a filter and a condition of its own),
    /// its result added to each of `table_ids` (tables built from one query).
    pub fn reconcile_item_later(&self, table_ids: &[&str], item: PendingReconciliation) {
        let ids = table_ids.iter().map(|t| (*t).to_owned()).collect();
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((ids, item));
    }

    /// Runs the pending reconciliations and adds each to its table in `sections`.
    pub async fn reconcile_pending(&self, sections: &mut [Section]) -> Result<(), Soc2Error> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let items: Vec<PendingReconciliation> = pending.iter().map(|(_, i)| i.clone()).collect();
        let results = self.reader.reconcile_many(self.input.period, &items).await?;
        for ((table_ids, _), result) in pending.iter().zip(results) {
            for table_id in table_ids {
                let table =
                    sections.iter_mut().flat_map(|s| s.tables.iter_mut()).find(|t| &t.id == table_id).ok_or_else(
                        || Soc2Error::Internal(format!("a reconciliation for table {table_id}, which no section has")),
                    )?;
                table.ipe.reconciliations.push(result.clone());
            }
        }
        Ok(())
    }

    /// The filter every population starts from: all events but gatelog's own datasets.
    pub fn population_filter(&self) -> DecisionFilter {
        DecisionFilter {
            exclude_datasets: INTERNAL_DATASETS.iter().map(|d| (*d).to_owned()).collect(),
            ..DecisionFilter::default()
        }
    }
}

/// The section ids in report order.
pub const SECTIONS: &[&str] = &["scope", "cc6.1", "cc6.2", "cc6.3", "cc6.6", "cc7.2", "cc7.3", "cc7.4", "cc8.1"];

/// When the newest stored batch arrived (gatelog's own datasets, which keep arriving, left
/// out): the default `as_of`, so the same data gives the same report whenever it is
/// generated (0 when nothing is stored).
pub async fn data_as_of(store: &Store) -> Result<gatelog_model::UnixMillis, Soc2Error> {
    let reader = store.reader(Arc::new(gatelog_model::SystemClock));
    let internal: Vec<String> = INTERNAL_DATASETS.iter().map(|d| (*d).to_owned()).collect();
    let latest = reader.fetch(&reader.catalog().latest_arrival(&internal)?).await?;
    Ok(gatelog_model::UnixMillis(latest.rows.first().map_or(0, |r| r.received_at_ms)))
}

/// The seed when none is given: derived from the period alone (`soc2:<from>/<to>`), so two
/// runs over one period draw the same samples.
pub fn default_seed(period: gatelog_store::read::Period) -> String {
    format!("soc2:{}/{}", period.from().to_rfc3339(), period.to().to_rfc3339())
}

/// Builds the report for `input` from `store`.
/// Large populations are written to files in `spill_dir` (see [`population`]), which the
/// returned report refers to.
pub async fn generate(
    store: &Store,
    input: &Soc2Input,
    spill_dir: &std::path::Path,
    progress: &dyn Progress,
) -> Result<Report, Soc2Error> {
    let ctx = Ctx::new(store.reader(Arc::new(FixedClock::new(input.as_of))), input, spill_dir);
    // The reconciliations after the sections are one more step of the progress.
    let total = SECTIONS.len() + 1;
    let mut sections: Vec<Section> = Vec::with_capacity(SECTIONS.len());
    for (index, id) in SECTIONS.iter().enumerate() {
        progress.section(index, total, id);
        let section = match *id {
            "scope" => scope::section(&ctx).await?,
            "cc6.1" => cc6_1::section(&ctx).await?,
            "cc6.2" => cc6_2::section(&ctx).await?,
            "cc6.3" => cc6_3::section(&ctx).await?,
            "cc6.6" => cc6_6::section(&ctx).await?,
            "cc7.2" => cc7_2::section(&ctx).await?,
            "cc7.3" => cc7_3::section(&ctx).await?,
            "cc7.4" => cc7_4::section(&ctx).await?,
            "cc8.1" => cc8_1::section(&ctx).await?,
            other => return Err(Soc2Error::Internal(format!("no builder for section {other}"))),
        };
        sections.push(section);
    }
    progress.section(SECTIONS.len(), total, "reconciliations");
    ctx.reconcile_pending(&mut sections).await?;
    let head = ctx.reader.fetch(&ctx.reader.catalog().chain_head_at(input.as_of.0)?).await?;
    let chain_head = head.rows.into_iter().next().map(|h| crate::chain::ChainHead {
        links: h.links,
        last_batch_id: Some(h.last_batch_id),
        hash: h.hash,
    });
    if let Some(scope) = sections.first_mut() {
        scope.paragraphs.push(match &chain_head {
            Some(h) => format!(
                "Tamper evidence: the stored batches form a hash chain; its head as of the data's time is link {} \
                 (batch {}), hash {}. The bundle's manifest names it; `gatelog verify --store --from … --to …` \
                 recomputes the chain from ClickHouse and names the first batch whose stored rows disagree.",
                h.links,
                h.last_batch_id.as_deref().unwrap_or("-"),
                h.hash
            ),
            None => "Tamper evidence: no batch of this store is linked in the hash chain yet (batches stored \
                     before gatelog kept one are not), so no chain head is named."
                .to_owned(),
        });
    }
    let report = Report {
        title: "SOC 2 evidence: access decisions".to_owned(),
        period: format!("{} – {}", input.period.from().to_rfc3339(), input.period.to().to_rfc3339()),
        gatelog_version: input.gatelog_version.clone(),
        parameters: input.parameters.iter().cloned().collect(),
        regenerate: input.regenerate.clone(),
        chain_head,
        sections,
    };
    report.validate()?;
    Ok(report)
}
