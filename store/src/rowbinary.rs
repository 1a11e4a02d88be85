//! A RowBinary encoder for gatelog's rows: no per-row allocation, one code path for both
//! profiles (only timestamps differ), column order taken from [`crate::schema`].

use crate::profile::SchemaProfile;
use crate::schema::Kind;
use bytes::{BufMut, BytesMut};
use gatelog_model::{AccessDecision, DeadLetter, RawRecord, UnixMillis};

/// The ingest-batch marker row (see [`crate::WriteBatch`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchRow<'a> {
    pub batch_id: &'a str,
    pub dataset: &'a str,
    pub origin: &'a str,
    pub received_at: UnixMillis,
    pub lines: u64,
    pub decisions: u64,
    pub raw_records: u64,
    pub dead_letters: u64,
    pub probes: u64,
    pub min_time: UnixMillis,
    pub max_time: UnixMillis,
    pub bytes: u64,
    pub sha256: &'a str,
    pub spool_seq: u64,
    /// The batch's link (see [`crate::schema::CHAIN_COLS`]).
    pub chain_seq: u64,
    pub chain_prev: &'a str,
    pub chain_hash: &'a str,
    pub rows_sha256: &'a str,
}

/// A timestamp as a legacy `DateTime` column holds it: seconds, clamped to `UInt32`.
pub(crate) fn legacy_secs(t: UnixMillis) -> u32 {
    let secs = t.0.div_euclid(1000).clamp(0, i64::from(u32::MAX));
    u32::try_from(secs).unwrap_or(0)
}

/// Appends rows to a buffer in ClickHouse's RowBinary format.
#[derive(Debug)]
pub(crate) struct RowEncoder {
    buf: BytesMut,
    legacy: bool,
    #[cfg(test)]
    pub(crate) kinds: Vec<Kind>,
}

impl RowEncoder {
    pub(crate) fn new(profile: SchemaProfile, capacity: usize) -> Self {
        RowEncoder {
            buf: BytesMut::with_capacity(capacity),
            legacy: profile == SchemaProfile::Legacy,
            #[cfg(test)]
            kinds: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Takes the encoded bytes, keeping the allocation's remainder for the next rows.
    pub(crate) fn take(&mut self) -> bytes::Bytes {
        self.buf.split().freeze()
    }

    #[inline]
    fn mark(&mut self, _kind: Kind) {
        #[cfg(test)]
        self.kinds.push(_kind);
    }

    #[inline]
    fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.buf.put_u8((n as u8) | 0x80);
            n >>= 7;
        }
        self.buf.put_u8(n as u8);
    }

