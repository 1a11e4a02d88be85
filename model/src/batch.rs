//! [`Batch`]: everything gatelog keeps from one Logpush upload, Tail post, proxy post or
//! body cut out of a backfilled file, and its binary encoding for the spool.
//!
//! A `batch_id` names one immutable content: the same id is always the same rows. Receivers
//! derive it from the batch's bytes, so a body that Logpush retries gets the id it had and
//! the store skips it. The spool record is `GLB1` followed by the postcard encoding of the
//! batch; [`Batch::decode`] rejects anything else with a reason.

use crate::{AccessDecision, DeadLetter, RawRecord, UnixMillis};
use serde::{Deserialize, Serialize};

/// One mapped batch, as the spool hands it to the sinks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub batch_id: String,
    pub dataset: String,
    /// Where it came from: an endpoint or a file name.
    pub origin: String,
    pub received_at: UnixMillis,
    /// Lines in the batch, whatever became of them.
    pub lines: u64,
    /// Validation probes (Logpush's test upload) seen in the batch.
    pub probes: u64,
    /// Bytes of the batch as received (decompressed).
    pub bytes: u64,
    /// SHA-256 (hex) of the batch as received.
    pub sha256: String,
    pub decisions: Vec<AccessDecision>,
    pub raw: Vec<RawRecord>,
    pub dead_letters: Vec<DeadLetter>,
}

const MAGIC: &[u8; 4] = b"GLB1";

/// Why bytes are not an encoded [`Batch`].
#[derive(Debug, thiserror::Error)]
pub enum BatchCodecError {
    #[error("not a gatelog batch record (magic {found:02x?}, expected \"GLB1\")")]
    BadMagic { found: Vec<u8> },
    #[error("batch record does not decode: {0}")]
    Decode(String),
    #[error("batch does not encode: {0}")]
    Encode(String),
}

impl Batch {
    /// Whether this is a batch of gatelog's own audit records (reads of the evidence), which
    /// only the ClickHouse sink stores (`access_log`): not indexed, not watched.
    pub fn is_audit(&self) -> bool {
        self.dataset == crate::decision::AUDIT_DATASET
    }

    /// The spool record for this batch.
    pub fn encode(&self) -> Result<Vec<u8>, BatchCodecError> {
        // Sized first: a Logpush body's record is megabytes, and growing the buffer by
        // doubling would copy it (and fault in fresh pages) several times over.
        let size = postcard::experimental::serialized_size(self).map_err(|e| BatchCodecError::Encode(e.to_string()))?;
        let mut out = Vec::with_capacity(MAGIC.len() + size);
        out.extend_from_slice(MAGIC);
        postcard::to_io(self, &mut out).map_err(|e| BatchCodecError::Encode(e.to_string()))?;
        Ok(out)
    }

    /// Reads a spool record written by [`Batch::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Batch, BatchCodecError> {
        postcard::from_bytes(body(bytes)?).map_err(|e| BatchCodecError::Decode(e.to_string()))
    }

    /// [`Batch::decode`] for a consumer that never reads the raw lines (the index): `raw`
    /// comes back empty, its lines skipped in place instead of copied, so a megabytes-large
    /// record costs only its decisions. The record is still checked whole.
    pub fn decode_without_raw(bytes: &[u8]) -> Result<Batch, BatchCodecError> {
        let b: SkippingRaw<'_> =
            postcard::from_bytes(body(bytes)?).map_err(|e| BatchCodecError::Decode(e.to_string()))?;
        Ok(Batch {
            batch_id: b.batch_id,
            dataset: b.dataset,
            origin: b.origin,
            received_at: b.received_at,
            lines: b.lines,
            probes: b.probes,
            bytes: b.bytes,
            sha256: b.sha256,
            decisions: b.decisions,
            raw: Vec::new(),
            dead_letters: b.dead_letters,
        })
    }
}

/// A run of a batch's decisions, raw records and dead letters, already encoded: what one
/// thread maps from a piece of a body. [`BatchHead::encode_parts`] makes runs (in line order)
/// the parts of exactly the record [`Batch::encode`] writes for the same batch, so a receiver
/// can encode on every core while it maps, and never holds the mapped rows of a whole body
/// at once (nor a dead letter as a struct of six strings: it is its encoding, about its line
/// plus 150 bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedRows {
    decisions: usize,
    decision_bytes: Vec<u8>,
    raw: usize,
    raw_bytes: Vec<u8>,
    dead_letters: usize,
    dead_letter_bytes: Vec<u8>,
}

