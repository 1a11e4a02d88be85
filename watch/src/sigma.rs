//! Sigma rule files from disk (`detect.sigma_dir`): every `*.yml` / `*.yaml` of the
//! directory, in name order, parsed and checked by [`gatelog_detect::SigmaRules`]. The
//! binary loads them once at start into `DetectConfig::sigma_rules`, so `gatelog serve`,
//! `gatelog detect` and `gatelog rules list` see the same rules.

use gatelog_detect::{SigmaError, SigmaRules};
use std::path::{Path, PathBuf};

fn read(path: &Path) -> Result<String, SigmaError> {
    std::fs::read_to_string(path)
        .map_err(|e| SigmaError { file: path.display().to_string(), message: format!("cannot read: {e}") })
}

/// The Sigma files of `dir`, in name order.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, SigmaError> {
    let named = |message: String| SigmaError { file: dir.display().to_string(), message };
    let entries = std::fs::read_dir(dir).map_err(|e| named(format!("detect.sigma_dir cannot be read: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(named("detect.sigma_dir holds no *.yml or *.yaml Sigma rule file".into()));
    }
    Ok(files)
}

/// Parses the given files (their paths, as given, name them in messages).
pub fn load_files(paths: &[PathBuf]) -> Result<SigmaRules, SigmaError> {
    let texts = paths.iter().map(|p| Ok((p.display().to_string(), read(p)?))).collect::<Result<Vec<_>, _>>()?;
    SigmaRules::parse(texts)
}

/// The rules of `detect.sigma_dir`; none when it is unset.
pub fn load(dir: Option<&Path>) -> Result<SigmaRules, SigmaError> {
    match dir {
        Some(dir) => load_files(&files(dir)?),
        None => Ok(SigmaRules::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_examples_load_and_a_bad_file_is_named() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/sigma/examples");
        let rules = load(Some(&dir)).unwrap();
        assert_eq!(rules.rules().len(), 4);
        let tmp = tempfile::tempdir().unwrap();
        assert!(load(Some(tmp.path())).unwrap_err().to_string().contains("holds no"));
        let bad = tmp.path().join("b.yml");
        std::fs::write(
            &bad,
            "title: x\nlogsource:\n    product: gatelog\ndetection:\n    s:\n        nope: 1\n    condition: s\n",
        )
        .unwrap();
        let e = load(Some(tmp.path())).unwrap_err();
        assert_eq!(e.file, bad.display().to_string());
        assert!(e.message.contains("field \"nope\""), "{e}");
        assert!(load(Some(&tmp.path().join("missing"))).unwrap_err().to_string().contains("detect.sigma_dir"));
    }
}
