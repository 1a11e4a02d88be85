//! The tamper-evidence chain over stored batches, in spool order: each [`Link`] hashes the
//! previous link with what is stored for one batch ([`BatchFacts`]), so changing, removing or
//! inserting a batch (or a row the facts digest) changes every head after it.
//!
//! Pure: the store's writer builds [`BatchFacts`] from each batch's `ingest_batches` marker
//! and the [`ledger_digest`] of its row ledger (`batch_rows`: one [`LedgerEntry`] per
//! `decisions` row, with the [`stored_row_hash`] of its encoding), and records the link on
//! the marker; `chain_checkpoints` keeps signed [`ChainHead`]s ([`checkpoint_message`]).
//! Verification recomputes the facts from ClickHouse; [`verify_links`] and [`compare`] name
//! the first link that disagrees. (`decisions` itself is never digested per batch: merges
//! drop one copy of an event stored by two batches, see ARCHITECTURE.md.)
//!
//! Link hash (v1), all integers big-endian, `lp(x)` = u64 length then the UTF-8 bytes:
//! `SHA-256("gatelog/chain/v1" ‖ prev (32 bytes) ‖ lp(batch_id) ‖ u64 spool_seq ‖ lp(dataset)
//! ‖ i64 received_at_ms ‖ lp(content_sha256) ‖ u64 lines ‖ u64 decisions ‖ u64 raw_records
//! ‖ u64 dead_letters ‖ u64 probes ‖ u64 bytes ‖ lp(rows_sha256))`. The genesis `prev` is 32
//! zero bytes. Order: `spool_seq`, then `received_at_ms`, then `batch_id` ([`chain_order`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::fmt;

const DOMAIN: &[u8] = b"gatelog/chain/v1";

/// What one stored batch contributes; every field is recomputable from ClickHouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchFacts {
    /// `ingest_batches.batch_id`.
    pub batch_id: String,
    /// `ingest_batches.spool_seq` (0 for batches `gatelog ingest` wrote before backfills went
    /// through the spool).
    pub spool_seq: u64,
    /// `ingest_batches.dataset`.
    pub dataset: String,
    /// `ingest_batches.received_at_ms`.
    pub received_at_ms: i64,
    /// `ingest_batches.sha256`: SHA-256 of the batch as received.
    pub content_sha256: String,
    pub counts: BatchCounts,
    /// [`rows_digest`] of the batch's stored decision rows ([`rows_digest_sql`] in ClickHouse).
    pub rows_sha256: String,
}

/// The counts `ingest_batches` keeps for a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchCounts {
    pub lines: u64,
    pub decisions: u64,
    pub raw_records: u64,
    pub dead_letters: u64,
    pub probes: u64,
    pub bytes: u64,
}

/// One link: the facts, the previous link's hash, and this link's hash (lower-case hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub facts: BatchFacts,
    pub prev: String,
    pub hash: String,
}

/// Where a chain stands: how many links, the last batch, and the last hash. The bundle's
/// manifest carries the head of the report's period; `chain_checkpoints` stores signed heads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainHead {
    pub links: u64,
    pub last_batch_id: Option<String>,
    pub hash: String,
}

impl ChainHead {
    /// The head before the first link.
    pub fn genesis() -> Self {
        ChainHead { links: 0, last_batch_id: None, hash: hex::encode([0u8; 32]) }
    }

    /// The link for `facts` after this head, and the head after it.
    pub fn append(&self, facts: BatchFacts) -> (Link, ChainHead) {
        let hash = link_hash(&self.hash, &facts);
        let head = ChainHead { links: self.links + 1, last_batch_id: Some(facts.batch_id.clone()), hash: hash.clone() };
        (Link { facts, prev: self.hash.clone(), hash }, head)
    }
}

/// The links for `facts` (already in [`chain_order`]) after `start`, and the final head.
pub fn build(start: &ChainHead, facts: impl IntoIterator<Item = BatchFacts>) -> (Vec<Link>, ChainHead) {
    let mut head = start.clone();
    let mut links = Vec::new();
    for f in facts {
        let (link, next) = head.append(f);
        links.push(link);
        head = next;
    }
    (links, head)
}

/// The chain's order of batches: spool position, then arrival, then id (batches backfilled
/// before backfills went through the spool all have `spool_seq` 0).
pub fn chain_order(a: &BatchFacts, b: &BatchFacts) -> Ordering {
    (a.spool_seq, a.received_at_ms, &a.batch_id).cmp(&(b.spool_seq, b.received_at_ms, &b.batch_id))
}

