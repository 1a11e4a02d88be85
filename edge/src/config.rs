//! [`AuthConfig`]: the `[auth]` section of `gatelog.toml`: the static API tokens (as
//! SHA-256 digests, with a name and a role each), an optional tokens file holding more of
//! them, who may read the operator routes without a token, and `[auth.identity]`
//! ([`crate::identity::IdentityConfig`]).
//!
//! ```toml
//! [auth]
//! ops_without_token = "loopback"    # or "anywhere", "nowhere"
//! tokens_file = "/etc/gatelog/tokens.toml"   # [[tokens]] entries like those below
//!
//! [[auth.tokens]]                   # `gatelog tokens new --role viewer --name alice` prints one
//! name = "alice"
//! role = "viewer"
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! ```

use crate::auth::{Credentials, Role};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Static API tokens; several per role, so one can be rotated without downtime.
    pub tokens: Vec<TokenEntry>,
    /// A TOML file of `[[tokens]]` entries (the same keys), read at start: tokens kept out
    /// of `gatelog.toml`, e.g. written by a secrets manager.
    pub tokens_file: Option<PathBuf>,
    /// Who reads `/healthz`, `/readyz` and `/metrics` without a token; everyone else needs a
    /// reading role's token.
    pub ops_without_token: OpsAccess,
    /// `[auth.identity]`: identity tokens (OIDC, Cloudflare Access) and claims → roles.
    pub identity: crate::identity::IdentityConfig,
}

/// One static token: who it is, what it may do, and the SHA-256 of its value (lowercase or
/// uppercase hex). The value itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Recorded as the actor of what the token does (e.g. who acknowledged an alert).
    pub name: String,
    pub role: Role,
    pub sha256: String,
}

/// Who may read the operator routes without a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpsAccess {
    /// Peers on a loopback address (127.0.0.0/8, ::1), e.g. a local Prometheus or agent.
    #[default]
    Loopback,
    /// Anyone who reaches the listener (a load balancer's health checks from its own
    /// addresses, a Prometheus elsewhere on a private network).
    Anywhere,
    /// Nobody: a reading role's token is needed from everywhere.
    Nowhere,
}

/// An `[auth]` setting that cannot work, naming its key (`auth.tokens[1].sha256: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn invalid<T>(key: impl Into<String>, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError { key: key.into(), message: message.into() })
}

/// The shape of a tokens file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

impl TokenEntry {
    /// The digest, or why it is not one (`key` names the entry).
    fn digest(&self, key: &str) -> Result<[u8; 32], ConfigError> {
        let hex = self.sha256.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return invalid(format!("{key}.sha256"), "must be 64 hex digits (the SHA-256 of the token)");
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|e| ConfigError { key: format!("{key}.sha256"), message: e.to_string() })?;
        }
        Ok(out)
    }

    fn check_name(&self, key: &str) -> Result<(), ConfigError> {
        let name = &self.name;
        if name.trim().is_empty() || name.chars().count() > 128 {
            return invalid(format!("{key}.name"), "must be 1 to 128 characters");
        }
        if name.chars().any(char::is_control) || name.trim() != name {
            return invalid(format!("{key}.name"), "must not hold control characters or surrounding spaces");
        }
        Ok(())
    }
}

impl AuthConfig {
    /// Checks every key of the section (the tokens file is checked when read, by
    /// [`AuthConfig::credentials`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_entries(&self.tokens, "auth.tokens")?;
        if self.tokens_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return invalid("auth.tokens_file", "must name a file (or be left out)");
        }
        self.identity.validate()
    }

    /// The tokens of the section and of its tokens file.
    pub fn entries(&self) -> Result<Vec<TokenEntry>, ConfigError> {
        let mut all = self.tokens.clone();
        if let Some(path) = &self.tokens_file {
            let file = read_tokens_file(path)?;
            check_entries(&file, &format!("auth.tokens_file ({}): tokens", path.display()))?;
            all.extend(file);
        }
        check_entries(&all, "auth.tokens (with auth.tokens_file)")?;
        Ok(all)
    }

    /// Adds every token of the section and of its tokens file to `credentials`.
    pub fn credentials(&self, credentials: &mut Credentials) -> Result<(), ConfigError> {
        for (i, entry) in self.entries()?.iter().enumerate() {
            let digest = entry.digest(&format!("auth.tokens[{i}]"))?;
            credentials.add_digest(entry.name.clone(), entry.role, digest);
        }
        Ok(())
    }
}

