//! `GET /?window=&to=`: the overview of a window ([`gatelog_store::read::Reader::overview`]):
//! decisions over time by outcome as a stacked bar chart, the top principals, denied
//! resources and denied IPs, ingest per dataset (events, lag, batches, dead letters, gaps),
//! and the open alerts. A window with no events says where the newest data is and links to
//! the window ending there.

use crate::common::{WINDOWS, gated_page, reader, url_encode, window};
use crate::session::Viewer;
use crate::{WebState, chart};
use axum::extract::{Extension, OriginalUri, Query, State};
use axum::response::Response;
use gatelog_edge::{Access, ApiError};
use gatelog_model::AlertState;
use gatelog_store::read::{OverviewRequest, overview::INTERNAL_DATASETS};
use minijinja::value::Serde;
use serde::Deserialize;

/// How many open alerts the overview lists.
const OPEN_ALERTS: u64 = 20;

#[derive(Debug, Deserialize)]
pub struct Params {
    window: Option<String>,
    to: Option<String>,
}

/// The page's values.
async fn context(state: &WebState, p: Params) -> Result<minijinja::Value, ApiError> {
    let (name, period) = window(state, p.window.as_deref(), p.to.as_deref())?;
    let reader = reader(state)?;
    let (store, _) = gatelog_read::alerts::store(&state.read)?;
    let request = OverviewRequest::default();
    let unavailable = |e: gatelog_store::StoreError| {
        ApiError::unavailable(5, "ClickHouse did not answer; retry later", format!("overview: {e}"))
    };
    let (overview, alerts) = tokio::join!(
        reader.overview(period, &request),
        gatelog_watch::service::list(&store, OPEN_ALERTS, Some(AlertState::Open))
    );
    let overview = overview.map_err(unavailable)?;
    let (open_alerts, alerts_error) = match alerts {
        Ok(a) => (a, None),
        Err(e) => {
            tracing::warn!(error = %e, "overview: open alerts could not be read");
            (Vec::new(), Some("The open alerts could not be read; see /alerts."))
        }
    };
    let total: u64 = overview.series.iter().map(chart::total).sum();
    // An empty window: where is the data?
    let newest = if total == 0 {
        let exclude: Vec<String> = INTERNAL_DATASETS.iter().map(|d| (*d).to_owned()).collect();
        reader.newest_event(&exclude).await.map_err(unavailable)?.map(|t| {
            let to = gatelog_model::UnixMillis(t.0 + 1).to_rfc3339();
            (t, format!("/?window={name}&to={}", url_encode(&to)))
        })
    } else {
        None
    };
    let windows: Vec<_> = WINDOWS
        .iter()
        .map(|w| {
            let href = match &p.to {
                Some(to) if !to.is_empty() => format!("/?window={}&to={}", w.0, url_encode(to)),
                _ => format!("/?window={}", w.0),
            };
            minijinja::context! { name => w.0, href, on => w.0 == name }
        })
        .collect();
    let chart = chart::stacked_bars(&overview.series, overview.bucket_ms);
    Ok(minijinja::context! {
        title => "Overview",
        windows,
        window => name,
        total,
        chart,
        o => Serde(&overview),
        open_alerts => Serde(&open_alerts),
        alerts_error,
        newest => newest.as_ref().map(|(t, _)| t.to_rfc3339()),
        newest_href => newest.map(|(_, h)| h),
    })
}

/// The handler of `GET /`.
pub(crate) async fn page(
    State(state): State<WebState>,
    viewer: Option<Extension<Viewer>>,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<Params>,
) -> Response {
    gated_page(viewer.map(|e| e.0), &uri, Access::Read, "overview.html", |_| context(&state, p)).await
}