/// The hash of the link for `facts` after the link whose hash is `prev_hex`.
pub fn link_hash(prev_hex: &str, facts: &BatchFacts) -> String {
    let mut prev = [0u8; 32];
    // A malformed `prev` hashes as written (its bytes), so it can never equal a real link.
    let prev_bytes: Vec<u8> = match hex::decode_to_slice(prev_hex, &mut prev) {
        Ok(()) => prev.to_vec(),
        Err(_) => prev_hex.as_bytes().to_vec(),
    };
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(&prev_bytes);
    let lp = |h: &mut Sha256, s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    lp(&mut h, &facts.batch_id);
    h.update(facts.spool_seq.to_be_bytes());
    lp(&mut h, &facts.dataset);
    h.update(facts.received_at_ms.to_be_bytes());
    lp(&mut h, &facts.content_sha256);
    let c = &facts.counts;
    for n in [c.lines, c.decisions, c.raw_records, c.dead_letters, c.probes, c.bytes] {
        h.update(n.to_be_bytes());
    }
    lp(&mut h, &facts.rows_sha256);
    hex::encode(h.finalize())
}

/// The first place a chain and the stored data disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// 0-based position of the link in the checked range.
    pub index: u64,
    /// The batch the link is (or should be) about.
    pub batch_id: String,
    pub kind: BreakKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakKind {
    /// The link's `prev` is not the previous link's hash (links removed, reordered or edited).
    Prev { expected: String, found: String },
    /// The link's hash is not the hash of its facts (the link itself was edited).
    Hash { expected: String, found: String },
    /// The chain has this batch; the store has no such batch here (deleted).
    Missing,
    /// The store has this batch where the chain has another or none (inserted).
    Inserted { chain_has: Option<String> },
    /// A stored fact differs from the chained one: which field, chained and recomputed value.
    Field { field: &'static str, chained: String, stored: String },
    /// The chain ends on a different head than the checkpoint says.
    Head { expected: String, found: String },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (i, b) = (self.index, &self.batch_id);
        match &self.kind {
            BreakKind::Prev { expected, found } => {
                write!(f, "link {i} (batch {b}): prev is {found}, the link before it hashes to {expected}")
            }
            BreakKind::Hash { expected, found } => {
                write!(f, "link {i} (batch {b}): recorded hash {found}, its facts hash to {expected}")
            }
            BreakKind::Missing => write!(f, "link {i}: batch {b} is in the chain but no longer stored"),
            BreakKind::Inserted { chain_has: Some(c) } => {
                write!(f, "link {i}: batch {b} is stored where the chain has batch {c}")
            }
            BreakKind::Inserted { chain_has: None } => {
                write!(f, "link {i}: batch {b} is stored but the chain ends before it")
            }
            BreakKind::Field { field, chained, stored } => {
                write!(f, "link {i} (batch {b}): {field} was {chained} when chained, is {stored} now")
            }
            BreakKind::Head { expected, found } => {
                write!(f, "after link {i} (batch {b}): head {found}, the checkpoint says {expected}")
            }
        }
    }
}

impl std::error::Error for ChainBreak {}

/// Checks that `links` continue `start` and that each link's hash is the hash of its facts;
/// returns the head after the last link.
pub fn verify_links(start: &ChainHead, links: &[Link]) -> Result<ChainHead, ChainBreak> {
    let mut head = start.clone();
    for (i, link) in links.iter().enumerate() {
        let at = |kind| ChainBreak { index: i as u64, batch_id: link.facts.batch_id.clone(), kind };
        if link.prev != head.hash {
            return Err(at(BreakKind::Prev { expected: head.hash.clone(), found: link.prev.clone() }));
        }
        let (expected, next) = head.append(link.facts.clone());
        if expected.hash != link.hash {
            return Err(at(BreakKind::Hash { expected: expected.hash, found: link.hash.clone() }));
        }
        head = next;
    }
    Ok(head)
}