    #[inline]
    fn raw_str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.buf.put_slice(s.as_bytes());
    }

    #[inline]
    fn str(&mut self, s: &str) {
        self.mark(Kind::Str);
        self.raw_str(s);
    }

    #[inline]
    fn enum_str(&mut self, s: &str) {
        self.mark(Kind::Enum);
        self.raw_str(s);
    }

    /// Legacy: `DateTime` (UInt32 seconds, clamped to its range) then `Int64` milliseconds;
    /// modern: `DateTime64(3)` (Int64 milliseconds).
    #[inline]
    fn time(&mut self, t: UnixMillis) {
        self.mark(Kind::Time);
        if self.legacy {
            self.buf.put_u32_le(legacy_secs(t));
        }
        self.buf.put_i64_le(t.0);
    }

    #[inline]
    fn u64(&mut self, n: u64) {
        self.mark(Kind::U64);
        self.buf.put_u64_le(n);
    }

    #[inline]
    fn u32(&mut self, n: u32) {
        self.mark(Kind::U32);
        self.buf.put_u32_le(n);
    }

    #[inline]
    fn u16(&mut self, n: u16) {
        self.mark(Kind::U16);
        self.buf.put_u16_le(n);
    }

    #[inline]
    fn strings(&mut self, items: &[String]) {
        self.mark(Kind::Strings);
        self.varint(items.len() as u64);
        for s in items {
            self.raw_str(s);
        }
    }

    /// A `decisions` row, in [`crate::schema::DECISIONS`] order.
    pub(crate) fn decision(&mut self, d: &AccessDecision, batch_id: &str) {
        self.str(&d.event_id);
        self.time(d.time);
        self.time(d.received_at);
        self.enum_str(d.source.as_str());
        self.enum_str(&d.dataset);
        self.enum_str(d.decision.as_str());
        self.str(&d.principal);
        self.enum_str(d.principal_type.as_str());
        self.strings(&d.roles);
        self.str(&d.client_ip);
        self.enum_str(&d.country);
        self.u32(d.asn);
        self.str(&d.user_agent);
        self.str(&d.resource);
        self.enum_str(&d.action);
        self.enum_str(&d.policy);
        self.str(&d.reason);
        self.str(&d.query);
        self.str(&d.query_fingerprint);
        self.u64(d.rows_read);
        self.u64(d.bytes_read);
        self.u64(d.result_rows);
        self.u64(d.duration_ms);
        self.u16(d.status);
        self.str(&d.ray_id);
        self.str(&d.request_id);
        self.enum_str(&d.zone);
        self.enum_str(&d.host);
        self.str(&d.path);
        self.enum_str(&d.auth_method);
        self.str(&d.error);
        self.enum_str(&d.tenant);
        self.u64(d.spool_seq);
        self.str(&d.raw_sha256);
        self.str(batch_id);
    }

    /// A `raw_records` row, in [`crate::schema::RAW_RECORDS`] order.
    pub(crate) fn raw_record(&mut self, r: &RawRecord, batch_id: &str) {
        self.str(&r.event_id);
        self.enum_str(&r.dataset);
        self.time(r.received_at);
        self.time(r.time);
        self.str(&r.line);
        self.str(&r.sha256);
        self.str(batch_id);
    }

    /// A `dead_letters` row, in [`crate::schema::DEAD_LETTERS`] order.
    pub(crate) fn dead_letter(&mut self, d: &DeadLetter, batch_id: &str) {
        self.enum_str(&d.dataset);
        self.time(d.received_at);
        self.str(&d.origin);
        self.u64(d.line_no);
        self.str(&d.line);
        self.str(&d.sha256);
        self.str(&d.error);
        self.str(batch_id);
    }

    /// An `ingest_batches` row, in [`crate::schema::INGEST_BATCHES`] order.
    pub(crate) fn batch(&mut self, b: &BatchRow<'_>) {
        self.str(b.batch_id);
        self.enum_str(b.dataset);
        self.str(b.origin);
        self.time(b.received_at);
        self.u64(b.lines);
        self.u64(b.decisions);
        self.u64(b.raw_records);
        self.u64(b.dead_letters);
        self.u64(b.probes);
        self.time(b.min_time);
        self.time(b.max_time);
        self.u64(b.bytes);
        self.str(b.sha256);
        self.u64(b.spool_seq);
        self.u64(b.chain_seq);
        self.str(b.chain_prev);
        self.str(b.chain_hash);
        self.str(b.rows_sha256);
    }

    /// A `raw_batches` row, in [`crate::schema::RAW_BATCHES`] order: the batch's body and,
    /// per decision, its event id and line in the body.
    pub(crate) fn raw_batch(&mut self, b: &gatelog_model::Batch, batch_id: &str) {
        self.str(batch_id);
        self.enum_str(&b.dataset);
        self.str(&b.origin);
        self.time(b.received_at);
        self.str(&b.sha256);
        self.u64(b.lines);
        self.u64(b.bytes);
        self.mark(Kind::Str);
        self.varint(b.body.len() as u64);
        self.buf.put_slice(&b.body);
        self.mark(Kind::Strings);
        let n = b.decisions.len().min(b.decision_lines.len());
        self.varint(n as u64);
        for d in &b.decisions[..n] {
            self.raw_str(&d.event_id);
        }
        self.mark(Kind::U32s);
        self.varint(n as u64);
        for line in &b.decision_lines[..n] {
            self.buf.put_u32_le(*line);
        }
    }

    /// A `batch_rows` (row ledger) row, in [`crate::schema::BATCH_ROWS`] order.
    pub(crate) fn ledger(
        &mut self,
        batch_id: &str,
        received_at: UnixMillis,
        tenant: &str,
        event_id: &str,
        row_hash: &gatelog_model::chain::RowHash,
    ) {
        self.str(batch_id);
        self.time(received_at);
        self.enum_str(tenant);
        self.str(event_id);
        self.mark(Kind::Hash16);
        self.buf.put_slice(row_hash);
    }

    /// A `chain_checkpoints` row, in [`crate::schema::CHAIN_CHECKPOINTS`] order.
    pub(crate) fn checkpoint(&mut self, c: &crate::chain::Checkpoint) {
        self.time(UnixMillis(c.at_ms));
        self.u64(c.head.links);
        self.str(c.head.last_batch_id.as_deref().unwrap_or(""));
        self.str(&c.head.hash);
        self.str(&c.signer);
        self.str(&c.signature);
    }

    /// Forgets what was encoded (a scratch encoder reused per row).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
    }

    /// The bytes encoded so far.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// A `schema_migrations` row: version, name, checksum, profile.
    pub(crate) fn migration(&mut self, version: u32, name: &str, checksum: &str, profile: &str) {
        self.buf.put_u32_le(version);
        self.raw_str(name);
        self.raw_str(checksum);
        self.raw_str(profile);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{DEAD_LETTERS, DECISIONS, INGEST_BATCHES, RAW_RECORDS};

    #[test]
    fn encoders_follow_the_table_definitions() {
        let mut e = RowEncoder::new(SchemaProfile::Modern, 0);
        e.decision(&AccessDecision::default(), "b");
        assert_eq!(e.kinds, DECISIONS.sent_kinds());
        e.kinds.clear();
        e.raw_record(&RawRecord::new("e".into(), "d", UnixMillis(0), UnixMillis(0), "{}"), "b");
        assert_eq!(e.kinds, RAW_RECORDS.sent_kinds());
        e.kinds.clear();
        let dl = DeadLetter {
            dataset: "d".into(),
            received_at: UnixMillis(0),
            origin: "o".into(),
            line_no: 1,
            line: "x".into(),
            sha256: String::new(),
            error: "e".into(),
        };
        e.dead_letter(&dl, "b");
        assert_eq!(e.kinds, DEAD_LETTERS.sent_kinds());
        e.kinds.clear();
        let row = BatchRow {
            batch_id: "b",
            dataset: "d",
            origin: "o",
            received_at: UnixMillis(0),
            lines: 0,
            decisions: 0,
            raw_records: 0,
            dead_letters: 0,
            probes: 0,
            min_time: UnixMillis(0),
            max_time: UnixMillis(0),
            bytes: 0,
            sha256: "",
            spool_seq: 0,
            chain_seq: 1,
            chain_prev: "",
            chain_hash: "",
            rows_sha256: "",
        };
        e.batch(&row);
        assert_eq!(e.kinds, INGEST_BATCHES.sent_kinds());
        e.kinds.clear();
        e.ledger("b", UnixMillis(0), "t", "e", &[0; 16]);
        assert_eq!(e.kinds, crate::schema::BATCH_ROWS.sent_kinds());
        e.kinds.clear();
        let head = gatelog_model::chain::ChainHead::genesis();
        e.checkpoint(&crate::chain::Checkpoint { at_ms: 0, head, signer: String::new(), signature: String::new() });
        assert_eq!(e.kinds, crate::schema::CHAIN_CHECKPOINTS.sent_kinds());
        e.kinds.clear();
        e.raw_batch(&gatelog_model::Batch::default(), "b");
        assert_eq!(e.kinds, crate::schema::RAW_BATCHES.sent_kinds());
    }

    #[test]
    fn encodes_rowbinary_primitives() {
        let mut e = RowEncoder::new(SchemaProfile::Legacy, 0);
        e.str(&"x".repeat(200));
        assert_eq!(&e.buf[..2], &[0xC8, 0x01]);
        e.buf.clear();
        e.time(UnixMillis(1_740_990_713_712));
        assert_eq!(e.len(), 12);
        assert_eq!(&e.buf[..4], &1_740_990_713u32.to_le_bytes());
        e.buf.clear();
        e.time(UnixMillis(-5));
        assert_eq!(&e.buf[..4], &0u32.to_le_bytes());
        let mut m = RowEncoder::new(SchemaProfile::Modern, 0);
        m.time(UnixMillis(1_740_990_713_712));
        assert_eq!(&m.take()[..], &1_740_990_713_712i64.to_le_bytes());
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    #[test]
    #[ignore = "micro-benchmark"]
    fn encode_speed() {
        let line = "x".repeat(1400);
        let mut d = AccessDecision::new(
            "0123456789abcdef0123456789abcdef".into(),
            UnixMillis(1),
            "http_requests",
            gatelog_model::Source::Logpush,
        );
        d.principal = "user1@example.com".into();
        d.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0".into();
        d.resource = "https://bi.example.com/dashboards/1/panel/2".into();
        d.roles = vec!["analyst".into()];
        let r = RawRecord::new(
            "0123456789abcdef0123456789abcdef".into(),
            "http_requests",
            UnixMillis(1),
            UnixMillis(1),
            &line,
        );
        let t = std::time::Instant::now();
        let mut total = 0;
        let mut e = RowEncoder::new(SchemaProfile::Legacy, 1 << 20);
        for _ in 0..1_000_000 {
            e.decision(&d, "batch");
            e.raw_record(&r, "batch");
            if e.len() >= 512 * 1024 {
                total += e.take().len();
            }
        }
        println!("encoded {} MB in {:?}", total / 1_000_000, t.elapsed());
    }
}
