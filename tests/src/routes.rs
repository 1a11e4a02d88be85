//! Every route of `gatelog serve` with the roles that may use it, for the route × role
//! matrices on the real binary (static tokens: `serve_roles`; identity tokens:
//! `serve_identity`). A new route goes here once and both matrices cover it.

/// Which roles may use a route, and what an allowed caller gets (no ClickHouse is reachable:
/// the alert, raw, audit and report routes answer 503 once a caller is through).
#[derive(Debug)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub body: &'static str,
    pub roles: &'static [&'static str],
    pub allowed: u16,
}

pub const READERS: &[&str] = &["viewer", "responder", "auditor", "admin"];
pub const RESPONDERS: &[&str] = &["responder", "admin"];
pub const INGESTERS: &[&str] = &["ingest"];
pub const AUDITORS: &[&str] = &["auditor", "admin"];

pub const ROUTES: [Route; 11] = [
    Route { method: "POST", path: "/v1/logpush/http_requests", body: "", roles: INGESTERS, allowed: 200 },
    Route { method: "POST", path: "/v1/tail", body: "test", roles: INGESTERS, allowed: 200 },
    Route { method: "POST", path: "/v1/decisions", body: "{\"event_id\":\"d1\"}\n", roles: INGESTERS, allowed: 200 },
    Route { method: "GET", path: "/v1/search?q=decision:deny", body: "", roles: READERS, allowed: 200 },
    Route { method: "GET", path: "/v1/alerts", body: "", roles: READERS, allowed: 503 },
    Route { method: "GET", path: "/v1/alerts/0123abcd", body: "", roles: READERS, allowed: 503 },
    Route { method: "POST", path: "/v1/alerts/0123abcd/ack", body: "", roles: RESPONDERS, allowed: 503 },
    Route {
        method: "POST",
        path: "/v1/alerts/0123abcd/resolve",
        body: "{\"disposition\":\"benign\"}",
        roles: RESPONDERS,
        allowed: 503,
    },
    Route { method: "GET", path: "/v1/raw/0123abcd", body: "", roles: READERS, allowed: 503 },
    Route { method: "GET", path: "/v1/audit", body: "", roles: AUDITORS, allowed: 503 },
    Route {
        method: "GET",
        path: "/v1/reports/soc2?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z&format=json",
        body: "",
        roles: AUDITORS,
        allowed: 503,
    },
];
