//! The headers a BI upstream receives: the proxy's identity headers and nothing a client
//! could pass off as one.
//!
//! Header names are compared in a canonical form, lower case with every character other
//! than a letter or digit read as `-`: CGI, PHP and many frameworks map `_` (and `.`) to
//! the same variable as `-`, so `X_Gatelog_Principal` or `x.gatelog.principal` would reach
//! them as the identity. Stripped in every spelling: the `x-gatelog-*` family, the
//! configured principal and roles headers, every issuer's token header, `authorization`,
//! and the identity headers other authenticating proxies set (`remote-user`,
//! `x-forwarded-user`, `x-webauth-user`, `x-auth-request-*`, Cloudflare's
//! `cf-access-authenticated-user-email`, …), which an upstream set up behind one of them
//! would trust. So do the headers some frameworks take the path or method from instead of
//! the request line (`x-original-url`, `x-rewrite-url`, `x-http-method-override`, …: the
//! policy decided the request line), and the client's own forwarding headers
//! (`forwarded`, `x-forwarded-*`, `x-real-ip`, …): the upstream gets `x-forwarded-for` with
//! the address the proxy decided for. Hop-by-hop headers go, with the ones `Connection`
//! names. The user's own token cookies (every issuer's `cookie`) are removed from `Cookie`;
//! the upstream's own cookies stay.

use crate::config::ProxyConfig;
use http::{HeaderMap, HeaderName};

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Identity headers of other authenticating proxies, canonical.
const FOREIGN_IDENTITY: &[&str] = &[
    "authorization",
    "remote-user",
    "x-remote-user",
    "x-remote-group",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-auth-request-access-token",
    "x-webauth-user",
    "x-webauth-email",
    "x-webauth-name",
    "x-webauth-groups",
    "x-webauth-role",
    "cf-access-authenticated-user-email",
    "cf-access-jwt-assertion",
    "cf-access-client-id",
    "cf-access-client-secret",
    "x-ms-client-principal",
    "x-ms-client-principal-name",
    "x-ms-client-principal-id",
    "x-amzn-oidc-identity",
    "x-amzn-oidc-data",
    "x-amzn-oidc-accesstoken",
    "x-goog-authenticated-user-email",
    "x-goog-authenticated-user-id",
    "x-goog-iap-jwt-assertion",
    // The path or method from a header instead of the request line.
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-forwarded-prefix",
    "x-envoy-original-path",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    // The client's own forwarding headers (the proxy sets x-forwarded-for itself).
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "cf-connecting-ip",
];

/// `name` lower-cased, with every character but letters and digits read as `-`.
pub fn canonical(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// The header names the proxy sets or owns, canonical.
fn owned(config: &ProxyConfig, principal: &str, roles: &str) -> Vec<String> {
    let mut out = vec![canonical(principal), canonical(roles)];
    out.extend(config.issuers.iter().map(|i| canonical(&i.header)));
    out
}

/// Removes hop-by-hop headers and every spelling of an identity header (see the module docs).
pub fn strip(headers: &mut HeaderMap, config: &ProxyConfig, principal: &str, roles: &str) {
    let nominated: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let owned = owned(config, principal, roles);
    let strip: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let c = canonical(k.as_str());
            HOP_BY_HOP.contains(&k.as_str())
                || nominated.iter().any(|n| n == k.as_str())
                || c.starts_with("x-gatelog-")
                || owned.contains(&c)
                || FOREIGN_IDENTITY.contains(&c.as_str())
        })
        .cloned()
        .collect();
    for k in strip {
        headers.remove(k);
    }
    headers.remove(http::header::HOST);
    strip_token_cookies(headers, config);
}

/// Removes hop-by-hop headers (an upstream's response).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
}

/// Removes the issuers' token cookies from every `Cookie` header, keeping the others.
fn strip_token_cookies(headers: &mut HeaderMap, config: &ProxyConfig) {
    let names: Vec<&str> = config.issuers.iter().filter_map(|i| i.cookie.as_deref()).collect();
    if names.is_empty() || !headers.contains_key(http::header::COOKIE) {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .flat_map(|v| v.split(';').map(|c| c.trim().to_owned()).collect::<Vec<_>>())
        .filter(|c| !c.is_empty())
        .filter(|c| {
            let name = c.split_once('=').map_or(c.as_str(), |(n, _)| n).trim();
            !names.iter().any(|t| canonical(t) == canonical(name))
        })
        .collect();
    headers.remove(http::header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = http::HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(http::header::COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ProxyConfig {
        ProxyConfig::parse(
            r#"
[[issuers]]
name = "cf"
issuer = "https://team.cloudflareaccess.com"
audiences = ["a"]
header = "cf-access-jwt-assertion"
cookie = "CF_Authorization"
[[issuers]]
name = "okta"
issuer = "https://okta.test"
audiences = ["a"]
"#,
        )
        .unwrap()
    }

    #[test]
    fn every_spelling_of_an_identity_header_goes() {
        let mut h = HeaderMap::new();
        for name in [
            "x-gatelog-principal",
            "X_Gatelog_Principal",
            "x_gatelog_roles",
            "x.gatelog.principal",
            "X-GATELOG-DECISION-ID",
            "x-gatelog_whatever",
            "Remote_User",
            "x-forwarded-user",
            "X_WEBAUTH_USER",
            "cf_access_jwt_assertion",
            "Cf-Access-Authenticated-User-Email",
            "authorization",
            "Authorization_",
            "te",
            "x-custom-hop",
            "connection",
        ] {
            let v = if name == "connection" { "keep-alive, X-Custom-Hop" } else { "forged" };
            h.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h.insert("x-request-id", "keep".parse().unwrap());
        h.insert("accept", "application/json".parse().unwrap());
        strip(&mut h, &config(), "x-gatelog-principal", "x-gatelog-roles");
        // `authorization_` canonicalises to `authorization-`, not an identity header name.
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "authorization_", "x-request-id"]);
    }

    #[test]
    fn token_cookies_go_other_cookies_stay() {
        let mut h = HeaderMap::new();
        h.append("cookie", "metabase.SESSION=abc; CF_Authorization=eyJ.x.y".parse().unwrap());
        h.append("cookie", "cf_authorization=eyJ.z; theme=dark".parse().unwrap());
        strip(&mut h, &config(), "x-gatelog-principal", "x-gatelog-roles");
        assert_eq!(h.get_all("cookie").iter().collect::<Vec<_>>(), ["metabase.SESSION=abc; theme=dark"]);
        let mut only = HeaderMap::new();
        only.insert("cookie", "CF_Authorization=eyJ.x.y".parse().unwrap());
        strip(&mut only, &config(), "p", "r");
        assert!(only.get("cookie").is_none());
    }
}
