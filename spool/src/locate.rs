//! [`Spool::locate`]: where a record lives on disk (its segment file and the offset of its
//! header), for errors that must name it. A consumer that cannot use a record stops and
//! says where it is, as the spool does for damage it finds itself.

use crate::format::{self, HEADER_LEN};
use crate::{Spool, SpoolError, lock};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;

/// A record's place on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLocation {
    /// The segment file holding it.
    pub file: PathBuf,
    /// Byte offset of its header in that file.
    pub offset: u64,
}

impl std::fmt::Display for RecordLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.file.display(), self.offset)
    }
}

impl Spool {
    /// Finds record `seq`: the segment that holds it and the offset of its header, reading
    /// the headers before it in that segment (each verified). Blocking file I/O; meant for
    /// error paths. Fails with `PositionGone` when the record was deleted or never written.
    pub fn locate(&self, seq: u64) -> Result<RecordLocation, SpoolError> {
        let shared = self.shared();
        let (segment, oldest, last_seq) = {
            let st = lock(&shared.state);
            let oldest = st.segments.keys().next().copied().unwrap_or(st.last_seq + 1);
            let segment = st.segments.range(..=seq).next_back().map(|(first, s)| (*first, s.path.clone()));
            (segment, oldest, st.last_seq)
        };
        let gone = || SpoolError::PositionGone { consumer: "locate".into(), requested: seq.saturating_sub(1), oldest };
        let Some((first, path)) = segment.filter(|_| seq >= oldest && seq <= last_seq && seq > 0) else {
            return Err(gone());
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(gone()),
            Err(e) => return Err(SpoolError::io("opening segment", &path, e)),
        };
        let mut reader = BufReader::with_capacity(64 << 10, file);
        let mut offset = 0u64;
        let mut at = first;
        loop {
            let mut head = [0u8; HEADER_LEN];
            let corrupt = |detail: String| SpoolError::Corrupt { file: path.clone(), offset, detail };
            match reader.read_exact(&mut head) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(corrupt(format!("record {at} is missing: the segment ends early")));
                }
                Err(e) => return Err(SpoolError::io("reading segment", &path, e)),
            }
            let header = format::decode_header(&head).map_err(|e| corrupt(e.to_string()))?;
            if header.seq != at {
                return Err(corrupt(format!("record has sequence {} where {at} was expected", header.seq)));
            }
            if at == seq {
                return Ok(RecordLocation { file: path, offset });
            }
            reader.seek_relative(i64::from(header.len)).map_err(|e| SpoolError::io("seeking in segment", &path, e))?;
            offset += format::record_size(u64::from(header.len));
            at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::{opts, payload};
    use crate::{HEADER_LEN, Spool, SpoolError};

    #[tokio::test]
    async fn names_the_segment_and_offset_of_a_record() {
        let dir = tempfile::tempdir().unwrap();
        // Small segments, so the records spread over several files.
        let spool = Spool::open(dir.path(), crate::SpoolOptions { segment_bytes: 250, ..opts() }).unwrap();
        let mut expected = Vec::new();
        for i in 1..=7u64 {
            let p = payload(i, 60 + i as usize);
            assert_eq!(spool.append(p.clone()).await.unwrap(), i);
            expected.push(p.len());
        }
        for seq in 1..=7u64 {
            let at = spool.locate(seq).unwrap();
            let bytes = std::fs::read(&at.file).unwrap();
            let start = usize::try_from(at.offset).unwrap();
            let head: &[u8; HEADER_LEN] = bytes[start..start + HEADER_LEN].try_into().unwrap();
            let header = crate::format::decode_header(head).unwrap();
            assert_eq!(header.seq, seq, "{at}");
            assert_eq!(header.len as usize, expected[seq as usize - 1]);
        }
        assert!(matches!(spool.locate(0), Err(SpoolError::PositionGone { .. })));
        assert!(matches!(spool.locate(8), Err(SpoolError::PositionGone { .. })));
        spool.close().await.unwrap();
    }
}
