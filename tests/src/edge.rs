//! Helpers for the tests of `gatelog serve`'s edge (memory, connections, shutdown): the
//! server's resident memory from `/proc`, and raw HTTP/1.1 over loopback sockets, for the
//! clients a polite HTTP library will not be (slow, idle, unfinished).

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The peak resident memory of a process over one stretch of a test: `VmHWM` reset to the
/// current RSS at the start (`clear_refs` 5, which the process's owner may write), read at
/// the end.
#[derive(Debug)]
pub struct PeakRss {
    pid: u32,
    /// RSS when the stretch started.
    pub baseline: u64,
    /// Whether `VmHWM` could be reset (if not, the peak is since the process started).
    pub reset: bool,
}

impl PeakRss {
    pub fn start(pid: u32) -> PeakRss {
        let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        PeakRss { pid, baseline: proc_status_bytes(pid, "VmRSS"), reset }
    }

    /// The peak since [`PeakRss::start`], in bytes.
    pub fn peak(&self) -> u64 {
        proc_status_bytes(self.pid, "VmHWM")
    }

    /// The peak above the baseline, in bytes.
    pub fn growth(&self) -> u64 {
        self.peak().saturating_sub(self.baseline)
    }
}

/// Bytes as MiB with one decimal, for printed figures.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The head of a `POST` with a bearer token and, if given, a `Content-Length`.
pub fn post_head(path: &str, token: &str, content_length: Option<u64>, extra: &[(&str, &str)]) -> String {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n");
    if let Some(n) = content_length {
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// An answer read off a raw connection: its status (0 if none came) and body text.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub status: u16,
    pub text: String,
}

/// Reads from `stream` until the peer closes it (or `limit` passes) and parses whatever
/// HTTP answer came. Returns the answer and when the peer closed (`None` on `limit`).
pub async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (RawAnswer, Option<Instant>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let closed = loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break Some(Instant::now()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break None,
        }
    };
    (parse_answer(&got), closed)
}

/// The status and body of raw HTTP/1.1 answer bytes.
pub fn parse_answer(bytes: &[u8]) -> RawAnswer {
    let text = String::from_utf8_lossy(bytes);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    RawAnswer { status, text: body }
}

/// Sends a whole request on a fresh connection (`Connection: close`) and reads the answer.
/// The answer is read while the body is still being written: a server that answers early
/// (413, 503) and closes would otherwise reset the connection under the unread answer.
pub async fn raw_request(addr: &str, head: &str, body: &[u8]) -> RawAnswer {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let mut request = head.replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1).into_bytes();
    request.extend_from_slice(body);
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&request).await;
        write
    });
    let answer = read_to_end(&mut read, Duration::from_secs(120)).await;
    writer.abort();
    answer
}

/// Reads a raw answer off a read half until the peer closes (or `limit` passes).
pub async fn read_to_end<R: tokio::io::AsyncRead + Unpin>(read: &mut R, limit: Duration) -> RawAnswer {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, read.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    parse_answer(&got)
}

/// gzip (fast) of `pattern` repeated to `total` bytes, compressed as it is produced.
pub fn gzip_repeated(pattern: &[u8], total: u64) -> Vec<u8> {
    use std::io::Write;
    let block = pattern.repeat((1 << 20) / pattern.len().max(1));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut written = 0u64;
    while written < total {
        let n = usize::try_from((total - written).min(block.len() as u64)).unwrap_or(block.len());
        gz.write_all(&block[..n]).expect("gzip");
        written += n as u64;
    }
    gz.finish().expect("gzip")
}
