//! [`PrincipalHistory`]: the rows of [`super::Catalog::principal_history`] as maps, per
//! principal (countries, ASNs, hours of the week, resources, with counts and first/last
//! seen) and per client IP (events and denies).

use super::rows::HistoryRow;
use crate::StoreError;
use gatelog_model::UnixMillis;
use serde::Serialize;
use std::collections::BTreeMap;

/// How often something was seen, how often denied, and when first and last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Activity {
    pub events: u64,
    pub denies: u64,
    pub first: UnixMillis,
    pub last: UnixMillis,
}

impl From<&HistoryRow> for Activity {
    fn from(r: &HistoryRow) -> Self {
        Activity { events: r.events, denies: r.denies, first: UnixMillis(r.first_ms), last: UnixMillis(r.last_ms) }
    }
}

/// One principal's history. An empty country or ASN 0 means the source did not say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PrincipalProfile {
    /// All its events (`None` only if the rows were cut short).
    pub activity: Option<Activity>,
    pub countries: BTreeMap<String, Activity>,
    pub asns: BTreeMap<u32, Activity>,
    /// 0 = Monday 00:00–00:59 UTC … 167 = Sunday 23:00–23:59 UTC.
    pub hours_of_week: BTreeMap<u8, Activity>,
    pub resources: BTreeMap<String, Activity>,
}

/// Every principal's and client IP's history over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PrincipalHistory {
    pub principals: BTreeMap<String, PrincipalProfile>,
    pub client_ips: BTreeMap<String, Activity>,
}

impl PrincipalHistory {
    /// Builds the maps; a row this build does not understand is an error naming it.
    pub fn from_rows(rows: &[HistoryRow]) -> Result<Self, StoreError> {
        let mut out = PrincipalHistory::default();
        for r in rows {
            let bad = |why: &str| StoreError::InvalidRow {
                query: "read.principal_history".to_owned(),
                detail: format!("{why}: {} {:?} {} {:?}", r.subject, r.key, r.dimension, r.value),
            };
            let a = Activity::from(r);
            match (r.subject.as_str(), r.dimension.as_str()) {
                ("client_ip", "events") => {
                    out.client_ips.insert(r.key.clone(), a);
                }
                ("principal", dimension) => {
                    let p = out.principals.entry(r.key.clone()).or_default();
                    match dimension {
                        "events" => p.activity = Some(a),
                        "country" => {
                            p.countries.insert(r.value.clone(), a);
                        }
                        "asn" => {
                            let asn = r.value.parse().map_err(|_| bad("not an ASN"))?;
                            p.asns.insert(asn, a);
                        }
                        "hour_of_week" => {
                            let hour: u8 =
                                r.value.parse().ok().filter(|h| *h < 168).ok_or_else(|| bad("not an hour"))?;
                            p.hours_of_week.insert(hour, a);
                        }
                        "resource" => {
                            p.resources.insert(r.value.clone(), a);
                        }
                        _ => return Err(bad("unknown dimension")),
                    }
                }
                _ => return Err(bad("unknown subject")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subject: &str, key: &str, dimension: &str, value: &str, events: u64) -> HistoryRow {
        HistoryRow {
            subject: subject.into(),
            key: key.into(),
            dimension: dimension.into(),
            value: value.into(),
            events,
            denies: 1,
            first_ms: 10,
            last_ms: 20,
        }
    }

    #[test]
    fn rows_become_profiles() {
        let rows = vec![
            row("client_ip", "203.0.113.9", "events", "", 7),
            row("principal", "a@x", "asn", "3320", 2),
            row("principal", "a@x", "country", "DE", 3),
            row("principal", "a@x", "events", "", 3),
            row("principal", "a@x", "hour_of_week", "167", 3),
            row("principal", "a@x", "resource", "r1", 1),
        ];
        let h = PrincipalHistory::from_rows(&rows).unwrap();
        assert_eq!(h.client_ips["203.0.113.9"].events, 7);
        let a = &h.principals["a@x"];
        assert_eq!(a.activity.map(|x| x.events), Some(3));
        assert_eq!((a.asns[&3320].events, a.countries["DE"].events, a.hours_of_week[&167].events), (2, 3, 3));
        assert_eq!(a.resources["r1"], Activity { events: 1, denies: 1, first: UnixMillis(10), last: UnixMillis(20) });
        for bad in [
            row("principal", "a", "hour_of_week", "168", 1),
            row("principal", "a", "asn", "x", 1),
            row("principal", "a", "colour", "x", 1),
            row("tenant", "a", "events", "", 1),
        ] {
            let err = PrincipalHistory::from_rows(&[bad]).unwrap_err().to_string();
            assert!(err.contains("read.principal_history"), "{err}");
        }
    }
}