/// Checks the recorded `links` (after `start`) against `stored`, the facts recomputed from
/// the store for the same range in [`chain_order`]: first the links themselves, then each
/// batch's facts field by field. Stored batches after the last link are not yet chained and
/// are returned as a count, not as a break.
pub fn compare(start: &ChainHead, links: &[Link], stored: &[BatchFacts]) -> Result<Comparison, ChainBreak> {
    let head = verify_links(start, links)?;
    for (i, link) in links.iter().enumerate() {
        let index = i as u64;
        let chained = &link.facts;
        let Some(now) = stored.get(i) else {
            return Err(ChainBreak { index, batch_id: chained.batch_id.clone(), kind: BreakKind::Missing });
        };
        if now.batch_id != chained.batch_id {
            // Deleted if the chained batch is nowhere later in the store; otherwise a batch
            // was inserted before it.
            let later = stored[i..].iter().any(|s| s.batch_id == chained.batch_id);
            return Err(if later {
                ChainBreak {
                    index,
                    batch_id: now.batch_id.clone(),
                    kind: BreakKind::Inserted { chain_has: Some(chained.batch_id.clone()) },
                }
            } else {
                ChainBreak { index, batch_id: chained.batch_id.clone(), kind: BreakKind::Missing }
            });
        }
        if let Some((field, a, b)) = first_difference(chained, now) {
            return Err(ChainBreak {
                index,
                batch_id: chained.batch_id.clone(),
                kind: BreakKind::Field { field, chained: a, stored: b },
            });
        }
    }
    Ok(Comparison { head, unchained: stored.len().saturating_sub(links.len()) as u64 })
}

/// What [`compare`] found when nothing disagreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// The head after the last checked link.
    pub head: ChainHead,
    /// Stored batches after the last link (not chained yet).
    pub unchained: u64,
}

/// Checks that the chain over `stored` (after `start`) ends on `checkpoint`, for a range
/// where only signed heads were kept, not every link.
pub fn check_head(start: &ChainHead, stored: &[BatchFacts], checkpoint: &ChainHead) -> Result<(), ChainBreak> {
    let (_, head) = build(start, stored.iter().cloned());
    if head.hash == checkpoint.hash && head.links - start.links == checkpoint.links - start.links {
        return Ok(());
    }
    Err(ChainBreak {
        index: head.links.saturating_sub(start.links).saturating_sub(1),
        batch_id: head.last_batch_id.unwrap_or_default(),
        kind: BreakKind::Head { expected: checkpoint.hash.clone(), found: head.hash },
    })
}

