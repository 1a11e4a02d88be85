//! A generated report as files and as a signed bundle: what `gatelog report soc2` writes to
//! its output folder and what `GET /v1/reports/soc2` answers.

use crate::bundle::{BundleBuilder, BundleError};
use crate::render::{self, Content, RenderError, RenderOptions};
use crate::sign::SigningKey;
use crate::table::Report;
use gatelog_model::UnixMillis;

/// The renderings of `report`: `report.html`, `report.md`, `report.json`, `csv/<table>.csv`
/// (a spilled population's CSV stays on disk), sorted by path.
pub fn render_files(report: &Report) -> Result<Vec<(String, Content)>, RenderError> {
    render::files(report, RenderOptions::default())
}

/// The signed evidence bundle of `report`'s files: the parameters and the period's chain
/// head go into the manifest. Same report, same key: the same bytes.
pub fn bundle(report: &Report, files: &[(String, Content)], key: &SigningKey) -> Result<Vec<u8>, BundleError> {
    let mut b = BundleBuilder::new(&report.gatelog_version);
    b.parameter("report", "soc2");
    b.parameter("period", report.period.clone());
    b.parameter("regenerate", report.regenerate.clone());
    for (name, value) in &report.parameters {
        b.parameter(name, value.clone());
    }
    if let Some(head) = &report.chain_head {
        b.chain_head(head.clone());
    }
    for (path, content) in files {
        match content {
            Content::Bytes(bytes) => b.add_bytes(path, bytes.clone())?,
            Content::File(file) => b.add_file(path, file)?,
        };
    }
    b.to_bytes(key)
}

/// The bundle's file name for a period: `gatelog-soc2-<from>-<to>.zip` (compact UTC times).
pub fn bundle_name(from: UnixMillis, to: UnixMillis) -> String {
    let compact = |t: UnixMillis| -> String {
        t.to_rfc3339().chars().filter(|c| c.is_ascii_alphanumeric()).take(15).collect::<String>() + "Z"
    };
    format!("gatelog-soc2-{}-{}.zip", compact(from), compact(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_names_are_compact_and_file_safe() {
        let name = bundle_name(UnixMillis(1_767_225_600_000), UnixMillis(1_775_001_600_000));
        assert_eq!(name, "gatelog-soc2-20260101T000000Z-20260401T000000Z.zip");
    }
}
