//! [`Batch`]: everything gatelog keeps from one Logpush upload, Tail post, proxy post or
//! body cut out of a backfilled file, and its binary encoding for the spool.
//!
//! A `batch_id` names one immutable content: the same id is always the same rows. Receivers
//! derive it from the batch's bytes, so a body that Logpush retries gets the id it had and
//! the store skips it. The spool record is `GLB2` followed by the postcard encoding of the
//! batch; [`Batch::decode`] also reads `GLB1` records (written before batches carried their
//! body: no `body`, no `decision_lines`, their lines in `raw`) and rejects anything else with
//! a reason.

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
    /// The body as received, gzip: the bytes Logpush sent, or a plain body (or a backfilled
    /// chunk) compressed by gatelog. Inflated, its SHA-256 is `sha256`. Empty for batches
    /// without a body (gatelog's audit records, `GLB1` records).
    pub body: Vec<u8>,
    /// Per decision, in order: its 1-based line within `body` (empty when there is no body).
    pub decision_lines: Vec<u32>,
}

const MAGIC: &[u8; 4] = b"GLB2";
/// The first format: the same fields without `body` and `decision_lines`.
const MAGIC_V1: &[u8; 4] = b"GLB1";

/// Why bytes are not an encoded [`Batch`].
#[derive(Debug, thiserror::Error)]
pub enum BatchCodecError {
    #[error("not a gatelog batch record (magic {found:02x?}, expected \"GLB2\" or \"GLB1\")")]
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

