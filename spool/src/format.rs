//! The record frame: encoding, decoding and checksums. Pure functions, no I/O.
//!
//! ```text
//! offset size field
//!  0      4   magic     b"GLSP"
//!  4      1   version   1
//!  5      1   flags     0, or FLAG_GAP (1): a gap record (see below); other bits reserved
//!  6      2   reserved  0
//!  8      8   seq       u64 little-endian
//! 16      4   len       u32 little-endian, payload length
//! 20      4   crc       crc32c(seq ‖ len ‖ payload), seq and len as stored (LE)
//! 24      4   hcrc      crc32c(bytes 0..24 of this header)
//! 28    len   payload
//! ```
//!
//! A **gap record** stands for sequence numbers whose records were lost and whose loss an
//! operator accepted (`repair`): flags `FLAG_GAP`, seq the first lost number, payload the
//! last one (u64 LE, 8 bytes). The record after it has the number after that. Only `repair`
//! writes them; readers skip them, so the numbers are never given to other records.

/// Magic bytes that open every record header.
pub const MAGIC: [u8; 4] = *b"GLSP";
/// The only record format version this build reads and writes.
pub const VERSION: u8 = 1;
/// Size of a record header in bytes.
pub const HEADER_LEN: usize = 28;
/// Flag of a gap record.
pub const FLAG_GAP: u8 = 1;

/// A decoded, header-checksum-verified record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub seq: u64,
    pub len: u32,
    pub crc: u32,
    pub flags: u8,
}

impl Header {
    /// For a gap record: the last sequence number it stands for, read from its verified
    /// payload. `Err` if the payload is not a valid gap (a damaged record).
    pub fn gap_last(&self, payload: &[u8]) -> Option<Result<u64, String>> {
        if self.flags & FLAG_GAP == 0 {
            return None;
        }
        let last = <[u8; 8]>::try_from(payload).map(u64::from_le_bytes);
        Some(match last {
            Ok(last) if last >= self.seq => Ok(last),
            Ok(last) => Err(format!("gap record {} ends before it starts, at {last}", self.seq)),
            Err(_) => Err(format!("gap record {} has a payload of {} bytes, not 8", self.seq, payload.len())),
        })
    }
}

/// Why a header could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    Magic,
    Version(u8),
    HeaderChecksum,
    Flags(u8),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Magic => f.write_str("bad record magic"),
            HeaderError::Version(v) => write!(f, "unsupported record version {v}"),
            HeaderError::HeaderChecksum => f.write_str("record header checksum mismatch"),
            HeaderError::Flags(flags) => write!(f, "unknown record flags {flags:#04x}"),
        }
    }
}

/// Bytes a record with `payload_len` bytes of payload occupies on disk.
pub fn record_size(payload_len: u64) -> u64 {
    HEADER_LEN as u64 + payload_len
}

/// crc32c over `seq ‖ len ‖ payload`.
pub fn record_crc(seq: u64, len: u32, payload: &[u8]) -> u32 {
    record_crc_parts(seq, len, &[payload])
}

/// [`record_crc`] of the payload that is `parts` joined.
pub fn record_crc_parts<P: AsRef<[u8]>>(seq: u64, len: u32, parts: &[P]) -> u32 {
    let crc = crc32c::crc32c(&seq.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &len.to_le_bytes());
    parts.iter().fold(crc, |crc, part| crc32c::crc32c_append(crc, part.as_ref()))
}

/// Appends the encoded record to `buf`.
#[cfg(test)]
pub fn encode_into(buf: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    encode_parts_into(buf, seq, &[payload]);
}

/// [`encode_into`] for the payload that is `parts` joined.
#[cfg(test)]
pub fn encode_parts_into<P: AsRef<[u8]>>(buf: &mut Vec<u8>, seq: u64, parts: &[P]) {
    buf.extend_from_slice(&header_for(seq, parts));
    for part in parts {
        buf.extend_from_slice(part.as_ref());
    }
}

/// The header of record `seq` whose payload is `parts` joined; the record on disk is this
/// header followed by the parts. The caller guarantees the payload fits in a `u32`
/// (enforced through `max_record_bytes`); a longer one is a bug and panics in debug builds.
pub fn header_for<P: AsRef<[u8]>>(seq: u64, parts: &[P]) -> [u8; HEADER_LEN] {
    header_with_flags(seq, parts, 0)
}

/// The gap record for the lost numbers `first..=last`, header and payload.
pub fn gap_record(first: u64, last: u64) -> Vec<u8> {
    let payload = last.to_le_bytes();
    let mut record = header_with_flags(first, &[payload], FLAG_GAP).to_vec();
    record.extend_from_slice(&payload);
    record
}

fn header_with_flags<P: AsRef<[u8]>>(seq: u64, parts: &[P], flags: u8) -> [u8; HEADER_LEN] {
    let payload_len: usize = parts.iter().map(|p| p.as_ref().len()).sum();
    debug_assert!(u32::try_from(payload_len).is_ok());
    let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(&MAGIC);
    header[4] = VERSION;
    header[5] = flags;
    header[8..16].copy_from_slice(&seq.to_le_bytes());
    header[16..20].copy_from_slice(&len.to_le_bytes());
    header[20..24].copy_from_slice(&record_crc_parts(seq, len, parts).to_le_bytes());
    let hcrc = crc32c::crc32c(&header[0..24]);
    header[24..28].copy_from_slice(&hcrc.to_le_bytes());
    header
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(a)
}

