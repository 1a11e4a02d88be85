//! A generated, seeded world of decisions as gatelog receives them: Logpush `http_requests`
//! and `access_requests`, Worker decisions arriving twice (a Tail copy and a Logpush
//! `workers_trace_events` copy, their times apart by nothing, milliseconds or minutes), the
//! proxy's SQL decisions, a backfill that overlaps a received batch, dead letters and a probe;
//! two tenants; a principal whose name has a quote and a backslash. Eight hours from
//! 2026-02-28T20:00Z, across midnight and a month boundary (two partitions).
//!
//! The dashboards' range is the six hours in the middle, and copies are placed on every edge
//! that matters: around its start and end, around a bucket boundary, around midnight.
//!
//! `events` is the model the panels are checked against: each event once, as its earliest
//! copy (at equal times, the first source by name), as the dashboards define it.

use gatelog_grafana::QueryContext;
use gatelog_model::{AccessDecision, DeadLetter, Decision, EventId, PrincipalType, RawRecord, Source, UnixMillis};
use gatelog_store::WriteBatch;
use std::collections::BTreeMap;

pub const T0_MS: i64 = 1_772_308_800_000; // 2026-02-28T20:00:00Z
const HOUR: i64 = 3_600_000;
const MIDNIGHT_MS: i64 = T0_MS + 4 * HOUR; // 2026-03-01T00:00:00Z, a new month
pub const INTERVAL_S: i64 = 300;

/// The dashboards' time range and interval.
pub const RANGE: QueryContext =
    QueryContext { from_ms: T0_MS + HOUR, to_ms: T0_MS + 7 * HOUR, interval_ms: INTERVAL_S * 1000 };

pub struct World {
    pub batches: Vec<WriteBatch>,
    /// Every decision row written (all copies).
    pub rows: Vec<AccessDecision>,
    /// Each event once (its earliest copy).
    pub events: Vec<AccessDecision>,
    /// Alerts about the same people, and their lifecycle.
    pub alerts: super::alerts::Alerts,
}

struct Who {
    name: &'static str,
    kind: PrincipalType,
    roles: &'static [&'static str],
    /// (country, ASN, address) at home, and where it goes after midnight.
    home: (&'static str, u32, &'static str),
    away: (&'static str, u32, &'static str),
    weight: u32,
}

const PEOPLE: [Who; 7] = [
    Who {
        name: "alice@example.com",
        kind: PrincipalType::User,
        roles: &["analyst"],
        home: ("US", 7922, "198.51.100.10"),
        away: ("DE", 3320, "203.0.113.50"),
        weight: 30,
    },
    Who {
        name: "svc-etl",
        kind: PrincipalType::Service,
        roles: &["etl"],
        home: ("US", 16509, "198.51.100.200"),
        away: ("US", 16509, "198.51.100.201"),
        weight: 20,
    },
    Who {
        name: "bob@example.com",
        kind: PrincipalType::User,
        roles: &["analyst", "admin"],
        home: ("GB", 2856, "198.51.100.20"),
        away: ("GB", 2856, "198.51.100.21"),
        weight: 15,
    },
    Who {
        name: "carol@example.com",
        kind: PrincipalType::User,
        roles: &["admin"],
        home: ("FR", 3215, "198.51.100.30"),
        away: ("FR", 3215, "198.51.100.30"),
        weight: 10,
    },
    Who {
        name: "dave@example.com",
        kind: PrincipalType::User,
        roles: &["analyst"],
        home: ("CA", 577, "198.51.100.40"),
        away: ("BR", 28573, "203.0.113.77"),
        weight: 8,
    },
    Who {
        name: "svc-o'reilly\\backup",
        kind: PrincipalType::Service,
        roles: &["backup"],
        home: ("NL", 1136, "198.51.100.60"),
        away: ("NL", 1136, "198.51.100.60"),
        weight: 6,
    },
    Who {
        name: "ünï@exämple.com",
        kind: PrincipalType::User,
        roles: &[],
        home: ("JP", 2516, "198.51.100.70"),
        away: ("JP", 2516, "198.51.100.70"),
        weight: 4,
    },
];

/// Addresses that hammer the public site and get denied.
const ATTACKERS: [(&str, &str, u32); 3] =
    [("192.0.2.66", "RU", 12389), ("192.0.2.77", "CN", 4134), ("192.0.2.88", "", 0)];

/// One stream of batches: (dataset, source, tenant, minutes per batch, arrival lag in s).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Stream {
    dataset: &'static str,
    source: Source,
    tenant: &'static str,
    minutes: i64,
    lag_s: i64,
}

