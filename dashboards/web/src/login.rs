//! `GET /login` (the form), `POST /login` (a pasted token, checked by the API's own
//! [`Edge::identify`](gatelog_edge::Edge::identify), becomes a session) and `POST /logout`.
//! The login form carries its own CSRF token in a short-lived cookie, since there is no
//! session yet; an ingest token is refused (it reads nothing).

use crate::WebState;
use crate::common::{error_page, page, redirect};
use crate::session::{self, COOKIE, LOGIN_COOKIE, Viewer, same};
use axum::Form;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use gatelog_edge::Role;
use serde::Deserialize;

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

pub(crate) async fn form(State(state): State<WebState>, Query(p): Query<NextParam>) -> Response {
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

pub(crate) async fn login(State(state): State<WebState>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(&expected, &f.csrf) {
        return error_page(
            StatusCode::FORBIDDEN,
            None,
            "Form expired",
            "The login form expired; reload /login and try again.",
        );
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
    for c in [
        session::set_cookie(COOKIE, &id, state.secure_cookies, None),
        session::set_cookie(LOGIN_COOKIE, "", state.secure_cookies, Some(0)),
    ] {
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
            return error_page(
                StatusCode::FORBIDDEN,
                Some(&v),
                "Form expired",
                "The form's CSRF token does not match; reload the page.",
            );
        }
        state.sessions.end(&headers);
    }
    let mut r = redirect("/login");
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(COOKIE, "", state.secure_cookies, Some(0))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
