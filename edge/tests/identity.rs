//! Identity tokens on the edge: `[auth.identity]` parsed and validated (messages naming the
//! key, the README's example), and [`Edge::authorize`] with static tokens beside identity
//! tokens from the proxy's test issuer (`gatelog_identity::testing`, a fixed clock): every
//! mapped role gets exactly its accesses, the JWT attack corpus gets no access anywhere, the
//! Cloudflare header and cookie (the cookie never on a route that changes something),
//! the identity's name as the principal.

#![allow(clippy::unwrap_used)]

use gatelog_edge::auth::Via;
use gatelog_edge::config::{AuthConfig, OpsAccess};
use gatelog_edge::identity::{IdentityConfig, IdentityVerifier};
use gatelog_edge::{Access, Credentials, Edge, Role};
use gatelog_identity::testing::{AUDIENCE, ISSUER, NOW, StaticFetch, attacks, cf_claims, claims, issuers_toml, sign};
use gatelog_model::{FixedClock, UnixMillis};
use http::{HeaderMap, HeaderValue, StatusCode};
use jsonwebtoken::Algorithm;
use std::sync::Arc;

/// The corpus's issuers and one group per reading role (`analysts`, the group of the corpus's
/// ana@example.com, is `viewer`).
fn identity_toml() -> String {
    let mut t = issuers_toml("auth.identity.issuers", ISSUER);
    for (role, group) in
        [("viewer", "analysts"), ("responder", "sec-oncall"), ("auditor", "audit"), ("admin", "admins")]
    {
        t.push_str(&format!("\n[[auth.identity.roles]]\nrole = \"{role}\"\ngroups = [\"{group}\"]\n"));
    }
    t
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    auth: AuthConfig,
}

fn parse(text: &str) -> Result<AuthConfig, String> {
    let doc: Doc = toml::from_str(text).map_err(|e| e.to_string())?;
    doc.auth.validate().map_err(|e| e.to_string())?;
    Ok(doc.auth)
}

const STATIC_VIEWER: &str = "static-viewer-token-0123456789";
const STATIC_INGEST: &str = "static-ingest-token-0123456789";

fn edge() -> Edge {
    let auth = parse(&identity_toml()).unwrap();
    let mut credentials = Credentials::new(None);
    credentials.add_token("static-viewer", Role::Viewer, STATIC_VIEWER);
    credentials.add_token("logpush", Role::Ingest, STATIC_INGEST);
    let clock = Arc::new(FixedClock::new(UnixMillis(NOW * 1000)));
    let verifier = IdentityVerifier::new(&auth.identity, StaticFetch::for_issuer(ISSUER), clock);
    assert!(verifier.is_some());
    Edge::with_identity(credentials, verifier, OpsAccess::Nowhere)
}

fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

fn bearer(token: &str) -> HeaderMap {
    headers(&[("authorization", format!("Bearer {token}"))])
}

fn group_token(email: &str, groups: &[&str]) -> String {
    sign(&claims(ISSUER, NOW, email, groups), "rsa", Algorithm::RS256, Some("rsa-1"))
}

async fn status(edge: &Edge, h: &HeaderMap, access: Access) -> Result<(String, Role, Via), StatusCode> {
    edge.authorize(h, access).await.map(|p| (p.name, p.role, p.via)).map_err(|e| e.status)
}

#[tokio::test]
async fn every_mapped_role_gets_exactly_its_accesses() {
    let edge = edge();
    for role in [Role::Viewer, Role::Responder, Role::Auditor, Role::Admin] {
        let group = match role {
            Role::Viewer => "analysts",
            Role::Responder => "sec-oncall",
            Role::Auditor => "audit",
            _ => "admins",
        };
        let h = bearer(&group_token("ana@example.com", &[group]));
        for access in Access::ALL {
            let got = status(&edge, &h, access).await;
            if role.may(access) {
                let (name, as_role, via) = got.unwrap();
                assert_eq!((name.as_str(), as_role), ("ana@example.com", role), "{role} {access:?}");
                assert_eq!(via, Via::Identity { issuer: "idp".into(), method: "oidc".into() });
            } else {
                assert_eq!(got, Err(StatusCode::FORBIDDEN), "{role} {access:?}");
            }
        }
    }
    // Two mappings: the access of either, recorded as the first role that has it.
    let both = bearer(&group_token("ana@example.com", &["analysts", "audit"]));
    assert_eq!(status(&edge, &both, Access::Audit).await.unwrap().1, Role::Auditor);
    assert_eq!(status(&edge, &both, Access::Read).await.unwrap().1, Role::Viewer);
    assert_eq!(status(&edge, &both, Access::Respond).await, Err(StatusCode::FORBIDDEN));
    // Verified, but no mapping: 403 on every route, ingest included.
    let nobody = bearer(&group_token("eve@elsewhere.org", &["marketing"]));
    for access in Access::ALL {
        assert_eq!(status(&edge, &nobody, access).await, Err(StatusCode::FORBIDDEN), "{access:?}");
    }
    let refused = edge.authorize(&nobody, Access::Read).await.unwrap_err();
    assert!(refused.message.contains("maps to no gatelog role"), "{}", refused.message);
}

