//! `gatelog report soc2`: builds the report's input from the configuration (the proxy's
//! policy, the detector catalogue, the expected datasets), runs
//! [`gatelog_report::soc2::generate`] with a progress bar, and writes the renderings and the
//! signed bundle to `--out`. The same input template serves `GET /v1/reports/soc2`.

use crate::cli::{ReportCommand, Soc2Args};
use crate::clickhouse::Target;
use crate::config::Config;
use anyhow::Context;
use gatelog_model::UnixMillis;
use gatelog_report::render::Content;
use gatelog_report::sign::{KeyFiles, SigningKey};
use gatelog_report::soc2::{self, DetectorFacts, PolicyFacts, RoleGrants, Soc2Input, output};
use gatelog_store::read::Period;
use sha2::{Digest, Sha256};
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub async fn run(command: ReportCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReportCommand::Soc2(args) => soc2_command(args).await,
    }
}

/// A time argument: RFC 3339, epoch, or a plain date (`2026-01-01` = its midnight UTC).
pub fn parse_time(flag: &str, text: &str) -> anyhow::Result<UnixMillis> {
    let t = text.trim();
    let full =
        if t.len() == 10 && t.as_bytes().get(4) == Some(&b'-') { format!("{t}T00:00:00Z") } else { t.to_owned() };
    UnixMillis::parse_str(&full)
        .with_context(|| format!("{flag} {text:?}: expected RFC 3339 (2026-01-01T00:00:00Z), a date or epoch"))
}

async fn soc2_command(args: Soc2Args) -> anyhow::Result<ExitCode> {
    let from = parse_time("--from", &args.from)?;
    let to = parse_time("--to", &args.to)?;
    let period = Period::new(from, to).map_err(|e| anyhow::anyhow!("--from/--to: {e}"))?;
    let config = crate::config::resolve(&args.store)?;
    let key_path = config.signing_key_path();
    let key = match args.no_bundle {
        true => None,
        false => Some(SigningKey::load(&key_path).with_context(|| {
            format!("no bundle signing key at {}: run `gatelog keys init` (or pass --no-bundle)", key_path.display())
        })?),
    };
    let mut template = input_template(&config, args.policy.as_deref(), &args.privileged_role)?;
    if let Some(path) = &args.users {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read --users {}", path.display()))?;
        template.users = Some(soc2::users::parse_users(&path.display().to_string(), &text)?);
    }
    let target = Target::connect_beside_serve(&config).await?;
    let result = async {
        let store = &target.store;
        let as_of = match &args.as_of {
            Some(t) => parse_time("--as-of", t)?,
            None => soc2::data_as_of(store).await.context("cannot read when the newest batch arrived")?,
        };
        let seed = args.seed.clone().unwrap_or_else(|| soc2::default_seed(period));
        let input = for_period(template, period, as_of, &seed, args.users.as_deref());
        let public = KeyFiles::for_private(&key_path).public;
        let public = public.exists().then_some(public.as_path());
        write_report(store, &input, &args.out, key.as_ref(), public, args.no_progress).await
    }
    .await;
    target.shutdown().await;
    let written = result?;
    crate::print_stdout(&written.summary)?;
    Ok(ExitCode::SUCCESS)
}

/// What [`write_report`] wrote.
pub struct Written {
    /// What to print: counts, reconciliations, the bundle and how to verify and regenerate.
    pub summary: String,
    pub html: PathBuf,
    pub bundle: Option<PathBuf>,
}

