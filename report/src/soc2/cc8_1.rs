//! CC8.1, changes: Cloudflare's own audit log of the period (who changed what in the account,
//! a population with a seeded sample), the detector versions that ran (a version first seen
//! in the period is a change), and every version of a rule, Sigma or policy file that
//! `gatelog serve` recorded in `config_versions`, with a line diff against the one before.

use super::cc7_2::tally_check;
use super::diff;
use super::{Ctx, Soc2Error, tables};
use crate::sample::{Frequency, Risk};
use crate::table::{Section, Table};
use gatelog_store::read::DecisionFilter;
use gatelog_store::sql::config_versions::ConfigVersion;
use serde::Serialize;
use std::collections::BTreeMap;

/// The datasets of Cloudflare's audit log.
pub const AUDIT_DATASETS: [&str; 2] = ["audit_logs", "audit_logs_v2"];

/// One recorded version and what changed from the version before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionChange {
    pub kind: String,
    pub name: String,
    pub path: String,
    pub recorded_at_ms: i64,
    pub recorded_by: String,
    pub previous_sha256: String,
    pub sha256: String,
    pub lines_removed: usize,
    pub lines_added: usize,
    /// `-`/`+` lines with a line of context (the whole text when there was no version before).
    pub diff: String,
}

/// Each version of `versions` (sorted by kind, name, time) against the one before it: the
/// previous version in `versions`, else the last one before the period (`before`).
pub fn changes(versions: &[ConfigVersion], before: &[ConfigVersion]) -> Vec<VersionChange> {
    let mut last: BTreeMap<(&str, &str), &ConfigVersion> =
        before.iter().map(|v| ((v.kind.as_str(), v.name.as_str()), v)).collect();
    let mut out = Vec::with_capacity(versions.len());
    for v in versions {
        let key = (v.kind.as_str(), v.name.as_str());
        let previous = last.get(&key).copied();
        let (text, removed, added) = diff::render(previous.map_or("", |p| p.content.as_str()), &v.content);
        out.push(VersionChange {
            kind: v.kind.clone(),
            name: v.name.clone(),
            path: v.path.clone(),
            recorded_at_ms: v.recorded_at_ms,
            recorded_by: v.recorded_by.clone(),
            previous_sha256: previous.map(|p| p.sha256.clone()).unwrap_or_default(),
            sha256: v.sha256.clone(),
            lines_removed: removed,
            lines_added: added,
            diff: text,
        });
        last.insert(key, v);
    }
    out
}

