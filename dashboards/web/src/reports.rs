//! `GET /reports`: choose a period; `POST /reports` generates its SOC 2 report in the
//! background (the API's own code path, [`gatelog_read::reports::render`]) and shows its
//! page, which refreshes itself while the report is made. Once made, the signed bundle is
//! checked as `gatelog verify` checks it ([`gatelog_report::bundle::verify`], against the
//! server's own public key) and the page shows the verdict beside the bundle's download and
//! the report itself. The last [`KEPT`] reports are kept in memory for download; they are
//! as reproducible as the command line's (same period and data: same bytes).

use crate::WebState;
use crate::common::{failed, gate, page, redirect, secure};
use crate::session::{Viewer, random_hex, same};
use axum::Form;
use axum::extract::{Extension, OriginalUri, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatelog_edge::{Access, ApiError};
use gatelog_model::UnixMillis;
use gatelog_read::reports::Format;
use gatelog_store::read::Period;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

/// How many generated reports the server keeps for download.
pub const KEPT: usize = 8;

/// How a report's generation stands.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Progress {
    Generating,
    Failed { message: String },
    Done { verdict: String, verified: bool, files_checked: usize, bundle_bytes: usize, bundle_name: Option<String> },
}

/// One report generated from the page.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    from: UnixMillis,
    to: UnixMillis,
    by: String,
    started: UnixMillis,
    progress: Progress,
    html: Arc<Vec<u8>>,
    bundle: Option<Arc<Vec<u8>>>,
}

/// The reports generated on this server, newest first. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    inner: Arc<Mutex<VecDeque<Entry>>>,
}

impl Generated {
    fn with<T>(&self, f: impl FnOnce(&mut VecDeque<Entry>) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Entry)) {
        self.with(|all| {
            if let Some(e) = all.iter_mut().find(|e| e.id == id) {
                f(e);
            }
        });
    }
}

fn view(e: &Entry) -> minijinja::Value {
    minijinja::context! {
        id => e.id.clone(), from => e.from.to_rfc3339(), to => e.to.to_rfc3339(), by => e.by.clone(),
        started => e.started.to_rfc3339(), progress => minijinja::value::Serde(&e.progress),
    }
}

fn now(state: &WebState) -> UnixMillis {
    state.read.alerts.as_ref().map_or(UnixMillis(0), |a| a.clock.now())
}

/// The handler of `GET /reports`: the form, and the reports generated so far.
pub(crate) async fn form(
    State(state): State<WebState>,
    viewer: Option<Extension<Viewer>>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let v = match gate(viewer.map(|e| e.0), Access::Audit, &uri) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let today = now(&state).to_rfc3339()[..10].to_owned();
    let month_ago = UnixMillis(now(&state).0 - 30 * 86_400_000).to_rfc3339()[..10].to_owned();
    let reports: Vec<_> = state.reports.with(|all| all.iter().map(view).collect());
    let signing = state.read.reports.as_ref().is_some_and(|r| r.key.is_some());
    let ctx = minijinja::context! {
        title => "Reports", reports, from => month_ago, to => today, signing,
        available => state.read.reports.is_some(),
    };
    page(StatusCode::OK, "reports.html", Some(&v), ctx)
}

#[derive(Deserialize)]
pub(crate) struct GenerateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

impl std::fmt::Debug for GenerateForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerateForm").field("from", &self.from).field("to", &self.to).finish_non_exhaustive()
    }
}

/// A form's date: `YYYY-MM-DD` (midnight UTC; for `to`, the day is included) or a time
/// the API takes (RFC 3339, epoch milliseconds).
fn date(name: &str, value: &str, end_of_day: bool) -> Result<UnixMillis, ApiError> {
    let value = value.trim();
    if value.len() == 10 && value.as_bytes().get(4) == Some(&b'-') {
        let t = UnixMillis::parse_str(&format!("{value}T00:00:00Z"))
            .map_err(|_| ApiError::bad_request(format!("{name}: {value:?} is not a date (YYYY-MM-DD)")))?;
        return Ok(if end_of_day { UnixMillis(t.0 + 86_400_000) } else { t });
    }
    gatelog_read::search::time(name, Some(value))?.ok_or_else(|| ApiError::bad_request(format!("{name}: required")))
}

