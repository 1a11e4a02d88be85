//! Identity tokens on the real binary (`gatelog serve`, over its socket, logging at debug):
//! `[auth.identity]` with the proxy's test issuers (`gatelog_identity::testing`: OIDC
//! discovery and JWKS served on loopback, and a Cloudflare Access issuer) and one group per
//! reading role. Every route × each mapped identity gets exactly its routes (identities never
//! ingest); a verified identity that maps to nothing gets 403 everywhere; every case of the
//! proxy's JWT attack corpus (expired, not yet valid, forged signature, `alg: none`, HS/RS
//! confusion, wrong audience or issuer, unknown kid, …) gets no route; static tokens keep
//! working beside them; the `Cf-Access-Jwt-Assertion` header and the `CF_Authorization`
//! cookie (which reads, but never acts); and no token appears in a log line or an answer.
//! A mapping to `ingest` stops serve at start, naming the key.

use gatelog_e2e::routes::{ROUTES, Route};
use gatelog_e2e::{free_port, gatelog_bin, http_client, http_requests_sample, sha256_hex};
use gatelog_identity::testing::{LoopbackIssuer, attacks, cf_claims, claims, issuers_toml, sign};
use jsonwebtoken::Algorithm;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INGEST: &str = "identity-ingest-secret-0123456789";
const STATIC_VIEWER: &str = "identity-static-viewer-secret-0123456789";

/// The group each reading role is mapped from.
const GROUPS: [(&str, &str); 4] =
    [("viewer", "analysts"), ("responder", "sec-oncall"), ("auditor", "audit"), ("admin", "admins")];

fn now() -> i64 {
    // The binary judges tokens by the system clock, so the tokens are made by it too.
    gatelog_model::Clock::now(&gatelog_model::SystemClock).0.div_euclid(1000)
}

