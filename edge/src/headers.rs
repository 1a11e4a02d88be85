//! Security headers on every response gatelog serves, errors included: [`secure`] adds each
//! one the route did not set itself (a page route may set its own `Content-Security-Policy`).
//! [`HttpServer`](crate::serve::HttpServer) applies it to every response it sends.
//!
//! | header | value | why |
//! | --- | --- | --- |
//! | `Content-Security-Policy` | `default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'` | an API answer runs nothing, loads nothing, and is framed nowhere |
//! | `X-Content-Type-Options` | `nosniff` | a JSON body or an echoed query is never sniffed into HTML |
//! | `X-Frame-Options` | `DENY` | `frame-ancestors` for browsers without CSP level 2 |
//! | `Referrer-Policy` | `no-referrer` | a search URL (with its query) never leaves in a `Referer` |
//! | `Cache-Control` | `no-store` | evidence is not kept by browsers or shared caches |

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

/// The headers and values [`secure`] adds.
pub const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CACHE_CONTROL, "no-store"),
];

/// Adds every security header `headers` does not have yet.
pub fn secure(headers: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_what_is_missing_and_keeps_what_a_route_set() {
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
        secure(&mut h);
        assert_eq!(h[header::CACHE_CONTROL], "max-age=60");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(h[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(h.len(), SECURITY_HEADERS.len());
    }
}
