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
//! Module map: [`input`] (what the caller supplies), [`tables`] (rows → tables), [`scope`].
//! Operations and change: [`cc7_2`], [`cc7_3`], [`cc7_4`], [`cc8_1`], and [`diff`] (CC8.1's line diff).

pub mod cc7_2;
pub mod cc7_3;
pub mod cc7_4;
pub mod cc8_1;
pub mod diff;
pub mod input;
pub mod scope;
pub mod tables;

pub use input::{DetectorFacts, INTERNAL_DATASETS, PolicyFacts, RoleGrants, Soc2Input, UserWindow};

use crate::table::{Report, Section, TableError};
use gatelog_model::FixedClock;
use gatelog_store::read::{DecisionFilter, Reader};
use gatelog_store::{Store, StoreError};
use std::sync::Arc;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Soc2Error {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Table(#[from] TableError),
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
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("database", &self.reader.catalog()).field("input", &self.input).finish()
    }
}

impl Ctx<'_> {
    /// The filter every population starts from: all events but gatelog's own datasets.
    pub fn population_filter(&self) -> DecisionFilter {
        DecisionFilter {
            exclude_datasets: INTERNAL_DATASETS.iter().map(|d| (*d).to_owned()).collect(),
            ..DecisionFilter::default()
        }
    }
}

/// The section ids in report order.
pub const SECTIONS: &[&str] = &["scope", "cc7.2", "cc7.3", "cc7.4", "cc8.1"];

/// Builds the report for `input` from `store`.
pub async fn generate(store: &Store, input: &Soc2Input, progress: &dyn Progress) -> Result<Report, Soc2Error> {
    let ctx = Ctx { reader: store.reader(Arc::new(FixedClock::new(input.as_of))), input };
    let total = SECTIONS.len();
    let mut sections: Vec<Section> = Vec::with_capacity(total);
    for (index, id) in SECTIONS.iter().enumerate() {
        progress.section(index, total, id);
        let section = match *id {
            "scope" => scope::section(&ctx).await?,
            "cc7.2" => cc7_2::section(&ctx).await?,
            "cc7.3" => cc7_3::section(&ctx).await?,
            "cc7.4" => cc7_4::section(&ctx).await?,
            "cc8.1" => cc8_1::section(&ctx).await?,
            other => return Err(Soc2Error::Internal(format!("no builder for section {other}"))),
        };
        sections.push(section);
    }
    let report = Report {
        title: "SOC 2 evidence: access decisions".to_owned(),
        period: format!("{} – {}", input.period.from().to_rfc3339(), input.period.to().to_rfc3339()),
        gatelog_version: input.gatelog_version.clone(),
        parameters: input.parameters.iter().cloned().collect(),
        regenerate: input.regenerate.clone(),
        sections,
    };
    report.validate()?;
    Ok(report)
}
