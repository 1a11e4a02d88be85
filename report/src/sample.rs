//! Seeded, reproducible samples, sized as auditors size tests of controls.
//!
//! Drawing: every population row has a unique id; its rank is `SHA-256(seed ‖ id)` (the
//! seed's UTF-8 bytes immediately followed by the id's, the id as ClickHouse's `toString`
//! prints it); the sample is the `k` rows of lowest rank, in rank order. Nothing depends on
//! a random generator's version, and [`redraw_sql`] re-draws the same rows in ClickHouse
//! (18.16 and later): `ORDER BY SHA256(concat(seed, toString(id)))`.
//!
//! Size ([`sample_size`]): the table practitioners use for tests of operating effectiveness
//! (AICPA Audit Guide *Audit Sampling*, as summarised in firms' SOC 2 sampling tables). The
//! control's frequency gives a range; the lower bound applies at [`Risk::Lower`], the upper
//! at [`Risk::Higher`]; a population smaller than the size is tested whole.
//!
//! | frequency (occurrences a year) | lower risk | higher risk |
//! | --- | --- | --- |
//! | annual (1) | 1 | 1 |
//! | quarterly (2–4) | 2 | 2 |
//! | monthly (5–12) | 2 | 5 |
//! | weekly (13–52) | 5 | 15 |
//! | daily (53–365) | 20 | 40 |
//! | recurring, many times a day (> 365) | 25 | 60 |
//!
//! When the frequency is not known, [`Frequency::from_population`] infers it from the
//! population's size by the same ranges.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// How often the control operates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Annual,
    Quarterly,
    Monthly,
    Weekly,
    Daily,
    /// Many times a day: automated or event-driven controls (each access decision).
    Recurring,
}

/// The auditor's assessed risk of the control failing (more risk, larger sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Lower,
    Higher,
}

impl Frequency {
    /// The frequency whose range of yearly occurrences holds `population`.
    pub fn from_population(population: u64) -> Self {
        match population {
            0..=1 => Frequency::Annual,
            2..=4 => Frequency::Quarterly,
            5..=12 => Frequency::Monthly,
            13..=52 => Frequency::Weekly,
            53..=365 => Frequency::Daily,
            _ => Frequency::Recurring,
        }
    }

    /// (lower-risk, higher-risk) sample sizes.
    pub const fn sizes(self) -> (u64, u64) {
        match self {
            Frequency::Annual => (1, 1),
            Frequency::Quarterly => (2, 2),
            Frequency::Monthly => (2, 5),
            Frequency::Weekly => (5, 15),
            Frequency::Daily => (20, 40),
            Frequency::Recurring => (25, 60),
        }
    }
}

/// How many rows to test: the table's size for `frequency` and `risk`, at most the population.
pub fn sample_size(frequency: Frequency, risk: Risk, population: u64) -> u64 {
    let (lower, higher) = frequency.sizes();
    let size = match risk {
        Risk::Lower => lower,
        Risk::Higher => higher,
    };
    size.min(population)
}

/// The rank of a row: `SHA-256(seed ‖ id)`.
pub fn rank(seed: &str, id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.as_bytes());
    h.update(id.as_bytes());
    h.finalize().into()
}

/// Why a sample cannot be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("the population has id {0:?} more than once; sampled ids must be unique")]
    DuplicateId(String),
    #[error("the seed is empty; record a seed so the sample can be drawn again")]
    EmptySeed,
    #[error("{0:?} is not a plain column name")]
    Column(String),
}

/// One drawn row: its id, its rank (hex), its position in the population's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drawn {
    pub id: String,
    pub rank: String,
    pub index: usize,
}