const HTTP: Stream =
    Stream { dataset: "http_requests", source: Source::Logpush, tenant: "default", minutes: 30, lag_s: 75 };
const HTTP_ACME: Stream = Stream { tenant: "acme", ..HTTP };
const ACCESS: Stream = Stream { dataset: "access_requests", minutes: 30, lag_s: 95, ..HTTP };
const WORKERS: Stream = Stream { dataset: "workers_trace_events", minutes: 30, lag_s: 60, ..HTTP };
const TAIL: Stream = Stream { dataset: "tail", source: Source::Tail, tenant: "default", minutes: 10, lag_s: 2 };
const PROXY: Stream = Stream { dataset: "proxy", source: Source::Proxy, tenant: "default", minutes: 10, lag_s: 1 };

struct Gen {
    rng: fastrand::Rng,
    copies: Vec<(Stream, AccessDecision)>,
    n: u64,
}

impl Gen {
    fn pick_who(&mut self) -> &'static Who {
        let total: u32 = PEOPLE.iter().map(|w| w.weight).sum();
        let mut x = self.rng.u32(0..total);
        for w in &PEOPLE {
            if x < w.weight {
                return w;
            }
            x -= w.weight;
        }
        &PEOPLE[0]
    }

    fn time(&mut self) -> i64 {
        T0_MS + self.rng.i64(0..8 * HOUR)
    }

    fn located(d: &mut AccessDecision, who: &Who) {
        let (country, asn, ip) = if d.time.0 >= MIDNIGHT_MS { who.away } else { who.home };
        d.country = country.into();
        d.asn = asn;
        d.client_ip = ip.into();
        d.principal = who.name.into();
        d.principal_type = who.kind;
        d.roles = who.roles.iter().map(|r| (*r).to_owned()).collect();
    }

    fn http(&mut self) {
        let t = self.time();
        self.n += 1;
        let ray = format!("{:016x}", self.n * 7_919);
        let stream = if self.rng.u8(0..4) == 0 { HTTP_ACME } else { HTTP };
        let mut d = AccessDecision::new(
            EventId::derive(&["http_requests", &ray, &t.to_string()]),
            UnixMillis(t),
            "http_requests",
            Source::Logpush,
        );
        d.tenant = stream.tenant.into();
        d.ray_id = ray;
        d.action = if self.rng.u8(0..5) == 0 { "POST" } else { "GET" }.into();
        let path = ["/", "/login", "/api/search", "/wp-admin", "/.env", "/pricing"][self.rng.usize(0..6)];
        d.host = if stream.tenant == "acme" { "shop.acme.example" } else { "www.example.com" }.into();
        d.resource = format!("https://{}{path}", d.host);
        d.path = path.into();
        if self.rng.u8(0..5) == 0 {
            let (ip, country, asn) = ATTACKERS[self.rng.usize(0..ATTACKERS.len())];
            (d.client_ip, d.country, d.asn) = (ip.into(), country.into(), asn);
            d.decision = if self.rng.u8(0..5) == 0 { Decision::Challenge } else { Decision::Deny };
            d.policy = ["waf:sqli", "waf:xss", "rate_limit"][self.rng.usize(0..3)].into();
            d.reason = format!("blocked by {}", d.policy);
            d.status = 403;
        } else {
            d.client_ip = format!("203.0.113.{}", self.rng.u8(1..200));
            (d.country, d.asn) = ("US".into(), 7018);
            d.decision = if self.rng.u8(0..40) == 0 { Decision::Deny } else { Decision::Allow };
            d.policy = if d.decision == Decision::Deny { "waf:bad_bot".into() } else { String::new() };
            d.status = if d.decision == Decision::Deny { 403 } else { 200 };
        }
        self.copies.push((stream, d));
    }

    fn access(&mut self) {
        let t = self.time();
        self.n += 1;
        let who = self.pick_who();
        let mut d = AccessDecision::new(
            EventId::derive(&["access_requests", &self.n.to_string()]),
            UnixMillis(t),
            "access_requests",
            Source::Logpush,
        );
        Self::located(&mut d, who);
        d.action = "login".into();
        d.resource = "https://dash.example.com".into();
        let travelled = who.home.0 != who.away.0 && t >= MIDNIGHT_MS;
        d.decision = if travelled || self.rng.u8(0..10) == 0 { Decision::Deny } else { Decision::Allow };
        d.policy = if travelled { "access:country" } else { "access:require-mfa" }.into();
        d.reason = format!("{} {}", d.policy, d.decision);
        self.copies.push((ACCESS, d));
    }

    /// A Worker's decision: a Tail copy and (mostly) a Logpush copy of one invocation.
    fn worker(&mut self, base: i64, delta_ms: i64, tail_first: bool) {
        self.n += 1;
        let who = self.pick_who();
        let request_id = format!("req-{}", self.n);
        let mut d = AccessDecision::new(EventId::for_decision(&request_id), UnixMillis(base), "tail", Source::Tail);
        Self::located(&mut d, who);
        d.request_id = request_id;
        d.action = ["GET", "PUT", "DELETE"][self.rng.usize(0..3)].into();
        d.resource =
            format!("https://api.example.com/v1/{}", ["reports", "users", "exports", "keys"][self.rng.usize(0..4)]);
        d.decision = if self.rng.u8(0..5) == 0 { Decision::Deny } else { Decision::Allow };
        d.policy = format!("iap:{}", if d.decision == Decision::Deny { "scope" } else { "default" });
        d.reason = format!("{} by {}", d.decision, d.policy);
        d.status = if d.decision == Decision::Deny { 403 } else { 200 };
        let mut logpush = d.clone();
        logpush.source = Source::Logpush;
        logpush.dataset = "workers_trace_events".into();
        let (tail_t, logpush_t) = if tail_first { (base, base + delta_ms) } else { (base + delta_ms, base) };
        d.time = UnixMillis(tail_t);
        logpush.time = UnixMillis(logpush_t);
        Self::located(&mut d, who);
        Self::located(&mut logpush, who);
        self.copies.push((TAIL, d));
        self.copies.push((WORKERS, logpush));
    }

    fn random_worker(&mut self) {
        let base = self.time();
        let delta = match self.rng.u8(0..10) {
            0..=2 => 0,
            3..=8 => self.rng.i64(1..1500),
            _ => self.rng.i64(60_000..2_400_000),
        };
        let tail_first = self.rng.bool();
        self.worker(base, delta, tail_first);
        if self.rng.u8(0..10) == 0 {
            // Logpush never sent this one: only the Tail copy.
            let at = self.copies.iter().rposition(|(s, _)| *s == WORKERS).unwrap_or_default();
            self.copies.remove(at);
        }
    }

    fn proxy(&mut self) {
        let t = self.time();
        self.n += 1;
        let who = self.pick_who();
        let id = format!("proxy-{}", self.n);
        let mut d = AccessDecision::new(EventId::for_decision(&id), UnixMillis(t), "proxy", Source::Proxy);
        Self::located(&mut d, who);
        d.request_id = id;
        d.action = "select".into();
        let table =
            ["analytics.events", "analytics.sessions", "billing.invoices", "system.tables"][self.rng.usize(0..4)];
        d.resource = format!("clickhouse:{table}");
        d.query = format!("SELECT count() FROM {table} WHERE day = ?");
        d.query_fingerprint = format!("{:016x}", table.len() * 31);
        if self.rng.u8(0..7) == 0 {
            d.decision = Decision::Deny;
            d.policy = "roles.tables".into();
            d.reason = format!("{table} is not allowed for this role");
            d.status = 403;
        } else {
            d.decision = Decision::Allow;
            d.rows_read = self.rng.u64(1_000..50_000_000);
            d.bytes_read = d.rows_read * self.rng.u64(40..200);
            d.result_rows = self.rng.u64(1..1000);
            d.duration_ms = if self.rng.u8(0..12) == 0 { self.rng.u64(1_000..30_000) } else { self.rng.u64(3..900) };
            d.status = 200;
        }
        self.copies.push((PROXY, d));
    }
}

