//! Bodies and files to lines: gzip detection, capped decompression, line splitting.
//!
//! Logpush bodies are always gzip but the header that says so is undocumented, so
//! [`BodyReader`] sniffs the magic bytes `1f 8b` and inflates every gzip member
//! (`MultiGzDecoder`: concatenated files are one stream). Plain bodies pass through. Either
//! way the decompressed size is capped ([`DecodeError::TooLarge`]: a gzip bomb costs at most
//! the cap), and a gzip stream that is cut short or corrupt is [`DecodeError::Corrupt`].
//!
//! [`LineReader`] splits a [`BufRead`] into lines on `\n` (dropping a `\r` before it),
//! yields a last line without a newline, and caps a line's length: an over-long line is
//! returned as a prefix with its full length so the caller can dead-letter it and go on.

use flate2::bufread::MultiGzDecoder;
use std::io::{self, BufRead, BufReader, Chain, Cursor, Read};

/// Default cap on a decompressed body: 256 MiB.
pub const DEFAULT_MAX_DECOMPRESSED: u64 = 256 * 1024 * 1024;
/// Default cap on one line: 1 MiB (Worker events stay under ~40 KiB; http_requests ~2 KiB).
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

/// Why a body could not be read to the end.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body (after decompression) is larger than the cap.
    #[error("body is larger than the limit of {limit} bytes once decompressed")]
    TooLarge { limit: u64 },
    /// The gzip stream is cut short or corrupt.
    #[error("gzip stream is truncated or corrupt{}: {detail}", at_offset(*.offset))]
    Corrupt {
        /// Compressed bytes consumed when the error was found, if known.
        offset: Option<u64>,
        detail: String,
    },
    /// The underlying reader failed.
    #[error("read failed: {0}")]
    Io(#[source] io::Error),
}

fn at_offset(offset: Option<u64>) -> String {
    offset.map(|o| format!(" at compressed byte {o}")).unwrap_or_default()
}

impl From<io::Error> for DecodeError {
    fn from(error: io::Error) -> Self {
        if error.get_ref().is_some_and(|inner| inner.is::<DecodeError>()) {
            if let Some(inner) = error.into_inner()
                && let Ok(decode) = inner.downcast::<DecodeError>()
            {
                return *decode;
            }
            return DecodeError::Io(io::Error::other("decode error lost its payload"));
        }
        DecodeError::Io(error)
    }
}

/// Whether bytes start with the gzip magic `1f 8b`.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// A [`BufRead`] that counts the bytes its consumer took (the compressed offset).
#[derive(Debug)]
struct Counting<R> {
    inner: R,
    consumed: u64,
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.consumed += amt as u64;
        self.inner.consume(amt);
    }
}

type Source<R> = BufReader<Chain<Cursor<Vec<u8>>, R>>;

#[derive(Debug)]
enum Inner<R: Read> {
    Plain(Source<R>),
    Gzip(Box<MultiGzDecoder<Counting<Source<R>>>>),
}

/// A body as plain bytes: gunzipped when it starts with the gzip magic, capped in size.
#[derive(Debug)]
pub struct BodyReader<R: Read> {
    inner: Inner<R>,
    limit: u64,
    produced: u64,
}

impl<R: Read> BodyReader<R> {
    /// Peeks at the first two bytes to choose gzip or plain; `limit` caps the output.
    pub fn new(mut reader: R, limit: u64) -> Result<Self, DecodeError> {
        let mut magic = [0u8; 2];
        let mut got = 0;
        while got < magic.len() {
            match reader.read(&mut magic[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DecodeError::Io(e)),
            }
        }
        let prefix = magic[..got].to_vec();
        let gzip = is_gzip(&prefix);
        let source = BufReader::with_capacity(64 * 1024, Cursor::new(prefix).chain(reader));
        let inner = if gzip {
            Inner::Gzip(Box::new(MultiGzDecoder::new(Counting { inner: source, consumed: 0 })))
        } else {
            Inner::Plain(source)
        };
        Ok(BodyReader { inner, limit, produced: 0 })
    }

    /// Whether the body was gzip.
    pub fn is_gzip(&self) -> bool {
        matches!(self.inner, Inner::Gzip(_))
    }