/// The handler of `POST /reports`: starts a report and shows its page.
pub(crate) async fn generate(
    State(state): State<WebState>,
    viewer: Option<Extension<Viewer>>,
    OriginalUri(uri): OriginalUri,
    Form(f): Form<GenerateForm>,
) -> Response {
    let v = match gate(viewer.map(|e| e.0), Access::Audit, &uri) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if !same(&v.csrf, &f.csrf) {
        return failed(
            &v,
            "reports",
            ApiError::forbidden("the form expired or came from another site; reload and try again"),
        );
    }
    let period = date("from", &f.from, false)
        .and_then(|from| Ok((from, date("to", &f.to, true)?)))
        .and_then(|(from, to)| Period::new(from, to).map_err(|e| ApiError::bad_request(format!("from/to: {e}"))));
    let period = match period {
        Ok(p) => p,
        Err(e) => return failed(&v, "reports", e),
    };
    if state.read.reports.is_none() {
        return failed(&v, "reports", ApiError::not_found("reports are not served here"));
    }
    let id = random_hex()[..16].to_owned();
    let entry = Entry {
        id: id.clone(),
        from: period.from(),
        to: period.to(),
        by: v.principal.name.clone(),
        started: now(&state),
        progress: Progress::Generating,
        html: Arc::default(),
        bundle: None,
    };
    state.reports.with(|all| {
        all.push_front(entry);
        all.truncate(KEPT);
    });
    tracing::info!(report = %id, principal = %v.principal.name, from = %period.from().to_rfc3339(), to = %period.to().to_rfc3339(), "dashboard report started");
    let task_state = state.clone();
    let task_id = id.clone();
    tokio::spawn(async move {
        let progress = make(&task_state, period, &task_id).await;
        task_state.reports.update(&task_id, |e| match progress {
            Ok((p, html, bundle)) => {
                e.progress = p;
                e.html = Arc::new(html);
                e.bundle = bundle.map(Arc::new);
            }
            Err(err) => {
                if let Some(internal) = &err.internal {
                    tracing::warn!(report = %task_id, error = %internal, "dashboard report failed");
                }
                e.progress = Progress::Failed { message: err.message };
            }
        });
    });
    redirect(&format!("/reports/{id}/status"))
}

/// Generates the report of `period`: its HTML, and when the server signs bundles, the bundle
/// with its verdict.
async fn make(state: &WebState, period: Period, id: &str) -> Result<(Progress, Vec<u8>, Option<Vec<u8>>), ApiError> {
    let key = state.read.reports.as_ref().and_then(|r| r.key.clone());
    let Some(key) = key else {
        let (html, _, _) = gatelog_read::reports::render(&state.read, period, Format::Html, None, None).await?;
        let verdict = "no bundle: this server has no signing key (`gatelog keys init`, then restart)".to_owned();
        let done = Progress::Done { verdict, verified: false, files_checked: 0, bundle_bytes: 0, bundle_name: None };
        return Ok((done, html, None));
    };
    let (bundle, _, name) = gatelog_read::reports::render(&state.read, period, Format::Zip, None, None).await?;
    let checked = bundle.clone();
    let public = key.public_key();
    let verdict = tokio::task::spawn_blocking(move || {
        gatelog_report::bundle::verify(std::io::Cursor::new(checked), Some(&public))
    })
    .await
    .map_err(|e| ApiError::unavailable(5, "the report could not be verified", format!("verify task: {e}")))?;
    let html = entry(&bundle, "report.html").unwrap_or_default();
    tracing::info!(report = %id, ok = verdict.ok(), files = verdict.files_checked, "dashboard report verified");
    let done = Progress::Done {
        verdict: verdict.to_string(),
        verified: verdict.ok(),
        files_checked: verdict.files_checked,
        bundle_bytes: bundle.len(),
        bundle_name: name,
    };
    Ok((done, html, Some(bundle)))
}

/// The bytes of the bundle's entry whose name ends with `suffix`.
fn entry(zip_bytes: &[u8], suffix: &str) -> Option<Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).ok()?;
    let name = zip.file_names().filter_map(Result::ok).find(|n| n.ends_with(suffix))?.into_owned();
    let mut out = Vec::new();
    zip.by_name(&name).ok()?.read_to_end(&mut out).ok()?;
    Some(out)
}

/// The handler of `GET /reports/{id}/{file}`: `status` (the report's page), `report.html`,
/// or `bundle.zip`.
pub(crate) async fn download(
    State(state): State<WebState>,
    viewer: Option<Extension<Viewer>>,
    OriginalUri(uri): OriginalUri,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    let v = match gate(viewer.map(|e| e.0), Access::Audit, &uri) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(e) = state.reports.with(|all| all.iter().find(|e| e.id == id).cloned()) else {
        let message = format!("no report {id} on this server (it keeps the last {KEPT}, until it restarts)");
        return failed(&v, "reports", ApiError::not_found(message));
    };
    match (file.as_str(), &e.progress) {
        ("status", Progress::Generating) => {
            let ctx = minijinja::context! { title => "Report", report => view(&e), refresh => true };
            page(StatusCode::OK, "reports.html", Some(&v), ctx)
        }
        ("status", _) => page(
            StatusCode::OK,
            "reports.html",
            Some(&v),
            minijinja::context! { title => "Report", report => view(&e) },
        ),
        ("report.html", Progress::Done { .. }) => {
            let mut r = e.html.as_ref().clone().into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            secure(h);
            // The report is self-contained: its own inline stylesheet, nothing loaded.
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
                ),
            );
            r
        }
        ("bundle.zip", Progress::Done { bundle_name: Some(name), .. }) => match &e.bundle {
            Some(bytes) => {
                let mut r = bytes.as_ref().clone().into_response();
                let h = r.headers_mut();
                secure(h);
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
                if let Ok(d) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                    h.insert(header::CONTENT_DISPOSITION, d);
                }
                r
            }
            None => failed(&v, "reports", ApiError::not_found("this report has no bundle")),
        },
        (_, Progress::Generating) => failed(&v, "reports", ApiError::conflict("the report is still being generated")),
        _ => failed(&v, "reports", ApiError::not_found("a report has status, report.html and bundle.zip")),
    }
}
