//! What every page shares: the state, the templates, the page and error answers with their
//! security headers, the role gate, the time window, and the way to the store.

use crate::session::{Sessions, Viewer};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatelog_edge::{Access, ApiError};
use gatelog_model::UnixMillis;
use gatelog_read::ReadState;
use gatelog_store::read::{Period, Reader};
use minijinja::Environment;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Every page's Content-Security-Policy: this server's stylesheet and images, no script,
/// forms only to this server, never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

pub(crate) const CSS: &str = include_str!("../assets/app.css");
pub(crate) const ICON: &str = include_str!("../assets/icon.svg");

fn hashed(name: &str, ext: &str, body: &str) -> String {
    format!("/assets/{name}.{}.{ext}", &hex::encode(Sha256::digest(body.as_bytes()))[..12])
}

pub(crate) static CSS_PATH: LazyLock<String> = LazyLock::new(|| hashed("app", "css", CSS));
pub(crate) static ICON_PATH: LazyLock<String> = LazyLock::new(|| hashed("icon", "svg", ICON));

/// `2025-03-04T05:06:07.089Z` (or epoch milliseconds) as `2025-03-04 05:06:07 UTC`.
fn when(value: minijinja::Value) -> String {
    let ms = match i64::try_from(value.clone()) {
        Ok(ms) => Some(UnixMillis(ms)),
        Err(_) => value.as_str().and_then(|s| UnixMillis::parse_str(s).ok()),
    };
    match ms {
        Some(t) => {
            let s = t.to_rfc3339();
            format!("{} {} UTC", &s[..10], &s[11..19])
        }
        None => value.to_string(),
    }
}

/// A time as `MM-DD HH:MM` (UTC), for tight columns.
fn short(value: minijinja::Value) -> String {
    let full = when(value);
    if full.len() >= 16 && full.ends_with(" UTC") { full[5..16].to_owned() } else { full }
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.add_filter("when", when);
    env.add_filter("short", short);
    env.add_filter("url", |s: String| url_encode(&s));
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("login.html", include_str!("../templates/login.html")),
        ("error.html", include_str!("../templates/error.html")),
        ("overview.html", include_str!("../templates/overview.html")),
        ("search.html", include_str!("../templates/search.html")),
        ("event.html", include_str!("../templates/event.html")),
        ("principal.html", include_str!("../templates/principal.html")),
        ("alerts.html", include_str!("../templates/alerts.html")),
        ("alert.html", include_str!("../templates/alert.html")),
        ("reports.html", include_str!("../templates/reports.html")),
    ] {
        // The templates are constants: a syntax error is a bug every page test catches.
        if let Err(e) = env.add_template(name, source) {
            panic!("the dashboard's template {name} does not parse: {e}");
        }
    }
    env
});

/// What the pages share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebState {
    /// The API's state: credentials, search, alerts, reports, audit trail.
    pub read: ReadState,
    pub sessions: Sessions,
    /// Reports generated on the reports page, kept for download.
    pub reports: crate::reports::Generated,
    /// Mark cookies `Secure` (the server is reached over TLS, e.g. behind a TLS proxy).
    pub secure_cookies: bool,
}

impl WebState {
    pub fn new(read: ReadState) -> WebState {
        WebState { read, sessions: Sessions::default(), reports: Default::default(), secure_cookies: false }
    }
}

/// A page: `template` rendered with `ctx` (plus the layout's values), with the CSP, no
/// caching and no referrer.
pub(crate) fn page(status: StatusCode, template: &str, viewer: Option<&Viewer>, ctx: minijinja::Value) -> Response {
    let who = viewer.map(|v| {
        minijinja::context! {
            name => v.principal.name.clone(),
            role => v.principal.role.as_str(),
            respond => v.principal.role.may(Access::Respond),
            audit => v.principal.role.may(Access::Audit),
        }
    });
    let csrf = viewer.map(|v| v.csrf.clone()).unwrap_or_default();
    let base = minijinja::context! { css => CSS_PATH.as_str(), icon => ICON_PATH.as_str(), who, csrf };
    let ctx = minijinja::context! { ..ctx, ..base };
    let body = TEMPLATES.get_template(template).and_then(|t| t.render(ctx));
    let (status, body) = match body {
        Ok(b) => (status, b),
        Err(e) => {
            tracing::error!(template, error = %e, "dashboard page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered".to_owned())
        }
    };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secure(h);
    r
}