pub async fn section(ctx: &Ctx<'_>) -> Result<Section, Soc2Error> {
    let (reader, input) = (&ctx.reader, ctx.input);
    let period = input.period;
    let c = reader.catalog();
    let mut out: Vec<Table> = Vec::new();

    // (a) Cloudflare's audit log.
    let filter = DecisionFilter {
        datasets: AUDIT_DATASETS.iter().map(|d| (*d).to_owned()).collect(),
        ..DecisionFilter::default()
    };
    let audit = reader.decisions(period, &filter).await?;
    let mut ipe = audit.ipe;
    reader.reconcile_population(&mut ipe, period, &filter).await?;
    let audit_table = tables::from_rows(
        "cc8.1-cloudflare-audit",
        "Changes in the Cloudflare account (audit log)",
        "Every event of Cloudflare's audit_logs / audit_logs_v2 datasets in the period, each once: who \
         changed what in the account (DNS, firewall, Access, Workers, …) and whether it succeeded.",
        &[
            ("event_id", "the audit log entry"),
            ("time_ms", "when"),
            ("principal", "who (actor e-mail, else actor id)"),
            ("principal_type", "user or service"),
            ("action", "the action type"),
            ("resource", "what was changed (cloudflare:type/id)"),
            ("decision", "allow: succeeded, deny: failed, log: result not given"),
            ("client_ip", "from where"),
            ("reason", "the action as Cloudflare describes it"),
            ("dataset", "audit_logs or audit_logs_v2"),
        ],
        &audit.rows,
        ipe,
    )?;
    let audit_sample = audit_table.sample(
        "cc8.1-cloudflare-audit-sample",
        "event_id",
        &input.seed,
        Frequency::Recurring,
        Risk::Lower,
    )?;
    let audit_n = audit_table.rows.len();
    out.push(audit_table);
    out.push(audit_sample);

    // (b) Detector versions that ran.
    let versions = reader.fetch(&c.versions_ran(period)?).await?;
    let counted = reader.fetch(&c.run_count(period)?).await?;
    let runs: u64 = versions.rows.iter().map(|v| v.runs).sum();
    let new: Vec<String> = versions
        .rows
        .iter()
        .filter(|v| v.new_in_period == 1)
        .map(|v| format!("{} {}", v.rule_id, v.rule_version))
        .collect();
    let mut ipe = versions.ipe;
    ipe.reconciliations.push(tally_check(
        "version_runs_match_detector_runs",
        "the runs of the versions listed against uniqExact(run_id) of detector_runs started in the period",
        runs,
        counted.rows.first().map_or(0, |r| r.n),
        &counted.ipe.sql,
    ));
    out.push(tables::from_rows(
        "cc8.1-detector-versions",
        "Detector versions that ran in the period",
        "Per kind, rule and version, from detector_runs: its first run ever (up to the period's end) and \
         its last in the period. A version whose first run is in the period (new_in_period = 1) was \
         changed or added in the period.",
        &[
            ("kind", "kind"),
            ("rule_id", "rule"),
            ("rule_version", "version"),
            ("first_run_ms", "first run ever"),
            ("last_run_ms", "last run in the period"),
            ("runs", "runs in the period"),
            ("runs_before", "runs before the period"),
            ("new_in_period", "1: first ran in the period"),
        ],
        &versions.rows,
        ipe,
    )?);

    // (c) Versions of rule, Sigma and policy files recorded by serve.
    let recorded = reader.fetch(&c.config_versions(period)?).await?;
    let before = reader.fetch(&c.config_versions_before(period)?).await?;
    let counted = reader.fetch(&c.config_version_count(period)?).await?;
    let list = changes(&recorded.rows, &before.rows);
    let mut ipe = recorded.ipe;
    ipe.reconciliations.push(tally_check(
        "config_versions_counted_once",
        "the versions listed against uniqExact(version_id) of config_versions recorded in the period (without FINAL)",
        list.len() as u64,
        counted.rows.first().map_or(0, |r| r.n),
        &counted.ipe.sql,
    ));
    let mut diff_ipe = tables::computed(
        "a line diff of each version of table cc8.1-config-versions against the version before it \
         (the one before the period from the query in this record's reconciliation)",
        input.as_of,
        list.len() as u64,
    );
    diff_ipe.reconciliations.push(tally_check(
        "diffs_cover_every_version",
        "the diffs shown against the versions listed",
        list.len() as u64,
        ipe.row_count,
        &before.ipe.sql,
    ));
    out.push(tables::from_rows(
        "cc8.1-config-versions",
        "Versions of rule, Sigma and policy files recorded in the period",
        "Written by gatelog serve into config_versions when it starts (rule and Sigma files) and every \
         minute (the proxy policy file) for each file whose SHA-256 differs from the one recorded last.",
        &[
            ("kind", "rule, sigma or policy"),
            ("name", "the file"),
            ("path", "where serve read it"),
            ("sha256", "SHA-256 of its bytes"),
            ("recorded_at_ms", "when serve recorded it"),
            ("recorded_by", "user@host of the serve process that noticed it"),
        ],
        &recorded.rows,
        ipe,
    )?);
    out.push(tables::from_rows(
        "cc8.1-config-diffs",
        "What each recorded version changed",
        "Lines removed (-) and added (+) against the version recorded before it, with a line of context; \
         a first version shows its whole text as added.",
        &[
            ("kind", "rule, sigma or policy"),
            ("name", "the file"),
            ("recorded_at_ms", "when recorded"),
            ("previous_sha256", "the version before (empty: none recorded)"),
            ("sha256", "this version"),
            ("lines_removed", "lines removed"),
            ("lines_added", "lines added"),
            ("diff", "the diff"),
        ],
        &list,
        diff_ipe,
    )?);

    let paragraphs = vec![
        "Changes are evidenced three ways: Cloudflare's own audit log of the account, the detector \
         versions gatelog ran, and the versions of gatelog's rule, Sigma and proxy policy files."
            .to_owned(),
        format!(
            "{audit_n} audit log events in the period. {} detector versions ran, {} of them first in the period{}. \
             {} file versions recorded.",
            versions.rows.len(),
            new.len(),
            if new.is_empty() { String::new() } else { format!(" ({})", new.join(", ")) },
            list.len()
        ),
        "recorded_by is the operating-system account and host of the gatelog serve process that noticed \
         the new version (at its start for rule and Sigma files, within a minute for the policy file), not \
         necessarily the person who wrote the change: authorship and approval are in the change's review \
         (e.g. the repository the files are deployed from). A file changed and changed back between two \
         checks leaves no record; the audit log covers the Cloudflare account only as far as Cloudflare \
         delivered it (CC7.2's completeness)."
            .to_owned(),
    ];
    Ok(Section { id: "cc8.1".to_owned(), title: "CC8.1 Change management".to_owned(), paragraphs, tables: out })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, at: i64, content: &str) -> ConfigVersion {
        ConfigVersion {
            kind: "rule".into(),
            name: name.into(),
            sha256: gatelog_model::sha256_hex(content.as_bytes()),
            content: content.into(),
            recorded_at_ms: at,
            ..ConfigVersion::default()
        }
    }

    #[test]
    fn each_version_is_diffed_against_the_one_before() {
        let before = vec![v("a.toml", 1, "x = 1\ny = 2\n")];
        let versions = vec![v("a.toml", 10, "x = 1\ny = 3\n"), v("a.toml", 20, "x = 1\n"), v("b.toml", 15, "new\n")];
        let c = changes(&versions, &before);
        assert_eq!(c[0].diff, " x = 1\n-y = 2\n+y = 3");
        assert_eq!(c[0].previous_sha256, before[0].sha256);
        assert_eq!((c[1].lines_removed, c[1].lines_added), (1, 0));
        assert_eq!(c[1].previous_sha256, versions[0].sha256);
        assert_eq!((c[2].diff.as_str(), c[2].previous_sha256.as_str()), ("+new", ""));
    }
}
