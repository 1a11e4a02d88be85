//! `gatelog tokens new --role ROLE [--name NAME]` (also `gatelog token create`): a fresh
//! random API token, printed once with the `[[auth.tokens]]` entry to paste into
//! `gatelog.toml` (or, without the `auth.` prefix, into `auth.tokens_file`). gatelog keeps
//! only the token's SHA-256; the token itself is shown here and nowhere else.

use crate::cli::{RoleArg, TokensNewArgs};
use anyhow::Context;
use gatelog_edge::auth::Role;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::process::ExitCode;

/// `bytes` random bytes from the kernel, hex, after `prefix`.
pub fn random_token(prefix: &str, bytes: usize) -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("cannot read /dev/urandom for a new token")?;
    Ok(buf.iter().fold(prefix.to_owned(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// The SHA-256 of `token`, lowercase hex: what `[auth]` keeps.
pub fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn role(arg: RoleArg) -> Role {
    match arg {
        RoleArg::Ingest => Role::Ingest,
        RoleArg::Viewer => Role::Viewer,
        RoleArg::Responder => Role::Responder,
        RoleArg::Auditor => Role::Auditor,
        RoleArg::Admin => Role::Admin,
    }
}

/// The `[[auth.tokens]]` entry of a token (`table` is `auth.tokens`, or `tokens` for a
/// tokens file).
pub fn entry(table: &str, name: &str, role: Role, sha256: &str) -> String {
    let name = toml::Value::String(name.to_owned());
    format!("[[{table}]]\nname = {name}\nrole = \"{role}\"\nsha256 = \"{sha256}\"\n")
}

pub fn run_new(args: TokensNewArgs) -> anyhow::Result<ExitCode> {
    let role = role(args.role);
    let token = random_token("glt_", 32)?;
    let sha256 = sha256_hex(&token);
    let name = args.name.unwrap_or_else(|| format!("{role}-{}", &sha256[..8]));
    let check = gatelog_edge::config::AuthConfig {
        tokens: vec![gatelog_edge::config::TokenEntry { name: name.clone(), role, sha256: sha256.clone() }],
        ..Default::default()
    };
    check.validate().map_err(|e| anyhow::anyhow!("--name: {}", e.message))?;
    let mut out = String::new();
    let _ = writeln!(out, "{token}");
    let _ = writeln!(
        out,
        "\n# a {role} token named {name:?}; shown only now (gatelog keeps its SHA-256). Add to gatelog.toml:\n"
    );
    out.push_str(&entry("auth.tokens", &name, role, &sha256));
    let _ = writeln!(out, "\n# or to the file auth.tokens_file names:\n");
    out.push_str(&entry("tokens", &name, role, &sha256));
    crate::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printed_entry_parses_back_into_the_config_and_accepts_the_token() {
        let token = random_token("glt_", 32).unwrap();
        assert_ne!(token, random_token("glt_", 32).unwrap());
        assert_eq!(token.len(), 4 + 64);
        let text = entry("auth.tokens", "alice \"ops\"", Role::Responder, &sha256_hex(&token));
        let config = crate::config::Config::parse(&text).unwrap();
        config.validate().unwrap();
        let mut credentials = gatelog_edge::auth::Credentials::new(None);
        config.auth.credentials(&mut credentials).unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        let who = credentials.identify(&headers).unwrap();
        assert_eq!((who.name.as_str(), who.role), ("alice \"ops\"", Role::Responder));
    }
}