/// The headers of every dashboard answer.
pub(crate) fn secure(h: &mut axum::http::HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// An error page.
pub(crate) fn error_page(status: StatusCode, viewer: Option<&Viewer>, title: &str, message: &str) -> Response {
    page(status, "error.html", viewer, minijinja::context! { title, message })
}

/// The page of an API error: its status and client-safe message; the internal detail is
/// logged here, once.
pub(crate) fn failed(v: &Viewer, what: &str, e: ApiError) -> Response {
    if let Some(internal) = &e.internal {
        tracing::warn!(page = what, status = e.status.as_u16(), error = %internal, "dashboard page failed");
    }
    let title = match e.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::BAD_REQUEST => "Not understood",
        StatusCode::CONFLICT => "Not possible now",
        StatusCode::SERVICE_UNAVAILABLE => "Not available right now",
        _ => "Refused",
    };
    error_page(e.status, Some(v), title, &e.message)
}

/// A 303 to `to`.
pub(crate) fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The request's viewer if it may have `access`; else the answer: a redirect to the login
/// page (back here afterwards), or a 403 page naming the role needed.
pub(crate) fn gate(viewer: Option<Viewer>, access: Access, uri: &axum::http::Uri) -> Result<Viewer, Box<Response>> {
    let Some(v) = viewer else {
        let back = uri.path_and_query().map_or("/", |p| p.as_str());
        let next: String = form_urlencoded::byte_serialize(back.as_bytes()).collect();
        return Err(Box::new(redirect(&format!("/login?next={next}"))));
    };
    if v.principal.role.may(access) {
        return Ok(v);
    }
    let needed = match access {
        Access::Respond => "responder or admin",
        Access::Audit => "auditor or admin",
        Access::Ingest => "ingest",
        Access::Read | Access::Operate => "viewer, responder, auditor or admin",
    };
    let message = format!(
        "This page needs the role {needed}; you are logged in as {} with the role {}.",
        v.principal.name, v.principal.role
    );
    Err(Box::new(error_page(StatusCode::FORBIDDEN, Some(&v), "Not allowed", &message)))
}

/// A page behind `access`: the gate, then `template` rendered with what `context` makes of
/// the viewer, or the error page of its failure.
pub(crate) async fn gated_page<F>(
    viewer: Option<Viewer>,
    uri: &axum::http::Uri,
    access: Access,
    template: &str,
    context: impl FnOnce(Viewer) -> F,
) -> Response
where
    F: std::future::Future<Output = Result<minijinja::Value, ApiError>>,
{
    let v = match gate(viewer, access, uri) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match context(v.clone()).await {
        Ok(ctx) => page(StatusCode::OK, template, Some(&v), ctx),
        Err(e) => failed(&v, template.trim_end_matches(".html"), e),
    }
}

/// A reader of the store (503 until ClickHouse is connected and migrated).
pub(crate) fn reader(state: &WebState) -> Result<Reader, ApiError> {
    let (store, clock) = gatelog_read::alerts::store(&state.read)?;
    Ok(store.reader(clock))
}

/// The windows a page offers, by name.
pub(crate) const WINDOWS: [(&str, i64); 4] =
    [("1h", 3_600_000), ("24h", 86_400_000), ("7d", 7 * 86_400_000), ("30d", 30 * 86_400_000)];

/// The window a page shows: `window` (one of [`WINDOWS`], default `24h`) ending at `to`
/// (RFC 3339 or epoch milliseconds; default now). Errors name the parameter.
pub(crate) fn window(state: &WebState, window: Option<&str>, to: Option<&str>) -> Result<(String, Period), ApiError> {
    let name = window.filter(|w| !w.is_empty()).unwrap_or("24h");
    let Some(&(name, len)) = WINDOWS.iter().find(|w| w.0 == name) else {
        return Err(ApiError::bad_request("window: must be 1h, 24h, 7d or 30d"));
    };
    let to = match gatelog_read::search::time("to", to)? {
        Some(t) => t,
        None => match &state.read.alerts {
            Some(a) => a.clock.now(),
            None => UnixMillis(0),
        },
    };
    let period = Period::new(UnixMillis(to.0 - len), to).map_err(|e| ApiError::bad_request(format!("to: {e}")))?;
    Ok((name.to_owned(), period))
}

/// `value` for a URL's query string.
pub(crate) fn url_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
