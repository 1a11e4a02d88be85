//! Bearer tokens: `Authorization: Bearer <token>` or a configured header, compared in
//! constant time.
//!
//! Tokens are kept only as SHA-256 digests. A presented token is hashed and compared with
//! every configured digest using `subtle`'s constant-time equality, without stopping at the
//! first match, so neither the position of a difference nor which token matched shows in the
//! timing; hashing first also hides the tokens' lengths.

use axum::http::{HeaderMap, HeaderName, header};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// What a request must present.
#[derive(Clone)]
pub struct TokenCheck {
    digests: Vec<[u8; 32]>,
    header: Option<HeaderName>,
    allow_unauthenticated: bool,
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCheck")
            .field("tokens", &self.digests.len())
            .field("header", &self.header)
            .field("allow_unauthenticated", &self.allow_unauthenticated)
            .finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl TokenCheck {
    pub fn new(tokens: &[String], header: Option<&str>, allow_unauthenticated: bool) -> Self {
        TokenCheck {
            digests: tokens.iter().map(|t| digest(t.as_bytes())).collect(),
            header: header.and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
            allow_unauthenticated,
        }
    }

    /// Whether every request is refused (no tokens and no opt-out).
    pub fn rejects_everything(&self) -> bool {
        self.digests.is_empty() && !self.allow_unauthenticated
    }

    /// Whether the request carries an accepted token.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        if self.digests.is_empty() {
            return self.allow_unauthenticated;
        }
        let mut ok = Choice::from(0);
        for presented in self.presented(headers) {
            let d = digest(presented);
            for known in &self.digests {
                ok |= d.ct_eq(known);
            }
        }
        bool::from(ok)
    }

    /// Candidate tokens: the bearer token of every `Authorization` header, and every value of
    /// the configured header (raw, or with a `Bearer ` prefix).
    fn presented<'a>(&'a self, headers: &'a HeaderMap) -> impl Iterator<Item = &'a [u8]> + 'a {
        let bearer = headers.get_all(header::AUTHORIZATION).into_iter().filter_map(|v| strip_bearer(v.as_bytes()));
        let custom = self
            .header
            .iter()
            .flat_map(move |name| headers.get_all(name).into_iter())
            .map(|v| strip_bearer(v.as_bytes()).unwrap_or(v.as_bytes()));
        bearer.chain(custom).filter(|t| !t.is_empty())
    }
}

fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_and_custom_header_with_rotation() {
        let check = TokenCheck::new(
            &["old-token-0123456789".into(), "new-token-0123456789".into()],
            Some("X-Gatelog-Token"),
            false,
        );
        assert!(check.allows(&headers(&[("authorization", "Bearer old-token-0123456789")])));
        assert!(check.allows(&headers(&[("authorization", "bearer new-token-0123456789")])));
        assert!(check.allows(&headers(&[("x-gatelog-token", "new-token-0123456789")])));
        assert!(check.allows(&headers(&[("x-gatelog-token", "Bearer new-token-0123456789")])));
        assert!(!check.allows(&headers(&[("authorization", "Bearer new-token-012345678")])));
        assert!(!check.allows(&headers(&[("authorization", "new-token-0123456789")])), "scheme required");
        assert!(!check.allows(&headers(&[("x-other", "new-token-0123456789")])));
        assert!(!check.allows(&HeaderMap::new()));
    }

    #[test]
    fn no_tokens_rejects_unless_opted_out() {
        let closed = TokenCheck::new(&[], None, false);
        assert!(closed.rejects_everything());
        assert!(!closed.allows(&headers(&[("authorization", "Bearer anything")])));
        let open = TokenCheck::new(&[], None, true);
        assert!(open.allows(&HeaderMap::new()));
    }
}