    /// Reads a spool record written by [`Batch::encode`] (or by a gatelog that wrote `GLB1`).
    pub fn decode(bytes: &[u8]) -> Result<Batch, BatchCodecError> {
        let (v2, rest) = body(bytes)?;
        if v2 {
            return postcard::from_bytes(rest).map_err(|e| BatchCodecError::Decode(e.to_string()));
        }
        let b: BatchV1 = postcard::from_bytes(rest).map_err(|e| BatchCodecError::Decode(e.to_string()))?;
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
            raw: b.raw,
            dead_letters: b.dead_letters,
            body: Vec::new(),
            decision_lines: Vec::new(),
        })
    }

    /// [`Batch::decode`] for a consumer that never reads the raw lines (the index): `raw` and
    /// `body` come back empty, skipped in place instead of copied, so a megabytes-large
    /// record costs only its decisions. The record is still checked whole.
    pub fn decode_without_raw(bytes: &[u8]) -> Result<Batch, BatchCodecError> {
        let decode = |e: postcard::Error| BatchCodecError::Decode(e.to_string());
        let (v2, rest) = body(bytes)?;
        let (b, rest): (SkippingRaw<'_>, &[u8]) = postcard::take_from_bytes(rest).map_err(decode)?;
        let decision_lines = if v2 {
            let tail: SkippingBody<'_> = postcard::from_bytes(rest).map_err(decode)?;
            tail.decision_lines
        } else {
            Vec::new()
        };
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
            body: Vec::new(),
            decision_lines,
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
    /// Each decision's line in the body (postcard varints), in step with `decision_bytes`.
    line_bytes: Vec<u8>,
    /// Usable lines (lines that mapped, with or without decisions).
    mapped: usize,
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

    /// Appends a decision mapped from the body's 1-based line `line`.
    pub fn push_decision(&mut self, decision: &AccessDecision, line: u32) -> Result<(), BatchCodecError> {
        postcard::to_io(decision, &mut self.decision_bytes).map_err(|e| BatchCodecError::Encode(e.to_string()))?;
        postcard::to_io(&line, &mut self.line_bytes).map_err(|e| BatchCodecError::Encode(e.to_string()))?;
        self.decisions += 1;
        Ok(())
    }

    /// Counts a usable line (its decisions are pushed apart; its bytes stay in the body).
    pub fn count_mapped_line(&mut self) {
        self.mapped += 1;
    }

    /// Usable lines in the run.
    pub fn mapped_lines(&self) -> usize {
        self.mapped
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

    /// Whether the run holds no row, no usable line and no dead letter.
    pub fn is_empty(&self) -> bool {
        self.decisions == 0 && self.raw == 0 && self.dead_letters == 0 && self.mapped == 0
    }

    /// Appends the next run's rows and dead letters (copying them): for runs too small to be
    /// parts of their own.
    pub fn append(&mut self, next: EncodedRows) {
        self.decision_bytes.extend_from_slice(&next.decision_bytes);
        self.line_bytes.extend_from_slice(&next.line_bytes);
        self.mapped += next.mapped;
        self.raw_bytes.extend_from_slice(&next.raw_bytes);
        self.dead_letter_bytes.extend_from_slice(&next.dead_letter_bytes);
        self.decisions += next.decisions;
        self.raw += next.raw;
        self.dead_letters += next.dead_letters;
    }

    /// The memory the run holds: its buffers' capacity, used or not.
    pub fn held_bytes(&self) -> usize {
        self.decision_bytes.capacity()
            + self.line_bytes.capacity()
            + self.raw_bytes.capacity()
            + self.dead_letter_bytes.capacity()
    }

    /// Gives back room a buffer does not use when that is more than a quarter of it (a piece
    /// whose lines were blank or dead holds no room sized for decisions it never made).
    pub fn trim(&mut self) {
        for buf in [&mut self.decision_bytes, &mut self.line_bytes, &mut self.raw_bytes, &mut self.dead_letter_bytes] {
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
    /// At most what [`BatchHead::encode_parts`] adds to its runs' bytes and the body: the
    /// magic, this head and the five counts.
    pub fn overhead(&self) -> usize {
        let head = postcard::experimental::serialized_size(self).unwrap_or(usize::MAX / 2);
        MAGIC.len() + head + 5 * 10
    }

    /// The spool record of this head with the rows and dead letters of `runs` (in order) and
    /// the body as stored (`Batch::body`), in parts: joined, they are byte for byte what
    /// [`Batch::encode`] writes for the same batch. The runs' buffers and the body become
    /// parts as they are, so a whole body's rows are never copied into one buffer before the
    /// spool writes them (`Spool::append_parts`).
    pub fn encode_parts(&self, runs: Vec<EncodedRows>, body: Vec<u8>) -> Result<Vec<Vec<u8>>, BatchCodecError> {
        let encode = |e: postcard::Error| BatchCodecError::Encode(e.to_string());
        let mut head = MAGIC.to_vec();
        postcard::to_io(self, &mut head).map_err(encode)?;
        postcard::to_io(&runs.iter().map(|r| r.decisions).sum::<usize>(), &mut head).map_err(encode)?;
        // postcard writes a sequence as its length (a varint) followed by its elements.
        let raw = postcard::to_allocvec(&runs.iter().map(|r| r.raw).sum::<usize>()).map_err(encode)?;
        let dead = postcard::to_allocvec(&runs.iter().map(|r| r.dead_letters).sum::<usize>()).map_err(encode)?;
        let body_len = postcard::to_allocvec(&body.len()).map_err(encode)?;
        let lines = postcard::to_allocvec(&runs.iter().map(|r| r.decisions).sum::<usize>()).map_err(encode)?;
        let mut parts = Vec::with_capacity(4 * runs.len() + 6);
        parts.push(head);
        let mut raw_runs = Vec::with_capacity(runs.len());
        let mut dead_runs = Vec::with_capacity(runs.len());
        let mut line_runs = Vec::with_capacity(runs.len());
        for run in runs {
            parts.push(run.decision_bytes);
            raw_runs.push(run.raw_bytes);
            dead_runs.push(run.dead_letter_bytes);
            line_runs.push(run.line_bytes);
        }
        parts.push(raw);
        parts.extend(raw_runs);
        parts.push(dead);
        parts.extend(dead_runs);
        parts.push(body_len);
        parts.push(body);
        parts.push(lines);
        parts.extend(line_runs);
        parts.retain(|p| !p.is_empty());
        Ok(parts)
    }
}

/// The postcard bytes of a spool record, after its magic, and whether it is `GLB2`.
fn body(bytes: &[u8]) -> Result<(bool, &[u8]), BatchCodecError> {
    if let Some(rest) = bytes.strip_prefix(MAGIC) {
        return Ok((true, rest));
    }
    bytes
        .strip_prefix(MAGIC_V1)
        .map(|rest| (false, rest))
        .ok_or_else(|| BatchCodecError::BadMagic { found: bytes.iter().take(4).copied().collect() })
}

/// A `GLB1` record: [`Batch`] without its last two fields.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct BatchV1 {
    batch_id: String,
    dataset: String,
    origin: String,
    received_at: UnixMillis,
    lines: u64,
    probes: u64,
    bytes: u64,
    sha256: String,
    decisions: Vec<AccessDecision>,
    raw: Vec<RawRecord>,
    dead_letters: Vec<DeadLetter>,
}

/// The fields `GLB2` added, with the body borrowed and unused.
#[derive(Deserialize)]
struct SkippingBody<'a> {
    #[serde(borrow)]
    _body: &'a [u8],
    decision_lines: Vec<u32>,
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
            body: vec![0x1f, 0x8b, 0, 7],
            decision_lines: vec![1],
        }
    }

    #[test]
    fn a_glb1_record_still_decodes() {
        let b = sample();
        let v1 = BatchV1 {
            batch_id: b.batch_id.clone(),
            dataset: b.dataset.clone(),
            origin: b.origin.clone(),
            received_at: b.received_at,
            lines: b.lines,
            probes: b.probes,
            bytes: b.bytes,
            sha256: b.sha256.clone(),
            decisions: b.decisions.clone(),
            raw: b.raw.clone(),
            dead_letters: b.dead_letters.clone(),
        };
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend(postcard::to_allocvec(&v1).unwrap());
        let old = Batch { body: Vec::new(), decision_lines: Vec::new(), ..b };
        assert_eq!(Batch::decode(&bytes).unwrap(), old);
        let skipped = Batch::decode_without_raw(&bytes).unwrap();
        assert_eq!(skipped, Batch { raw: Vec::new(), ..old });
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
        b.body.clear();
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
            b.decision_lines.push(u32::from(i) * 300 + 2);
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
            for (i, ((d, r), line)) in b.decisions.iter().zip(&b.raw).zip(&b.decision_lines).enumerate() {
                let run = if i < cut { &mut runs[0] } else { &mut runs[2] };
                run.push_decision(d, *line).unwrap();
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
            assert_eq!(head.encode_parts(runs.clone(), b.body.clone()).unwrap().concat(), expected, "cut at {cut}");
            let mut merged = EncodedRows::default();
            for run in runs {
                merged.append(run);
            }
            assert_eq!(
                head.encode_parts(vec![merged], b.body.clone()).unwrap().concat(),
                expected,
                "merged, cut at {cut}"
            );
            let rows: usize = runs_len(&b);
            assert!(expected.len() <= rows + head.overhead(), "the head's overhead bounds what it adds");
        }
        let empty = Batch { decisions: vec![], raw: vec![], dead_letters: vec![], decision_lines: vec![], ..b.clone() };
        assert_eq!(head.encode_parts(Vec::new(), b.body.clone()).unwrap().concat(), empty.encode().unwrap());
    }

    /// The encoded size of a batch's rows and dead letters alone.
    fn runs_len(b: &Batch) -> usize {
        let mut run = EncodedRows::default();
        b.decisions.iter().zip(&b.decision_lines).for_each(|(d, l)| run.push_decision(d, *l).unwrap());
        b.raw.iter().for_each(|r| run.push_raw(r).unwrap());
        b.dead_letters.iter().for_each(|d| run.push_dead_letter(d).unwrap());
        run.decision_bytes.len()
            + run.line_bytes.len()
            + run.raw_bytes.len()
            + run.dead_letter_bytes.len()
            + b.body.len()
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
