//! What a valid signature may and may not buy: the claim-combination corpus
//! (`tests/attacks/claims.toml`): unverified emails, subjects against emails, odd email
//! shapes, `crit` headers, token lifetimes (with and without `iat`), each through the
//! router with its own issuer settings, checked by status and by the decision's principal
//! and roles. And on a BI route: an unverified email never becomes the upstream's identity.

#![allow(clippy::unwrap_used)]

#[path = "support/edge.rs"]
mod edge;
mod support;

use edge::in_process;
use gatelog_proxy::server::{Shared, router};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use support::*;
use tower::ServiceExt;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    claims: serde_json::Map<String, Value>,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    header: serde_json::Map<String, Value>,
    #[serde(default)]
    issuer: String,
    status: u16,
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

const MAPPINGS: &str = r#"
[[role_mappings]]
role = "svc"
issuer = "idp"
subjects = ["svc-7"]

[roles.svc]
allow = ["analytics.*"]
"#;

fn token(case: &Case) -> String {
    let mut c = claims(ISSUER, NOW, "ana@example.com", &[]);
    for (k, v) in &case.claims {
        let v = match (k.as_str(), v.as_i64()) {
            ("exp" | "nbf" | "iat", Some(rel)) => Value::from(NOW + rel),
            _ => v.clone(),
        };
        c.insert(k.clone(), v);
    }
    for r in &case.remove {
        c.remove(r);
    }
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-1"});
    for (k, v) in &case.header {
        header[k] = v.clone();
    }
    let message = format!("{}.{}", b64(header.to_string().as_bytes()), b64(Value::Object(c).to_string().as_bytes()));
    let key = EncodingKey::from_rsa_pem(&key_bytes("rsa.pem")).unwrap();
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256).unwrap();
    format!("{message}.{signature}")
}

fn shared(issuer_extra: &str) -> (Arc<Shared>, Arc<MemorySink>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let text = config_toml(ISSUER, "http://127.0.0.1:1", dir.path(), "")
        .replacen("leeway = \"30s\"\n", &format!("leeway = \"30s\"\n{issuer_extra}\n"), 1)
        .replace("[[role_mappings]]\nrole = \"admin\"", &format!("{MAPPINGS}\n[[role_mappings]]\nrole = \"admin\""));
    let sink = Arc::new(MemorySink::default());
    (in_process(&text, Some(sink.clone())).0, sink, dir)
}

#[tokio::test]
async fn claim_combinations() {
    let text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attacks/claims.toml"))
            .unwrap();
    let cases = toml::from_str::<Corpus>(&text).unwrap().case;
    let mut failures = Vec::new();
    for case in &cases {
        let (shared, sink, _dir) = shared(&case.issuer);
        let req = http::Request::post("/")
            .header("authorization", format!("Bearer {}", token(case)))
            .body(axum::body::Body::from("SELECT 1"))
            .unwrap();
        let resp = router(shared.clone()).oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
        shared.emitter.shutdown().await;
        let d = sink.decisions();
        let d = d.first().unwrap();
        let mut wrong = Vec::new();
        if status != case.status {
            wrong.push(format!("status {status}, expected {}", case.status));
        }
        if let Some(p) = &case.principal
            && d.principal != *p
        {
            wrong.push(format!("principal {:?}, expected {p:?}", d.principal));
        }
        if let Some(r) = &case.roles
            && d.roles != *r
        {
            wrong.push(format!("roles {:?}, expected {r:?}", d.roles));
        }
        if !wrong.is_empty() {
            failures.push(format!("{}: {} ({})", case.name, wrong.join(", "), d.reason));
        }
    }
    println!("claim corpus: {} cases, {} as expected", cases.len(), cases.len() - failures.len());
    assert!(failures.is_empty(), "not as expected:\n{}", failures.join("\n"));
}

/// On a BI route, an unverified email is neither the principal header nor a role source.
#[tokio::test]
async fn unverified_email_is_not_the_upstream_identity() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[[bi.routes]]\nname = \"m\"\nprefix = \"/bi/metabase/\"\nupstream = \"http://127.0.0.1:3000\"\n",
        config_toml(ISSUER, "http://127.0.0.1:1", dir.path(), "")
    );
    let (shared, upstream) = in_process(&text, None);
    let mut c = claims(ISSUER, NOW, "ceo@example.com", &["analysts"]);
    c.insert("email_verified".into(), Value::Bool(false));
    let t = sign(&c, "rsa", Algorithm::RS256, Some("rsa-1"));
    let req = http::Request::get("/bi/metabase/api/user/current")
        .header("authorization", format!("Bearer {t}"))
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(router(shared.clone()).oneshot(req).await.unwrap().status(), 200);
    let seen = upstream.requests();
    assert_eq!(seen[0].headers["x-gatelog-principal"], "sub-ceo@example.com");
    assert_eq!(seen[0].headers["x-gatelog-roles"], "analyst");
    shared.emitter.shutdown().await;
}