impl EncodedRows {
    /// Empty, with room for this many bytes of encoded decisions and raw records. A run is
    /// held until the spool has written it, so room it never uses is memory held for nothing,
    /// and growing by doubling leaves up to half of each buffer unused (see [`Self::trim`]).
    pub fn with_capacity(decision_bytes: usize, raw_bytes: usize) -> Self {
        EncodedRows {
            decision_bytes: Vec::with_capacity(decision_bytes),
            raw_bytes: Vec::with_capacity(raw_bytes),
            ..Self::default()
        }
    }

    /// Appends a decision.
    pub fn push_decision(&mut self, decision: &AccessDecision) -> Result<(), BatchCodecError> {
        postcard::to_io(decision, &mut self.decision_bytes).map_err(|e| BatchCodecError::Encode(e.to_string()))?;
        self.decisions += 1;
        Ok(())
    }

    /// Appends a raw record.
    pub fn push_raw(&mut self, raw: &RawRecord) -> Result<(), BatchCodecError> {
        postcard::to_io(raw, &mut self.raw_bytes).map_err(|e| BatchCodecError::Encode(e.to_string()))?;
        self.raw += 1;
        Ok(())
    }

    /// Appends a dead letter.
    pub fn push_dead_letter(&mut self, dead: &DeadLetter) -> Result<(), BatchCodecError> {
        postcard::to_io(dead, &mut self.dead_letter_bytes).map_err(|e| BatchCodecError::Encode(e.to_string()))?;
        self.dead_letters += 1;
        Ok(())
    }

    /// Decisions in the run.
    pub fn decisions(&self) -> usize {
        self.decisions
    }

    /// Raw records in the run.
    pub fn raw(&self) -> usize {
        self.raw
    }

    /// Dead letters in the run.
    pub fn dead_letters(&self) -> usize {
        self.dead_letters
    }

    /// Whether the run holds no row and no dead letter.
    pub fn is_empty(&self) -> bool {
        self.decisions == 0 && self.raw == 0 && self.dead_letters == 0
    }

    /// Appends the next run's rows and dead letters (copying them): for runs too small to be
    /// parts of their own.
    pub fn append(&mut self, next: EncodedRows) {
        self.decision_bytes.extend_from_slice(&next.decision_bytes);
        self.raw_bytes.extend_from_slice(&next.raw_bytes);
        self.dead_letter_bytes.extend_from_slice(&next.dead_letter_bytes);
        self.decisions += next.decisions;
        self.raw += next.raw;
        self.dead_letters += next.dead_letters;
    }

    /// The memory the run holds: its buffers' capacity, used or not.
    pub fn held_bytes(&self) -> usize {
        self.decision_bytes.capacity() + self.raw_bytes.capacity() + self.dead_letter_bytes.capacity()
    }

    /// Gives back room a buffer does not use when that is more than a quarter of it (a piece
    /// whose lines were blank or dead holds no room sized for decisions it never made).
    pub fn trim(&mut self) {
        for buf in [&mut self.decision_bytes, &mut self.raw_bytes, &mut self.dead_letter_bytes] {
            if buf.capacity() - buf.len() > buf.capacity() / 4 {
                buf.shrink_to_fit();
            }
        }
    }
}

/// Every field of a [`Batch`] but its rows, in [`Batch`]'s order (postcard is positional;
/// `encoding_in_pieces_equals_encoding_the_batch` keeps the two in step).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BatchHead<'a> {
    pub batch_id: &'a str,
    pub dataset: &'a str,
    pub origin: &'a str,
    pub received_at: UnixMillis,
    pub lines: u64,
    pub probes: u64,
    pub bytes: u64,
    pub sha256: &'a str,
}