fn read_tokens_file(path: &Path) -> Result<Vec<TokenEntry>, ConfigError> {
    let key = format!("auth.tokens_file ({})", path.display());
    let text = std::fs::read_to_string(path).or_else(|e| invalid(&key, format!("cannot read it: {e}")))?;
    let file: TokensFile = toml::from_str(&text).or_else(|e| invalid(&key, e.to_string().trim_end().to_owned()))?;
    Ok(file.tokens)
}

fn check_entries(entries: &[TokenEntry], key: &str) -> Result<(), ConfigError> {
    let mut digests = std::collections::HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let key = format!("{key}[{i}]");
        entry.check_name(&key)?;
        if !digests.insert(entry.digest(&key)?) {
            return invalid(format!("{key}.sha256"), "duplicates an earlier token");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn empty_is_default_and_unknown_keys_are_refused() {
        let c: AuthConfig = toml::from_str("").unwrap();
        assert_eq!(c, AuthConfig::default());
        assert_eq!(c.ops_without_token, OpsAccess::Loopback);
        c.validate().unwrap();
        assert!(toml::from_str::<AuthConfig>("token = []").is_err());
        assert!(
            toml::from_str::<AuthConfig>("[[tokens]]\nname = \"a\"\nrole = \"viewer\"\nsha256 = \"x\"\nvalue = \"y\"")
                .is_err()
        );
        assert!(toml::from_str::<AuthConfig>("[[tokens]]\nname = \"a\"\nrole = \"root\"\nsha256 = \"x\"").is_err());
    }

    #[test]
    fn entries_parse_and_messages_name_the_key() {
        let c: AuthConfig = toml::from_str(&format!(
            "ops_without_token = \"nowhere\"\n[[tokens]]\nname = \"alice\"\nrole = \"viewer\"\nsha256 = \"{HASH}\"\n"
        ))
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.ops_without_token, OpsAccess::Nowhere);
        let mut creds = Credentials::new(None);
        c.credentials(&mut creds).unwrap();
        assert_eq!(creds.count(Role::Viewer), 1);

        let mut bad = c.clone();
        bad.tokens[0].sha256 = "abc".into();
        assert!(bad.validate().unwrap_err().to_string().starts_with("auth.tokens[0].sha256: "));
        let mut twice = c.clone();
        twice.tokens.push(TokenEntry { name: "bob".into(), ..c.tokens[0].clone() });
        assert!(twice.validate().unwrap_err().to_string().starts_with("auth.tokens[1].sha256: duplicates"));
        let mut unnamed = c.clone();
        unnamed.tokens[0].name = " ".into();
        assert!(unnamed.validate().unwrap_err().to_string().starts_with("auth.tokens[0].name: "));
    }

    #[test]
    fn a_tokens_file_adds_entries_and_its_errors_name_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, format!("[[tokens]]\nname = \"ci\"\nrole = \"ingest\"\nsha256 = \"{HASH}\"\n")).unwrap();
        let c = AuthConfig { tokens_file: Some(path.clone()), ..AuthConfig::default() };
        let mut creds = Credentials::new(None);
        c.credentials(&mut creds).unwrap();
        assert_eq!(creds.count(Role::Ingest), 1);
        std::fs::write(&path, "[[tokens]]\nname = \"ci\"\nrole = \"ingest\"\nsha256 = \"zz\"\n").unwrap();
        let err = c.entries().unwrap_err().to_string();
        assert!(err.starts_with("auth.tokens_file (") && err.contains("tokens[0].sha256"), "{err}");
        let missing = AuthConfig { tokens_file: Some(dir.path().join("nope.toml")), ..AuthConfig::default() };
        assert!(missing.entries().unwrap_err().to_string().contains("cannot read it"));
    }
}
