//! Each panel's answer against the model: the same numbers computed in Rust from the events
//! (each once) of the scenario. A panel without a check here fails the test, so a new panel
//! comes with its check.

use super::results::Table;
use super::scenarios::{Scenario, in_range};
use super::world::{INTERVAL_S, World};
use gatelog_model::AccessDecision;
use std::collections::{BTreeMap, BTreeSet};

/// Mismatches found, with where.
#[derive(Debug, Default)]
pub struct Fails(pub Vec<String>);

impl Fails {
    pub fn rows(&mut self, at: &str, got: Vec<Vec<String>>, want: Vec<Vec<String>>) {
        if got == want {
            return;
        }
        let first = got.iter().zip(&want).position(|(g, w)| g != w).unwrap_or(got.len().min(want.len()));
        self.0.push(format!(
            "{at}: {} rows, expected {}; first difference at row {first}: got {:?}, expected {:?}",
            got.len(),
            want.len(),
            got.get(first),
            want.get(first)
        ));
    }

    pub fn truth(&mut self, at: &str, ok: bool, what: impl std::fmt::Display) {
        if !ok {
            self.0.push(format!("{at}: {what}"));
        }
    }
}

pub fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

fn bucket(ms: i64) -> i64 {
    secs(ms).div_euclid(INTERVAL_S) * INTERVAL_S
}

fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> usize {
    items.collect::<BTreeSet<_>>().len()
}

/// Sorted distinct values joined by a space (`arrayStringConcat(arraySort(groupUniqArray(x)), ' ')`).
fn joined(items: impl Iterator<Item = String>) -> String {
    items.collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(" ")
}

fn count_if(es: &[&AccessDecision], f: impl Fn(&AccessDecision) -> bool) -> usize {
    es.iter().filter(|e| f(e)).count()
}

fn is(e: &AccessDecision, decision: &str) -> bool {
    e.decision.as_str() == decision
}

fn last(es: &[&AccessDecision]) -> i64 {
    es.iter().map(|e| secs(e.time.0)).max().unwrap_or_default()
}

fn first(es: &[&AccessDecision]) -> i64 {
    es.iter().map(|e| secs(e.time.0)).min().unwrap_or_default()
}

/// Groups `es` by `key` (an event may have several keys, as with roles).
fn groups<'a>(
    es: &[&'a AccessDecision],
    key: impl Fn(&AccessDecision) -> Vec<String>,
) -> BTreeMap<String, Vec<&'a AccessDecision>> {
    let mut out: BTreeMap<String, Vec<&AccessDecision>> = BTreeMap::new();
    for e in es {
        for k in key(e) {
            out.entry(k).or_default().push(e);
        }
    }
    out
}

/// Rows ordered by `rank` descending then key, the first `limit`.
fn ranked(
    g: BTreeMap<String, Vec<&AccessDecision>>,
    rank: impl Fn(&[&AccessDecision]) -> u64,
    limit: usize,
    row: impl Fn(&str, &[&AccessDecision]) -> Vec<String>,
) -> Vec<Vec<String>> {
    let mut v: Vec<_> = g.into_iter().collect();
    v.sort_by(|a, b| rank(&b.1).cmp(&rank(&a.1)).then(a.0.cmp(&b.0)));
    v.into_iter().take(limit).map(|(k, es)| row(&k, &es)).collect()
}

/// The table's columns as text: `s:` a string, `n:` an integer, `t:` a time in seconds.
pub fn cells(t: &Table, spec: &[&str]) -> Vec<Vec<String>> {
    (0..t.rows.len())
        .map(|r| {
            spec.iter()
                .map(|c| match c.split_once(':') {
                    Some(("n", name)) => t.i64(r, name).to_string(),
                    Some(("t", name)) => secs(t.time_ms(r, name)).to_string(),
                    Some(("f", name)) => format!("{:.2}", t.num(r, name)),
                    _ => t.str(r, c.trim_start_matches("s:")),
                })
                .collect()
        })
        .collect()
}

