//! gatelog's built-in web dashboard, mounted by `gatelog serve` at `/`: server-rendered
//! `minijinja` pages (templates named `*.html`, so every value is escaped), charts as
//! server-rendered SVG, one embedded stylesheet and icon served from `/assets/…` with a
//! content hash in the name, no script, no CDN. Every page has a strict CSP.
//!
//! | route | access | page |
//! | --- | --- | --- |
//! | `GET /` | read | [`overview`]: decisions over time, top principals, denied resources and IPs, ingest per dataset, open alerts |
//! | `GET /alerts`, `GET /alerts/{id}` | read | [`alerts`]: by state and severity; one alert's timeline and findings |
//! | `POST /alerts/{id}/ack`, `…/resolve` | respond | the transition, by [`gatelog_read::alerts::apply`] (the API's own) |
//! | `GET/POST /login`, `POST /logout` | none | [`session`]: a pasted token becomes a server-side session |
//!
//! Who: a session ([`session`]) or a credential the edge accepts. Not logged in: a redirect
//! to `/login?next=…`; a role without the access: a 403 page naming the role needed. Every
//! page request is recorded in gatelog's audit trail ([`gatelog_read::audit`]), which sees
//! the session's principal through the request's extensions.

pub mod alerts;
pub mod chart;
pub mod overview;
mod pages;
pub mod session;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatelog_edge::{Access, Principal};
use gatelog_read::ReadState;
use minijinja::Environment;
use session::{Sessions, Viewer};
use sha2::{Digest, Sha256};
use std::sync::{Arc, LazyLock};

/// Every page's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("../assets/app.css");
const ICON: &str = include_str!("../assets/icon.svg");

fn hashed(name: &str, ext: &str, body: &str) -> String {
    format!("/assets/{name}.{}.{ext}", &hex::encode(Sha256::digest(body.as_bytes()))[..12])
}

static CSS_PATH: LazyLock<String> = LazyLock::new(|| hashed("app", "css", CSS));
static ICON_PATH: LazyLock<String> = LazyLock::new(|| hashed("icon", "svg", ICON));

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("login.html", include_str!("../templates/login.html")),
        ("error.html", include_str!("../templates/error.html")),
        ("overview.html", include_str!("../templates/overview.html")),
        ("alerts.html", include_str!("../templates/alerts.html")),
        ("alert.html", include_str!("../templates/alert.html")),
    ] {
        // The templates are constants: a syntax error is a bug the tests catch.
        env.add_template(name, source).expect("the dashboard's templates parse");
    }
    env
});

/// What the pages share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebState {
    pub read: ReadState,
    pub sessions: Sessions,
    pub overview: Arc<dyn overview::OverviewSource>,
    /// Mark cookies `Secure` (the server is reached over TLS, e.g. behind a TLS proxy).
    pub secure_cookies: bool,
}

impl WebState {
    pub fn new(read: ReadState) -> WebState {
        WebState {
            read,
            sessions: Sessions::default(),
            overview: Arc::new(overview::ClickHouseOverview),
            secure_cookies: false,
        }
    }
}

/// A page: `template` rendered with `ctx` (plus the layout's values), CSP and no caching.
pub(crate) fn page(status: StatusCode, template: &str, viewer: Option<&Viewer>, ctx: minijinja::Value) -> Response {
    let who = viewer.map(|v| minijinja::context! { name => v.principal.name.clone(), role => v.principal.role.as_str() });
    let csrf = viewer.map(|v| v.csrf.clone()).unwrap_or_default();
    let base = minijinja::context! { css => CSS_PATH.as_str(), icon => ICON_PATH.as_str(), who, csrf };
    let ctx = minijinja::context! { ..ctx, ..base };
    let body = TEMPLATES.get_template(template).and_then(|t| t.render(ctx));
    let (status, body) = match body {
        Ok(b) => (status, b),
        Err(e) => {
            tracing::warn!(template, error = %e, "dashboard page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered".to_owned())
        }
    };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An error page.
pub(crate) fn error_page(status: StatusCode, viewer: Option<&Viewer>, title: &str, message: &str) -> Response {
    page(status, "error.html", viewer, minijinja::context! { title, message })
}

/// The request's viewer if it may have `access`; else the answer: a redirect to the login
/// page, or a 403 page naming the role needed.
pub(crate) fn gate(viewer: Option<Viewer>, access: Access, path_and_query: &str) -> Result<Viewer, Response> {
    let Some(v) = viewer else {
        let next: String = form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect();
        let mut r = StatusCode::SEE_OTHER.into_response();
        if let Ok(loc) = HeaderValue::from_str(&format!("/login?next={next}")) {
            r.headers_mut().insert(header::LOCATION, loc);
        }
        return Err(r);
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
    let message = format!("This page needs the role {needed}; you are logged in as {} with role {}.", v.principal.name, v.principal.role);
    Err(error_page(StatusCode::FORBIDDEN, Some(&v), "Not allowed", &message))
}

/// The session layer: puts the request's [`Viewer`] (session, else a credential the edge
/// accepts) and its [`Principal`] (for the audit trail) in the request's extensions.
async fn who(axum::extract::State(state): axum::extract::State<WebState>, mut request: Request, next: Next) -> Response {
    let viewer = match state.sessions.find(request.headers()) {
        Some(v) => Some(v),
        None => state.read.edge.identify(request.headers()).await.map(|principal: Principal| Viewer {
            csrf: state.sessions.derived_csrf(&principal),
            principal,
        }),
    };
    if let Some(v) = viewer {
        request.extensions_mut().insert(v.principal.clone());
        request.extensions_mut().insert(v);
    }
    next.run(request).await
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let path = format!("/assets/{name}");
    let (body, kind) = if path == *CSS_PATH {
        (CSS, "text/css; charset=utf-8")
    } else if path == *ICON_PATH {
        (ICON, "image/svg+xml")
    } else {
        return error_page(StatusCode::NOT_FOUND, None, "Not found", "No such asset.");
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    r
}

/// Every dashboard route, with `state` attached; merges with the API's routers.
pub fn router(state: WebState) -> Router {
    use axum::routing::{get, post};
    let audit = state.read.audit.clone();
    let pages = Router::new()
        .route("/", get(pages::overview))
        .route("/alerts", get(alerts::list))
        .route("/alerts/{id}", get(alerts::show))
        .route("/alerts/{id}/ack", post(alerts::ack))
        .route("/alerts/{id}/resolve", post(alerts::resolve))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout));
    let pages = match audit {
        Some(audit) => pages.route_layer(axum::middleware::from_fn_with_state(audit, gatelog_read::audit::audited)),
        None => pages,
    };
    pages
        .route("/assets/{name}", get(asset))
        .layer(axum::middleware::from_fn_with_state(state.clone(), who))
        .with_state(state)
}
