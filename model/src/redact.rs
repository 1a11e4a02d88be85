//! [`RedactedUrl`]: a URL as gatelog shows it anywhere (logs, errors, `/metrics`, status
//! output, the demo): its password and secret-looking query parameters replaced by `***`.
//!
//! Every place that displays a URL that came from configuration goes through this one type,
//! so a ClickHouse URL written as `http://user:secret@host:8123/?password=…` prints as
//! `http://user:***@host:8123/?password=***`. It never fails: text that is not a URL is
//! redacted as far as it looks like one.

use std::fmt;

/// Displays a URL without its secrets (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RedactedUrl<'a>(&'a str);

impl<'a> RedactedUrl<'a> {
    pub fn new(url: &'a str) -> Self {
        RedactedUrl(url)
    }
}

/// The URL as [`RedactedUrl`] displays it.
pub fn redact_url(url: &str) -> String {
    RedactedUrl(url).to_string()
}

/// Whether a query parameter's name says its value is a secret.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "credential", "auth"].iter().any(|s| key.contains(s))
        || key == "key"
        || ["_key", "-key", "apikey"].iter().any(|s| key.ends_with(s))
        || matches!(key.as_str(), "sig" | "signature")
}

impl fmt::Display for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0;
        let (scheme, rest) = match url.find("://") {
            Some(i) => url.split_at(i + 3),
            None => ("", url),
        };
        f.write_str(scheme)?;
        // User info ends at the last `@` before the query: a password with a raw `/` or `@`
        // (not percent-encoded, so not a valid URL) is still hidden.
        let hier_end = rest.find(['?', '#']).unwrap_or(rest.len());
        let rest = match rest[..hier_end].rfind('@') {
            Some(at) => {
                match rest[..at].split_once(':') {
                    Some((user, _)) => write!(f, "{user}:***@")?,
                    None => write!(f, "{}@", &rest[..at])?,
                }
                &rest[at + 1..]
            }
            None => rest,
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        f.write_str(authority)?;
        let (before_fragment, fragment) = match tail.find('#') {
            Some(i) => tail.split_at(i),
            None => (tail, ""),
        };
        let Some((path, query)) = before_fragment.split_once('?') else {
            return write!(f, "{before_fragment}{fragment}");
        };
        write!(f, "{path}?")?;
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                f.write_str("&")?;
            }
            match pair.split_once('=') {
                Some((key, _)) if is_secret_key(key) => write!(f, "{key}=***")?,
                _ => f.write_str(pair)?,
            }
        }
        f.write_str(fragment)
    }
}

impl fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_user_info_and_query_are_hidden() {
        let cases = [
            ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
            ("http://user:pw@host:8123", "http://user:***@host:8123"),
            ("https://user:p%40ss:w@host/db?x=1", "https://user:***@host/db?x=1"),
            ("http://only-user@host", "http://only-user@host"),
            ("http://host/?user=a&password=secret&database=g", "http://host/?user=a&password=***&database=g"),
            ("http://host?X-ClickHouse-Key=s#frag", "http://host?X-ClickHouse-Key=***#frag"),
            ("user:pw@host:8123", "user:***@host:8123"),
            ("http://a:b@c:d@host", "http://a:***@host"),
            ("http://u:pa/ss@host:1/x", "http://u:***@host:1/x"),
            ("", ""),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
        assert_eq!(format!("{:?}", RedactedUrl::new("http://u:pw@h")), "\"http://u:***@h\"");
    }

    proptest::proptest! {
        #[test]
        fn a_password_never_survives(user in "[a-z]{1,8}", password in "[A-Za-z0-9!$%()*+,;=~/@]{6,20}", host in "[a-z]{1,10}(:[0-9]{2,5})?", path in "(/[a-z]{0,5}){0,3}") {
            let url = format!("http://{user}:{password}@{host}{path}?password={password}");
            let shown = redact_url(&url);
            proptest::prop_assert!(!shown.contains(&password), "{}", shown);
            proptest::prop_assert!(shown.contains(&host));
        }
    }
}