#[tokio::test]
async fn static_tokens_keep_working_beside_identities() {
    let edge = edge();
    let viewer = status(&edge, &bearer(STATIC_VIEWER), Access::Read).await.unwrap();
    assert_eq!(viewer, ("static-viewer".into(), Role::Viewer, Via::StaticToken));
    assert_eq!(status(&edge, &bearer(STATIC_VIEWER), Access::Respond).await, Err(StatusCode::FORBIDDEN));
    assert_eq!(status(&edge, &bearer(STATIC_INGEST), Access::Ingest).await.unwrap().1, Role::Ingest);
    assert_eq!(status(&edge, &bearer(STATIC_INGEST), Access::Read).await, Err(StatusCode::FORBIDDEN));
    assert_eq!(status(&edge, &bearer("wrong-token-0123456789"), Access::Read).await, Err(StatusCode::UNAUTHORIZED));
    assert_eq!(status(&edge, &HeaderMap::new(), Access::Read).await, Err(StatusCode::UNAUTHORIZED));
    // An identity never ingests: not even an admin's.
    let admin = bearer(&group_token("root@example.com", &["admins"]));
    assert_eq!(status(&edge, &admin, Access::Ingest).await, Err(StatusCode::FORBIDDEN));
}

/// Who a request presents as, whatever the route (what gatelog's audit trail records).
#[tokio::test]
async fn identify_names_static_tokens_and_verified_identities_only() {
    let edge = edge();
    let who = |h: HeaderMap| {
        let edge = edge.clone();
        async move { edge.identify(&h).await.map(|p| (p.name, p.role)) }
    };
    assert_eq!(who(bearer(STATIC_VIEWER)).await, Some(("static-viewer".into(), Role::Viewer)));
    let responder = bearer(&group_token("ana@example.com", &["sec-oncall"]));
    assert_eq!(who(responder).await, Some(("ana@example.com".into(), Role::Responder)));
    assert_eq!(who(bearer(&group_token("eve@elsewhere.org", &["marketing"]))).await, None, "maps to no role");
    assert_eq!(who(bearer("wrong-token-0123456789")).await, None);
    assert_eq!(who(HeaderMap::new()).await, None);
}

#[tokio::test]
async fn the_jwt_attack_corpus_gets_no_access_anywhere() {
    let edge = edge();
    let cases = attacks::corpus();
    let mut wrong = Vec::new();
    for case in &cases {
        let h = match case.credential() {
            attacks::Credential::Header(name, value) => headers(&[(name, value)]),
            // No route reads a token from the URL: the request carries no credential.
            attacks::Credential::Query(_) => HeaderMap::new(),
        };
        for access in Access::ALL {
            let got = edge.authorize(&h, access).await;
            // A valid token that maps to no role is 403; the rest must not authenticate.
            let want = case.expected_status();
            match got {
                Ok(p) => wrong.push(format!("{}: {access:?} allowed as {}", case.name, p.name)),
                Err(e) if e.status.as_u16() != want => {
                    wrong.push(format!("{}: {access:?} {} ({}), want {want}", case.name, e.status, e.message))
                }
                Err(_) => {}
            }
        }
    }
    assert!(cases.len() >= 30, "{}", cases.len());
    assert!(wrong.is_empty(), "{} unexpected answers:\n{}", wrong.len(), wrong.join("\n"));
}

#[tokio::test]
async fn cloudflare_header_and_cookie() {
    let edge = edge();
    let cf = sign(&cf_claims(ISSUER, NOW, "ana@example.com", &["sec-oncall"]), "rsa", Algorithm::RS256, Some("rsa-1"));
    let header = headers(&[("cf-access-jwt-assertion", cf.clone())]);
    let cookie = headers(&[("cookie", format!("theme=dark; CF_Authorization={cf}"))]);
    let (name, role, via) = status(&edge, &header, Access::Respond).await.unwrap();
    assert_eq!((name.as_str(), role), ("ana@example.com", Role::Responder));
    assert_eq!(via, Via::Identity { issuer: "cloudflare".into(), method: "cf_access_jwt".into() });
    // The cookie reads (a browser session behind Access)...
    assert_eq!(status(&edge, &cookie, Access::Read).await.unwrap().1, Role::Responder);
    // ...but never changes anything: a cross-site form would carry it.
    let refused = edge.authorize(&cookie, Access::Respond).await.unwrap_err();
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.message.contains("headers only"), "{}", refused.message);
    // The Cloudflare token under the bearer header, and an OIDC token in Access's header: 401.
    assert_eq!(status(&edge, &bearer(&cf), Access::Read).await, Err(StatusCode::UNAUTHORIZED));
    let oidc = group_token("ana@example.com", &["sec-oncall"]);
    let swapped = headers(&[("cf-access-jwt-assertion", oidc)]);
    assert_eq!(status(&edge, &swapped, Access::Read).await, Err(StatusCode::UNAUTHORIZED));
    // Expired past the leeway: refused with the reason, never the token.
    let mut old = cf_claims(ISSUER, NOW, "ana@example.com", &["sec-oncall"]);
    old.insert("exp".into(), (NOW - 31).into());
    let old = sign(&old, "rsa", Algorithm::RS256, Some("rsa-1"));
    let refused =
        edge.authorize(&headers(&[("cf-access-jwt-assertion", old.clone())]), Access::Read).await.unwrap_err();
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.message.contains("expired") && !refused.message.contains(&old), "{}", refused.message);
}

