//! Cross-site requests on the SQL route.
//!
//! The route's first defence is that it takes credentials from headers only
//! ([`crate::identity::Sources::Headers`]): a page on another site can make a browser send
//! its cookies, never an `Authorization` header (that needs a CORS preflight the proxy
//! does not grant). That alone is not enough behind Cloudflare Access, whose edge turns
//! the browser's `CF_Authorization` cookie into the `Cf-Access-Jwt-Assertion` header the
//! proxy accepts. So the route also refuses what browsers mark as coming from another
//! site: `Sec-Fetch-Site` other than `same-origin` or `none` (typed by the user), and an
//! `Origin` that is not the proxy's own (`null` included). ClickHouse clients, drivers and
//! BI servers send neither header. And a GET stays read-only (see [`super`]), so even a
//! top-level navigation cannot write.

use http::HeaderMap;

/// Why the request looks cross-site, if it does.
pub fn cross_site(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = String::from_utf8_lossy(site.as_bytes()).to_ascii_lowercase();
        if site != "same-origin" && site != "none" {
            return Some(format!("a browser sent this request from another site (Sec-Fetch-Site: {site})"));
        }
    }
    let origin = headers.get(http::header::ORIGIN)?;
    let origin = String::from_utf8_lossy(origin.as_bytes()).trim().to_ascii_lowercase();
    let host =
        headers.get(http::header::HOST).map(|h| String::from_utf8_lossy(h.as_bytes()).trim().to_ascii_lowercase());
    let same = origin_authority(&origin).zip(host).is_some_and(|((scheme, authority), host)| {
        without_default_port(scheme, &authority) == without_default_port(scheme, &host)
    });
    (!same).then(|| format!("a browser sent this request from another origin (Origin: {origin})"))
}

/// `(scheme, authority)` of an `Origin` value (`https://host[:port]`).
fn origin_authority(origin: &str) -> Option<(&'static str, String)> {
    let (scheme, rest) = if let Some(r) = origin.strip_prefix("https://") {
        ("https", r)
    } else {
        ("http", origin.strip_prefix("http://")?)
    };
    (!rest.is_empty() && !rest.contains('/')).then(|| (scheme, rest.to_owned()))
}

fn without_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cross_site_shapes() {
        let host = ("host", "proxy.example.com:8124");
        for refused in [
            vec![("sec-fetch-site", "cross-site")],
            vec![("sec-fetch-site", "same-site")],
            vec![("sec-fetch-site", "Cross-Site")],
            vec![("sec-fetch-site", "something-new")],
            vec![host, ("origin", "https://evil.example")],
            vec![host, ("origin", "null")],
            vec![host, ("origin", "http://proxy.example.com:8125")],
            vec![host, ("origin", "http://proxy.example.com.evil:8124")],
            vec![("origin", "http://proxy.example.com:8124")],
            vec![host, ("sec-fetch-site", "same-origin"), ("origin", "https://evil.example")],
        ] {
            assert!(cross_site(&headers(&refused)).is_some(), "{refused:?}");
        }
        for allowed in [
            vec![],
            vec![host],
            vec![host, ("sec-fetch-site", "same-origin")],
            vec![host, ("sec-fetch-site", "none")],
            vec![host, ("origin", "http://proxy.example.com:8124")],
            vec![("host", "proxy.example.com"), ("origin", "https://proxy.example.com:443")],
            vec![("host", "Proxy.Example.com"), ("origin", "https://proxy.example.com")],
        ] {
            assert_eq!(cross_site(&headers(&allowed)), None, "{allowed:?}");
        }
    }
}
