//! Roles on the real binary (`gatelog serve`, over its socket): every route × every role,
//! no credential and wrong ones, with tokens from `[auth]` (hashed) and a tokens file
//! beside the receiver's `--ingest-token`: 0 unexpected allows, 0 unexpected refusals; every
//! answer carries the security headers; and with the server logging at `debug`, no token
//! (right or wrong) nor the ClickHouse password it was given appears in any log line,
//! answer body or `/metrics`.

use gatelog_e2e::routes::ROUTES;
use gatelog_e2e::{free_port, gatelog_bin, http_client, http_requests_sample, sha256_hex};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INGEST: &str = "roles-ingest-secret-0123456789";
const PASSWORD: &str = "roles-clickhouse-password-31337";
const ROLES: [&str; 5] = ["ingest", "viewer", "responder", "auditor", "admin"];

fn token(role: &str, n: usize) -> String {
    format!("roles-{role}-secret-{n}-0123456789")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_role_on_the_binary_and_no_secret_in_logs_answers_or_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let tokens_file = dir.path().join("tokens.toml");
    let mut config = String::from("[auth]\nops_without_token = \"nowhere\"\n");
    let mut file = String::new();
    for role in ROLES {
        config.push_str(&format!(
            "[[auth.tokens]]\nname = \"{role}-0\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            sha256_hex(&token(role, 0))
        ));
        file.push_str(&format!(
            "[[tokens]]\nname = \"{role}-1\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            sha256_hex(&token(role, 1))
        ));
    }
    let config_path = dir.path().join("gatelog.toml");
    std::fs::write(&config_path, config).expect("config");
    std::fs::write(&tokens_file, file).expect("tokens file");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log = dir.path().join("serve.log");
    let out = std::fs::File::create(&log).expect("log");
    let mut child = Command::new(gatelog_bin())
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .arg("--tokens-file")
        .arg(&tokens_file)
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--clickhouse-url", &format!("http://gatelog:{PASSWORD}@127.0.0.1:{}", free_port())])
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
    let viewer = token("viewer", 0);
    let started = Instant::now();
    loop {
        let health = client.get(format!("{base}/healthz")).bearer_auth(&viewer).send().await;
        if health.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let sample = http_requests_sample()[..5].join("\n") + "\n";
    let mut callers: Vec<(String, Option<String>)> = vec![
        ("nobody".into(), None),
        ("wrong".into(), Some("roles-wrong-secret-0123456789".into())),
        ("receiver".into(), Some(INGEST.into())),
    ];
    for role in ROLES {
        for n in 0..2 {
            callers.push((format!("{role}-{n}"), Some(token(role, n))));
        }
    }
    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    for route in &ROUTES {
        for (who, credential) in &callers {
            let body = if route.body.is_empty() && route.method == "POST" && route.path.contains("logpush") {
                sample.clone()
            } else {
                route.body.to_owned()
            };
            let method = reqwest::Method::from_bytes(route.method.as_bytes()).expect("method");
            let mut request = client.request(method, format!("{base}{}", route.path)).body(body);
            if let Some(c) = credential {
                request = request.bearer_auth(c);
            }
            let response = request.send().await.expect("answer");
            let status = response.status().as_u16();
            let role = who.split('-').next().unwrap_or("");
            let role = if who == "receiver" { "ingest" } else { role };
            let want = match credential {
                None => 401,
                Some(_) if who == "wrong" => 401,
                Some(_) if route.roles.contains(&role) => route.allowed,
                Some(_) => 403,
            };
            if status != want {
                wrong.push(format!("{} {} as {who}: {status}, want {want}", route.method, route.path));
            }
            for header in ["content-security-policy", "x-content-type-options", "x-frame-options"] {
                if !response.headers().contains_key(header) {
                    wrong.push(format!("{} {} as {who}: no {header}", route.method, route.path));
                }
            }
            seen.push(response.text().await.unwrap_or_default());
        }
    }
    // Operator routes: `ops_without_token = "nowhere"`, so a reading role's token even here.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let anonymous = client.get(format!("{base}{path}")).send().await.expect("answer");
        let ingest = client.get(format!("{base}{path}")).bearer_auth(INGEST).send().await.expect("answer");
        let auditor =
            client.get(format!("{base}{path}")).bearer_auth(token("auditor", 1)).send().await.expect("answer");
        let got = (anonymous.status().as_u16(), ingest.status().as_u16(), auditor.status().as_u16());
        if got.0 != 401 || got.1 != 403 || !(got.2 == 200 || (path == "/readyz" && got.2 == 503)) {
            wrong.push(format!("GET {path}: nobody/ingest/auditor got {got:?}"));
        }
        seen.push(auditor.text().await.unwrap_or_default());
    }
    assert!(wrong.is_empty(), "{} unexpected answers:\n{}", wrong.len(), wrong.join("\n"));

    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let started = Instant::now();
    while child.try_wait().ok().flatten().is_none() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains("request refused"), "the refusals were logged (at debug):\n{logged}");
    assert!(logged.contains("api tokens by role"), "{logged}");
    let metrics = seen.iter().find(|t| t.contains("gatelog_rejected_requests_total")).expect("metrics were read");
    assert!(metrics.contains("gatelog_rejected_requests_total{code=\"forbidden\"}"), "{metrics}");
    let mut secrets: Vec<String> = callers.iter().filter_map(|(_, c)| c.clone()).collect();
    secrets.push(PASSWORD.to_owned());
    let mut hits = Vec::new();
    for secret in &secrets {
        for (i, line) in logged.lines().enumerate() {
            if line.contains(secret.as_str()) {
                hits.push(format!("log line {i}: {line}"));
            }
        }
        for text in &seen {
            if text.contains(secret.as_str()) {
                hits.push(format!("answer: {text}"));
            }
        }
    }
    assert!(hits.is_empty(), "{} secrets shown:\n{}", hits.len(), hits.join("\n"));
}

/// One token under two names (here the receiver's and an admin's) would make its role depend
/// on the order of the configuration: serve refuses to start and names both, not the token.
#[test]
fn the_same_token_under_two_names_is_refused_at_start() {
    let entry = format!("[[auth.tokens]]\nname = \"root\"\nrole = \"admin\"\nsha256 = \"{}\"\n", sha256_hex(INGEST));
    let stderr = gatelog_e2e::serve_refusal(&entry, INGEST);
    assert!(stderr.contains("\"receiver.tokens[0]\" and \"root\" are the same token"), "{stderr}");
    assert!(!stderr.contains(INGEST), "{stderr}");
}
