//! gatelog's built-in web dashboard, mounted by `gatelog serve` at `/`: server-rendered
//! `minijinja` pages (templates named `*.html`, so every value is escaped), charts drawn as
//! SVG on the server ([`chart`]), one embedded stylesheet and icon served from `/assets/…`
//! with a content hash in the name. No script at all, no CDN: it works offline, and every
//! page carries a CSP that allows nothing but this server's own stylesheet and images.
//!
//! | route | access | module |
//! | --- | --- | --- |
//! | `GET /` | read | [`overview`]: decisions over time, top principals, denied resources and IPs, ingest per dataset, open alerts |
//! | `GET /search`, `GET /events/{id}` | read | [`search`]: the index with highlights and cursor paging; one event, every field and its original line |
//! | `GET /principal?name=` | read | [`principal`]: timeline, countries, ASNs, roles, resources, alerts |
//! | `GET /alerts`, `GET /alerts/{id}` | read | [`alerts`]: by state and severity; one alert's timeline, findings and events |
//! | `POST /alerts/{id}/ack`, `…/resolve` | respond | the transition, by [`gatelog_read::alerts::apply`] (the API's own) |
//! | `GET /reports`, `POST /reports`, `GET /reports/{id}/{file}` | audit | [`reports`]: generate a period's SOC 2 bundle, see its verification, download it |
//! | `GET/POST /login`, `POST /logout` | none | [`login`], [`session`]: a pasted token becomes a server-side session |
//!
//! Who: a session ([`session`]) or a credential the edge accepts (a bearer header,
//! Cloudflare Access's cookie). Not logged in: a redirect to `/login?next=…`; a role without
//! the access: a 403 page naming the role needed. Every page request is recorded in gatelog's
//! audit trail ([`gatelog_read::audit`]), which finds the session's principal in the
//! request's extensions, like the API's reads.

pub mod alerts;
pub mod chart;
mod common;
pub mod login;
pub mod overview;
pub mod principal;
pub mod reports;
pub mod search;
pub mod session;

pub use common::{CSP, WebState};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::{CSS, CSS_PATH, ICON, ICON_PATH, error_page};
use gatelog_edge::Principal;
use session::Viewer;

/// The session layer: puts the request's [`Viewer`] (its session, else a credential the edge
/// accepts) and its [`Principal`] (for the audit trail) in the request's extensions.
async fn who(
    axum::extract::State(state): axum::extract::State<WebState>,
    mut request: Request,
    next: Next,
) -> Response {
    let viewer = match state.sessions.find(request.headers()) {
        Some(v) => Some(v),
        None => state
            .read
            .edge
            .identify(request.headers())
            .await
            .map(|principal: Principal| Viewer { csrf: state.sessions.derived_csrf(&principal), principal }),
    };
    if let Some(v) = viewer {
        request.extensions_mut().insert(v.principal.clone());
        request.extensions_mut().insert(v);
    }
    next.run(request).await
}

/// `/assets/{name}`: the stylesheet and the icon, by their hashed names, cached for good.
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
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// `/favicon.ico`: browsers ask for it whatever the page links; the icon answers.
async fn favicon() -> Response {
    let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
    if let Ok(v) = HeaderValue::from_str(&ICON_PATH) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Every dashboard route, with `state` attached; merges with the API's routers (no
/// fallback is installed).
pub fn router(state: WebState) -> Router {
    use axum::routing::{get, post};
    let audit = state.read.audit.clone();
    let pages = Router::new()
        .route("/", get(overview::page))
        .route("/search", get(search::search))
        .route("/events/{id}", get(search::event))
        .route("/principal", get(principal::principal))
        .route("/alerts", get(alerts::list))
        .route("/alerts/{id}", get(alerts::show))
        .route("/alerts/{id}/ack", post(alerts::ack))
        .route("/alerts/{id}/resolve", post(alerts::resolve))
        .route("/reports", get(reports::form).post(reports::generate))
        .route("/reports/{id}/{file}", get(reports::download))
        .route("/login", get(login::form).post(login::login))
        .route("/logout", post(login::logout));
    let pages = match audit {
        Some(audit) => pages.route_layer(axum::middleware::from_fn_with_state(audit, gatelog_read::audit::audited)),
        None => pages,
    };
    pages
        .route("/assets/{name}", get(asset))
        .route("/favicon.ico", get(favicon))
        .layer(axum::middleware::from_fn_with_state(state.clone(), who))
        .with_state(state)
}
