//! Who gatelog logs in to ClickHouse as: credentials from `clickhouse.url`, or from
//! `clickhouse.user` / `clickhouse.password`, never silently neither.
//!
//! A URL may carry them as user info (`http://user:secret@host:8123`) or as ClickHouse's own
//! query parameters (`?user=…&password=…`). They are taken out of the URL (so it can be
//! shown and handed to the HTTP client without them) and used, unless `clickhouse.user` or
//! `clickhouse.password` say otherwise, which is refused with a message naming both keys:
//! guessing which one wins would log in as the wrong user, as the ignored URL password did
//! (a wrong one still connected as `default`). URLs are only ever shown through
//! [`gatelog_model::RedactedUrl`].

use super::{ClickHouseConfig, ConfigError};
use gatelog_model::RedactedUrl;
use std::fmt;

/// The URL without credentials, and the user and password to send.
#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouseLogin {
    pub url: String,
    pub user: String,
    pub password: String,
}

impl fmt::Debug for ClickHouseLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseLogin")
            .field("url", &RedactedUrl::new(&self.url))
            .field("user", &self.user)
            .field("password", &if self.password.is_empty() { "" } else { "***" })
            .finish()
    }
}

impl fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url.as_deref().map(RedactedUrl::new))
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &if self.password.is_empty() { "" } else { "***" })
            .field("cluster", &self.cluster)
            .field("profile", &self.profile)
            .field("compression", &self.compression)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("request_timeout", &self.request_timeout)
            .field("mutation_timeout", &self.mutation_timeout)
            .field("sink_batch_lines", &self.sink_batch_lines)
            .field("sink_batch_bytes", &self.sink_batch_bytes)
            .field("sink_linger", &self.sink_linger)
            .field("managed_nice", &self.managed_nice)
            .field("sync_data_dir", &self.sync_data_dir)
            .finish_non_exhaustive()
    }
}

fn invalid(message: String) -> ConfigError {
    ConfigError { key: "clickhouse.url".to_owned(), message }
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

impl ClickHouseConfig {
    /// The login for `url` (the configured one, or managed ClickHouse's): its credentials
    /// taken out and checked against `clickhouse.user` / `clickhouse.password`.
    pub fn login(&self, url: &str) -> Result<ClickHouseLogin, ConfigError> {
        let shown = RedactedUrl::new(url);
        let mut parsed = url::Url::parse(url).map_err(|e| invalid(format!("{shown} is not a URL: {e}")))?;
        let mut url_user = (!parsed.username().is_empty()).then(|| decode(parsed.username()));
        let mut url_password = parsed.password().map(decode);
        let mut kept = Vec::new();
        for (key, value) in parsed.query_pairs() {
            let slot = match key.as_ref() {
                "user" => &mut url_user,
                "password" => &mut url_password,
                _ => {
                    kept.push((key.into_owned(), value.into_owned()));
                    continue;
                }
            };
            match slot {
                Some(earlier) if *earlier != value => {
                    return Err(invalid(format!("{shown} gives its {key} twice, differently; give it once")));
                }
                _ => *slot = Some(value.into_owned()),
            }
        }
        // Taking user info out of a URL without a host (`unix:…`) fails; such a URL is refused.
        if parsed.set_username("").is_err() || parsed.set_password(None).is_err() {
            return Err(invalid(format!("{shown} is not an http:// or https:// URL")));
        }
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(&kept);
        }
        let user = match url_user {
            Some(user) if self.user == "default" || self.user == user => user,
            Some(user) => {
                return Err(invalid(format!(
                    "{shown} logs in as {user:?} but clickhouse.user (--clickhouse-user, GATELOG_CLICKHOUSE_USER) \
                     says {:?}; give the user in one place",
                    self.user
                )));
            }
            None => self.user.clone(),
        };
        let password = match url_password {
            Some(password) if self.password.is_empty() || self.password == password => password,
            Some(_) => {
                return Err(invalid(format!(
                    "{shown} carries a password and clickhouse.password (--clickhouse-password, \
                     GATELOG_CLICKHOUSE_PASSWORD) another one; give the password in one place"
                )));
            }
            None => self.password.clone(),
        };
        let bare = parsed.path() == "/" && parsed.query().is_none() && parsed.fragment().is_none();
        let mut url: String = parsed.into();
        // `Url` writes a bare host with a `/`; the base URL reads better without.
        if bare {
            url.pop();
        }
        Ok(ClickHouseLogin { url, user, password })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(user: &str, password: &str) -> ClickHouseConfig {
        ClickHouseConfig { user: user.into(), password: password.into(), ..ClickHouseConfig::default() }
    }

    #[test]
    fn credentials_come_out_of_the_url_and_are_used() {
        let login = section("default", "").login("http://writer:s%40cret@127.0.0.1:8123").unwrap();
        assert_eq!(
            login,
            ClickHouseLogin { url: "http://127.0.0.1:8123".into(), user: "writer".into(), password: "s@cret".into() }
        );
        let login = section("default", "").login("https://ch.example.com/?user=w&password=p&database=x").unwrap();
        assert_eq!(
            (login.url.as_str(), login.user.as_str(), login.password.as_str()),
            ("https://ch.example.com/?database=x", "w", "p")
        );
        let plain = section("reader", "pw").login("http://127.0.0.1:8123/").unwrap();
        assert_eq!(
            (plain.url.as_str(), plain.user.as_str(), plain.password.as_str()),
            ("http://127.0.0.1:8123", "reader", "pw")
        );
        let same = section("writer", "s3").login("http://writer:s3@h:1").unwrap();
        assert_eq!((same.user.as_str(), same.password.as_str()), ("writer", "s3"));
        assert!(!format!("{same:?}").contains("s3"), "{same:?}");
        let configured = ClickHouseConfig {
            url: Some("http://w:topsecret@h:1".into()),
            password: "alsosecret".into(),
            ..ClickHouseConfig::default()
        };
        let shown = format!("{configured:?}");
        assert!(
            !shown.contains("topsecret") && !shown.contains("alsosecret") && shown.contains("w:***@h:1"),
            "{shown}"
        );
    }

    #[test]
    fn conflicts_are_refused_naming_the_keys_never_the_password() {
        let err = section("alice", "").login("http://bob:hunter22@h:8123").unwrap_err().to_string();
        assert!(err.starts_with("clickhouse.url: http://bob:***@h:8123 logs in as \"bob\""), "{err}");
        assert!(err.contains("clickhouse.user") && !err.contains("hunter22"), "{err}");
        let err = section("default", "zz-other-pw").login("http://bob:hunter22@h:8123").unwrap_err().to_string();
        assert!(
            err.contains("clickhouse.password") && !err.contains("hunter22") && !err.contains("zz-other-pw"),
            "{err}"
        );
        let err = section("default", "").login("http://bob:pw1@h/?password=pw2").unwrap_err().to_string();
        assert!(err.contains("twice") && !err.contains("pw1") && !err.contains("pw2"), "{err}");
        let err = section("default", "").login("http://u:topsecret@[bad").unwrap_err().to_string();
        assert!(err.contains("not a URL") && !err.contains("topsecret"), "{err}");
    }
}
