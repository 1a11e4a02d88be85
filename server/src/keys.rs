//! `gatelog keys init | public` (the bundle signing key) and `gatelog verify BUNDLE`.
//!
//! The key lives at `report.signing_key`, by default `<data_dir>/keys/signing.key` (0600),
//! with `signing.pub` and `allowed_signers` beside it; `gatelog report` signs with it.

use crate::cli::{KeyLocationArgs, KeysCommand, VerifyArgs};
use anyhow::Context;
use gatelog_report::bundle::{self, Verdict};
use gatelog_report::sign::{KeyFiles, PublicKey, SigningKey};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code when the check could not run (unreadable bundle or key).
pub(crate) const CANNOT_CHECK: u8 = 1;

pub fn run_keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Init { location, dir, force } => {
            let configured = configured_key(&location)?;
            let files = match &dir {
                Some(dir) => KeyFiles::in_dir(dir),
                None => KeyFiles::for_private(&configured),
            };
            let key = SigningKey::generate(&format!("gatelog bundle signing key {}", today()))
                .context("cannot generate a key")?;
            files.create(&key, force)?;
            let public = key.public_key();
            let mut out = format!(
                "created the bundle signing key {} (mode 0600)\n\npublic key ({}), give it to auditors:\n{}\n\nwritten beside it: {} and {} (for `ssh-keygen -Y verify -f allowed_signers -I gatelog -n gatelog-bundle`)\n",
                files.private.display(),
                public.fingerprint(),
                public.to_openssh(key.comment()),
                files.public.display(),
                files.allowed_signers.display(),
            );
            if files.private != configured {
                out.push_str(&format!(
                    "\nthis is not the configured key ({}): set `signing_key = \"{}\"` under [report] in gatelog.toml\n",
                    configured.display(),
                    files.private.display()
                ));
            }
            crate::print_stdout(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Public { location } => {
            let path = configured_key(&location)?;
            let key = SigningKey::load(&path).with_context(|| "run `gatelog keys init` to create it".to_owned())?;
            crate::print_stdout(&format!("{}\n", key.public_key().to_openssh(key.comment())))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn configured_key(location: &KeyLocationArgs) -> anyhow::Result<PathBuf> {
    Ok(crate::config::resolve_keys(location)?.signing_key_path())
}

fn today() -> String {
    gatelog_model::Clock::now(&gatelog_model::SystemClock).to_rfc3339().chars().take(10).collect()
}

pub fn run_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let Some(bundle) = args.bundle.clone() else {
        eprintln!("error: name a bundle to check, or --store --from --to");
        return Ok(ExitCode::from(CANNOT_CHECK));
    };
    let (trusted, trusted_from) = match trusted_key(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(CANNOT_CHECK));
        }
    };
    let file = match std::fs::File::open(&bundle) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot open the bundle {}: {e}", bundle.display());
            return Ok(ExitCode::from(CANNOT_CHECK));
        }
    };
    let verdict = bundle::verify(std::io::BufReader::new(file), trusted.as_ref());
    let text = if args.json {
        serde_json::to_string_pretty(&verdict_json(&bundle, &verdict, trusted_from.as_deref()))? + "\n"
    } else {
        let mut out = format!("bundle: {}\n", bundle.display());
        if let Some(from) = &trusted_from {
            out.push_str(&format!("trusted key: {from}\n"));
        }
        out.push_str(&format!("{verdict}\n"));
        out
    };
    crate::print_stdout(&text)?;
    Ok(ExitCode::from(verdict.exit_code()))
}

/// The key to trust: `--public-key`, else the public key beside the configured signing key.
pub(crate) fn trusted_key(args: &VerifyArgs) -> anyhow::Result<(Option<PublicKey>, Option<String>)> {
    if let Some(arg) = &args.public_key {
        let key = PublicKey::from_arg(arg)?;
        let from = format!("{} (--public-key)", key.fingerprint());
        return Ok((Some(key), Some(from)));
    }
    // Only when the operator pointed at a config or data dir: an auditor's machine has none.
    if args.location.config.is_none() && args.location.data_dir.is_none() {
        return Ok((None, None));
    }
    let local = KeyFiles::for_private(&configured_key(&args.location)?).public;
    if !local.exists() {
        return Ok((None, None));
    }
    let text = std::fs::read_to_string(&local).with_context(|| format!("cannot read {}", local.display()))?;
    let key = PublicKey::parse(&text, &local.display().to_string())?;
    let from = format!("{} ({})", key.fingerprint(), local.display());
    Ok((Some(key), Some(from)))
}

fn verdict_json(bundle: &std::path::Path, v: &Verdict, trusted_from: Option<&str>) -> serde_json::Value {
    let failures: Vec<_> = v
        .failures
        .iter()
        .map(|f| {
            serde_json::json!({
                "class": f.class.name(),
                "exit_code": f.class.exit_code(),
                "file": f.file,
                "message": f.message,
            })
        })
        .collect();
    serde_json::json!({
        "bundle": bundle.display().to_string(),
        "ok": v.ok(),
        "exit_code": v.exit_code(),
        "signer": v.signer,
        "trusted_key": trusted_from,
        "files_checked": v.files_checked,
        "bytes_checked": v.bytes_checked,
        "failures": failures,
        "parameters": v.manifest.as_ref().map(|m| &m.parameters),
        "gatelog_version": v.manifest.as_ref().map(|m| &m.gatelog_version),
    })
}