/// The `k` ids of lowest rank, in rank order (ties, which SHA-256 makes theoretical, by id).
pub fn draw<'a, I>(seed: &str, ids: I, k: u64) -> Result<Vec<Drawn>, SampleError>
where
    I: IntoIterator<Item = &'a str>,
{
    if seed.is_empty() {
        return Err(SampleError::EmptySeed);
    }
    let mut seen = BTreeSet::new();
    let mut ranked: Vec<([u8; 32], &str, usize)> = Vec::new();
    for (index, id) in ids.into_iter().enumerate() {
        if !seen.insert(id) {
            return Err(SampleError::DuplicateId(id.to_owned()));
        }
        ranked.push((rank(seed, id), id, index));
    }
    let k = usize::try_from(k).unwrap_or(usize::MAX).min(ranked.len());
    if k < ranked.len() {
        ranked.select_nth_unstable_by(k, |a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        ranked.truncate(k);
    }
    ranked.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    Ok(ranked.into_iter().map(|(r, id, index)| Drawn { id: id.to_owned(), rank: hex::encode(r), index }).collect())
}

/// ClickHouse SQL that re-draws the sample from the population query: the same rows, in the
/// same order, with their rank as `sample_rank`. Runs on 18.16 and on current servers.
pub fn redraw_sql(population_sql: &str, id_column: &str, seed: &str, k: u64) -> Result<String, SampleError> {
    if seed.is_empty() {
        return Err(SampleError::EmptySeed);
    }
    let plain = id_column.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && id_column.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        return Err(SampleError::Column(id_column.to_owned()));
    }
    let population = population_sql.trim().trim_end_matches(';').trim_end();
    let rank = format!("lower(hex(SHA256(concat({}, toString({id_column})))))", quote(seed));
    Ok(format!(
        "SELECT {rank} AS sample_rank, *\nFROM\n(\n{population}\n)\nORDER BY sample_rank ASC, toString({id_column}) ASC\nLIMIT {k}"
    ))
}

/// A ClickHouse string literal.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_table_and_never_exceed_the_population() {
        assert_eq!(sample_size(Frequency::Recurring, Risk::Lower, 1_000_000), 25);
        assert_eq!(sample_size(Frequency::Recurring, Risk::Higher, 1_000_000), 60);
        assert_eq!(sample_size(Frequency::Daily, Risk::Higher, 365), 40);
        assert_eq!(sample_size(Frequency::Recurring, Risk::Higher, 7), 7);
        assert_eq!(sample_size(Frequency::Annual, Risk::Lower, 0), 0);
        for (n, f) in [
            (1, Frequency::Annual),
            (4, Frequency::Quarterly),
            (12, Frequency::Monthly),
            (52, Frequency::Weekly),
            (250, Frequency::Daily),
            (366, Frequency::Recurring),
        ] {
            assert_eq!(Frequency::from_population(n), f, "{n}");
        }
    }

    #[test]
    fn draws_are_reproducible_ordered_and_independent_of_input_order() {
        let ids: Vec<String> = (0..1000).map(|i| format!("e{i}")).collect();
        let a = draw("seed-1", ids.iter().map(String::as_str), 25).unwrap();
        let b = draw("seed-1", ids.iter().rev().map(String::as_str), 25).unwrap();
        assert_eq!(a.iter().map(|d| &d.id).collect::<Vec<_>>(), b.iter().map(|d| &d.id).collect::<Vec<_>>());
        assert!(a.windows(2).all(|w| w[0].rank < w[1].rank));
        assert_eq!(a[0].rank, hex::encode(rank("seed-1", &a[0].id)));
        let c = draw("seed-2", ids.iter().map(String::as_str), 25).unwrap();
        assert_ne!(a, c);
        // The k lowest of a larger k are the k lowest.
        let more = draw("seed-1", ids.iter().map(String::as_str), 60).unwrap();
        assert_eq!(&more[..25], &a[..]);
        assert_eq!(draw("s", ["a", "b"], 10).unwrap().len(), 2);
        assert_eq!(draw("s", ["a", "a"], 1), Err(SampleError::DuplicateId("a".into())));
        assert_eq!(draw("", ["a"], 1), Err(SampleError::EmptySeed));
    }

    #[test]
    fn the_redraw_sql_quotes_the_seed_and_refuses_odd_columns() {
        let sql = redraw_sql("SELECT event_id FROM t;", "event_id", "it's", 5).unwrap();
        assert!(sql.contains("concat('it\\'s', toString(event_id))"), "{sql}");
        assert!(sql.ends_with("LIMIT 5") && !sql.contains(";"), "{sql}");
        assert!(redraw_sql("SELECT 1", "id; DROP", "s", 1).is_err());
    }
}
