//! What a read selects: a [`Period`] (half-open, in epoch milliseconds) and, for decisions,
//! a [`DecisionFilter`].

use super::query::{Param, Value};
use crate::StoreError;
use gatelog_model::{Decision, Source, UnixMillis};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The last instant a period may reach: 2100-01-01T00:00:00Z (18.16's `DateTime` ends in
/// 2106, and its calendar functions a little before).
pub const MAX_MS: i64 = 4_102_444_800_000;

/// `[from, to)`: every instant at or after `from` and before `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    from: UnixMillis,
    to: UnixMillis,
}

impl Period {
    /// A period; `from` must be before `to`, both within 1970-01-01 … 2100-01-01 (what
    /// ClickHouse's `DateTime` holds on every supported server).
    pub fn new(from: UnixMillis, to: UnixMillis) -> Result<Period, StoreError> {
        let bad = |detail: String| StoreError::InvalidPeriod(detail);
        for (name, t) in [("from", from), ("to", to)] {
            if !(0..=MAX_MS).contains(&t.0) {
                return Err(bad(format!("{name} {t} is outside 1970-01-01 … 2100-01-01")));
            }
        }
        if from >= to {
            return Err(bad(format!("from {from} must be before to {to}")));
        }
        Ok(Period { from, to })
    }

    /// `look_back` before `to`: e.g. the 30 days detection warms up from.
    pub fn ending_at(to: UnixMillis, look_back: Duration) -> Result<Period, StoreError> {
        let back = i64::try_from(look_back.as_millis()).unwrap_or(i64::MAX);
        Period::new(UnixMillis(to.0.saturating_sub(back).max(0)), to)
    }

    /// Everything a store can hold.
    pub fn everything() -> Period {
        Period { from: UnixMillis(0), to: UnixMillis(MAX_MS) }
    }

    pub fn from(&self) -> UnixMillis {
        self.from
    }

    pub fn to(&self) -> UnixMillis {
        self.to
    }

    pub fn contains(&self, t: UnixMillis) -> bool {
        self.from <= t && t < self.to
    }

    /// `from_ms` and `to_ms`, the parameters every period-bound query takes.
    pub(crate) fn params(&self) -> [Param; 2] {
        [Param::new("from_ms", Value::Int64(self.from.0)), Param::new("to_ms", Value::Int64(self.to.0))]
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.from.to_rfc3339(), self.to.to_rfc3339())
    }
}

/// Which decisions of a period: each list, when not empty, admits only its values (a
/// decision passes when it passes every non-empty list). The empty filter admits all.
/// Applied to the copy of an event that is counted (see the module docs), never to its
/// other copies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecisionFilter {
    /// Events of these tenants (an event is one `(tenant, event_id)`).
    pub tenants: Vec<String>,
    pub datasets: Vec<String>,
    pub decisions: Vec<Decision>,
    pub sources: Vec<Source>,
    pub principals: Vec<String>,
    /// Decisions whose principal held at least one of these roles.
    pub roles_any: Vec<String>,
    /// Events of any dataset but these (gatelog's own, e.g. `gatelog_canary`, kept out of
    /// the populations a report shows).
    pub exclude_datasets: Vec<String>,
}

impl DecisionFilter {
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
            && self.datasets.is_empty()
            && self.decisions.is_empty()
            && self.sources.is_empty()
            && self.principals.is_empty()
            && self.roles_any.is_empty()
            && self.exclude_datasets.is_empty()
    }

    /// Only these decision outcomes.
    pub fn decisions(decisions: &[Decision]) -> Self {
        DecisionFilter { decisions: decisions.to_vec(), ..DecisionFilter::default() }
    }

    /// A condition over one `decisions` row (`1` for the empty filter), with its parameters.
    pub(crate) fn condition(&self) -> (String, Vec<Param>) {
        self.condition_named("")
    }

    /// [`DecisionFilter::condition`] with every parameter's name prefixed by `prefix`, so the
    /// conditions of several filters fit in one query.
    pub(crate) fn condition_named(&self, prefix: &str) -> (String, Vec<Param>) {
        let owned = |v: &[String]| v.to_vec();
        let texts = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<_>>();
        let lists = [
            ("tenants", "has({p}, tenant)", owned(&self.tenants)),
            ("datasets", "has({p}, dataset)", owned(&self.datasets)),
            ("decisions", "has({p}, decision)", texts(self.decisions.iter().map(|d| d.as_str()).collect())),
            ("sources", "has({p}, source)", texts(self.sources.iter().map(|s| s.as_str()).collect())),
            ("principals", "has({p}, principal)", owned(&self.principals)),
            ("roles_any", "hasAny(roles, {p})", owned(&self.roles_any)),
            ("exclude_datasets", "NOT has({p}, dataset)", owned(&self.exclude_datasets)),
        ];
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        for (name, condition, values) in lists {
            if !values.is_empty() {
                let name = format!("{prefix}{name}");
                conditions.push(condition.replace("{p}", &format!("{{{name}}}")));
                params.push(Param::new(name, Value::Strs(values)));
            }
        }
        if conditions.is_empty() { ("1".to_owned(), params) } else { (conditions.join(" AND "), params) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_checked() {
        assert!(Period::new(UnixMillis(5), UnixMillis(5)).is_err());
        assert!(Period::new(UnixMillis(-1), UnixMillis(5)).is_err());
        assert!(Period::new(UnixMillis(0), UnixMillis(MAX_MS + 1)).is_err());
        let p = Period::new(UnixMillis(10), UnixMillis(20)).unwrap();
        assert!(p.contains(UnixMillis(10)) && p.contains(UnixMillis(19)) && !p.contains(UnixMillis(20)));
        let back = Period::ending_at(UnixMillis(86_400_000), Duration::from_secs(3600)).unwrap();
        assert_eq!((back.from().0, back.to().0), (82_800_000, 86_400_000));
        assert_eq!(Period::ending_at(UnixMillis(1000), Duration::from_secs(3600)).unwrap().from().0, 0);
        assert!(Period::everything().contains(UnixMillis(1_740_990_713_712)));
    }

    #[test]
    fn filters_render_only_their_lists() {
        assert_eq!(DecisionFilter::default().condition(), ("1".to_owned(), vec![]));
        let f = DecisionFilter {
            decisions: vec![Decision::Deny, Decision::Challenge],
            roles_any: vec!["admin".into()],
            ..DecisionFilter::default()
        };
        let (sql, params) = f.condition();
        assert_eq!(sql, "has({decisions}, decision) AND hasAny(roles, {roles_any})");
        assert_eq!(params[0].value, Value::Strs(vec!["deny".into(), "challenge".into()]));
        assert!(!f.is_empty() && DecisionFilter::default().is_empty());
    }
}
