//! Whole bodies and files: decode, split, map every line, collect.
//!
//! [`map_reader`] streams any reader (a backfilled Logpush file, a request body) through
//! [`BodyReader`] and [`LineReader`] and hands each line's [`LineOutcome`] to a callback;
//! [`map_body`] does the same for an in-memory body and collects a [`BodyOutcome`] (what the
//! HTTP receiver needs to answer a batch). Bad lines become dead letters; only a body that
//! cannot be read (too large once inflated, corrupt gzip, I/O) is an error.

use crate::Dataset;
use crate::decode::{BodyReader, DEFAULT_MAX_DECOMPRESSED, DEFAULT_MAX_LINE, DecodeError, Line, LineReader};
use crate::map::{LineContext, LineOutcome, dead_letter, map_line_bytes};
use crate::window::TimeWindow;
use gatelog_model::{AccessDecision, DeadLetter, RawRecord, Source, UnixMillis};
use std::io::{BufReader, Read};

/// Caps for one body or file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum size after decompression (plain bodies: their size).
    pub max_decompressed: u64,
    /// Maximum length of one line; longer lines become dead letters.
    pub max_line: usize,
    /// Event times accepted around `received_at`; lines outside become dead letters.
    pub window: TimeWindow,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_decompressed: DEFAULT_MAX_DECOMPRESSED, max_line: DEFAULT_MAX_LINE, window: TimeWindow::default() }
    }
}

/// Where a body came from and when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct BodyContext<'a> {
    pub received_at: UnixMillis,
    /// A file name or an endpoint, for dead letters.
    pub origin: &'a str,
    pub source: Source,
    pub limits: Limits,
}

/// Everything one body mapped to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyOutcome {
    pub decisions: Vec<AccessDecision>,
    /// Per decision, the number of the line it was mapped from.
    pub decision_lines: Vec<u32>,
    /// One per usable line, in line order.
    pub raw: Vec<RawRecord>,
    pub dead_letters: Vec<DeadLetter>,
    /// Validation probes seen (stored nowhere).
    pub probes: u64,
    /// Empty or whitespace-only lines.
    pub blanks: u64,
    /// Lines read, of every kind.
    pub lines: u64,
    /// Partial problems in usable lines, each prefixed with `line N: `.
    pub warnings: Vec<String>,
}

impl BodyOutcome {
    /// Whether the body was only the Logpush validation probe (answer 2xx, store nothing).
    pub fn is_probe_only(&self) -> bool {
        self.probes > 0 && self.raw.is_empty() && self.dead_letters.is_empty()
    }

    /// Adds one line's outcome.
    pub fn push(&mut self, line_no: u64, outcome: LineOutcome) {
        self.lines += 1;
        match outcome {
            LineOutcome::Mapped { decisions, raw, warnings } => {
                let no = u32::try_from(line_no).unwrap_or(u32::MAX);
                self.decision_lines.extend(decisions.iter().map(|_| no));
                self.decisions.extend(decisions);
                self.raw.push(raw);
                self.warnings.extend(warnings.into_iter().map(|w| format!("line {line_no}: {w}")));
            }
            LineOutcome::Probe => self.probes += 1,
            LineOutcome::Blank => self.blanks += 1,
            LineOutcome::Dead(dead) => self.dead_letters.push(dead),
        }
    }
}

/// Maps one line from a [`LineReader`], dead-lettering an over-long one and one whose event
/// time is outside `ctx.limits.window`.
pub fn map_split_line(dataset: Dataset, line: Line<'_>, ctx: &BodyContext<'_>) -> LineOutcome {
    let line_ctx =
        LineContext { received_at: ctx.received_at, origin: ctx.origin, line_no: line.no, source: ctx.source };
    match line.overlong {
        Some(len) => dead_letter(
            dataset,
            &line_ctx,
            line.bytes,
            format!(
                "line is {len} bytes, over the limit of {} bytes (only its first {} bytes are kept)",
                ctx.limits.max_line,
                line.bytes.len()
            ),
        ),
        None => ctx.limits.window.apply(map_line_bytes(dataset, line.bytes, &line_ctx), ctx.origin, line.no),
    }
}

/// Streams `reader` (gzip or plain) line by line, calling `each(line_no, outcome)` for
/// every line. Returns the number of lines read.
pub fn map_reader<R: Read>(
    dataset: Dataset,
    reader: R,
    ctx: &BodyContext<'_>,
    mut each: impl FnMut(u64, LineOutcome),
) -> Result<u64, DecodeError> {
    let body = BodyReader::new(reader, ctx.limits.max_decompressed)?;
    let mut lines = LineReader::new(BufReader::with_capacity(256 * 1024, body), ctx.limits.max_line);
    while let Some(line) = lines.next_line()? {
        let no = line.no;
        each(no, map_split_line(dataset, line, ctx));
    }
    Ok(lines.line_no())
}

/// Maps a whole in-memory body (gzip detected by its magic bytes, or plain NDJSON).
///
/// Errors only when the body itself is unusable: [`DecodeError::TooLarge`] (answer 413) or
/// [`DecodeError::Corrupt`] (answer 400; Logpush retries). Bad lines are dead letters in
/// the outcome.
pub fn map_body(dataset: Dataset, body: &[u8], ctx: &BodyContext<'_>) -> Result<BodyOutcome, DecodeError> {
    let mut out = BodyOutcome::default();
    if crate::decode::is_gzip(body) {
        map_reader(dataset, body, ctx, |no, outcome| out.push(no, outcome))?;
        return Ok(out);
    }
    if body.len() as u64 > ctx.limits.max_decompressed {
        return Err(DecodeError::TooLarge { limit: ctx.limits.max_decompressed });
    }
    // Plain bytes in memory: split in place, no copy.
    let mut lines = LineReader::new(body, ctx.limits.max_line);
    while let Some(line) = lines.next_line()? {
        let no = line.no;
        let outcome = map_split_line(dataset, line, ctx);
        out.push(no, outcome);
    }
    Ok(out)
}
