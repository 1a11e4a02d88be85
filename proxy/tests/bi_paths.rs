//! BI routes as an attacker uses them, over real sockets to real loopback upstreams that
//! record what they receive: the path corpus (`tests/attacks/paths.toml`: dot segments,
//! percent-encodings, repeated slashes, case, encoded separators, backslashes, path
//! parameters, double encoding, overlong UTF-8, authority tricks), every spelling of the
//! identity headers, the user's token cookie, and route prefixes refused at config time.
//! Checked by what each upstream received (and that a fourth server, on the port an
//! attacker names, received nothing), and by one decision per request.

#![allow(clippy::unwrap_used)]

#[path = "support/edge.rs"]
mod edge;
mod support;

use edge::*;
use gatelog_model::Decision;
use gatelog_proxy::ProxyConfig;
use serde::Deserialize;
use support::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    path: String,
    status: u16,
    #[serde(default)]
    upstream: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

struct Upstreams {
    a: RecordingServer,
    b: RecordingServer,
    c: RecordingServer,
    other: RecordingServer,
}

impl Upstreams {
    async fn start() -> Upstreams {
        Upstreams {
            a: RecordingServer::start().await,
            b: RecordingServer::start().await,
            c: RecordingServer::start().await,
            other: RecordingServer::start().await,
        }
    }

    fn config(&self, dir: &std::path::Path) -> String {
        let routes = format!(
            r#"
[bi]
login_url = "https://login.test/start"

[[bi.routes]]
name = "metabase"
prefix = "/bi/metabase/"
upstream = "http://{a}"
strip_prefix = true

[[bi.routes]]
name = "grafana"
prefix = "/bi/grafana/"
upstream = "http://{b}/grafana/"

[[bi.routes]]
name = "tableau"
prefix = "/bi/tableau/"
upstream = "http://{c}"
strip_prefix = true
case_insensitive = true
"#,
            a = self.a.addr,
            b = self.b.addr,
            c = self.c.addr
        );
        let text = config_toml(ISSUER, "http://127.0.0.1:1", dir, "").replace(
            "http_allow = [\"/bi/metabase/\"]\nhttp_deny = [\"/bi/metabase/admin\"]",
            "http_allow = [\"/bi/metabase/\", \"/bi/grafana/d/\", \"/bi/tableau/views/\"]\nhttp_deny = [\"/bi/metabase/admin\", \"/bi/metabase/api/setting\", \"/bi/tableau/views/finance/\"]",
        );
        format!("{text}{routes}")
    }