impl BatchHead<'_> {
    /// At most what [`BatchHead::encode_parts`] adds to its runs' bytes: the magic, this
    /// head and the three row counts.
    pub fn overhead(&self) -> usize {
        let head = postcard::experimental::serialized_size(self).unwrap_or(usize::MAX / 2);
        MAGIC.len() + head + 3 * 10
    }

    /// The spool record of this head with the rows and dead letters of `runs` (in order), in
    /// parts: joined, they are byte for byte what [`Batch::encode`] writes for the same batch.
    /// The runs' buffers become parts as they are, so a whole body's rows are never copied
    /// into one buffer before the spool writes them (`Spool::append_parts`).
    pub fn encode_parts(&self, runs: Vec<EncodedRows>) -> Result<Vec<Vec<u8>>, BatchCodecError> {
        let encode = |e: postcard::Error| BatchCodecError::Encode(e.to_string());
        let mut head = MAGIC.to_vec();
        postcard::to_io(self, &mut head).map_err(encode)?;
        postcard::to_io(&runs.iter().map(|r| r.decisions).sum::<usize>(), &mut head).map_err(encode)?;
        // postcard writes a sequence as its length (a varint) followed by its elements.
        let raw = postcard::to_allocvec(&runs.iter().map(|r| r.raw).sum::<usize>()).map_err(encode)?;
        let dead = postcard::to_allocvec(&runs.iter().map(|r| r.dead_letters).sum::<usize>()).map_err(encode)?;
        let mut parts = Vec::with_capacity(3 * runs.len() + 3);
        parts.push(head);
        let mut raw_runs = Vec::with_capacity(runs.len());
        let mut dead_runs = Vec::with_capacity(runs.len());
        for run in runs {
            parts.push(run.decision_bytes);
            raw_runs.push(run.raw_bytes);
            dead_runs.push(run.dead_letter_bytes);
        }
        parts.push(raw);
        parts.extend(raw_runs);
        parts.push(dead);
        parts.extend(dead_runs);
        parts.retain(|p| !p.is_empty());
        Ok(parts)
    }
}

/// The postcard bytes of a spool record, after its magic.
fn body(bytes: &[u8]) -> Result<&[u8], BatchCodecError> {
    bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| BatchCodecError::BadMagic { found: bytes.iter().take(4).copied().collect() })
}

/// [`Batch`]'s encoding, field for field (postcard is positional), with the raw records
/// borrowed from the record. `decode_without_raw_equals_decode_minus_raw` keeps the two in step.
#[derive(Deserialize)]
struct SkippingRaw<'a> {
    batch_id: String,
    dataset: String,
    origin: String,
    received_at: UnixMillis,
    lines: u64,
    probes: u64,
    bytes: u64,
    sha256: String,
    decisions: Vec<AccessDecision>,
    #[serde(borrow)]
    _raw: Vec<RawSkipped<'a>>,
    dead_letters: Vec<DeadLetter>,
}

