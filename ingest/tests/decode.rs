//! Bodies and files: gzip sniffing, multi-member gzip, decompression caps, truncated and
//! corrupt gzip, line splitting, and whole bodies with good and bad lines mixed.

mod common;

use common::{body_ctx, sample_bytes};
use flate2::Compression;
use flate2::write::GzEncoder;
use gatelog_ingest::{BodyReader, Dataset, DecodeError, Limits, LineReader, is_gzip, map_body, map_reader};
use std::io::{BufReader, Read, Write};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

fn read_all(body: &[u8], limit: u64) -> Result<Vec<u8>, DecodeError> {
    let mut reader = BodyReader::new(body, limit)?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out)?;
    Ok(out)
}

fn split(input: &[u8], capacity: usize, max_line: usize) -> Vec<(u64, Vec<u8>, Option<u64>)> {
    let mut lines = LineReader::new(BufReader::with_capacity(capacity, input), max_line);
    let mut out = Vec::new();
    while let Some(line) = lines.next_line().expect("reading memory") {
        out.push((line.no, line.bytes.to_vec(), line.overlong));
    }
    out
}

#[test]
fn gzip_magic() {
    assert!(is_gzip(&[0x1f, 0x8b, 0x08]));
    assert!(!is_gzip(&[0x1f]));
    assert!(!is_gzip(b"{\"a\":1}"));
    assert!(is_gzip(&sample_bytes("validation_probe.test.txt.gz")));
}

