//! The demo's last step: the SOC 2 report of the sample period (the days its events span),
//! written under `<data_dir>/reports/`, its bundle signed (with a key created for the demo if
//! none is configured) and verified, and the commands an auditor would run.

use crate::config::Config;
use crate::report::{for_period, input_template, write_report};
use anyhow::Context;
use gatelog_model::UnixMillis;
use gatelog_report::sign::{KeyFiles, SigningKey};
use gatelog_report::soc2::{self, INTERNAL_DATASETS};
use gatelog_store::Store;
use gatelog_store::read::Period;
use std::fmt::Write as _;
use std::sync::Arc;

const DAY_MS: i64 = 86_400_000;

/// Creates the demo's bundle signing key when none is configured; what to print if it did.
pub fn ensure_key(config: &Config) -> anyhow::Result<Option<String>> {
    let key_path = config.signing_key_path();
    if key_path.exists() {
        return Ok(None);
    }
    let key = SigningKey::generate("gatelog demo bundle signing key").context("cannot generate a key")?;
    KeyFiles::for_private(&key_path).create(&key, false)?;
    Ok(Some(format!("created a bundle signing key for the demo: {} (mode 0600)", key_path.display())))
}

/// Generates, writes and verifies the report; what to print.
pub async fn evidence(config: &Config, store: &Store) -> anyhow::Result<String> {
    let mut out = String::from("\nSOC 2 evidence for the sample period:\n");
    let key_path = config.signing_key_path();
    if let Some(note) = ensure_key(config)? {
        let _ = writeln!(out, "  {note}");
    }
    let key = SigningKey::load(&key_path)?;
    let Some(period) = sample_period(store).await? else {
        out.push_str("  nothing stored, so no report\n");
        return Ok(out);
    };
    let as_of = soc2::data_as_of(store).await?;
    let template = input_template(config, None, &[])?;
    let input = for_period(template, period, as_of, &soc2::default_seed(period), None);
    let name = gatelog_report::soc2::output::bundle_name(period.from(), period.to());
    let dir = config.data_dir.join("reports").join(name.trim_end_matches(".zip"));
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let public = KeyFiles::for_private(&key_path).public;
    let written = write_report(store, &input, &dir, Some(&key), Some(&public), true).await?;
    for line in written.summary.lines() {
        let _ = writeln!(out, "  {line}");
    }
    if let Some(bundle) = &written.bundle {
        let file = std::fs::File::open(bundle).with_context(|| format!("cannot open {}", bundle.display()))?;
        let verdict = gatelog_report::bundle::verify(file, Some(&key.public_key()));
        match verdict.ok() {
            true => {
                let _ = writeln!(
                    out,
                    "  verified: the signature and all {} files ({} bytes) match the manifest",
                    verdict.files_checked, verdict.bytes_checked
                );
            }
            false => anyhow::bail!("the demo's own bundle does not verify: {:?}", verdict.failures),
        }
    }
    let _ = writeln!(out, "  open the report: file://{}", written.html.display());
    Ok(out)
}

/// The whole days (UTC) the stored events span, gatelog's own datasets left out.
async fn sample_period(store: &Store) -> anyhow::Result<Option<Period>> {
    let reader = store.reader(Arc::new(gatelog_model::SystemClock));
    let batches = reader.fetch(&reader.catalog().ingest_batches(Period::everything())?).await?;
    let data = batches.rows.iter().filter(|b| !INTERNAL_DATASETS.contains(&b.dataset.as_str()) && b.decisions > 0);
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for b in data {
        lo = lo.min(b.min_time_ms);
        hi = hi.max(b.max_time_ms);
    }
    if lo > hi {
        return Ok(None);
    }
    let from = UnixMillis(lo.div_euclid(DAY_MS) * DAY_MS);
    let to = UnixMillis((hi.div_euclid(DAY_MS) + 1) * DAY_MS);
    Ok(Some(Period::new(from, to)?))
}
