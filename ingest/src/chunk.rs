//! [`Chunk`]: lines copied out of a [`LineReader`]'s buffer so they can be mapped in parallel.
//!
//! `gatelog ingest` cuts a file into chunks, one per stored batch (the unit of idempotence:
//! running it twice over a file produces the same batches, and the second run stores
//! nothing); the HTTP receiver reads a whole request body into one. Line splitting and the
//! per-line length cap are [`LineReader`]'s.

use crate::{DecodeError, Line, LineReader};
use std::io::BufRead;
use std::ops::Range;

/// Up to `batch_lines` lines stored back to back, each followed by `\n`.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The lines (without `\r`; over-long ones cut at the cap), each followed by `\n`.
    pub bytes: Vec<u8>,
    /// Per line: its number in the file, its span in `bytes` (without the `\n`), and its
    /// full length when it was over the cap.
    pub lines: Vec<(u64, Range<usize>, Option<u64>)>,
}

impl Chunk {
    /// An empty chunk whose buffers already hold a whole batch, so filling it neither
    /// reallocates nor (once recycled) faults in fresh pages.
    pub fn with_capacity(batch_lines: usize, batch_bytes: usize) -> Self {
        Chunk { bytes: Vec::with_capacity(batch_bytes), lines: Vec::with_capacity(batch_lines) }
    }

    /// The line at `index`, as the mapper expects it.
    pub fn line(&self, index: usize) -> Option<Line<'_>> {
        let (no, span, overlong) = self.lines.get(index)?;
        Some(Line { no: *no, bytes: self.bytes.get(span.clone())?, overlong: *overlong })
    }
}

/// Reads the next batch into `chunk` (emptied first, its buffers reused): at most
/// `batch_lines` lines, and no more lines once it holds `batch_bytes`; `Ok(None)` at the end.
pub fn next_chunk<R: BufRead>(
    reader: &mut LineReader<R>,
    batch_lines: usize,
    batch_bytes: usize,
    mut chunk: Chunk,
) -> Result<Option<Chunk>, DecodeError> {
    chunk.bytes.clear();
    chunk.lines.clear();
    while chunk.lines.len() < batch_lines.max(1) && chunk.bytes.len() < batch_bytes.max(1) {
        let Some(line) = reader.next_line()? else { break };
        let start = chunk.bytes.len();
        chunk.bytes.extend_from_slice(line.bytes);
        chunk.lines.push((line.no, start..chunk.bytes.len(), line.overlong));
        chunk.bytes.push(b'\n');
    }
    Ok((!chunk.lines.is_empty()).then_some(chunk))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(chunk: &Chunk) -> Vec<String> {
        (0..chunk.lines.len()).map(|i| String::from_utf8_lossy(chunk.line(i).unwrap().bytes).into_owned()).collect()
    }

    #[test]
    fn cuts_whole_lines_into_batches_and_keeps_numbers() {
        let mut reader = LineReader::new(&b"a\r\nbb\n\nccc"[..], 100);
        let first = next_chunk(&mut reader, 2, usize::MAX, Chunk::default()).unwrap().unwrap();
        assert_eq!(text(&first), ["a", "bb"]);
        assert_eq!(first.bytes, b"a\nbb\n");
        let second = next_chunk(&mut reader, 2, usize::MAX, Chunk::default()).unwrap().unwrap();
        assert_eq!(text(&second), ["", "ccc"]);
        assert_eq!(second.line(1).unwrap().no, 4);
        assert!(next_chunk(&mut reader, 2, usize::MAX, Chunk::default()).unwrap().is_none());
    }

    #[test]
    fn a_recycled_chunk_starts_empty_and_keeps_its_buffer() {
        let mut reader = LineReader::new(&b"aaaa\nbb\n"[..], 100);
        let first = next_chunk(&mut reader, 1, usize::MAX, Chunk::with_capacity(4, 1024)).unwrap().unwrap();
        assert_eq!(text(&first), ["aaaa"]);
        let second = next_chunk(&mut reader, 1, usize::MAX, first).unwrap().unwrap();
        assert_eq!(text(&second), ["bb"]);
        assert_eq!(second.bytes, b"bb\n");
        assert!(second.bytes.capacity() >= 1024, "the buffer was reused");
    }

    #[test]
    fn over_long_lines_keep_only_their_head() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\nok\n");
        let mut reader = LineReader::new(&input[..], 100);
        let chunk = next_chunk(&mut reader, 10, usize::MAX, Chunk::default()).unwrap().unwrap();
        assert_eq!(chunk.line(0).unwrap().overlong, Some(10_000));
        assert_eq!(chunk.line(0).unwrap().bytes.len(), 100);
        assert_eq!(chunk.line(1).unwrap().bytes, b"ok");
        assert!(chunk.bytes.len() < 200, "the long line is not buffered");
    }

    #[test]
    fn a_byte_budget_closes_the_batch_early() {
        let mut reader = LineReader::new(&b"aaaa\nbbbb\ncccc\n"[..], 100);
        let first = next_chunk(&mut reader, 100, 6, Chunk::default()).unwrap().unwrap();
        assert_eq!(text(&first), ["aaaa", "bbbb"], "the line that crosses the budget is the last");
        assert_eq!(text(&next_chunk(&mut reader, 100, 6, Chunk::default()).unwrap().unwrap()), ["cccc"]);
    }
}
