#![allow(clippy::unwrap_used)] // test fixtures: a failure to set one up is the test failing
//! The dashboard's router with `oneshot`, no ClickHouse (pages that need it answer 503 with a
//! page that says so): the login flow and its CSRF token, sessions and logout, the role gate
//! on every page and form, the forms' CSRF check, the security headers, the assets, and the
//! audit record of every page request. The pages with data are tested in Chromium against
//! the real binary (`tests/tests/web_ui.rs`).

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use gatelog_edge::Edge;
use gatelog_edge::auth::{Credentials, Role};
use gatelog_edge::config::OpsAccess;
use gatelog_index::Searcher;
use gatelog_model::{Batch, FixedClock, UnixMillis};
use gatelog_read::ReadState;
use gatelog_read::alerts::AlertsStore;
use gatelog_read::search::SearchIndex;
use gatelog_spool::{Spool, SpoolOptions};
use gatelog_web::{CSP, WebState};
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

fn token(role: Role) -> String {
    format!("{role}-page-token-0123456789")
}

struct App {
    _dir: tempfile::TempDir,
    router: Router,
    spool: Spool,
}

fn app() -> App {
    app_with(false)
}

fn app_with(secure_cookies: bool) -> App {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(
        &dir.path().join("spool"),
        SpoolOptions { fsync: false, preallocate: false, ..SpoolOptions::default() },
    )
    .unwrap();
    let mut credentials = Credentials::new(Some("X-Gatelog-Token"));
    for role in Role::ALL {
        credentials.add_token(format!("{role}-person"), role, &token(role));
    }
    let edge = Edge::new(credentials, OpsAccess::Loopback);
    let clock = Arc::new(FixedClock::new(UnixMillis(1_741_132_800_000)));
    std::fs::create_dir_all(dir.path().join("index")).unwrap();
    let search = SearchIndex {
        searcher: Arc::new(Searcher::open(&dir.path().join("index"), "gatelog")),
        enabled: true,
        index_status: None,
    };
    let (_, store) = tokio::sync::watch::channel(None);
    let alerts = Some(AlertsStore { store, clock: clock.clone() });
    let audit = Some(gatelog_read::audit::Audit { edge: edge.clone(), spool: spool.clone(), clock });
    let read = ReadState { edge, search, alerts, audit, reports: None };
    App { _dir: dir, router: gatelog_web::router(WebState { secure_cookies, ..WebState::new(read) }), spool }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }

    fn cookies(&self) -> Vec<String> {
        self.headers.get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    }

    /// The value of cookie `name` this answer sets.
    fn cookie(&self, name: &str) -> String {
        self.cookies()
            .iter()
            .find_map(|c| {
                c.strip_prefix(&format!("{name}=")).map(|v| v.split(';').next().unwrap_or_default().to_owned())
            })
            .unwrap_or_else(|| panic!("no {name} cookie in {:?}", self.cookies()))
    }

    /// The value of the hidden input `name` in the page.
    fn input(&self, name: &str) -> String {
        let at = self
            .body
            .find(&format!("name=\"{name}\" value=\""))
            .unwrap_or_else(|| panic!("no {name} in {}", self.body));
        let rest = &self.body[at + name.len() + 15..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

async fn call(app: &App, method: Method, uri: &str, headers: &[(&str, String)], form: &str) -> Answer {
    let mut b = Request::builder().method(method.clone()).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    if method == Method::POST {
        b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let response = app.router.clone().oneshot(b.body(Body::from(form.to_owned())).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned();
    Answer { status, headers, body }
}

fn session(id: &str) -> (&'static str, String) {
    ("cookie", format!("gatelog_session={id}"))
}

/// Logs `role` in through the form; the session id.
async fn log_in(app: &App, role: Role) -> String {
    let form = call(app, Method::GET, "/login?next=%2Falerts", &[], "").await;
    let login_cookie = form.cookie("gatelog_login");
    let csrf = form.input("csrf");
    let body = format!("csrf={csrf}&next=%2Falerts&token={}", token(role));
    let done = call(app, Method::POST, "/login", &[("cookie", format!("gatelog_login={login_cookie}"))], &body).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.header(header::LOCATION), "/alerts");
    let set = done.cookies();
    assert!(
        set.iter()
            .any(|c| c.starts_with("gatelog_session=") && c.contains("HttpOnly") && c.contains("SameSite=Strict"))
    );
    done.cookie("gatelog_session")
}

#[tokio::test]
async fn without_a_session_every_page_sends_to_the_login_page_and_back() {
    let app = app();
    for path in ["/", "/search?q=x", "/alerts", "/alerts/abc", "/principal?name=a", "/reports", "/events/abc"] {
        let a = call(&app, Method::GET, path, &[], "").await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
        assert_eq!(a.header(header::LOCATION), format!("/login?next={next}"), "{path}");
    }
    // The forms too, and nothing is done.
    let a = call(&app, Method::POST, "/alerts/abc/ack", &[], "csrf=x").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn login_checks_its_form_token_and_the_credential() {
    let app = app();
    let form = call(&app, Method::GET, "/login", &[], "").await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(form.header(header::CONTENT_SECURITY_POLICY), CSP);
    assert_eq!(form.header(header::X_FRAME_OPTIONS), "DENY");
    assert!(!CSP.contains("script-src") && CSP.contains("default-src 'none'"));
    let cookie = ("cookie", format!("gatelog_login={}", form.cookie("gatelog_login")));
    let csrf = form.input("csrf");

    // Another site's form (no or another token) is refused before the credential is looked at.
    let forged = call(
        &app,
        Method::POST,
        "/login",
        std::slice::from_ref(&cookie),
        &format!("csrf=other&token={}", token(Role::Admin)),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.cookies().iter().all(|c| !c.starts_with("gatelog_session=")));
    let wrong =
        call(&app, Method::POST, "/login", std::slice::from_ref(&cookie), &format!("csrf={csrf}&token=nope")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("not known"), "{}", wrong.body);
    let ingest = call(
        &app,
        Method::POST,
        "/login",
        std::slice::from_ref(&cookie),
        &format!("csrf={csrf}&token={}", token(Role::Ingest)),
    )
    .await;
    assert_eq!(ingest.status, StatusCode::FORBIDDEN);
    // `next` may only lead back to this site.
    let body = format!("csrf={csrf}&next=%2F%2Fevil.example&token={}", token(Role::Viewer));
    let away = call(&app, Method::POST, "/login", &[cookie], &body).await;
    assert_eq!((away.status, away.header(header::LOCATION).as_str()), (StatusCode::SEE_OTHER, "/"));
}

#[tokio::test]
async fn a_session_reads_pages_its_role_allows_until_it_logs_out() {
    let app = app();
    let viewer = log_in(&app, Role::Viewer).await;
    // No ClickHouse here: the page says so, with the page's headers.
    let alerts = call(&app, Method::GET, "/alerts", &[session(&viewer)], "").await;
    assert_eq!(alerts.status, StatusCode::SERVICE_UNAVAILABLE, "{}", alerts.body);
    assert!(alerts.body.contains("ClickHouse is not connected yet"), "{}", alerts.body);
    assert!(alerts.body.contains("viewer-person"), "the page names who is logged in");
    assert_eq!(alerts.header(header::CONTENT_SECURITY_POLICY), CSP);
    assert_eq!(alerts.header(header::CACHE_CONTROL), "no-store");
    // The search page needs no ClickHouse.
    let search = call(&app, Method::GET, "/search", &[session(&viewer)], "").await;
    assert_eq!(search.status, StatusCode::OK);
    assert!(search.body.contains("Fields and syntax"));
    // Reports need an auditor; the refusal names the role.
    let reports = call(&app, Method::GET, "/reports", &[session(&viewer)], "").await;
    assert_eq!(reports.status, StatusCode::FORBIDDEN);
    assert!(reports.body.contains("auditor or admin"), "{}", reports.body);
    assert!(!reports.body.contains("Reports</a>"), "the menu offers a viewer the reports");
    // A viewer may not acknowledge, whatever the form carries.
    let csrf = search.input("csrf");
    let ack = call(&app, Method::POST, "/alerts/abc/ack", &[session(&viewer)], &format!("csrf={csrf}")).await;
    assert_eq!(ack.status, StatusCode::FORBIDDEN);

    let logout = call(&app, Method::POST, "/logout", &[session(&viewer)], &format!("csrf={csrf}")).await;
    assert_eq!((logout.status, logout.header(header::LOCATION).as_str()), (StatusCode::SEE_OTHER, "/login"));
    let after = call(&app, Method::GET, "/search", &[session(&viewer)], "").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "the session outlived its logout");
    let forged = call(&app, Method::GET, "/search", &[session("0123abcd")], "").await;
    assert_eq!(forged.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_responders_forms_need_the_sessions_csrf_token() {
    let app = app();
    let responder = log_in(&app, Role::Responder).await;
    let page = call(&app, Method::GET, "/search", &[session(&responder)], "").await;
    let csrf = page.input("csrf");
    for form in ["", "csrf=", "csrf=0000"] {
        let a = call(&app, Method::POST, "/alerts/abc/ack", &[session(&responder)], form).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{form}");
        assert!(a.body.contains("form expired"), "{}", a.body);
    }
    // With the token the transition is attempted (and ClickHouse is away here).
    let a =
        call(&app, Method::POST, "/alerts/abc/ack", &[session(&responder)], &format!("csrf={csrf}&note=mine")).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    let d = format!("csrf={csrf}&disposition=sideways");
    let bad = call(&app, Method::POST, "/alerts/abc/resolve", &[session(&responder)], &d).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // Another session's token is not this one's.
    let other = log_in(&app, Role::Responder).await;
    let theirs = call(&app, Method::GET, "/search", &[session(&other)], "").await.input("csrf");
    assert_ne!(theirs, csrf);
    let a = call(&app, Method::POST, "/alerts/abc/ack", &[session(&responder)], &format!("csrf={theirs}")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_bearer_credential_works_without_a_session() {
    let app = app();
    let auth = ("authorization", format!("Bearer {}", token(Role::Auditor)));
    let reports = call(&app, Method::GET, "/reports", std::slice::from_ref(&auth), "").await;
    assert_eq!(reports.status, StatusCode::OK, "{}", reports.body);
    assert!(reports.body.contains("Reports are not served here"), "{}", reports.body);
    let wrong = call(&app, Method::GET, "/reports", &[("authorization", "Bearer nope".to_owned())], "").await;
    assert_eq!(wrong.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn assets_are_served_by_their_hashed_names_only() {
    let app = app();
    let page = call(&app, Method::GET, "/login", &[], "").await;
    let body = page.body.replace("&#x2f;", "/");
    let at = body.find("/assets/app.").unwrap();
    let css = &body[at..at + body[at..].find('"').unwrap()];
    let a = call(&app, Method::GET, css, &[], "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header(header::CONTENT_TYPE), "text/css; charset=utf-8");
    assert!(a.header(header::CACHE_CONTROL).contains("immutable"));
    assert!(a.body.contains("svg.chart"));
    assert_eq!(call(&app, Method::GET, "/assets/app.000000000000.css", &[], "").await.status, StatusCode::NOT_FOUND);
    let icon = call(&app, Method::GET, "/favicon.ico", &[], "").await;
    assert_eq!(icon.status, StatusCode::MOVED_PERMANENTLY);
    assert!(icon.header(header::LOCATION).starts_with("/assets/icon."));
}

#[tokio::test]
async fn every_page_request_is_audited_with_the_sessions_principal() {
    let app = app();
    let viewer = log_in(&app, Role::Viewer).await;
    let before = app.spool.last_seq();
    call(&app, Method::GET, "/search?q=decision%3Adeny", &[session(&viewer)], "").await;
    call(&app, Method::GET, "/reports", &[session(&viewer)], "").await;
    let mut reader = app.spool.reader(before);
    let mut seen = Vec::new();
    while let Some(record) = reader.try_next().await.unwrap() {
        let batch = Batch::decode(&record.payload).unwrap();
        for d in batch.decisions {
            seen.push((d.principal, d.resource, d.query, d.decision.as_str().to_owned(), d.status));
        }
    }
    assert_eq!(
        seen,
        [
            ("viewer-person".into(), "/search".into(), "q=decision%3Adeny".into(), "allow".into(), 200),
            ("viewer-person".into(), "/reports".into(), String::new(), "deny".into(), 403),
        ]
    );
}

#[tokio::test]
async fn behind_tls_the_cookies_are_secure() {
    for secure in [false, true] {
        let app = app_with(secure);
        let form = call(&app, Method::GET, "/login", &[], "").await;
        let cookies = form.cookies();
        assert_eq!(cookies.iter().all(|c| c.contains("; Secure")), secure, "{cookies:?}");
    }
}
