//! What `gatelog ingest` tells the user: a progress bar while it runs, a summary at the end.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of one file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FileReport {
    pub lines: u64,
    pub decisions: u64,
    pub raw: u64,
    pub dead_letters: u64,
    pub probes: u64,
    pub warnings: u64,
    pub batches_written: u64,
    pub batches_skipped: u64,
    pub bytes: u64,
}

/// What one body of a file became (mapped here, or as the server answered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub lines: u64,
    pub bytes: u64,
    pub decisions: u64,
    pub raw: u64,
    pub dead_letters: u64,
    pub probes: u64,
    pub warnings: u64,
}

impl FileReport {
    /// A body with nothing to store (only probes and blank lines): counted, not written.
    pub fn add_unstored(&mut self, batch: &BatchCounts) {
        self.lines += batch.lines;
        self.bytes += batch.bytes;
        self.probes += batch.probes;
    }

    /// A batch appended to the spool (or posted), or `skipped` as already stored.
    pub fn add_batch(&mut self, batch: &BatchCounts, skipped: bool) {
        self.lines += batch.lines;
        self.bytes += batch.bytes;
        self.warnings += batch.warnings;
        if skipped {
            self.batches_skipped += 1;
            return;
        }
        self.batches_written += 1;
        self.decisions += batch.decisions;
        self.raw += batch.raw;
        self.dead_letters += batch.dead_letters;
        self.probes += batch.probes;
    }
}

/// Counts of a whole run: the per-file reports and their sum.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Totals {
    /// Per file: its name, its dataset and its counts.
    pub per_file: Vec<(String, String, FileReport)>,
    pub files: u64,
    pub sum: FileReport,
    pub seconds: f64,
    /// `--server`: the server the batches were posted to (it skips those it has stored).
    pub sent_to: Option<String>,
}

impl FileReport {
    fn add(&mut self, f: &FileReport) {
        self.lines += f.lines;
        self.decisions += f.decisions;
        self.raw += f.raw;
        self.dead_letters += f.dead_letters;
        self.probes += f.probes;
        self.warnings += f.warnings;
        self.batches_written += f.batches_written;
        self.batches_skipped += f.batches_skipped;
        self.bytes += f.bytes;
    }
}

impl Totals {
    pub fn add(&mut self, name: String, dataset: &str, f: FileReport) {
        self.files += 1;
        self.sum.add(&f);
        self.per_file.push((name, dataset.to_owned(), f));
    }

    /// The final summary, one fact per line, stable enough for scripts to grep.
    pub fn render(&self) -> String {
        let secs = self.seconds.max(1e-9);
        let mut out = String::new();
        if self.per_file.len() > 1 {
            out.push_str(&format!("{:<36}{:<22}{:>9}{:>11}{:>7}\n", "file", "dataset", "lines", "decisions", "dead"));
            for (name, dataset, f) in &self.per_file {
                let skipped = if f.batches_written == 0 && f.batches_skipped > 0 { "  (already stored)" } else { "" };
                out.push_str(&format!(
                    "{name:<36}{dataset:<22}{:>9}{:>11}{:>7}{skipped}\n",
                    f.lines, f.decisions, f.dead_letters
                ));
            }
            out.push('\n');
        }
        let mut line = |k: &str, v: String| out.push_str(&format!("{k:<16}{v}\n"));
        line("files", self.files.to_string());
        line("lines read", self.sum.lines.to_string());
        line("decisions", self.sum.decisions.to_string());
        line("raw rows", self.sum.raw.to_string());
        line("dead letters", self.sum.dead_letters.to_string());
        line("probes skipped", self.sum.probes.to_string());
        if self.sum.warnings > 0 {
            line("warnings", format!("{} (partial records kept raw; see the log)", self.sum.warnings));
        }
        match &self.sent_to {
            Some(server) => {
                line("batches", format!("{} posted to {server} (it stores each once)", self.sum.batches_written))
            }
            None => line(
                "batches",
                format!("{} written, {} already stored", self.sum.batches_written, self.sum.batches_skipped),
            ),
        }
        line("seconds", format!("{:.2}", self.seconds));
        line(
            "rows/s",
            format!("{:.0} ({:.1} MB/s of NDJSON)", self.sum.lines as f64 / secs, self.sum.bytes as f64 / secs / 1e6),
        );
        out
    }
}

/// Counts bytes read from the (compressed) file, for the progress bar.
#[derive(Debug)]
pub struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> CountingReader<R> {
    pub fn new(inner: R, count: Arc<AtomicU64>) -> Self {
        CountingReader { inner, count }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A bar over the file's bytes, drawn only on a terminal and only when wanted.
pub fn progress_bar(wanted: bool, size: u64, path: &Path) -> ProgressBar {
    if !wanted {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_every_count() {
        let t = Totals {
            files: 1,
            sum: FileReport {
                lines: 10,
                decisions: 8,
                raw: 9,
                dead_letters: 1,
                bytes: 2_000_000,
                ..FileReport::default()
            },
            seconds: 2.0,
            ..Totals::default()
        };
        let text = t.render();
        for needle in [
            "lines read      10",
            "decisions       8",
            "raw rows        9",
            "dead letters    1",
            "rows/s          5 (1.0 MB/s",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
    }
}