/// [`RawRecord`]'s encoding, borrowed and unused.
#[derive(Deserialize)]
struct RawSkipped<'a> {
    _event_id: &'a str,
    _dataset: &'a str,
    _received_at: UnixMillis,
    _time: UnixMillis,
    _line: &'a str,
    _sha256: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decision, EventId, Source};

    fn sample() -> Batch {
        let mut d =
            AccessDecision::new(EventId::for_decision("r1"), UnixMillis(1_740_960_000_123), "proxy", Source::Proxy);
        d.decision = Decision::Deny;
        d.roles = vec!["analyst".into()];
        d.rows_read = u64::MAX;
        Batch {
            batch_id: "b1".into(),
            dataset: "proxy".into(),
            origin: "/v1/decisions".into(),
            received_at: UnixMillis(1_740_960_001_000),
            lines: 2,
            probes: 0,
            bytes: 10,
            sha256: "00".into(),
            raw: vec![RawRecord::new(d.event_id.clone(), "proxy", UnixMillis(1), d.time, "{\"a\":1}")],
            decisions: vec![d],
            dead_letters: vec![DeadLetter {
                dataset: "proxy".into(),
                received_at: UnixMillis(2),
                origin: "o".into(),
                line_no: 2,
                line: "{".into(),
                sha256: "x".into(),
                error: "eof".into(),
            }],
        }
    }

    #[test]
    fn round_trips() {
        let b = sample();
        assert_eq!(Batch::decode(&b.encode().unwrap()).unwrap(), b);
    }

    #[test]
    fn decode_without_raw_equals_decode_minus_raw() {
        let mut b = sample();
        b.raw.push(RawRecord::new("e2".into(), "proxy", UnixMillis(3), UnixMillis(4), "{\"b\":\"é\"}"));
        let bytes = b.encode().unwrap();
        let skipped = Batch::decode_without_raw(&bytes).unwrap();
        b.raw.clear();
        assert_eq!(skipped, b);
        assert!(matches!(Batch::decode_without_raw(&bytes[..bytes.len() - 3]), Err(BatchCodecError::Decode(_))));
        assert!(matches!(Batch::decode_without_raw(b"nope"), Err(BatchCodecError::BadMagic { .. })));
    }

    #[test]
    fn encoding_in_pieces_equals_encoding_the_batch() {
        let mut b = sample();
        let first_dead = b.dead_letters[0].clone();
        b.dead_letters.extend((0..4u64).map(|i| DeadLetter { line_no: 10 + i, ..first_dead.clone() }));
        for i in 0..5u8 {
            let mut d = b.decisions[0].clone();
            d.event_id = format!("e{i}");
            d.principal = "é".repeat(usize::from(i) * 40);
            b.raw.push(RawRecord::new(
                d.event_id.clone(),
                "proxy",
                UnixMillis(3),
                d.time,
                &"x".repeat(usize::from(i) * 70),
            ));
            b.decisions.push(d);
        }
        let head = BatchHead {
            batch_id: &b.batch_id,
            dataset: &b.dataset,
            origin: &b.origin,
            received_at: b.received_at,
            lines: b.lines,
            probes: b.probes,
            bytes: b.bytes,
            sha256: &b.sha256,
        };
        let expected = b.encode().unwrap();
        // Every way to cut the rows into runs, empty runs included.
        for cut in 0..=b.decisions.len() {
            let mut runs = vec![EncodedRows::default(), EncodedRows::default(), EncodedRows::default()];
            for (i, (d, r)) in b.decisions.iter().zip(&b.raw).enumerate() {
                let run = if i < cut { &mut runs[0] } else { &mut runs[2] };
                run.push_decision(d).unwrap();
                run.push_raw(r).unwrap();
            }
            for (i, dead) in b.dead_letters.iter().enumerate() {
                let run = if i < cut / 2 {
                    0
                } else if i < cut {
                    1
                } else {
                    2
                };
                runs[run].push_dead_letter(dead).unwrap();
            }
            for run in &mut runs {
                run.trim();
            }
            assert_eq!(head.encode_parts(runs.clone()).unwrap().concat(), expected, "cut at {cut}");
            let mut merged = EncodedRows::default();
            for run in runs {
                merged.append(run);
            }
            assert_eq!(head.encode_parts(vec![merged]).unwrap().concat(), expected, "merged, cut at {cut}");
            let rows: usize = runs_len(&b);
            assert!(expected.len() <= rows + head.overhead(), "the head's overhead bounds what it adds");
        }
        let empty = Batch { decisions: vec![], raw: vec![], dead_letters: vec![], ..b.clone() };
        assert_eq!(head.encode_parts(Vec::new()).unwrap().concat(), empty.encode().unwrap());
    }

    /// The encoded size of a batch's rows and dead letters alone.
    fn runs_len(b: &Batch) -> usize {
        let mut run = EncodedRows::default();
        b.decisions.iter().for_each(|d| run.push_decision(d).unwrap());
        b.raw.iter().for_each(|r| run.push_raw(r).unwrap());
        b.dead_letters.iter().for_each(|d| run.push_dead_letter(d).unwrap());
        run.decision_bytes.len() + run.raw_bytes.len() + run.dead_letter_bytes.len()
    }

    #[test]
    fn rejects_foreign_and_truncated_records() {
        assert!(matches!(Batch::decode(b"{\"a\":1}"), Err(BatchCodecError::BadMagic { .. })));
        let bytes = sample().encode().unwrap();
        assert!(matches!(Batch::decode(&bytes[..bytes.len() - 3]), Err(BatchCodecError::Decode(_))));
    }

    #[test]
    fn timestamps_stay_numbers_in_binary_and_strings_in_json() {
        let t = UnixMillis(1_740_960_000_123);
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2025-03-03T00:00:00.123Z\"");
        let bin = postcard::to_allocvec(&t).unwrap();
        assert_eq!(postcard::from_bytes::<UnixMillis>(&bin).unwrap(), t);
        assert!(bin.len() <= 10, "a varint, not a string");
    }
}