impl World {
    pub fn generate() -> World {
        let mut g = Gen { rng: fastrand::Rng::with_seed(0x6a7e_1065), copies: Vec::new(), n: 0 };
        for _ in 0..700 {
            g.http();
        }
        for _ in 0..250 {
            g.access();
        }
        for _ in 0..450 {
            g.random_worker();
        }
        for _ in 0..400 {
            g.proxy();
        }
        // Copies on the edges: the range's start (earliest copy out / in), its end (in / out),
        // a bucket boundary, midnight at a month's end, and two copies 40 minutes apart.
        let (from, to) = (RANGE.from_ms, RANGE.to_ms);
        let bucket = from + 3 * INTERVAL_S * 1000;
        for (base, delta, tail_first) in [
            (from - 400, 1_000, true),
            (from + 200, 1_300, false),
            (to - 300, 1_800, true),
            (to + 1_200, 800, false),
            (bucket - 1, 2, true),
            (MIDNIGHT_MS - 1, 2, false),
            (from + 2 * HOUR, 40 * 60_000, true),
        ] {
            g.worker(base, delta, tail_first);
        }
        // No copy in the range's last second: 18.16 would count it (seconds), newer servers not.
        for (_, d) in &mut g.copies {
            if RANGE.to_ms < d.time.0 && d.time.0 < RANGE.to_ms + 1000 {
                d.time = UnixMillis(d.time.0 + 1000);
            }
        }
        let batches = batches(g.copies, &mut g.rng);
        let rows: Vec<AccessDecision> = batches.iter().flat_map(|b| b.decisions.iter().cloned()).collect();
        let mut first: BTreeMap<(String, String), AccessDecision> = BTreeMap::new();
        for d in &rows {
            let key = (d.tenant.clone(), d.event_id.clone());
            let earlier =
                |a: &AccessDecision, b: &AccessDecision| (a.time.0, a.source.as_str()) < (b.time.0, b.source.as_str());
            match first.get(&key) {
                Some(kept) if !earlier(d, kept) => {}
                _ => {
                    first.insert(key, d.clone());
                }
            }
        }
        let principals: Vec<&str> = PEOPLE.iter().map(|w| w.name).chain([""]).collect();
        let alerts = super::alerts::generate(&principals, 24);
        World { batches, rows, events: first.into_values().collect(), alerts }
    }
}