    /// Decompressed bytes produced so far.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(r) => r.read(buf),
            Inner::Gzip(gz) => gz.read(buf).map_err(|e| match e.kind() {
                io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                    io::Error::other(DecodeError::Corrupt {
                        offset: Some(gz.get_ref().consumed),
                        detail: e.to_string(),
                    })
                }
                _ => e,
            }),
        }
    }
}

impl<R: Read> Read for BodyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let room = self.limit.saturating_sub(self.produced);
        if room == 0 {
            // At the cap: the body is fine only if nothing follows.
            let mut probe = [0u8; 1];
            return match self.read_inner(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(DecodeError::TooLarge { limit: self.limit })),
            };
        }
        let max = usize::try_from(room).unwrap_or(usize::MAX).min(buf.len());
        let n = self.read_inner(&mut buf[..max])?;
        self.produced += n as u64;
        Ok(n)
    }
}

/// One line from a [`LineReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based line number (blank lines count).
    pub no: u64,
    /// The line without `\n` / `\r\n`; for an over-long line, its first `max_line` bytes.
    pub bytes: &'a [u8],
    /// For an over-long line, its full length in bytes.
    pub overlong: Option<u64>,
}

/// Splits a [`BufRead`] into [`Line`]s (a lending iterator: call [`LineReader::next_line`]).
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    max_line: usize,
    line_no: u64,
    buf: Vec<u8>,
    /// Bytes of the reader's buffer lent out by the previous line, consumed on the next call.
    pending: usize,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(reader: R, max_line: usize) -> Self {
        LineReader { reader, max_line, line_no: 0, buf: Vec::new(), pending: 0 }
    }

    /// Numbers lines after `lines_before`: a body cut out of a file keeps the file's line
    /// numbers (in dead letters) when the cut's first line is `lines_before + 1`.
    pub fn starting_after(mut self, lines_before: u64) -> Self {
        self.line_no = lines_before;
        self
    }

    /// Lines returned so far.
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The next line, `Ok(None)` at the end.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, DecodeError> {
        if self.pending > 0 {
            self.reader.consume(self.pending);
            self.pending = 0;
        }
        // Fast path: the whole line is already in the reader's buffer; lend it, no copy.
        let mut fast = None;
        match self.reader.fill_buf() {
            Ok([]) => return Ok(None),
            Ok(avail) => {
                fast = memchr::memchr(b'\n', avail).filter(|&i| i <= self.max_line.saturating_add(1));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(i) = fast {
            self.line_no += 1;
            self.pending = i + 1;
            // A buffered reader returns the same buffer again without reading.
            let avail = self.reader.fill_buf()?;
            let mut line = avail.get(..i).unwrap_or(avail);
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            if line.len() > self.max_line {
                let len = line.len() as u64;
                return Ok(Some(Line { no: self.line_no, bytes: &line[..self.max_line], overlong: Some(len) }));
            }
            return Ok(Some(Line { no: self.line_no, bytes: line, overlong: None }));
        }
        self.buf.clear();
        let mut total: u64 = 0;
        let mut saw_any = false;
        let mut last_byte = 0u8;
        loop {
            let avail = match self.reader.fill_buf() {
                Ok(avail) => avail,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if avail.is_empty() {
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            match memchr::memchr(b'\n', avail) {
                Some(i) => {
                    push(&mut self.buf, self.max_line, &avail[..i], &mut total, &mut last_byte);
                    self.reader.consume(i + 1);
                    break;
                }
                None => {
                    let n = avail.len();
                    push(&mut self.buf, self.max_line, avail, &mut total, &mut last_byte);
                    self.reader.consume(n);
                }
            }
        }
        self.line_no += 1;
        if last_byte == b'\r' && total > 0 {
            total -= 1;
            if self.buf.len() as u64 > total {
                self.buf.pop();
            }
        }
        let overlong = (total > self.max_line as u64).then_some(total);
        Ok(Some(Line { no: self.line_no, bytes: &self.buf, overlong }))
    }
}

/// Appends a chunk of the current line, keeping at most `max_line` bytes.
fn push(buf: &mut Vec<u8>, max_line: usize, chunk: &[u8], total: &mut u64, last_byte: &mut u8) {
    if let Some(&b) = chunk.last() {
        *last_byte = b;
    }
    *total += chunk.len() as u64;
    let room = max_line.saturating_sub(buf.len());
    buf.extend_from_slice(&chunk[..room.min(chunk.len())]);
}