/// Generates the report for `input` and writes its renderings (and, with `key`, its signed
/// bundle) into `out`.
pub async fn write_report(
    store: &gatelog_store::Store,
    input: &Soc2Input,
    out: &Path,
    key: Option<&SigningKey>,
    public_key_file: Option<&Path>,
    no_progress: bool,
) -> anyhow::Result<Written> {
    let (period, as_of) = (input.period, input.as_of);
    let started = Instant::now();
    let bar = Bar::new(no_progress);
    let spill = tempfile::tempdir().context("cannot create a temporary folder for large populations")?;
    let report = soc2::generate(store, input, spill.path(), &bar).await;
    bar.0.finish_and_clear();
    let report = report.context("cannot generate the report")?;
    let files = output::render_files(&report).context("cannot render the report")?;
    std::fs::create_dir_all(out.join("csv")).with_context(|| format!("cannot create {}", out.display()))?;
    for (path, content) in &files {
        let dest = out.join(path);
        match content {
            Content::Bytes(bytes) => std::fs::write(&dest, bytes).map(|_| ()),
            Content::File(file) => std::fs::copy(file, &dest).map(|_| ()),
        }
        .with_context(|| format!("cannot write {}", dest.display()))?;
    }
    let mut summary = format!(
        "report soc2 for {} (data as of {}) in {:.1} s: {} sections, {} tables, {} files in {}\n",
        report.period,
        as_of.to_rfc3339(),
        started.elapsed().as_secs_f64(),
        report.sections.len(),
        report.tables().count(),
        files.len(),
        out.display()
    );
    let failed: Vec<String> = report
        .tables()
        .flat_map(|t| {
            t.ipe.failed().map(move |r| format!("  {}: {} (expected {}, got {})", t.id, r.name, r.expected, r.actual))
        })
        .collect();
    let checks: usize = report.tables().map(|t| t.ipe.reconciliations.len()).sum();
    summary.push_str(&format!("reconciliations: {} of {checks} passed\n", checks - failed.len()));
    for f in &failed {
        summary.push_str(&format!("{f}\n"));
    }
    let mut bundle_path = None;
    if let Some(key) = key {
        let bundle = output::bundle(&report, &files, key).context("cannot build the bundle")?;
        let path = out.join(output::bundle_name(period.from(), period.to()));
        bundle_path = Some(path.clone());
        std::fs::write(&path, &bundle).with_context(|| format!("cannot write {}", path.display()))?;
        summary.push_str(&format!(
            "bundle: {} ({} bytes, signed by {})\nverify: gatelog verify {} --public-key {}\n",
            path.display(),
            bundle.len(),
            key.public_key().fingerprint(),
            path.display(),
            public_key_file.map_or_else(
                || format!("\"{}\"", key.public_key().to_openssh(key.comment()).trim()),
                |p| p.display().to_string()
            ),
        ));
    }
    summary.push_str(&format!("regenerate: {}\n", report.regenerate));
    Ok(Written { summary, html: out.join("report.html"), bundle: bundle_path })
}

/// The input for one period from the configuration's template: the period, as-of and seed,
/// and the parameters and command that regenerate the same bytes.
pub fn for_period(
    template: Soc2Input,
    period: Period,
    as_of: UnixMillis,
    seed: &str,
    users: Option<&Path>,
) -> Soc2Input {
    let mut parameters = vec![
        ("from".to_owned(), period.from().to_rfc3339()),
        ("to".to_owned(), period.to().to_rfc3339()),
        ("as_of".to_owned(), as_of.to_rfc3339()),
        ("seed".to_owned(), seed.to_owned()),
        ("privileged_roles".to_owned(), template.privileged_roles.join(",")),
    ];
    let mut regenerate = format!(
        "gatelog report soc2 --from {} --to {} --as-of {} --seed {}",
        period.from().to_rfc3339(),
        period.to().to_rfc3339(),
        as_of.to_rfc3339(),
        shell_quote(seed)
    );
    for role in &template.privileged_roles {
        regenerate.push_str(&format!(" --privileged-role {}", shell_quote(role)));
    }
    if let Some(p) = &template.policy {
        parameters.push(("policy_sha256".to_owned(), p.sha256.clone()));
        regenerate.push_str(&format!(" --policy {}", shell_quote(&p.path)));
    }
    if let Some(u) = users {
        parameters.push(("users".to_owned(), u.display().to_string()));
        regenerate.push_str(&format!(" --users {}", shell_quote(&u.display().to_string())));
    }
    regenerate.push_str(" --out DIR");
    Soc2Input { period, as_of, seed: seed.to_owned(), parameters, regenerate, ..template }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/@,+=".contains(&b)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The report route's service for `gatelog serve`: the configuration's template and the
/// signing key when there is one (without it, bundles are refused and the rest is served).
pub fn http_reports(config: &Config) -> anyhow::Result<gatelog_read::reports::Reports> {
    // A policy file that does not parse must not stop serve (it records the file's versions
    // all the same): the route's reports then say no policy was supplied.
    let template = match input_template(config, None, &[]) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "the report's policy cannot be read; reports show no policy");
            let mut bare = config.clone();
            bare.report.proxy_policy = None;
            input_template(&bare, None, &[])?
        }
    };
    let path = config.signing_key_path();
    let key = match SigningKey::load(&path) {
        Ok(key) => Some(key),
        Err(e) if !path.exists() => {
            tracing::info!(path = %path.display(), "no bundle signing key: /v1/reports/soc2 serves no bundles (gatelog keys init)");
            let _ = e;
            None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot load the bundle signing key: /v1/reports/soc2 serves no bundles");
            None
        }
    };
    Ok(gatelog_read::reports::Reports::new(template, key, |t, p, a, s| for_period(t, p, a, s, None)))
}

