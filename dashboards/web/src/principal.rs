//! `GET /principal?name=&window=&to=`: one principal over a window: its decisions over time
//! (the overview's chart, for its events only), the countries, ASNs, client IPs, roles,
//! datasets and resources seen with first and last time ([`Reader::principal_facts`]), and
//! its alerts.
//!
//! [`Reader::principal_facts`]: gatelog_store::read::Reader::principal_facts

use crate::common::{WINDOWS, gated_page, reader, url_encode, window};
use crate::session::Viewer;
use crate::{WebState, chart};
use axum::extract::{Extension, OriginalUri, Query, State};
use axum::response::Response;
use gatelog_edge::{Access, ApiError};
use gatelog_store::read::{HistoryRow, OverviewRequest};
use minijinja::value::Serde;
use serde::Deserialize;

/// The dimensions shown, in order, with their headings.
const DIMENSIONS: [(&str, &str); 6] = [
    ("country", "Countries"),
    ("asn", "ASNs"),
    ("client_ip", "Client IPs"),
    ("role", "Roles"),
    ("dataset", "Datasets"),
    ("resource", "Resources"),
];

/// Rows shown per dimension.
const PER_DIMENSION: usize = 25;

/// The most alerts looked through for this principal's.
const ALERTS_LOOKED_AT: u64 = 1000;

#[derive(Debug, Deserialize)]
pub struct Params {
    #[serde(default)]
    name: String,
    window: Option<String>,
    to: Option<String>,
}

async fn context(state: &WebState, p: Params) -> Result<minijinja::Value, ApiError> {
    let name = p.name.trim().to_owned();
    if name.is_empty() {
        return Err(ApiError::bad_request("name: which principal? (e.g. /principal?name=alice@example.com)"));
    }
    let (window_name, period) = window(state, p.window.as_deref(), p.to.as_deref())?;
    let reader = reader(state)?;
    let (store, _) = gatelog_read::alerts::store(&state.read)?;
    let request =
        OverviewRequest { principals: vec![name.clone()], exclude_datasets: Vec::new(), ..Default::default() };
    let unavailable = |e: gatelog_store::StoreError| {
        ApiError::unavailable(5, "ClickHouse did not answer; retry later", format!("principal: {e}"))
    };
    let (overview, facts, alerts) = tokio::join!(
        reader.overview(period, &request),
        reader.principal_facts(period, &name),
        gatelog_watch::service::list(&store, ALERTS_LOOKED_AT, None)
    );
    let overview = overview.map_err(unavailable)?;
    let facts = facts.map_err(unavailable)?.rows;
    let alerts: Vec<_> =
        alerts.map_err(gatelog_read::alerts::alerts_error)?.into_iter().filter(|a| a.alert.principal == name).collect();
    let dimensions: Vec<_> = DIMENSIONS
        .iter()
        .map(|(dimension, heading)| {
            let rows: Vec<&HistoryRow> = facts.iter().filter(|r| r.dimension == *dimension).collect();
            let more = rows.len().saturating_sub(PER_DIMENSION);
            let rows: Vec<&HistoryRow> = rows.into_iter().take(PER_DIMENSION).collect();
            minijinja::context! { dimension => *dimension, heading => *heading, rows => Serde(&rows), more }
        })
        .collect();
    let total: u64 = overview.series.iter().map(chart::total).sum();
    let denied: u64 = overview.series.iter().map(|b| b.deny).sum();
    let to_param =
        p.to.as_deref().filter(|t| !t.is_empty()).map(|t| format!("&to={}", url_encode(t))).unwrap_or_default();
    let windows: Vec<_> = WINDOWS
        .iter()
        .map(|w| {
            let href = format!("/principal?name={}&window={}{to_param}", url_encode(&name), w.0);
            minijinja::context! { name => w.0, href, on => w.0 == window_name }
        })
        .collect();
    Ok(minijinja::context! {
        title => format!("Principal {name}"),
        search_href => format!("/search?q={}", url_encode(&format!("principal:\"{name}\""))),
        name,
        windows,
        from => overview.from.to_rfc3339(),
        to => overview.to.to_rfc3339(),
        total,
        denied,
        chart => chart::stacked_bars(&overview.series, overview.bucket_ms),
        datasets => Serde(&overview.datasets),
        dimensions,
        alerts => Serde(&alerts),
    })
}

/// The handler of `GET /principal`.
pub(crate) async fn principal(
    State(state): State<WebState>,
    viewer: Option<Extension<Viewer>>,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<Params>,
) -> Response {
    gated_page(viewer.map(|e| e.0), &uri, Access::Read, "principal.html", |_| context(&state, p)).await
}
