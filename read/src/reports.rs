//! `GET /v1/reports/soc2?from=&to=&format=&seed=&as_of=` (auditor, admin): the SOC 2 report
//! of a period, generated on request by [`gatelog_report::soc2::generate`], as
//! `format=html` (default, self-contained), `md`, `json`, or `zip`: the signed evidence
//! bundle (every rendering and a CSV per table), which `gatelog verify` checks offline.
//! `from` and `to` are required (RFC 3339 or epoch milliseconds); `seed` and `as_of` default
//! as on the command line (derived from the period; when the newest batch arrived), so the
//! same request over the same data answers the same bytes. One report is generated at a time;
//! others wait their turn.

use crate::ReadState;
use crate::alerts::store;
use crate::search::time;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gatelog_edge::ApiError;
use gatelog_edge::auth::Access;
use gatelog_report::sign::SigningKey;
use gatelog_report::soc2::{self, NoProgress, Soc2Input, output};
use gatelog_store::read::Period;
use serde::Deserialize;
use std::sync::Arc;

/// What the route needs besides the store: the configuration's input template (the policy,
/// the detector catalogue; the binary builds it as for `gatelog report soc2`) and the key
/// that signs bundles (`None`: `format=zip` answers 409).
#[derive(Clone)]
pub struct Reports {
    pub template: Arc<Soc2Input>,
    pub key: Option<Arc<SigningKey>>,
    /// Turns a template into the input for one period (parameters and the regenerate
    /// command), shared with the command line so both print the same command.
    pub for_period: fn(Soc2Input, Period, gatelog_model::UnixMillis, &str) -> Soc2Input,
    one_at_a_time: Arc<tokio::sync::Semaphore>,
}

impl Reports {
    pub fn new(
        template: Soc2Input,
        key: Option<SigningKey>,
        for_period: fn(Soc2Input, Period, gatelog_model::UnixMillis, &str) -> Soc2Input,
    ) -> Reports {
        Reports {
            template: Arc::new(template),
            key: key.map(Arc::new),
            for_period,
            one_at_a_time: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }
}

impl std::fmt::Debug for Reports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reports")
            .field("signing_key", &self.key.as_ref().map(|k| k.public_key().fingerprint()))
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
    seed: Option<String>,
    as_of: Option<String>,
}

/// What `format=` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Markdown,
    Json,
    Zip,
}

fn format(p: Option<&str>) -> Result<Format, ApiError> {
    match p.unwrap_or("html") {
        "html" => Ok(Format::Html),
        "md" | "markdown" => Ok(Format::Markdown),
        "json" => Ok(Format::Json),
        "zip" | "bundle" => Ok(Format::Zip),
        _ => Err(ApiError::bad_request("format: must be html, md, json or zip")),
    }
}

pub(crate) async fn soc2(
    State(state): State<ReadState>,
    headers: HeaderMap,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        state.edge.authorize(&headers, Access::Audit).await?;
        let reports = state.reports.as_ref().ok_or_else(|| ApiError::not_found("reports are not served here"))?;
        let Query(p) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let from = time("from", p.from.as_deref())?.ok_or_else(|| ApiError::bad_request("from: required"))?;
        let to = time("to", p.to.as_deref())?.ok_or_else(|| ApiError::bad_request("to: required"))?;
        let period = Period::new(from, to).map_err(|e| ApiError::bad_request(format!("from/to: {e}")))?;
        let format = format(p.format.as_deref())?;
        if format == Format::Zip && reports.key.is_none() {
            return Err(ApiError::conflict(
                "no bundle signing key is configured on this server: run `gatelog keys init` and restart, or ask for format=html, md or json",
            ));
        }
        let as_of = time("as_of", p.as_of.as_deref())?;
        let (body, content_type, attachment) = render(&state, period, format, p.seed, as_of).await?;
        let mut response = body.into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(name) = attachment
            && let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        // The HTML report loads nothing; say so to the browser too.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
        );
        Ok(response)
    }
    .await;
    state.edge.finish("reports", result)
}

/// A rendered report: its bytes, content type, and the file name of a bundle.
pub type Rendered = (Vec<u8>, &'static str, Option<String>);

/// Generates the SOC 2 report of `period` and renders it as `format` (the bundle signed with
/// the server's key): the one code path of `GET /v1/reports/soc2` and the dashboard's
/// reports page. The caller has checked the role.
pub async fn render(
    state: &ReadState,
    period: Period,
    format: Format,
    seed: Option<String>,
    as_of: Option<gatelog_model::UnixMillis>,
) -> Result<Rendered, ApiError> {
    let reports = state.reports.as_ref().ok_or_else(|| ApiError::not_found("reports are not served here"))?;
    if format == Format::Zip && reports.key.is_none() {
        return Err(ApiError::conflict(
            "no bundle signing key is configured on this server: run `gatelog keys init` and restart, or ask for format=html, md or json",
        ));
    }
    let (store, _clock) = store(state)?;
    let _turn = reports.one_at_a_time.acquire().await.map_err(|_| ApiError::busy(5, "shutting down"))?;
    let unavailable =
        |e: soc2::Soc2Error| ApiError::unavailable(5, "ClickHouse did not answer; retry later", format!("report: {e}"));
    let as_of = match as_of {
        Some(t) => t,
        None => soc2::data_as_of(&store).await.map_err(unavailable)?,
    };
    let seed = seed.filter(|s| !s.is_empty()).unwrap_or_else(|| soc2::default_seed(period));
    let input = (reports.for_period)((*reports.template).clone(), period, as_of, &seed);
    let spill = tempfile::tempdir()
        .map_err(|e| ApiError::unavailable(5, "the report could not be generated", format!("report: temp dir: {e}")))?;
    let report = soc2::generate(&store, &input, spill.path(), &NoProgress).await.map_err(|e| match e {
        soc2::Soc2Error::Store(_) => unavailable(e),
        other => ApiError::unavailable(5, "the report could not be generated", format!("report: {other}")),
    })?;
    let internal = |e: String| ApiError::unavailable(5, "the report could not be rendered", format!("report: {e}"));
    let files = output::render_files(&report).map_err(|e| internal(e.to_string()))?;
    let pick = |name: &str| {
        files
            .iter()
            .find(|(p, _)| p == name)
            .and_then(|(_, c)| c.read().ok())
            .map(|b| b.into_owned())
            .unwrap_or_default()
    };
    Ok(match format {
        Format::Html => (pick("report.html"), "text/html; charset=utf-8", None),
        Format::Markdown => (pick("report.md"), "text/markdown; charset=utf-8", None),
        Format::Json => (pick("report.json"), "application/json", None),
        Format::Zip => {
            let key = reports.key.as_ref().ok_or_else(|| ApiError::conflict("no signing key"))?;
            let bytes = output::bundle(&report, &files, key).map_err(|e| internal(e.to_string()))?;
            (bytes, "application/zip", Some(output::bundle_name(period.from(), period.to())))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_checked() {
        assert_eq!(format(None).unwrap(), Format::Html);
        assert_eq!(format(Some("zip")).unwrap(), Format::Zip);
        assert_eq!(format(Some("md")).unwrap(), Format::Markdown);
        assert!(format(Some("pdf")).unwrap_err().message.contains("html, md, json or zip"));
    }
}