/// Groups copies into batches per stream and window, received a stream's lag after the
/// window closes (whole seconds); adds dead letters, a probe, and a backfill batch repeating
/// half of one received batch.
fn batches(copies: Vec<(Stream, AccessDecision)>, rng: &mut fastrand::Rng) -> Vec<WriteBatch> {
    let mut grouped: BTreeMap<(Stream, i64), Vec<AccessDecision>> = BTreeMap::new();
    for (stream, d) in copies {
        let window = (d.time.0 - T0_MS).div_euclid(stream.minutes * 60_000);
        grouped.entry((stream, window)).or_default().push(d);
    }
    let mut out = Vec::new();
    for (i, ((stream, window), mut decisions)) in grouped.into_iter().enumerate() {
        decisions.sort_by_key(|d| d.time.0);
        let received = T0_MS + (window + 1) * stream.minutes * 60_000 + stream.lag_s * 1000 + rng.i64(0..20) * 1000;
        let mut b = WriteBatch {
            batch_id: format!("{}-{}-{window:03}", stream.dataset, stream.tenant),
            dataset: stream.dataset.into(),
            origin: format!("/v1/{}", stream.dataset),
            received_at: UnixMillis(received),
            sha256: gatelog_model::sha256_hex(format!("batch {i}").as_bytes()),
            ..WriteBatch::default()
        };
        for d in &mut decisions {
            d.received_at = b.received_at;
            let line = format!("{{\"event\":\"{}\",\"t\":{}}}", d.event_id, d.time.0);
            let raw = RawRecord::new(d.event_id.clone(), &d.dataset, b.received_at, d.time, &line);
            d.raw_sha256 = raw.sha256.clone();
            b.bytes += line.len() as u64 + 1;
            b.raw.push(raw);
        }
        b.decisions = decisions;
        if i % 7 == 3 {
            for n in 0..(i % 3 + 1) as u64 {
                b.dead_letters.push(DeadLetter {
                    dataset: b.dataset.clone(),
                    received_at: b.received_at,
                    origin: b.origin.clone(),
                    line_no: b.raw.len() as u64 + n + 1,
                    line: "{not json".into(),
                    sha256: gatelog_model::sha256_hex(b"{not json"),
                    error: "expected a JSON object".into(),
                });
            }
        }
        if stream == ACCESS && window == 2 {
            b.probes = 1;
        }
        b.lines = (b.raw.len() + b.dead_letters.len()) as u64 + b.probes;
        out.push(b);
    }
    // A backfilled file that overlaps what already arrived over HTTP: the same lines again.
    let overlapped = out.iter().filter(|b| b.dataset == "http_requests").nth(4).cloned();
    if let Some(mut again) = overlapped {
        let half = again.decisions.len() / 2;
        again.decisions.truncate(half);
        again.raw.truncate(half);
        again.dead_letters.clear();
        again.probes = 0;
        again.lines = half as u64;
        again.batch_id = format!("backfill-{}", again.batch_id);
        again.origin = "backfill: http_requests/20260228.log.gz".into();
        again.received_at = UnixMillis(again.received_at.0 + 15 * 60_000);
        for d in &mut again.decisions {
            d.received_at = again.received_at;
        }
        out.push(again);
    }
    out
}