/// A caller: its name, the headers it sends, the query it adds, and the status it expects per route.
struct Caller {
    who: String,
    headers: Vec<(&'static str, String)>,
    query: Option<String>,
    expect: Box<dyn Fn(&Route) -> u16>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_get_exactly_their_routes_and_attacks_none_on_the_binary() {
    let issuer = LoopbackIssuer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = format!(
        "[[auth.tokens]]\nname = \"static-viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
        sha256_hex(STATIC_VIEWER)
    );
    config.push_str(&issuers_toml("auth.identity.issuers", &issuer.url));
    for (role, group) in GROUPS {
        config.push_str(&format!("\n[[auth.identity.roles]]\nrole = \"{role}\"\ngroups = [\"{group}\"]\n"));
    }
    let config_path = dir.path().join("gatelog.toml");
    std::fs::write(&config_path, config).expect("config");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = dir.path().join("serve.log");
    let out = std::fs::File::create(&log).expect("log");
    let mut child = Command::new(gatelog_bin())
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--clickhouse-url", &format!("http://127.0.0.1:{}", free_port())])
        .args(["--ingest-token", INGEST])
        .env("GATELOG_LOG", "debug")
        .env_remove("GATELOG_CONFIG")
        .env_remove("GATELOG_INGEST_TOKENS")
        .env_remove("GATELOG_TOKENS_FILE")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("gatelog serve");

    let client = http_client();
    let started = Instant::now();
    loop {
        let health = client.get(format!("{base}/healthz")).send().await;
        if health.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited ({status}): {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Search answers 503 until the index sink has opened the index: wait for it (bounded),
    // so the matrix judges credentials only.
    let started = Instant::now();
    loop {
        let search = client.get(format!("{base}/v1/search?q=x")).bearer_auth(STATIC_VIEWER).send().await;
        if search.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "search did not open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let url = issuer.url.clone();
    let bearer = |t: String| vec![("authorization", format!("Bearer {t}"))];
    let mut callers: Vec<Caller> = Vec::new();
    for (role, group) in GROUPS {
        let t = sign(
            &claims(&url, now(), &format!("{role}@example.com"), &[group]),
            "rsa",
            Algorithm::RS256,
            Some("rsa-1"),
        );
        callers.push(Caller {
            who: format!("identity {role}"),
            headers: bearer(t),
            query: None,
            expect: Box::new(move |r: &Route| if r.roles.contains(&role) { r.allowed } else { 403 }),
        });
    }
    let es = sign(&claims(&url, now(), "es@example.com", &["admins"]), "ec", Algorithm::ES256, Some("ec-1"));
    callers.push(Caller {
        who: "identity admin (ES256)".into(),
        headers: bearer(es),
        query: None,
        expect: Box::new(|r: &Route| if r.roles.contains(&"admin") { r.allowed } else { 403 }),
    });
    let unmapped =
        sign(&claims(&url, now(), "eve@elsewhere.org", &["marketing"]), "rsa", Algorithm::RS256, Some("rsa-1"));
    callers.push(Caller {
        who: "identity without a role".into(),
        headers: bearer(unmapped),
        query: None,
        expect: Box::new(|_: &Route| 403),
    });
    callers.push(Caller {
        who: "static viewer".into(),
        headers: bearer(STATIC_VIEWER.into()),
        query: None,
        expect: Box::new(|r: &Route| if r.roles.contains(&"viewer") { r.allowed } else { 403 }),
    });
    callers.push(Caller {
        who: "receiver".into(),
        headers: bearer(INGEST.into()),
        query: None,
        expect: Box::new(|r: &Route| if r.roles.contains(&"ingest") { r.allowed } else { 403 }),
    });
    // Cloudflare Access: the header acts; the cookie reads but never acts (401: headers only).
    let cf =
        sign(&cf_claims(&url, now(), "oncall@example.com", &["sec-oncall"]), "rsa", Algorithm::RS256, Some("rsa-1"));
    callers.push(Caller {
        who: "cloudflare header (responder)".into(),
        headers: vec![("cf-access-jwt-assertion", cf.clone())],
        query: None,
        expect: Box::new(|r: &Route| if r.roles.contains(&"responder") { r.allowed } else { 403 }),
    });
    callers.push(Caller {
        who: "cloudflare cookie (responder)".into(),
        headers: vec![("cookie", format!("theme=dark; CF_Authorization={cf}"))],
        query: None,
        expect: Box::new(|r: &Route| match (r.method, r.roles.contains(&"responder")) {
            ("POST", _) => 401,
            (_, true) => r.allowed,
            (_, false) => 403,
        }),
    });
    let oidc_cookie =
        sign(&claims(&url, now(), "ana@example.com", &["admins"]), "rsa", Algorithm::RS256, Some("rsa-1"));
    callers.push(Caller {
        who: "OIDC token in the Cloudflare cookie".into(),
        headers: vec![("cookie", format!("CF_Authorization={oidc_cookie}"))],
        query: None,
        expect: Box::new(|_: &Route| 401),
    });
    // The corpus, built against the loopback issuer at the real clock. A case whose token
    // starts in the future (nbf, iat) is built 5 s later still, so that the server's clock
    // reading a second later cannot bring it within the leeway.
    let cases = attacks::corpus();
    for case in &cases {
        let future = ["nbf", "iat"].iter().any(|k| case.claims.get(*k).and_then(|v| v.as_i64()).is_some_and(|v| v > 0));
        let at = if future { now() + 5 } else { now() };
        let want = case.expected_status();
        let (headers, query) = match case.credential_at(&url, at) {
            attacks::Credential::Header(name, value) => (vec![(name, value)], None),
            attacks::Credential::Query(token) => (Vec::new(), Some(token)),
        };
        callers.push(Caller { who: format!("attack: {}", case.name), headers, query, expect: Box::new(move |_| want) });
    }

    let sample = http_requests_sample()[..5].join("\n") + "\n";
    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    let mut allowed = 0;
    for route in &ROUTES {
        for caller in &callers {
            let body = if route.path.contains("logpush") { sample.clone() } else { route.body.to_owned() };
            let mut path = route.path.to_owned();
            if let Some(token) = &caller.query {
                path.push(if path.contains('?') { '&' } else { '?' });
                path.push_str(&format!("access_token={token}"));
            }
            let method = reqwest::Method::from_bytes(route.method.as_bytes()).expect("method");
            let mut request = client.request(method, format!("{base}{path}")).body(body);
            for (name, value) in &caller.headers {
                request = request.header(*name, value);
            }
            let response = request.send().await.expect("answer");
            let status = response.status().as_u16();
            let want = (caller.expect)(route);
            let text = response.text().await.unwrap_or_default();
            if status != want {
                wrong.push(format!("{} {} as {}: {status}, want {want}: {text}", route.method, route.path, caller.who));
            }
            if want == route.allowed && status == want {
                allowed += 1;
            }
            seen.push(text);
        }
    }
    println!(
        "{} routes × {} callers ({} attack cases): {allowed} allowed as expected, {} unexpected",
        ROUTES.len(),
        callers.len(),
        cases.len(),
        wrong.len()
    );
    assert!(wrong.is_empty(), "{} unexpected answers:\n{}", wrong.len(), wrong.join("\n"));

    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let started = Instant::now();
    while child.try_wait().ok().flatten().is_none() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains("identity tokens accepted"), "{logged}");
    assert!(logged.contains("identity token refused"), "the refusals were logged (at debug):\n{logged}");
    let mut secrets: Vec<String> = Vec::new();
    for caller in &callers {
        for (_, value) in &caller.headers {
            // The credential itself: a bearer token, a header value, a cookie's value.
            let secret = value.strip_prefix("Bearer ").unwrap_or(value);
            let secret = secret.rsplit('=').next().unwrap_or(secret);
            if secret.len() >= 16 {
                secrets.push(secret.to_owned());
            }
        }
        secrets.extend(caller.query.clone());
    }
    let mut hits = Vec::new();
    for secret in &secrets {
        // A JWT's signature is the part that makes it a credential; its header and claims are
        // not secret (`eyJ…` headers repeat across tokens).
        let signature = secret.rsplit('.').next().unwrap_or(secret);
        if signature.len() < 16 {
            continue;
        }
        for (i, line) in logged.lines().enumerate() {
            if line.contains(signature) {
                hits.push(format!("log line {i}: {line}"));
            }
        }
        for text in &seen {
            if text.contains(signature) {
                hits.push(format!("answer: {text}"));
            }
        }
    }
    assert!(secrets.len() > 40, "{}", secrets.len());
    assert!(hits.is_empty(), "{} secrets shown:\n{}", hits.len(), hits.join("\n"));
}

/// A mapping to `ingest` is refused at start, naming the key: identities never ingest.
#[test]
fn an_identity_mapped_to_ingest_is_refused_at_start() {
    let text = format!(
        "{}\n[[auth.identity.roles]]\nrole = \"ingest\"\ngroups = [\"logpush\"]\n",
        issuers_toml("auth.identity.issuers", "https://idp.test")
    );
    let stderr = gatelog_e2e::serve_refusal(&text, INGEST);
    assert!(stderr.contains("auth.identity.roles[0].role: identity tokens never ingest"), "{stderr}");
}