#[test]
fn the_validation_probe_body_is_a_probe_and_stores_nothing() {
    let body = sample_bytes("validation_probe.test.txt.gz");
    assert_eq!(read_all(&body, 1024).unwrap(), br#"{"content":"tests"}"#);
    for dataset in Dataset::ALL {
        let out = map_body(dataset, &body, &body_ctx("probe")).unwrap();
        assert_eq!((out.probes, out.lines), (1, 1), "{dataset}");
        assert!(out.is_probe_only() && out.raw.is_empty() && out.decisions.is_empty());
    }
    let out = map_body(Dataset::HttpRequests, b"test", &body_ctx("probe")).unwrap();
    assert!(out.is_probe_only());
}

#[test]
fn plain_bodies_pass_through_and_multi_member_gzip_is_one_stream() {
    assert_eq!(read_all(b"abc\n", 100).unwrap(), b"abc\n");
    assert_eq!(read_all(b"", 100).unwrap(), b"");
    assert_eq!(read_all(b"x", 100).unwrap(), b"x", "a one-byte body");
    let mut two = gzip(b"first\n");
    two.extend(gzip(b"second\n"));
    assert_eq!(read_all(&two, 100).unwrap(), b"first\nsecond\n");

    let text = String::from_utf8(sample_bytes("http_requests.ndjson")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut body = gzip(lines[..120].iter().map(|l| format!("{l}\n")).collect::<String>().as_bytes());
    body.extend(gzip(lines[120..].iter().map(|l| format!("{l}\n")).collect::<String>().as_bytes()));
    let out = map_body(Dataset::HttpRequests, &body, &body_ctx("two-members")).unwrap();
    assert_eq!((out.lines, out.decisions.len(), out.dead_letters.len()), (200, 200, 0));
}

#[test]
fn a_gzip_bomb_stops_at_the_cap() {
    let bomb = gzip(&vec![b'\n'; 20 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024, "small on the wire: {} bytes", bomb.len());
    let err = read_all(&bomb, 1024 * 1024).unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge { limit: 1_048_576 }), "{err:?}");
    assert_eq!(err.to_string(), "body is larger than the limit of 1048576 bytes once decompressed");

    let mut ctx = body_ctx("bomb");
    ctx.limits = Limits { max_decompressed: 1024 * 1024, max_line: 1024, ..Limits::default() };
    let err = map_body(Dataset::HttpRequests, &bomb, &ctx).unwrap_err();
    assert!(matches!(err, DecodeError::TooLarge { .. }), "{err:?}");
    // Plain bodies are capped too.
    ctx.limits.max_decompressed = 10;
    assert!(matches!(map_body(Dataset::HttpRequests, &[b' '; 11], &ctx), Err(DecodeError::TooLarge { limit: 10 })));
    // Exactly at the cap is fine.
    assert_eq!(read_all(&gzip(b"0123456789"), 10).unwrap(), b"0123456789");
    assert!(map_body(Dataset::HttpRequests, &[b' '; 10], &ctx).is_ok());
}

#[test]
fn truncated_and_corrupt_gzip_are_reported_with_an_offset() {
    let whole = sample_bytes("http_requests_5000.ndjson.gz");
    let cut = &whole[..whole.len() / 2];
    let err = read_all(cut, u64::MAX).unwrap_err();
    let DecodeError::Corrupt { offset: Some(offset), .. } = &err else { panic!("{err:?}") };
    assert!(*offset > 0 && *offset <= cut.len() as u64, "offset {offset}");
    assert!(err.to_string().starts_with("gzip stream is truncated or corrupt at compressed byte"), "{err}");

    // Streaming: the lines before the cut are delivered, then the error.
    let mut seen = 0;
    let result = map_reader(Dataset::HttpRequests, cut, &body_ctx("cut.gz"), |_, _| seen += 1);
    assert!(matches!(result, Err(DecodeError::Corrupt { .. })));
    assert!(seen > 1000, "{seen} lines before the cut");

    let mut corrupt = whole.clone();
    for b in &mut corrupt[100..400] {
        *b ^= 0x5a;
    }
    assert!(matches!(read_all(&corrupt, u64::MAX), Err(DecodeError::Corrupt { .. })));
    // Garbage after a complete member.
    let mut trailing = gzip(b"ok\n");
    trailing.extend_from_slice(b"\x1f\x8bnot gzip");
    assert!(matches!(read_all(&trailing, u64::MAX), Err(DecodeError::Corrupt { .. })));
}

#[test]
fn line_splitting() {
    for capacity in [1, 2, 3, 7, 64, 8192] {
        let lines = split(b"a\nbb\r\n\r\n\nccc", capacity, 100);
        let want: Vec<(u64, Vec<u8>, Option<u64>)> = vec![
            (1, b"a".to_vec(), None),
            (2, b"bb".to_vec(), None),
            (3, b"".to_vec(), None),
            (4, b"".to_vec(), None),
            (5, b"ccc".to_vec(), None),
        ];
        assert_eq!(lines, want, "capacity {capacity}");
        assert_eq!(split(b"x\n", capacity, 100), vec![(1, b"x".to_vec(), None)], "final newline ends the last line");
        assert!(split(b"", capacity, 100).is_empty());
        assert_eq!(split(b"\r\n", capacity, 100), vec![(1, Vec::new(), None)]);
        // A lone \r inside a line is kept.
        assert_eq!(split(b"a\rb\n", capacity, 100), vec![(1, b"a\rb".to_vec(), None)]);
        // Over-long lines: a prefix and the full length; the next line is intact.
        let lines = split(b"0123456789\nabc\n0123\r\n", capacity, 4);
        assert_eq!(
            lines,
            vec![(1, b"0123".to_vec(), Some(10)), (2, b"abc".to_vec(), None), (3, b"0123".to_vec(), None)],
            "capacity {capacity}"
        );
    }
}

#[test]
fn a_body_with_every_kind_of_line() {
    let text = String::from_utf8(sample_bytes("http_requests.ndjson")).unwrap();
    let good: Vec<&str> = text.lines().take(3).collect();
    let mut body = Vec::new();
    body.extend_from_slice(format!("{}\n", good[0]).as_bytes()); // 1
    body.extend_from_slice(b"{\"content\":\"tests\"}\n"); // 2 probe
    body.extend_from_slice(b"   \n"); // 3 blank
    body.extend_from_slice(format!("{}\n", &good[1][..good[1].len() / 2]).as_bytes()); // 4 truncated JSON
    body.extend_from_slice(b"[1,2]\r\n"); // 5 array
    body.extend_from_slice(b"{\"EdgeStartTimestamp\":1,\"x\":\"\xc3\x28\"}\n"); // 6 invalid UTF-8
    body.extend_from_slice(format!("{{\"EdgeStartTimestamp\":1,\"pad\":\"{}\"}}\n", "x".repeat(5000)).as_bytes()); // 7 over-long
    body.extend_from_slice(good[2].as_bytes()); // 8, no final newline

    let mut ctx = body_ctx("batch.ndjson");
    ctx.limits.max_line = 4096;
    for (name, bytes) in [("plain", body.clone()), ("gzip", gzip(&body))] {
        let out = map_body(Dataset::HttpRequests, &bytes, &ctx).unwrap();
        assert_eq!((out.lines, out.probes, out.blanks), (8, 1, 1), "{name}");
        assert_eq!(out.raw.len(), 2, "{name}");
        assert_eq!(out.decisions.len(), 2);
        assert_eq!(out.raw[1].line, good[2], "{name}: last line without newline");
        let errors: Vec<(u64, &str)> = out.dead_letters.iter().map(|d| (d.line_no, d.error.as_str())).collect();
        assert_eq!(errors.len(), 4, "{name}: {errors:?}");
        assert!(errors[0].1.starts_with("line 4: invalid JSON, the line ends early"), "{errors:?}");
        assert_eq!(errors[1], (5, "line 5: expected a JSON object, found an array"));
        assert_eq!(errors[2], (6, "line 6: invalid UTF-8 at byte 29"));
        assert_eq!(
            errors[3],
            (7, "line 7: line is 5033 bytes, over the limit of 4096 bytes (only its first 4096 bytes are kept)")
        );
        assert_eq!(out.dead_letters[3].line.len(), 4096);
        assert!(out.dead_letters.iter().all(|d| d.origin == "batch.ndjson"));
    }
}

#[test]
fn streaming_a_file_matches_mapping_it_in_memory() {
    let gz = sample_bytes("http_requests_5000.ndjson.gz");
    let in_memory = map_body(Dataset::HttpRequests, &gz, &body_ctx("f")).unwrap();
    let mut streamed = gatelog_ingest::BodyOutcome::default();
    let lines = map_reader(Dataset::HttpRequests, gz.as_slice(), &body_ctx("f"), |no, o| streamed.push(no, o)).unwrap();
    assert_eq!(lines, 5000);
    assert_eq!(streamed, in_memory);
    let reader = BodyReader::new(gz.as_slice(), u64::MAX).unwrap();
    assert!(reader.is_gzip());
}

#[test]
fn reader_failures_are_io_errors() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer went away"));
            }
            self.0 -= 1;
            buf[0] = b'\n';
            Ok(1)
        }
    }
    let mut lines = 0;
    let err = map_reader(Dataset::HttpRequests, Failing(3), &body_ctx("net"), |_, _| lines += 1).unwrap_err();
    assert!(matches!(&err, DecodeError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionReset), "{err:?}");
    assert_eq!(err.to_string(), "read failed: peer went away");
    assert_eq!(lines, 3, "the blank lines read before the failure");
}
