//! The overview page and the login/logout forms.

use crate::session::{self, COOKIE, LOGIN_COOKIE, Viewer, same};
use crate::{WebState, chart, error_page, gate, page};
use axum::Form;
use axum::extract::{Extension, OriginalUri, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatelog_edge::{Access, Role};
use gatelog_model::{AlertState, UnixMillis};
use serde::Deserialize;

/// The windows the overview offers: name, length, bucket.
const WINDOWS: [(&str, i64, i64); 4] = [
    ("1h", 3_600_000, 60_000),
    ("24h", 86_400_000, 1_800_000),
    ("7d", 7 * 86_400_000, 6 * 3_600_000),
    ("30d", 30 * 86_400_000, 86_400_000),
];

#[derive(Debug, Deserialize)]
pub(crate) struct OverviewParams {
    window: Option<String>,
}

pub(crate) async fn overview(
    State(state): State<WebState>,
    viewer: Option<Extension<Viewer>>,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<OverviewParams>,
) -> Response {
    let v = match gate(viewer.map(|e| e.0), Access::Read, &uri.to_string()) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let window = p.window.unwrap_or_else(|| "24h".into());
    let Some(&(name, len, bucket)) = WINDOWS.iter().find(|w| w.0 == window) else {
        return error_page(StatusCode::BAD_REQUEST, Some(&v), "Bad window", "window: must be 1h, 24h, 7d or 30d");
    };
    let store = match gatelog_read::alerts::store(&state.read) {
        Ok((store, clock)) => Some((store, clock.now())),
        Err(_) => None,
    };
    let windows: Vec<&str> = WINDOWS.iter().map(|w| w.0).collect();
    let outcomes = ["allow", "deny", "challenge", "log", "error"];
    let Some((store, now)) = store else {
        let ctx = minijinja::context! { title => "Overview", windows, window => name, outcomes,
            unavailable => "ClickHouse is not connected yet; see /readyz." };
        return page(StatusCode::SERVICE_UNAVAILABLE, "overview.html", Some(&v), ctx);
    };
    let to = UnixMillis(now.0 + 1);
    let from = UnixMillis(to.0 - len);
    let (overview, alerts) = tokio::join!(
        state.overview.overview(&store, from, to, bucket),
        gatelog_watch::service::list(&store, 20, Some(AlertState::Open))
    );
    let (open_alerts, alerts_error) = match alerts {
        Ok(a) => (minijinja::Value::from(minijinja::value::Serde(&a)), None),
        Err(e) => (minijinja::Value::from(Vec::<String>::new()), Some(format!("alerts: {e}"))),
    };
    match overview {
        Ok(o) => {
            let o_value = minijinja::Value::from(minijinja::value::Serde(&o));
            let total: u64 = o.series.iter().map(crate::overview::Bucket::total).sum();
            let chart = chart::stacked_bars(&o.series);
            let ctx = minijinja::context! { title => "Overview", windows, window => name, outcomes, o => o_value, total, chart,
                open_alerts, alerts_error };
            page(StatusCode::OK, "overview.html", Some(&v), ctx)
        }
        Err(e) => {
            tracing::warn!(error = %e, "overview: clickhouse did not answer");
            let ctx = minijinja::context! { title => "Overview", windows, window => name, outcomes, open_alerts,
                unavailable => "ClickHouse did not answer; retry later." };
            page(StatusCode::SERVICE_UNAVAILABLE, "overview.html", Some(&v), ctx)
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct NextParam {
    next: Option<String>,
}

fn login_page(state: &WebState, status: StatusCode, next: &str, message: Option<&str>) -> Response {
    let token = session::random_hex();
    let next = if session::safe_next(next) { next } else { "/" };
    let ctx = minijinja::context! { title => "Log in", login_csrf => token.clone(), next, message };
    let mut r = page(status, "login.html", None, ctx);
    if let Ok(c) = HeaderValue::from_str(&session::set_cookie(LOGIN_COOKIE, &token, state.secure_cookies, Some(600))) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

pub(crate) async fn login_form(State(state): State<WebState>, Query(p): Query<NextParam>) -> Response {
    login_page(&state, StatusCode::OK, p.next.as_deref().unwrap_or("/"), None)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm").field("next", &self.next).finish_non_exhaustive()
    }
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub(crate) async fn login(State(state): State<WebState>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(&expected, &f.csrf) {
        return error_page(StatusCode::FORBIDDEN, None, "Form expired", "The login form expired; reload /login and try again.");
    }
    let mut probe = HeaderMap::new();
    let principal = match HeaderValue::from_str(&format!("Bearer {}", f.token.trim())) {
        Ok(v) => {
            probe.insert(header::AUTHORIZATION, v);
            state.read.edge.identify(&probe).await
        }
        Err(_) => None,
    };
    let principal = match principal {
        Some(p) if p.role != Role::Ingest => p,
        Some(_) => return login_page(&state, StatusCode::FORBIDDEN, &f.next, Some("An ingest token reads nothing.")),
        None => return login_page(&state, StatusCode::UNAUTHORIZED, &f.next, Some("That token is not known here.")),
    };
    tracing::info!(principal = %principal.name, role = %principal.role, "dashboard login");
    let id = state.sessions.start(principal);
    let next = if session::safe_next(&f.next) { f.next.as_str() } else { "/" };
    let mut r = redirect(next);
    for c in [session::set_cookie(COOKIE, &id, state.secure_cookies, None), session::set_cookie(LOGIN_COOKIE, "", state.secure_cookies, Some(0))] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn logout(
    State(state): State<WebState>,
    viewer: Option<Extension<Viewer>>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(Extension(v)) = viewer {
        if !same(&v.csrf, &f.csrf) {
            return error_page(StatusCode::FORBIDDEN, Some(&v), "Form expired", "The form's CSRF token does not match; reload the page.");
        }
        state.sessions.end(&headers);
    }
    let mut r = redirect("/login");
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(COOKIE, "", state.secure_cookies, Some(0))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