/// What the configuration says about the report's input, for any period: the privileged
/// roles, the proxy's policy (`--policy`), the detector catalogue and the expected datasets.
pub fn input_template(config: &Config, policy: Option<&Path>, privileged: &[String]) -> anyhow::Result<Soc2Input> {
    // `--policy`, else the file `report.proxy_policy` names (whose versions serve records).
    let policy = policy.or(config.report.proxy_policy.as_deref()).map(policy_facts).transpose()?;
    let silence = &config.detect.source_silence;
    let max_silence = silence.expected.values().map(|d| **d).max().unwrap_or(Duration::from_secs(3600));
    Ok(Soc2Input {
        period: Period::everything(),
        as_of: UnixMillis(0),
        seed: String::new(),
        privileged_roles: if privileged.is_empty() { vec!["admin".to_owned()] } else { privileged.to_vec() },
        policy,
        users: None,
        detectors: detector_facts(config)?,
        expected_datasets: silence.expected.keys().cloned().collect(),
        max_silence,
        parameters: Vec::new(),
        regenerate: String::new(),
        gatelog_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The detectors in force: the built-in streaming ones `[detect]` enables (their settings'
/// hash as the definition), the SQL rules (their file's hash) and the Sigma rules.
fn detector_facts(config: &Config) -> anyhow::Result<Vec<DetectorFacts>> {
    // The settings as parsed (their Debug form: every threshold, in declaration order).
    let settings_sha = sha256_hex(format!("{:?}", config.detect).as_bytes());
    let mut out: Vec<DetectorFacts> = gatelog_detect::rules::enabled_versions(&config.detect)
        .into_iter()
        .map(|(id, version)| DetectorFacts {
            id: id.to_owned(),
            version: version.to_string(),
            kind: "streaming".to_owned(),
            severity: String::new(),
            description: "built into gatelog; its thresholds are the [detect] settings hashed here".to_owned(),
            definition_sha256: settings_sha.clone(),
        })
        .collect();
    for r in gatelog_watch::rules::load(config.detect.rules_dir.as_deref())? {
        out.push(DetectorFacts {
            id: r.id.clone(),
            version: r.version.to_string(),
            kind: "scheduled".to_owned(),
            severity: r.severity.as_str().to_owned(),
            description: r.title.clone(),
            definition_sha256: file_sha(&r.file).unwrap_or_else(|| sha256_hex(r.query.as_bytes())),
        });
    }
    for r in config.detect.sigma_rules.rules().iter().filter(|r| r.generates) {
        out.push(DetectorFacts {
            id: r.id.clone(),
            version: "-".to_owned(),
            kind: "sigma".to_owned(),
            severity: r.severity.as_str().to_owned(),
            description: r.title.clone(),
            definition_sha256: file_sha(&r.file).unwrap_or_default(),
        });
    }
    Ok(out)
}

fn file_sha(path: &str) -> Option<String> {
    std::fs::read(path).ok().map(|b| sha256_hex(&b))
}

/// The proxy's policy file as evidence: its hash, its text with secrets masked, the issuers,
/// the claims → roles mappings and each role's grants as resource patterns.
pub fn policy_facts(path: &Path) -> anyhow::Result<PolicyFacts> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read --policy {}", path.display()))?;
    let text = String::from_utf8(bytes.clone()).with_context(|| format!("--policy {}: not UTF-8", path.display()))?;
    let config = gatelog_proxy::config::ProxyConfig::parse(&text)
        .map_err(|e| anyhow::anyhow!("--policy {}: {e}", path.display()))?;
    let issuers = config.issuers.iter().map(|i| format!("{} ({})", i.issuer, i.name)).collect();
    let role_mappings = config
        .role_mappings
        .iter()
        .map(|m| {
            let mut parts = Vec::new();
            if let Some(i) = &m.issuer {
                parts.push(format!("issuer {i}"));
            }
            for (what, list) in [("groups", &m.groups), ("email domains", &m.email_domains), ("subjects", &m.subjects)]
            {
                if !list.is_empty() {
                    parts.push(format!("{what} {}", list.join(", ")));
                }
            }
            format!("{} ← {}", m.role, parts.join("; "))
        })
        .collect();
    let roles = config
        .roles
        .iter()
        .map(|(name, r)| {
            let db = r.default_database.clone().unwrap_or_else(|| "*".to_owned());
            let qualify = |t: &String| if t.contains('.') { t.clone() } else { format!("{db}.{t}") };
            let mut resources: Vec<String> = r.allow.iter().map(|t| format!("clickhouse:{}", qualify(t))).collect();
            resources.extend(r.http_allow.iter().map(|p| format!("http://*{p}")));
            let mut limits = Vec::new();
            let mut limit = |n: &str, v: Option<String>| {
                if let Some(v) = v {
                    limits.push(format!("{n} = {v}"));
                }
            };
            limit("max_execution_time", r.max_execution_time.map(|d| humantime::format_duration(d).to_string()));
            limit("max_rows_to_read", r.max_rows_to_read.map(|v| v.to_string()));
            limit("max_bytes_to_read", r.max_bytes_to_read.map(|v| v.to_string()));
            limit("max_result_rows", r.max_result_rows.map(|v| v.to_string()));
            limit("requests_per_minute", r.requests_per_minute.map(|v| v.to_string()));
            limit("max_concurrent_queries", r.max_concurrent_queries.map(|v| v.to_string()));
            for d in &r.deny {
                limits.push(format!("deny {}", qualify(d)));
            }
            RoleGrants { role: name.clone(), resources, actions: r.statements.clone(), limits }
        })
        .collect();
    Ok(PolicyFacts {
        path: path.display().to_string(),
        sha256: sha256_hex(&bytes),
        text: mask_secrets(&text),
        issuers,
        role_mappings,
        roles,
    })
}

/// The policy's text with the value of every secret-looking key replaced by `***`.
fn mask_secrets(text: &str) -> String {
    let secret = |key: &str| {
        let k = key.to_ascii_lowercase();
        ["password", "token", "secret", "value"].iter().any(|s| k.contains(s))
    };
    text.lines()
        .map(|line| match line.split_once('=') {
            Some((key, _)) if !line.trim_start().starts_with('#') && secret(key.trim()) => format!("{}= \"***\"", key),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The section-by-section progress bar (a line per section when not on a terminal).
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(hidden: bool) -> Bar {
        if hidden || !std::io::stderr().is_terminal() {
            return Bar(indicatif::ProgressBar::hidden());
        }
        let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} sections  {msg}  {elapsed}") {
            bar.set_style(style);
        }
        Bar(bar)
    }
}

impl soc2::Progress for Bar {
    fn section(&self, index: usize, total: usize, id: &str) {
        if self.0.is_hidden() {
            eprintln!("report soc2: section {} of {total}: {id}", index + 1);
        } else {
            self.0.set_length(total as u64);
            self.0.set_position(index as u64);
            self.0.set_message(id.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_parse() {
        assert_eq!(parse_time("--from", "2026-01-01").unwrap(), UnixMillis(1_767_225_600_000));
        assert_eq!(parse_time("--from", "2026-01-01T00:00:00Z").unwrap(), UnixMillis(1_767_225_600_000));
        assert!(parse_time("--from", "January").unwrap_err().to_string().contains("--from"));
    }

    #[test]
    fn secrets_are_masked_in_the_policy_text() {
        let text = "[clickhouse]\nuser = \"proxy\"\npassword = { value = \"hunter2\" }\n# password = \"x\"\n[roles.admin]\nallow = [\"*.*\"]";
        let masked = mask_secrets(text);
        assert!(!masked.contains("hunter2"), "{masked}");
        assert!(masked.contains("user = \"proxy\"") && masked.contains("allow = [\"*.*\"]"));
    }

    #[test]
    fn arguments_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("soc2:2026"), "soc2:2026");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