#[test]
fn the_section_is_validated_naming_the_key() {
    assert_eq!(IdentityConfig::default(), toml::from_str::<IdentityConfig>("").unwrap());
    IdentityConfig::default().validate().unwrap();
    let good = identity_toml();
    parse(&good).unwrap();
    let cases = [
        (
            good.replace("role = \"viewer\"", "role = \"ingest\""),
            "auth.identity.roles[0].role: identity tokens never ingest",
        ),
        (good.replace("role = \"viewer\"", "role = \"root\""), "auth.identity.roles[0].role: `root` is not"),
        (good.replace("\"RS256\", \"ES256\"", "\"HS256\""), "auth.identity.issuers[0].algorithms: "),
        (
            good.replace(&format!("audiences = [\"{AUDIENCE}\"]"), "audiences = []"),
            "auth.identity.issuers[0].audiences: ",
        ),
        (
            good.replace("groups = [\"admins\"]", "groups = [\"admins\"]\nissuer = \"okta\""),
            "auth.identity.roles[3].issuer: no issuer named `okta`",
        ),
        (good.replace("leeway = \"30s\"", "leeway = \"30s\"\nextra = 1"), "unknown field `extra`"),
        (
            "[auth.identity]\n[[auth.identity.roles]]\nrole = \"viewer\"\ngroups = [\"a\"]\n".into(),
            "auth.identity.roles: no issuer",
        ),
        (issuers_toml("auth.identity.issuers", ISSUER), "auth.identity.roles: expected at least one mapping"),
        (
            format!(
                "{good}\n[[auth.identity.cloudflare_access]]\nteam_domain = \"https://x.cloudflareaccess.com\"\naudiences = [\"a\"]\n"
            ),
            "auth.identity.cloudflare_access[0].team_domain: ",
        ),
        (
            format!(
                "{good}\n[[auth.identity.cloudflare_access]]\nteam_domain = \"x.cloudflareaccess.com\"\naudiences = []\n"
            ),
            "auth.identity.cloudflare_access[0].audiences: ",
        ),
        (
            format!(
                "{good}\n[[auth.identity.cloudflare_access]]\nname = \"idp\"\nteam_domain = \"x.cloudflareaccess.com\"\naudiences = [\"a\"]\n"
            ),
            "auth.identity.cloudflare_access[0].name: ",
        ),
        (format!("{good}\n[auth.identity]\nfetch_timeout = \"0s\"\n"), "auth.identity.fetch_timeout: "),
    ];
    for (text, want) in cases {
        let err = parse(&text).unwrap_err();
        assert!(err.contains(want), "want {want:?}, got {err}");
    }
}

#[test]
fn cloudflare_access_shorthand_is_an_issuer() {
    let auth = parse(
        "[[auth.identity.cloudflare_access]]\nteam_domain = \"acme.cloudflareaccess.com\"\naudiences = [\"aud-tag\"]\n\
         [[auth.identity.roles]]\nrole = \"viewer\"\nemail_domains = [\"acme.com\"]\n",
    )
    .unwrap();
    let issuers = auth.identity.all_issuers();
    assert_eq!(issuers.len(), 1);
    let i = &issuers[0];
    assert_eq!((i.name.as_str(), i.issuer.as_str()), ("cloudflare_access", "https://acme.cloudflareaccess.com"));
    assert_eq!(i.jwks_url.as_deref(), Some("https://acme.cloudflareaccess.com/cdn-cgi/access/certs"));
    assert_eq!((i.header.as_str(), i.cookie.as_deref()), ("cf-access-jwt-assertion", Some("CF_Authorization")));
    assert_eq!(i.audiences, ["aud-tag"]);
    assert_eq!(i.algorithms, ["RS256"]);
}

/// The README's example of `[auth.identity]` (the block after `<!-- example: auth.identity -->`)
/// parses and validates.
#[test]
fn the_readme_example_is_valid() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let (_, after) = readme.split_once("<!-- example: auth.identity -->").expect("the README marks its example");
    let block = after.split_once("```toml\n").unwrap().1.split_once("```").unwrap().0;
    let auth = parse(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
    assert!(!auth.identity.all_issuers().is_empty() && !auth.identity.roles.is_empty());
}
