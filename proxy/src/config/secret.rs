//! Secrets in the configuration: where one comes from ([`SecretRef`]: the file, an environment
//! variable or a secret file) and the resolved value ([`Secret`]), neither ever shown by `Debug`.

use super::{ConfigError, invalid};
use serde::Deserialize;
use std::path::PathBuf;

/// A secret's source: exactly one of `value`, `env`, `file`. Empty means no secret.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRef")
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .field("env", &self.env)
            .field("file", &self.file)
            .finish()
    }
}

impl SecretRef {
    /// Checks the shape only (at most one source); reading happens at start-up.
    pub fn check_shape(&self, key: &str) -> Result<(), ConfigError> {
        let set = [self.value.is_some(), self.env.is_some(), self.file.is_some()];
        if set.iter().filter(|s| **s).count() > 1 {
            return Err(invalid(key, "set only one of value, env, file"));
        }
        Ok(())
    }

    /// Reads the secret; `key` names it in errors.
    pub fn resolve(&self, key: &str) -> Result<Secret, ConfigError> {
        self.check_shape(key)?;
        if let Some(v) = &self.value {
            return Ok(Secret(v.clone()));
        }
        if let Some(name) = &self.env {
            return std::env::var(name)
                .map(Secret)
                .map_err(|_| invalid(format!("{key}.env"), format!("environment variable {name} is not set")));
        }
        if let Some(path) = &self.file {
            return std::fs::read_to_string(path)
                .map(|s| Secret(s.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|e| invalid(format!("{key}.file"), format!("cannot read {}: {e}", path.display())));
        }
        Ok(Secret(String::new()))
    }
}

/// A resolved secret. `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