    /// Every request any upstream received, as "A GET /path".
    fn seen(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, s) in [("A", &self.a), ("B", &self.b), ("C", &self.c), ("OTHER", &self.other)] {
            out.extend(s.requests().into_iter().map(|r| format!("{name} {}", r.uri)));
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_corpus() {
    let ups = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Running::start(&ups.config(dir.path()), None).await;
    let bearer = format!("Bearer {}", token("ana@example.com", &["analysts"]));
    let text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attacks/paths.toml"))
            .unwrap();
    let cases = toml::from_str::<Corpus>(&text).unwrap().case;
    let other_port = ups.other.addr.port().to_string();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let path = case.path.replace("OTHER", &other_port);
        let before = ups.seen();
        let req = raw_request("GET", &path, &[("Authorization", &bearer), ("Connection", "close")], "");
        let mut s = send_raw(proxy.addr, &req).await;
        let (status, head) = head_of(&read_some(&mut s, usize::MAX).await);
        let after = ups.seen();
        let new: Vec<&String> = after.iter().skip(before.len()).collect();
        let want: Vec<String> = case.upstream.iter().cloned().collect();
        if status != case.status || new.iter().map(|s| s.as_str()).ne(want.iter().map(|s| s.as_str())) {
            failures
                .push(format!("{path}: status {status} (want {}), upstream saw {new:?} (want {want:?})", case.status));
        }
        // Every answer names its decision, and the decision is out.
        let id = header_in(&head, "x-gatelog-decision-id").unwrap_or_default();
        assert!(!id.is_empty(), "case {i} {path}: no decision id in {head}");
        let d = proxy.decision(&id).await;
        assert_eq!(d.status, status, "{path}");
        let expected = if status == 200 { Decision::Allow } else { Decision::Deny };
        assert_eq!(d.decision, expected, "{path}: {d:?}");
    }
    assert!(ups.other.requests().is_empty(), "a path reached another port: {:?}", ups.other.requests());
    println!("path corpus: {} cases, {} as expected", cases.len(), cases.len() - failures.len());
    assert!(failures.is_empty(), "not as expected:\n{}", failures.join("\n"));
    assert_eq!(proxy.decisions(cases.len()).await.len(), cases.len(), "one decision per request");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_and_token_cookies_never_reach_the_upstream() {
    let ups = Upstreams::start().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Running::start(&ups.config(dir.path()), None).await;
    let t = token("ana@example.com", &["analysts"]);
    let spoofs = [
        "x-gatelog-principal",
        "X-Gatelog-Principal",
        "X_Gatelog_Principal",
        "x_gatelog_principal",
        "X-GATELOG_PRINCIPAL",
        "x.gatelog.principal",
        "x-gatelog-roles",
        "X_GATELOG_ROLES",
        "x-gatelog-decision-id",
        "X_Gatelog_Decision_Id",
        "x-gatelog-anything",
        "Remote-User",
        "REMOTE_USER",
        "X-Forwarded-User",
        "x_forwarded_email",
        "X-WEBAUTH-USER",
        "x-auth-request-email",
        "Cf-Access-Authenticated-User-Email",
        "Cf_Access_Jwt_Assertion",
        "authorization",
        "X-Original-URL",
        "X_Rewrite_Url",
        "X-HTTP-Method-Override",
        "X-Forwarded-Prefix",
        "X-Forwarded-For",
        "X_Forwarded_Host",
        "Forwarded",
        "X-Real-IP",
        "True-Client-IP",
    ];
    // The token in the header, then in the cookie (a browser session): both forwarded without it.
    for (i, (auth_header, cookie)) in [
        (Some(format!("Bearer {t}")), "metabase.SESSION=s1; CF_Authorization=junk; theme=dark".to_owned()),
        (None, format!("metabase.SESSION=s2; CF_Authorization={}", cf_token())),
    ]
    .into_iter()
    .enumerate()
    {
        let mut headers: Vec<(String, String)> = spoofs.iter().map(|h| (h.to_string(), "forged".to_owned())).collect();
        if let Some(a) = auth_header {
            headers.retain(|(k, _)| k != "authorization");
            headers.push(("Authorization".into(), a));
        }
        headers.push(("Cookie".into(), cookie));
        headers.push(("Connection".into(), "close, X-Keep-Me-Out".into()));
        headers.push(("X-Keep-Me-Out".into(), "hop".into()));
        let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut s = send_raw(proxy.addr, &raw_request("GET", "/bi/metabase/api/user/current", &refs, "")).await;
        let (status, head) = head_of(&read_some(&mut s, usize::MAX).await);
        assert_eq!(status, 200, "{head}");
        let seen = ups.a.requests();
        let got = &seen[i].headers;
        for (name, value) in got {
            let v = value.to_str().unwrap_or_default();
            assert!(!v.contains("forged") && v != "hop", "{name}: {v} reached the upstream");
            assert!(!v.contains(&t) && !v.contains("eyJ"), "{name} carries a token to the upstream");
        }
        assert_eq!(got.get_all("x-gatelog-principal").iter().collect::<Vec<_>>(), ["ana@example.com"]);
        assert_eq!(got.get_all("x-gatelog-roles").iter().collect::<Vec<_>>(), ["analyst"]);
        assert_eq!(got.get_all("x-forwarded-for").iter().collect::<Vec<_>>(), ["127.0.0.1"]);
        assert!(got.get("authorization").is_none() && got.get("cf-access-jwt-assertion").is_none());
        let cookies: Vec<&str> = got.get_all("cookie").iter().map(|v| v.to_str().unwrap()).collect();
        let want = if i == 0 { "metabase.SESSION=s1; theme=dark" } else { "metabase.SESSION=s2" };
        assert_eq!(cookies, [want]);
    }
    proxy.stop().await;
}

/// A Cloudflare Access token as its cookie carries it.
fn cf_token() -> String {
    let mut c = claims(&format!("{ISSUER}/cf"), NOW, "ana@example.com", &["analysts"]);
    c.insert("aud".into(), serde_json::json!(["cf-aud"]));
    sign(&c, "rsa", jsonwebtoken::Algorithm::RS256, Some("rsa-1"))
}

#[test]
fn route_prefixes_and_upstreams_are_checked_at_config_time() {
    let route = |prefix: &str, upstream: &str, extra: &str| {
        format!("[[bi.routes]]\nname = \"g\"\nprefix = \"{prefix}\"\nupstream = \"{upstream}\"\n{extra}")
    };
    for (text, key) in [
        (route("/bi/grafana", "http://127.0.0.1:3000", ""), "bi.routes[0].prefix"),
        (route("bi/grafana/", "http://127.0.0.1:3000", ""), "bi.routes[0].prefix"),
        (route("/", "http://127.0.0.1:3000", ""), "bi.routes[0].prefix"),
        (route("/bi//grafana/", "http://127.0.0.1:3000", ""), "bi.routes[0].prefix"),
        (route("/bi/./grafana/", "http://127.0.0.1:3000", ""), "bi.routes[0].prefix"),
        (route("/bi/%67rafana/", "http://127.0.0.1:3000", ""), "bi.routes[0].prefix"),
        (route("/bi/Grafana/", "http://127.0.0.1:3000", "case_insensitive = true"), "bi.routes[0].prefix"),
        (route("/metrics/", "http://127.0.0.1:3000", ""), "bi.routes[0].prefix"),
        (route("/bi/grafana/", "127.0.0.1:3000", ""), "bi.routes[0].upstream"),
        (route("/bi/grafana/", "http://user:pw@127.0.0.1:3000", ""), "bi.routes[0].upstream"),
        (route("/bi/grafana/", "http://127.0.0.1:3000/?a=b", ""), "bi.routes[0].upstream"),
        (route("/bi/grafana/", "file:///etc", ""), "bi.routes[0].upstream"),
        ("[roles.a]\nhttp_deny = [\"/bi/x/../admin\"]\n".to_owned(), "roles.a.http_deny"),
        ("[roles.a]\nhttp_allow = [\"/bi//x/\"]\n".to_owned(), "roles.a.http_allow"),
        ("[bi]\nprincipal_header = \"authorization\"\n".to_owned(), "bi.principal_header"),
        ("[bi]\nroles_header = \"bad header\"\n".to_owned(), "bi.roles_header"),
    ] {
        let err = ProxyConfig::parse(&text).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{key}:")), "{text}\n=> {err}");
    }
    let ok = route("/bi/grafana/", "http://127.0.0.1:3000/base", "");
    ProxyConfig::parse(&ok).unwrap();
}
