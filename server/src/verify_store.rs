//! `gatelog verify --store --from --to`: the records stored in ClickHouse checked against the
//! hash chain ([`gatelog_store::Store::verify_chain`]); checkpoint signatures checked here
//! against the trusted key (`--public-key`, else the one beside the configured signing key).
//! Exit codes as `--help` says: 0, 1 (could not check), 4, 7, 8 (tampered).

use crate::cli::{StoreArgs, VerifyArgs};
use crate::clickhouse::Target;
use crate::keys::{CANNOT_CHECK, trusted_key};
use anyhow::Context;
use gatelog_model::UnixMillis;
use gatelog_report::chain::{CheckpointSignature, check_checkpoint};
use gatelog_store::chain::{ChainVerdict, SignatureCheck, VerifyOptions, VerifyProgress};
use std::process::ExitCode;

pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    match check(&args).await {
        Ok((verdict, trusted_from)) => {
            let text = if args.json {
                let mut json = serde_json::to_value(&verdict)?;
                json["ok"] = verdict.ok().into();
                json["exit_code"] = verdict.exit_code().into();
                json["trusted_key"] = trusted_from.into();
                serde_json::to_string_pretty(&json)? + "\n"
            } else {
                let mut out = format!(
                    "store: batches received from {} to {}\n",
                    UnixMillis(verdict.from_ms).to_rfc3339(),
                    UnixMillis(verdict.to_ms).to_rfc3339()
                );
                if let Some(from) = &trusted_from {
                    out.push_str(&format!("trusted key: {from}\n"));
                }
                if let Some(head) = &verdict.head {
                    out.push_str(&format!(
                        "head: link {} (batch {}) {}\n",
                        head.links,
                        head.last_batch_id.as_deref().unwrap_or("-"),
                        head.hash
                    ));
                }
                out.push_str(&format!("{verdict}\n"));
                out
            };
            crate::print_stdout(&text)?;
            Ok(ExitCode::from(verdict.exit_code()))
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(CANNOT_CHECK))
        }
    }
}

async fn check(args: &VerifyArgs) -> anyhow::Result<(ChainVerdict, Option<String>)> {
    let (from, to) = match (&args.from, &args.to) {
        (Some(from), Some(to)) => (from, to),
        _ => anyhow::bail!("--store needs --from and --to"),
    };
    let from = UnixMillis::parse_str(from).with_context(|| format!("--from {from:?}"))?;
    let to = UnixMillis::parse_str(to).with_context(|| format!("--to {to:?}"))?;
    anyhow::ensure!(from < to, "--from must be before --to");
    let (trusted, trusted_from) = trusted_key(args)?;
    let store_args = StoreArgs {
        config: args.location.config.clone(),
        data_dir: args.location.data_dir.clone(),
        clickhouse_url: args.clickhouse_url.clone(),
        clickhouse_database: args.clickhouse_database.clone(),
        clickhouse_user: args.clickhouse_user.clone(),
        clickhouse_password: args.clickhouse_password.clone(),
    };
    let config = crate::config::resolve(&store_args)?;
    let target = Target::connect_beside_serve(&config).await?;
    let bar = progress_bar(args.no_progress);
    let on_progress = |p: VerifyProgress| {
        bar.set_length(p.ledger_total);
        bar.set_position(p.ledger_done);
    };
    let signatures = |cp: &gatelog_store::chain::Checkpoint| match check_checkpoint(
        &cp.signature,
        &cp.head,
        cp.at_ms,
        trusted.as_ref(),
    ) {
        CheckpointSignature::Unsigned => SignatureCheck::Unsigned,
        CheckpointSignature::Valid { signer } => SignatureCheck::Valid { signer },
        CheckpointSignature::NoTrustedKey { signer } => SignatureCheck::NoTrustedKey { signer },
        CheckpointSignature::Invalid { reason } => SignatureCheck::Invalid { reason },
    };
    let opts = VerifyOptions { from_ms: from.0, to_ms: to.0, ..VerifyOptions::default() };
    let verdict = target.store.verify_chain(&opts, &signatures, &on_progress).await;
    bar.finish_and_clear();
    target.shutdown().await;
    Ok((verdict.context("cannot verify the store")?, trusted_from))
}

/// A bar of ledger entries checked, on a terminal only.
fn progress_bar(off: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if off || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("verify --store {bar:40} {pos}/{len} ledger rows ({eta})")
    {
        bar.set_style(style);
    }
    bar
}