fn first_difference(a: &BatchFacts, b: &BatchFacts) -> Option<(&'static str, String, String)> {
    let (ca, cb) = (&a.counts, &b.counts);
    let fields: [(&'static str, String, String); 12] = [
        ("spool_seq", a.spool_seq.to_string(), b.spool_seq.to_string()),
        ("dataset", a.dataset.clone(), b.dataset.clone()),
        ("received_at_ms", a.received_at_ms.to_string(), b.received_at_ms.to_string()),
        ("content_sha256", a.content_sha256.clone(), b.content_sha256.clone()),
        ("lines", ca.lines.to_string(), cb.lines.to_string()),
        ("decisions", ca.decisions.to_string(), cb.decisions.to_string()),
        ("raw_records", ca.raw_records.to_string(), cb.raw_records.to_string()),
        ("dead_letters", ca.dead_letters.to_string(), cb.dead_letters.to_string()),
        ("probes", ca.probes.to_string(), cb.probes.to_string()),
        ("bytes", ca.bytes.to_string(), cb.bytes.to_string()),
        ("rows_sha256", a.rows_sha256.clone(), b.rows_sha256.clone()),
        ("batch_id", a.batch_id.clone(), b.batch_id.clone()),
    ];
    fields.into_iter().find(|(_, x, y)| x != y)
}

/// SHA-256 (hex) of one stored row: each field's text as `<byte length>:<bytes>`, in order.
pub fn row_hash(fields: &[&str]) -> String {
    let mut h = Sha256::new();
    for f in fields {
        h.update(f.len().to_string().as_bytes());
        h.update(b":");
        h.update(f.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The digest of a batch's rows, whatever order they are read in: SHA-256 (hex) of the rows'
/// [`row_hash`]es, sorted, concatenated as hex. No rows: SHA-256 of nothing.
pub fn rows_digest<I: IntoIterator<Item = String>>(row_hashes: I) -> String {
    let mut all: Vec<String> = row_hashes.into_iter().collect();
    all.sort_unstable();
    let mut h = Sha256::new();
    for r in &all {
        h.update(r.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The ClickHouse expression (an aggregate, for `GROUP BY batch_id`) that computes
/// [`rows_digest`] over rows whose fields are the `String` expressions `fields`, in order
/// (numbers as `toString(x)`, arrays e.g. as `arrayStringConcat(arrayMap(…), '')`). Runs on
/// 18.16 (`SHA256`, `groupArray`, `arraySort`, `arrayStringConcat`) and on current servers.
pub fn rows_digest_sql(fields: &[&str]) -> String {
    let parts: Vec<String> = fields.iter().map(|f| format!("toString(length({f})), ':', {f}")).collect();
    // concat() wants at least two arguments; an empty string pads a one-field row.
    let row = format!("lower(hex(SHA256(concat({}, ''))))", parts.join(", "));
    format!("lower(hex(SHA256(arrayStringConcat(arraySort(groupArray({row}))))))")
}

/// Bytes of a ledger row hash: SHA-256 truncated to 128 bits. Forging a row with the hash of
/// another (a second preimage) stays out of reach at 128 bits, and the ledger is half the size.
pub const ROW_HASH_LEN: usize = 16;

/// The hash of one stored row, as the store's ledger (`batch_rows`) keeps it.
pub type RowHash = [u8; ROW_HASH_LEN];

const ROW_DOMAIN: &[u8] = b"gatelog/row/v1";
const LEDGER_DOMAIN: &[u8] = b"gatelog/ledger/v1";
const CHECKPOINT_DOMAIN: &str = "gatelog/chain-checkpoint/v1";

/// [`RowHash`] of a stored row given as its encoding (the store hashes a `decisions` row's
/// RowBinary encoding: what it inserts, and what `SELECT` of the same columns returns).
pub fn stored_row_hash(encoded: &[u8]) -> RowHash {
    let mut h = Sha256::new();
    h.update(ROW_DOMAIN);
    h.update(encoded);
    let full = h.finalize();
    let mut out = [0u8; ROW_HASH_LEN];
    out.copy_from_slice(&full[..ROW_HASH_LEN]);
    out
}

/// One entry of a batch's row ledger: the row's key in `decisions` and its [`RowHash`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LedgerEntry {
    pub tenant: String,
    pub event_id: String,
    pub row_hash: RowHash,
}

/// The digest of a batch's ledger (what its link carries as `rows_sha256`), whatever order
/// the entries come in (sorted here): SHA-256 (hex) of `"gatelog/ledger/v1" ‖ u64 count ‖`
/// per entry `lp(tenant) ‖ lp(event_id) ‖ row_hash`. Covers the keys, not only the hashes,
/// so an edited ledger key cannot hide a deleted row.
pub fn ledger_digest(entries: &mut [LedgerEntry]) -> String {
    entries.sort_unstable();
    let mut h = Sha256::new();
    h.update(LEDGER_DOMAIN);
    h.update((entries.len() as u64).to_be_bytes());
    for e in entries.iter() {
        for s in [&e.tenant, &e.event_id] {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
        h.update(e.row_hash);
    }
    hex::encode(h.finalize())
}

/// The bytes a chain checkpoint's signature covers: the head and when it was taken.
pub fn checkpoint_message(head: &ChainHead, at_ms: i64) -> Vec<u8> {
    format!(
        "{CHECKPOINT_DOMAIN}\nlinks {}\nlast_batch {}\nhash {}\nat_ms {at_ms}\n",
        head.links,
        head.last_batch_id.as_deref().unwrap_or(""),
        head.hash
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(n: u64) -> BatchFacts {
        BatchFacts {
            batch_id: format!("b{n}"),
            spool_seq: n,
            dataset: "http_requests".into(),
            received_at_ms: 1_700_000_000_000 + n as i64,
            content_sha256: hex::encode(Sha256::digest(n.to_be_bytes())),
            counts: BatchCounts { lines: 10, decisions: 9, raw_records: 10, dead_letters: 1, probes: 0, bytes: 1000 },
            rows_sha256: rows_digest([row_hash(&["e1", "allow"]), row_hash(&["e2", "deny"])]),
        }
    }

    fn chain(n: u64) -> (Vec<Link>, Vec<BatchFacts>) {
        let stored: Vec<_> = (1..=n).map(facts).collect();
        (build(&ChainHead::genesis(), stored.clone()).0, stored)
    }

    #[test]
    fn an_intact_chain_verifies_and_continues() {
        let (links, stored) = chain(5);
        let head = verify_links(&ChainHead::genesis(), &links).unwrap();
        assert_eq!(head.links, 5);
        assert_eq!(compare(&ChainHead::genesis(), &links[..3], &stored).unwrap().unchained, 2);
        // A chain verified in two ranges ends on the same head as in one.
        let mid = verify_links(&ChainHead::genesis(), &links[..2]).unwrap();
        assert_eq!(verify_links(&mid, &links[2..]).unwrap(), head);
        check_head(&ChainHead::genesis(), &stored, &head).unwrap();
    }

    #[test]
    fn each_kind_of_tampering_names_the_first_link() {
        let (links, stored) = chain(5);
        let g = ChainHead::genesis();

        let mut edited = stored.clone();
        edited[2].rows_sha256 = rows_digest([row_hash(&["e1", "allow"])]);
        let b = compare(&g, &links, &edited).unwrap_err();
        assert_eq!((b.index, b.batch_id.as_str()), (2, "b3"));
        assert!(b.to_string().contains("rows_sha256"), "{b}");

        let mut counted = stored.clone();
        counted[1].counts.decisions = 8;
        let b = compare(&g, &links, &counted).unwrap_err();
        assert!(matches!(b.kind, BreakKind::Field { field: "decisions", .. }) && b.index == 1, "{b}");

        let mut deleted = stored.clone();
        deleted.remove(3);
        let b = compare(&g, &links, &deleted).unwrap_err();
        assert_eq!((b.index, b.kind.clone()), (3, BreakKind::Missing));
        assert_eq!(b.batch_id, "b4");

        let mut inserted = stored.clone();
        let mut extra = facts(99);
        extra.batch_id = "intruder".into();
        inserted.insert(1, extra);
        let b = compare(&g, &links, &inserted).unwrap_err();
        assert_eq!((b.index, b.batch_id.as_str()), (1, "intruder"));

        let mut forged = links.clone();
        forged[3].facts.counts.lines = 11;
        let b = verify_links(&g, &forged).unwrap_err();
        assert!(matches!(b.kind, BreakKind::Hash { .. }) && b.index == 3, "{b}");

        let mut dropped = links.clone();
        dropped.remove(2);
        let b = verify_links(&g, &dropped).unwrap_err();
        assert!(matches!(b.kind, BreakKind::Prev { .. }) && b.index == 2, "{b}");

        let head = verify_links(&g, &links).unwrap();
        assert!(matches!(check_head(&g, &edited, &head).unwrap_err().kind, BreakKind::Head { .. }));
    }

    #[test]
    fn the_link_hash_covers_every_field_and_order() {
        let base = facts(1);
        let h = link_hash(&ChainHead::genesis().hash, &base);
        let mut variants = Vec::new();
        let mut f = base.clone();
        f.batch_id.push('x');
        variants.push(f);
        let mut f = base.clone();
        f.counts.bytes += 1;
        variants.push(f);
        let mut f = base.clone();
        f.received_at_ms += 1;
        variants.push(f);
        let mut f = base.clone();
        f.dataset = "firewall_events".into();
        variants.push(f);
        for v in &variants {
            assert_ne!(link_hash(&ChainHead::genesis().hash, v), h);
        }
        assert_eq!(rows_digest(vec!["b".to_owned(), "a".to_owned()]), rows_digest(vec!["a".into(), "b".into()]));
        assert_ne!(row_hash(&["ab", "c"]), row_hash(&["a", "bc"]));
        let json = serde_json::to_string(&base).unwrap();
        assert_eq!(serde_json::from_str::<BatchFacts>(&json).unwrap(), base);
    }
    #[test]
    fn the_ledger_digest_is_order_free_and_covers_keys() {
        let e = |t: &str, id: &str, b: u8| LedgerEntry {
            tenant: t.into(),
            event_id: id.into(),
            row_hash: [b; ROW_HASH_LEN],
        };
        let mut a = vec![e("t", "e1", 1), e("t", "e2", 2)];
        let mut b = vec![e("t", "e2", 2), e("t", "e1", 1)];
        assert_eq!(ledger_digest(&mut a), ledger_digest(&mut b));
        let mut renamed = vec![e("t", "e1", 1), e("t", "e3", 2)];
        assert_ne!(ledger_digest(&mut a), ledger_digest(&mut renamed));
        let mut fewer = vec![e("t", "e1", 1)];
        assert_ne!(ledger_digest(&mut a), ledger_digest(&mut fewer));
        assert_ne!(stored_row_hash(b"ab"), stored_row_hash(b"ba"));
        let head = ChainHead::genesis();
        assert_ne!(checkpoint_message(&head, 1), checkpoint_message(&head, 2));
    }
}
