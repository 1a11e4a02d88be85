//! `/` the overview: decisions over time by outcome (a server-rendered SVG chart), top
//! principals, top denied resources and IPs, ingest per dataset, open alerts, over a window.
//!
//! The data comes through [`OverviewSource`], so a faster implementation (pre-aggregated
//! tables in the store) can replace [`ClickHouseOverview`], the straightforward one: plain
//! queries on `decisions` counting distinct `event_id`s, so the Tail and Logpush copies of
//! one event count once.

use gatelog_model::UnixMillis;
use gatelog_store::Store;
use serde::Serialize;
use serde_json::Value;

/// One time bucket of the chart: events per outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub start: i64,
    pub allow: u64,
    pub deny: u64,
    pub challenge: u64,
    pub log: u64,
    pub error: u64,
}

impl Bucket {
    pub fn total(&self) -> u64 {
        self.allow + self.deny + self.challenge + self.log + self.error
    }
}

/// A ranked key (principal, resource, IP): its events and its denied events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ranked {
    pub key: String,
    pub count: u64,
    pub denied: u64,
}

/// Ingest health of one dataset over the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DatasetHealth {
    pub dataset: String,
    pub events: u64,
    pub newest_event: String,
    pub newest_arrival: String,
    pub lag_ms_max: i64,
    pub batches: u64,
    pub dead_letters: u64,
}

/// What the overview page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Overview {
    pub from: String,
    pub to: String,
    pub bucket_ms: i64,
    pub series: Vec<Bucket>,
    pub top_principals: Vec<Ranked>,
    pub top_denied_resources: Vec<Ranked>,
    pub top_denied_ips: Vec<Ranked>,
    pub datasets: Vec<DatasetHealth>,
}

/// Why the overview could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OverviewError(pub String);

/// Where the overview's figures come from.
pub trait OverviewSource: Send + Sync + std::fmt::Debug {
    fn overview(
        &self,
        store: &Store,
        from: UnixMillis,
        to: UnixMillis,
        bucket_ms: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Overview, OverviewError>> + Send + '_>>;
}

/// Plain queries on `decisions` and `ingest_batches` (distinct `event_id`s).
#[derive(Debug, Default, Clone, Copy)]
pub struct ClickHouseOverview;

impl OverviewSource for ClickHouseOverview {
    fn overview(
        &self,
        store: &Store,
        from: UnixMillis,
        to: UnixMillis,
        bucket_ms: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Overview, OverviewError>> + Send + '_>> {
        let store = store.clone();
        Box::pin(async move { read(&store, from.0, to.0, bucket_ms.max(1)).await })
    }
}

async fn rows(store: &Store, sql: String) -> Result<Vec<Value>, OverviewError> {
    let mut cursor = store
        .client()
        .query(&sql)
        .fetch_bytes("JSONEachRow")
        .map_err(|e| OverviewError(e.to_string()))?;
    let bytes = cursor.collect().await.map_err(|e| OverviewError(e.to_string()))?;
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).map_err(|e| OverviewError(e.to_string())))
        .collect()
}

/// A number that JSONEachRow may quote (64-bit integers on 18.16).
pub(crate) fn num(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or_else(|| n.as_u64().map_or(0, |u| u as i64)),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

async fn read(store: &Store, from: i64, to: i64, bucket: i64) -> Result<Overview, OverviewError> {
    let db = store.database();
    let window = format!("time_ms >= {from} AND time_ms < {to}");
    let series = rows(
        store,
        format!(
            "SELECT intDiv(time_ms, {bucket}) * {bucket} AS b, toString(decision) AS d, uniqExact(event_id) AS n \
             FROM {db}.decisions WHERE {window} GROUP BY b, d ORDER BY b"
        ),
    )
    .await?;
    let mut buckets: Vec<Bucket> = (0..)
        .map(|i| from - from.rem_euclid(bucket) + i * bucket)
        .take_while(|s| *s < to)
        .map(|start| Bucket { start, ..Bucket::default() })
        .collect();
    for r in &series {
        let start = num(&r["b"]);
        if let Some(b) = buckets.iter_mut().find(|b| b.start == start) {
            let n = num(&r["n"]) as u64;
            match r["d"].as_str().unwrap_or_default() {
                "allow" => b.allow += n,
                "deny" => b.deny += n,
                "challenge" => b.challenge += n,
                "log" => b.log += n,
                _ => b.error += n,
            }
        }
    }
    let ranked = |rows: Vec<Value>| -> Vec<Ranked> {
        rows.iter()
            .map(|r| Ranked { key: text(&r["key"]), count: num(&r["count"]) as u64, denied: num(&r["denied"]) as u64 })
            .collect()
    };
    let top = |col: &str, only_denied: bool| {
        let extra = if only_denied { " AND decision = 'deny'" } else { "" };
        format!(
            "SELECT {col} AS key, uniqExact(event_id) AS count, uniqExactIf(event_id, decision = 'deny') AS denied \
             FROM {db}.decisions WHERE {window} AND {col} != ''{extra} GROUP BY key ORDER BY count DESC, key LIMIT 10"
        )
    };
    let top_principals = ranked(rows(store, top("principal", false)).await?);
    let top_denied_resources = ranked(rows(store, top("resource", true)).await?);
    let top_denied_ips = ranked(rows(store, top("client_ip", true)).await?);
    let per_dataset = rows(
        store,
        format!(
            "SELECT toString(dataset) AS dataset, uniqExact(event_id) AS events, max(time_ms) AS newest_event, \
             max(received_at_ms) AS newest_arrival, max(received_at_ms - time_ms) AS lag_max \
             FROM {db}.decisions WHERE {window} GROUP BY dataset ORDER BY dataset"
        ),
    )
    .await?;
    let batches = rows(
        store,
        format!(
            "SELECT toString(dataset) AS dataset, uniqExact(batch_id) AS batches, sum(dead_letters) AS dead_letters \
             FROM {db}.ingest_batches WHERE received_at_ms >= {from} AND received_at_ms < {to} GROUP BY dataset"
        ),
    )
    .await?;
    let datasets = per_dataset
        .iter()
        .map(|r| {
            let name = text(&r["dataset"]);
            let b = batches.iter().find(|b| text(&b["dataset"]) == name);
            DatasetHealth {
                events: num(&r["events"]) as u64,
                newest_event: UnixMillis(num(&r["newest_event"])).to_rfc3339(),
                newest_arrival: UnixMillis(num(&r["newest_arrival"])).to_rfc3339(),
                lag_ms_max: num(&r["lag_max"]),
                batches: b.map_or(0, |b| num(&b["batches"]) as u64),
                dead_letters: b.map_or(0, |b| num(&b["dead_letters"]) as u64),
                dataset: name,
            }
        })
        .collect();
    Ok(Overview {
        from: UnixMillis(from).to_rfc3339(),
        to: UnixMillis(to).to_rfc3339(),
        bucket_ms: bucket,
        series: buckets,
        top_principals,
        top_denied_resources,
        top_denied_ips,
        datasets,
    })
}