fn series(es: &[&AccessDecision], key: impl Fn(&AccessDecision) -> Vec<String>) -> Vec<Vec<String>> {
    let mut m: BTreeMap<(i64, String), usize> = BTreeMap::new();
    for e in es {
        for k in key(e) {
            *m.entry((bucket(e.time.0), k)).or_default() += 1;
        }
    }
    m.into_iter().map(|((b, k), n)| vec![b.to_string(), k, n.to_string()]).collect()
}

fn roles(e: &AccessDecision) -> Vec<String> {
    if e.roles.is_empty() { vec!["(none)".to_owned()] } else { e.roles.clone() }
}

/// ClickHouse's `round(x, digits)` on a Float64: scaled, then to the nearest even on a tie.
pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round_ties_even() / scale
}

/// `if(n = 0, 0, round(100 * part / whole, 2))`, as the `f:` cells print it.
pub fn pct(part: usize, whole: usize) -> String {
    format!("{:.2}", if whole == 0 { 0.0 } else { round(100.0 * part as f64 / whole as f64, 2) })
}

/// Checks one panel's table; `at` names the server, dashboard, scenario and panel.
pub fn panel(f: &mut Fails, at: &str, title: &str, t: &Table, world: &World, s: &Scenario) {
    let es: Vec<&AccessDecision> = world.events.iter().filter(|e| in_range(e.time.0) && s.keeps(e)).collect();
    let n = |x: usize| x.to_string();
    let u = |x: u64| x.to_string();
    let display = |p: &str| if p.is_empty() { "(anonymous)".to_owned() } else { p.to_owned() };
    let denied: Vec<&AccessDecision> = es.iter().copied().filter(|e| is(e, "deny")).collect();
    let slow = s.slow_ms.unwrap_or(0);
    match (s.uid, title) {
        ("gatelog-overview", "Decisions") => {
            let want = vec![vec![
                n(es.len()),
                n(denied.len()),
                pct(denied.len(), es.len()),
                n(distinct(es.iter().map(|e| e.principal.as_str()).filter(|p| !p.is_empty()))),
            ]];
            f.rows(at, cells(t, &["n:events", "n:denied", "f:denied_pct", "n:principals"]), want);
        }
        ("gatelog-overview", "Decisions over time by outcome") | ("gatelog-principal", "Timeline") => {
            let got = cells(t, &["t:time", "decision", "n:events"]);
            let total: i64 = got.iter().map(|r| r[2].parse::<i64>().unwrap_or_default()).sum();
            f.truth(at, total == es.len() as i64, format!("the series add up to {total}, not the {} events", es.len()));
            f.rows(at, got, series(&es, |e| vec![e.decision.as_str().to_owned()]));
        }
        ("gatelog-overview", "Top principals") => {
            let want = ranked(
                groups(&es, |e| vec![display(&e.principal)]),
                |g| g.len() as u64,
                10,
                |k, g| vec![k.to_owned(), n(g.len()), n(count_if(g, |e| is(e, "deny"))), last(g).to_string()],
            );
            f.rows(at, cells(t, &["principal", "n:events", "n:denied", "t:last_seen"]), want);
        }
        ("gatelog-overview", "Top denied resources") => {
            let want = ranked(
                groups(&denied, |e| vec![e.resource.clone()]),
                |g| g.len() as u64,
                10,
                |k, g| {
                    let principals = distinct(g.iter().map(|e| e.principal.as_str()).filter(|p| !p.is_empty()));
                    vec![
                        k.to_owned(),
                        n(g.len()),
                        n(principals),
                        n(distinct(g.iter().map(|e| e.client_ip.as_str()))),
                        last(g).to_string(),
                    ]
                },
            );
            f.rows(at, cells(t, &["resource", "n:denied", "n:principals", "n:ips", "t:last_seen"]), want);
        }
        ("gatelog-overview", "Top denied client IPs") => {
            let want = ranked(
                groups(&denied, |e| vec![e.client_ip.clone()]),
                |g| g.len() as u64,
                10,
                |k, g| {
                    let principals = distinct(g.iter().map(|e| e.principal.as_str()).filter(|p| !p.is_empty()));
                    let countries = joined(g.iter().map(|e| e.country.clone()));
                    let asns = joined(g.iter().map(|e| e.asn.to_string()));
                    vec![k.to_owned(), n(g.len()), countries, asns, n(principals), last(g).to_string()]
                },
            );
            f.rows(at, cells(t, &["client_ip", "n:denied", "countries", "asns", "n:principals", "t:last_seen"]), want);
        }
        ("gatelog-overview", "Ingest by dataset") => super::ingest::ingest_table(f, at, t, world),
        ("gatelog-overview", "Ingested lines per dataset") => {
            let mut m: BTreeMap<(i64, String), u64> = BTreeMap::new();
            for b in world.batches.iter().filter(|b| in_range(b.received_at.0)) {
                *m.entry((bucket(b.received_at.0), b.dataset.clone())).or_default() += b.lines;
            }
            let want = m.into_iter().map(|((b, d), l)| vec![b.to_string(), d, u(l)]).collect();
            f.rows(at, cells(t, &["t:time", "dataset", "n:lines_received"]), want);
        }
        ("gatelog-principal", "Principal") => {
            let count = |k: fn(&AccessDecision) -> String| n(es.iter().map(|e| k(e)).collect::<BTreeSet<_>>().len());
            let want = vec![vec![
                n(es.len()),
                n(denied.len()),
                count(|e| e.country.clone()),
                count(|e| e.asn.to_string()),
                count(|e| e.client_ip.clone()),
                count(|e| e.resource.clone()),
            ]];
            f.rows(at, cells(t, &["n:events", "n:denied", "n:countries", "n:asns", "n:ips", "n:resources"]), want);
        }
        ("gatelog-principal", "Countries seen") => {
            let want = ranked(
                groups(&es, |e| vec![e.country.clone()]),
                |g| g.len() as u64,
                usize::MAX,
                |k, g| {
                    let ips = distinct(g.iter().map(|e| e.client_ip.as_str()));
                    vec![
                        k.to_owned(),
                        n(g.len()),
                        n(count_if(g, |e| is(e, "deny"))),
                        n(ips),
                        first(g).to_string(),
                        last(g).to_string(),
                    ]
                },
            );
            f.rows(at, cells(t, &["country", "n:events", "n:denied", "n:ips", "t:first_seen", "t:last_seen"]), want);
        }
        ("gatelog-principal", "ASNs seen") => {
            let mut g = groups(&es, |e| vec![format!("{:010}", e.asn)]).into_iter().collect::<Vec<_>>();
            g.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
            let want = g
                .into_iter()
                .map(|(k, g)| {
                    let countries = joined(g.iter().map(|e| e.country.clone()));
                    let ips = distinct(g.iter().map(|e| e.client_ip.as_str()));
                    let asn = k.trim_start_matches('0');
                    let asn = if asn.is_empty() { "0" } else { asn };
                    vec![
                        asn.to_owned(),
                        countries,
                        n(g.len()),
                        n(count_if(&g, |e| is(e, "deny"))),
                        n(ips),
                        first(&g).to_string(),
                        last(&g).to_string(),
                    ]
                })
                .collect();
            f.rows(
                at,
                cells(t, &["n:asn", "countries", "n:events", "n:denied", "n:ips", "t:first_seen", "t:last_seen"]),
                want,
            );
        }
        ("gatelog-principal", "Roles seen") => {
            let want = ranked(
                groups(&es, roles),
                |g| g.len() as u64,
                usize::MAX,
                |k, g| {
                    vec![
                        k.to_owned(),
                        n(g.len()),
                        n(count_if(g, |e| is(e, "deny"))),
                        first(g).to_string(),
                        last(g).to_string(),
                    ]
                },
            );
            f.rows(at, cells(t, &["role", "n:events", "n:denied", "t:first_seen", "t:last_seen"]), want);
        }
        ("gatelog-principal", "Client addresses") => {
            let want = ranked(
                groups(&es, |e| vec![e.client_ip.clone()]),
                |g| g.len() as u64,
                100,
                |k, g| {
                    let countries = joined(g.iter().map(|e| e.country.clone()));
                    let asns = joined(g.iter().map(|e| e.asn.to_string()));
                    vec![
                        k.to_owned(),
                        countries,
                        asns,
                        n(g.len()),
                        n(count_if(g, |e| is(e, "deny"))),
                        first(g).to_string(),
                        last(g).to_string(),
                    ]
                },
            );
            f.rows(
                at,
                cells(t, &["client_ip", "countries", "asns", "n:events", "n:denied", "t:first_seen", "t:last_seen"]),
                want,
            );
        }
        ("gatelog-principal", "Resources") => {
            let want = ranked(
                groups(&es, |e| vec![e.resource.clone()]),
                |g| g.len() as u64,
                100,
                |k, g| {
                    let actions = joined(g.iter().map(|e| e.action.clone()));
                    vec![
                        k.to_owned(),
                        actions,
                        n(g.len()),
                        n(count_if(g, |e| is(e, "allow"))),
                        n(count_if(g, |e| is(e, "deny"))),
                        last(g).to_string(),
                    ]
                },
            );
            f.rows(at, cells(t, &["resource", "actions", "n:events", "n:allowed", "n:denied", "t:last_seen"]), want);
        }
        ("gatelog-principal", "Recent decisions") => {
            newest(f, at, t, &es, 200, &["decision", "resource", "dataset", "source"])
        }
        ("gatelog-denies", "Over time by dataset") => {
            f.rows(at, cells(t, &["t:time", "dataset", "n:events"]), series(&es, |e| vec![e.dataset.clone()]));
        }
        ("gatelog-denies", "By policy") => {
            let want = ranked(
                groups(&es, |e| vec![e.policy.clone()]),
                |g| g.len() as u64,
                usize::MAX,
                |k, g| {
                    let principals = distinct(g.iter().map(|e| e.principal.as_str()).filter(|p| !p.is_empty()));
                    let resources = distinct(g.iter().map(|e| e.resource.as_str()));
                    let ips = distinct(g.iter().map(|e| e.client_ip.as_str()));
                    vec![k.to_owned(), n(g.len()), n(principals), n(resources), n(ips), last(g).to_string()]
                },
            );
            f.rows(at, cells(t, &["policy", "n:events", "n:principals", "n:resources", "n:ips", "t:last_seen"]), want);
        }
        ("gatelog-denies", "Recent") => newest(f, at, t, &es, 500, &["resource", "policy", "dataset", "client_ip"]),
        ("gatelog-proxy", "Queries") => {
            let want = vec![vec![
                n(es.len()),
                n(denied.len()),
                u(es.iter().map(|e| e.rows_read).sum()),
                u(es.iter().map(|e| e.bytes_read).sum()),
                u(es.iter().map(|e| e.duration_ms).max().unwrap_or(0)),
                n(count_if(&es, |e| e.duration_ms >= slow)),
            ]];
            let got =
                cells(t, &["n:queries", "n:denied", "n:rows_read", "n:bytes_read", "n:max_duration_ms", "n:slow"]);
            f.rows(at, got, want);
        }
        ("gatelog-proxy", "Queries by role") => {
            f.rows(at, cells(t, &["t:time", "role", "n:queries"]), series(&es, roles))
        }
        ("gatelog-proxy", "Rows and bytes read") => {
            let mut m: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
            for e in &es {
                let s = m.entry(bucket(e.time.0)).or_default();
                (s.0, s.1) = (s.0 + e.rows_read, s.1 + e.bytes_read);
            }
            let want = m.into_iter().map(|(b, (r, by))| vec![b.to_string(), u(r), u(by)]).collect();
            f.rows(at, cells(t, &["t:time", "n:rows_read", "n:bytes_read"]), want);
        }
        ("gatelog-proxy", "By role") => {
            let want = ranked(
                groups(&es, roles),
                |g| g.len() as u64,
                usize::MAX,
                |k, g| {
                    let principals = distinct(g.iter().map(|e| e.principal.as_str()));
                    let durations: Vec<u64> = g.iter().map(|e| e.duration_ms).collect();
                    // Whole milliseconds (`intDiv`): 18.16 and 26.9 round a tie of `round(x, 1)` apart.
                    let avg = durations.iter().sum::<u64>() / durations.len() as u64;
                    vec![
                        k.to_owned(),
                        n(g.len()),
                        n(count_if(g, |e| is(e, "deny"))),
                        n(principals),
                        u(g.iter().map(|e| e.rows_read).sum()),
                        u(g.iter().map(|e| e.bytes_read).sum()),
                        u(avg),
                        u(durations.iter().copied().max().unwrap_or(0)),
                    ]
                },
            );
            let spec = [
                "role",
                "n:queries",
                "n:denied",
                "n:principals",
                "n:rows_read",
                "n:bytes_read",
                "n:avg_duration_ms",
                "n:max_duration_ms",
            ];
            f.rows(at, cells(t, &spec), want);
        }
        ("gatelog-proxy", "Tables read") => {
            let want = ranked(
                groups(&es, |e| vec![e.resource.clone()]),
                |g| g.iter().map(|e| e.bytes_read).sum(),
                20,
                |k, g| {
                    vec![
                        k.to_owned(),
                        n(g.len()),
                        n(count_if(g, |e| is(e, "deny"))),
                        u(g.iter().map(|e| e.rows_read).sum()),
                        u(g.iter().map(|e| e.bytes_read).sum()),
                        u(g.iter().map(|e| e.duration_ms).max().unwrap_or(0)),
                    ]
                },
            );
            f.rows(
                at,
                cells(t, &["resource", "n:queries", "n:denied", "n:rows_read", "n:bytes_read", "n:max_duration_ms"]),
                want,
            );
        }
        ("gatelog-proxy", "Slow queries") => {
            let mut slow_ones: Vec<&AccessDecision> = es.iter().copied().filter(|e| e.duration_ms >= slow).collect();
            slow_ones.sort_by(|a, b| {
                b.duration_ms.cmp(&a.duration_ms).then(b.time.0.cmp(&a.time.0)).then(a.event_id.cmp(&b.event_id))
            });
            let want = slow_ones
                .iter()
                .take(100)
                .map(|e| vec![e.event_id.clone(), u(e.duration_ms), e.principal.clone()])
                .collect();
            f.rows(at, cells(t, &["event_id", "n:duration_ms", "principal"]), want);
        }
        (uid, title) => {
            if !super::alerts::panel(f, at, title, t, &world.alerts, s) {
                f.0.push(format!("{at}: no check for panel {title:?} of {uid}: add one in tests/support/checks.rs"));
            }
        }
    }
}

/// A newest-first list: the ids in order (time descending, then id) and some columns of each.
fn newest(f: &mut Fails, at: &str, t: &Table, es: &[&AccessDecision], limit: usize, columns: &[&str]) {
    let mut sorted = es.to_vec();
    sorted.sort_by(|a, b| b.time.0.cmp(&a.time.0).then(a.event_id.cmp(&b.event_id)));
    let value = |e: &AccessDecision, c: &str| match c {
        "decision" => e.decision.as_str().to_owned(),
        "resource" => e.resource.clone(),
        "dataset" => e.dataset.clone(),
        "source" => e.source.as_str().to_owned(),
        "policy" => e.policy.clone(),
        "client_ip" => e.client_ip.clone(),
        other => panic!("no column {other} in the model"),
    };
    let want = sorted
        .iter()
        .take(limit)
        .map(|e| {
            let mut row = vec![e.event_id.clone(), secs(e.time.0).to_string()];
            row.extend(columns.iter().map(|c| value(e, c)));
            row
        })
        .collect();
    let mut spec = vec!["event_id", "t:time"];
    spec.extend_from_slice(columns);
    f.rows(at, cells(t, &spec), want);
}