/// Decodes and verifies a header (magic, version, header checksum).
pub fn decode_header(bytes: &[u8; HEADER_LEN]) -> Result<Header, HeaderError> {
    if bytes[0..4] != MAGIC {
        return Err(HeaderError::Magic);
    }
    if bytes[4] != VERSION {
        return Err(HeaderError::Version(bytes[4]));
    }
    if crc32c::crc32c(&bytes[0..24]) != le_u32(&bytes[24..28]) {
        return Err(HeaderError::HeaderChecksum);
    }
    if bytes[5] & !FLAG_GAP != 0 {
        return Err(HeaderError::Flags(bytes[5]));
    }
    Ok(Header { seq: le_u64(&bytes[8..16]), len: le_u32(&bytes[16..20]), crc: le_u32(&bytes[20..24]), flags: bytes[5] })
}

/// Verifies a payload against its header.
pub fn payload_ok(header: &Header, payload: &[u8]) -> bool {
    record_crc(header.seq, header.len, payload) == header.crc
}

/// Decodes one whole record at the start of `bytes`: `Some((header, payload))` if a header and
/// its full payload are present and both checksums hold.
pub fn decode_record(bytes: &[u8]) -> Option<(Header, &[u8])> {
    let head: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
    let header = decode_header(head).ok()?;
    let end = HEADER_LEN.checked_add(usize::try_from(header.len).ok()?)?;
    let payload = bytes.get(HEADER_LEN..end)?;
    payload_ok(&header, payload).then_some((header, payload))
}

/// File name of the segment whose first record is `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// Parses a segment file name back to its first sequence number.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for payload in [&b""[..], b"x", b"hello world", &[0u8; 1000][..]] {
            let mut buf = Vec::new();
            encode_into(&mut buf, 42, payload);
            assert_eq!(buf.len() as u64, record_size(payload.len() as u64));
            let (h, p) = decode_record(&buf).expect("decodes");
            assert_eq!(h.seq, 42);
            assert_eq!(h.len as usize, payload.len());
            assert_eq!(p, payload);
        }
    }

    #[test]
    fn a_payload_in_parts_is_the_record_of_the_parts_joined() {
        let parts: [&[u8]; 5] = [b"", b"head", b"", b"middle part", b"t"];
        let mut joined = Vec::new();
        encode_into(&mut joined, 9, &parts.concat());
        let mut in_parts = Vec::new();
        encode_parts_into(&mut in_parts, 9, &parts);
        assert_eq!(in_parts, joined);
        let mut none = Vec::new();
        encode_parts_into::<&[u8]>(&mut none, 9, &[]);
        let mut empty = Vec::new();
        encode_into(&mut empty, 9, b"");
        assert_eq!(none, empty);
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 7, b"some payload bytes");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(decode_record(&bad).is_none(), "flip at byte {byte} bit {bit} undetected");
            }
        }
    }

    #[test]
    fn header_errors_are_specific() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 1, b"p");
        let mut head: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().unwrap();
        assert!(decode_header(&head).is_ok());
        head[4] = 9;
        assert_eq!(decode_header(&head), Err(HeaderError::Version(9)));
        head[4] = VERSION;
        head[10] ^= 1;
        assert_eq!(decode_header(&head), Err(HeaderError::HeaderChecksum));
        head[0] = b'X';
        assert_eq!(decode_header(&head), Err(HeaderError::Magic));
    }

    #[test]
    fn gap_records_carry_their_range_and_unknown_flags_are_damage() {
        let gap = gap_record(5, 9);
        let (h, p) = decode_record(&gap).expect("decodes");
        assert_eq!((h.seq, h.flags, h.gap_last(p)), (5, FLAG_GAP, Some(Ok(9))));
        let mut plain = Vec::new();
        encode_into(&mut plain, 5, &9u64.to_le_bytes());
        let (h, p) = decode_record(&plain).expect("decodes");
        assert_eq!(h.gap_last(p), None, "a record with the same payload is no gap");
        let mut head: [u8; HEADER_LEN] = plain[..HEADER_LEN].try_into().unwrap();
        head[5] = 2;
        let hcrc = crc32c::crc32c(&head[0..24]);
        head[24..28].copy_from_slice(&hcrc.to_le_bytes());
        assert_eq!(decode_header(&head), Err(HeaderError::Flags(2)));
    }

    #[test]
    fn truncated_record_does_not_decode() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 3, b"abcdef");
        for cut in 0..buf.len() {
            assert!(decode_record(&buf[..cut]).is_none());
        }
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_file_name(1), "00000000000000000001.seg");
        assert_eq!(parse_segment_file_name("00000000000000000001.seg"), Some(1));
        assert_eq!(parse_segment_file_name(&segment_file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_file_name("1.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000000a.seg"), None);
        assert_eq!(parse_segment_file_name("00000000000000000001.seg.tmp"), None);
    }
}
