//! [`Chunk`]: lines copied out of a [`LineReader`]'s buffer so they can be mapped in parallel
//! (the receiver cuts a body into pieces of 128 lines); [`next_body`]: a file cut into bodies
//! of whole lines, as a sender would post them.
//!
//! `gatelog ingest` cuts a file into bodies, one per batch (the unit of idempotence: running
//! it twice over a file produces the same bodies, so the same batch ids, and the store keeps
//! the second copy of none), and maps each as the receiver maps a request body
//! ([`crate::batcher`]). Line splitting and the per-line length cap are [`LineReader`]'s.

use crate::{DecodeError, Line, LineReader};
use std::io::{self, BufRead};
use std::ops::Range;

/// Whole lines cut out of a file, their bytes as the file has them (`\r\n` included).
#[derive(Debug, Default)]
pub struct FileBody {
    pub bytes: Vec<u8>,
    /// Lines of the file before this body's first.
    pub lines_before: u64,
    /// Lines in the body (a last line without `\n` counts).
    pub lines: u64,
}

/// Reads the next body into `buf` (emptied first, its allocation reused): at most
/// `batch_lines` lines, and no more lines once it holds `batch_bytes`; `Ok(None)` at the end.
/// A line longer than `max_line` keeps only its first `max_line + 2` bytes (it is a dead
/// letter either way, and the body's memory stays bounded): the only case where the body's
/// bytes differ from the file's.
pub fn next_body<R: BufRead>(
    reader: &mut R,
    lines_before: u64,
    (batch_lines, batch_bytes): (usize, usize),
    max_line: usize,
    mut buf: Vec<u8>,
) -> Result<Option<FileBody>, DecodeError> {
    buf.clear();
    let keep = max_line.saturating_add(2);
    let mut lines = 0u64;
    while lines < batch_lines.max(1) as u64 && buf.len() < batch_bytes.max(1) {
        let (mut kept, mut saw_any) = (0usize, false);
        loop {
            let avail = match reader.fill_buf() {
                Ok(avail) => avail,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if avail.is_empty() {
                break;
            }
            saw_any = true;
            let (end, newline) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            let take = end.min(keep - kept);
            buf.extend_from_slice(&avail[..take]);
            kept += take;
            if newline {
                buf.push(b'\n');
            }
            reader.consume(if newline { end + 1 } else { end });
            if newline {
                break;
            }
        }
        if !saw_any {
            break;
        }
        lines += 1;
    }
    Ok((lines > 0).then_some(FileBody { bytes: buf, lines_before, lines }))
}

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

    fn bodies(input: &[u8], lines: usize, bytes: usize, max_line: usize) -> Vec<FileBody> {
        let mut reader = input;
        let (mut out, mut before) = (Vec::new(), 0);
        while let Some(body) = next_body(&mut reader, before, (lines, bytes), max_line, Vec::new()).unwrap() {
            before += body.lines;
            out.push(body);
        }
        out
    }

    #[test]
    fn bodies_are_the_files_bytes_cut_at_line_ends() {
        let input = b"a\r\nbb\n\nccc\ndd";
        let cut = bodies(input, 2, usize::MAX, 100);
        let texts: Vec<&[u8]> = cut.iter().map(|b| &b.bytes[..]).collect();
        assert_eq!(texts, [&b"a\r\nbb\n"[..], b"\nccc\n", b"dd"]);
        assert_eq!(cut.iter().map(|b| (b.lines_before, b.lines)).collect::<Vec<_>>(), [(0, 2), (2, 2), (4, 1)]);
        assert_eq!(cut.concat_bytes(), input, "joined, the bodies are the file");
        let by_bytes = bodies(input, 100, 4, 100);
        assert_eq!(by_bytes[0].bytes, b"a\r\nbb\n", "the line that crosses the byte budget is the last");
        assert!(bodies(b"", 10, 10, 10).is_empty());
    }

    #[test]
    fn an_over_long_line_keeps_its_head_and_stays_over_long() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\nok\n");
        let cut = bodies(&input, 10, usize::MAX, 100);
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].bytes.len(), 102 + 1 + 3);
        let mut lines = LineReader::new(&cut[0].bytes[..], 100).starting_after(7);
        let first = lines.next_line().unwrap().unwrap();
        assert_eq!((first.no, first.overlong.is_some()), (8, true));
        assert_eq!(lines.next_line().unwrap().unwrap().bytes, b"ok");
    }

    trait Concat {
        fn concat_bytes(&self) -> Vec<u8>;
    }

    impl Concat for Vec<FileBody> {
        fn concat_bytes(&self) -> Vec<u8> {
            self.iter().flat_map(|b| b.bytes.iter().copied()).collect()
        }
    }

    #[test]
    fn a_byte_budget_closes_the_batch_early() {
        let mut reader = LineReader::new(&b"aaaa\nbbbb\ncccc\n"[..], 100);
        let first = next_chunk(&mut reader, 100, 6, Chunk::default()).unwrap().unwrap();
        assert_eq!(text(&first), ["aaaa", "bbbb"], "the line that crosses the budget is the last");
        assert_eq!(text(&next_chunk(&mut reader, 100, 6, Chunk::default()).unwrap().unwrap()), ["cccc"]);
    }
}
