//! [`Indexer`]: writes decisions into the day indexes and commits them together with the
//! spool position, so that a crash at any point, replayed from [`Indexer::position`], leaves
//! every decision in the index exactly once.
//!
//! # Design
//!
//! - One tantivy index per UTC day (`decisions-YYYYMMDD/`), plus `position/`, an index that
//!   never holds documents and only carries the position when a round touched no day.
//! - One writer (this struct, one thread at a time). [`Indexer::index_batch`] adds each
//!   decision to its day's `IndexWriter` as `delete_term(event_id)` then `add_document`.
//!   tantivy applies a delete only to documents added before it, so this keeps the newest copy
//!   of an `event_id`: the Tail and Logpush copies of one Worker decision, and any decision a
//!   replay re-adds, end up once. The delete is issued only when the day's index may hold
//!   that `event_id` ([`crate::seen`]: a Bloom filter of the ids each day holds, loaded from
//!   its committed segments when the day is first written, never forgetting one): a delete
//!   costs a term lookup in every segment of the day, and almost every id arrives once.
//! - A **commit round** ([`Indexer::commit`]) commits every index touched since the last round,
//!   one after the other, each with the same payload `{round, seq, prev, members}` (see
//!   [`crate::payload`]): `seq` is the last spool record whose decisions were all added,
//!   `prev` the position of the last complete round, `members` the indexes of this round.
//!   Only after the whole round is committed does the position move and the sink `ack` the
//!   spool. A failed commit poisons the indexer: it must be reopened.
//! - **Open** reads every payload and takes the newest round: if all its members carry it
//!   (or were dropped by retention), the position is its `seq`; if the crash cut it short,
//!   the position is its `prev`.
//!
//! # Invariant
//!
//! After a crash, the committed state of every index holds exactly one document per
//! `event_id` (delete-then-add within a writer), and every decision of every spool record
//! ≤ `position()` is in it. Records after `position()` may be in some committed indexes
//! (a half-finished round, or a mid-batch commit forced by `max_open_writers`); replaying
//! them deletes and re-adds those documents, which changes nothing. `position()` is never
//! below a position the sink acknowledged to the spool, because only complete rounds ack.
//!
//! Copies of one `event_id` need not agree on the time (the Tail and Logpush copies of one
//! invocation may differ by milliseconds or more), so they may fall on both sides of
//! midnight. A decision whose time lies within [`IndexerOptions::dedup_window`] of the next
//! or previous day also deletes its `event_id` in that day's index (when the day exists), so
//! the newest copy is the only one, in the day of its own time. Copies further apart than the
//! window on different days stay two documents (ClickHouse's `FINAL` still counts them once).

use crate::IndexError;
use crate::day::{self, Day};
use crate::merge::CappedMergePolicy;
use crate::payload::{self, CommitPayload};
use crate::schema::{self, Fields};
use crate::seen::SeenIds;
use gatelog_model::{AccessDecision, Batch, UnixMillis};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tantivy::indexer::IndexWriterOptions;
use tantivy::{Index, IndexWriter, TantivyDocument, Term};

/// Tuning. `Default` gives the production values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexerOptions {
    /// tantivy's indexing memory per open day writer (tantivy's minimum is 15 MB).
    pub writer_memory_bytes: usize,
    /// Commit once this many decisions are waiting ([`Indexer::should_commit`]).
    pub commit_docs: usize,
    /// Commit once roughly this many bytes of text are waiting.
    pub commit_bytes: u64,
    /// The sink commits at least this often while anything is waiting.
    pub commit_interval: Duration,
    /// Day writers kept open at once; opening one more forces a commit round first.
    pub max_open_writers: usize,
    /// The most documents one background merge may produce ([`CappedMergePolicy`]); each
    /// writer runs one merge at a time.
    pub merge_max_docs: u64,
    /// Copies of one event whose times are at most this far apart are one document, even on
    /// two days (see the module docs). Each decision this close to midnight costs a delete
    /// in the neighbouring day's index. At most one day.
    pub dedup_window: Duration,
    /// Day indexes wholly older than this are deleted ([`Indexer::expire`], on the sink's
    /// ticks), and decisions older than it are no longer indexed. `None` keeps every day.
    pub retention: Option<Duration>,
}

impl Default for IndexerOptions {
    fn default() -> Self {
        IndexerOptions {
            writer_memory_bytes: 32 << 20,
            commit_docs: 50_000,
            commit_bytes: 64 << 20,
            commit_interval: Duration::from_secs(1),
            max_open_writers: 4,
            merge_max_docs: 100_000,
            dedup_window: Duration::from_secs(3600),
            retention: None,
        }
    }
}

/// An index folder: one day, or the document-less position carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Day(Day),
    Position,
}

const POSITION_DIR: &str = "position";

/// Id filters kept for days without an open writer (see [`Indexer::commit`]).
const SEEN_DAYS_KEPT: usize = 8;

impl Slot {
    fn name(self) -> String {
        match self {
            Slot::Day(day) => day.dir_name(),
            Slot::Position => POSITION_DIR.to_owned(),
        }
    }
}

struct OpenWriter {
    path: PathBuf,
    writer: IndexWriter<TantivyDocument>,
}

impl std::fmt::Debug for OpenWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenWriter").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Writes decisions into the day indexes; see the module docs for the commit protocol.
#[derive(Debug)]
pub struct Indexer {
    dir: PathBuf,
    opts: IndexerOptions,
    fields: Fields,
    writers: BTreeMap<Slot, OpenWriter>,
    /// Indexes with work since the last round.
    touched: BTreeSet<Slot>,
    /// Position of the last complete round.
    committed: u64,
    /// Last spool record whose decisions were all added.
    complete_seq: u64,
    round: u64,
    pending_docs: usize,
    pending_bytes: u64,
    /// Decisions added since open (committed or not); only grows.
    added: u64,
    /// Decisions before this day are skipped (retention).
    floor: Option<Day>,
    /// Days with an index folder (found at open, or created since).
    days: BTreeSet<Day>,
    /// The event ids each day's index may hold ([`SeenIds`]): a delete is issued only for
    /// those. Every day with an open writer has one (it is made before the writer opens).
    seen: BTreeMap<Day, SeenIds>,
    poisoned: bool,
    /// `(device, inode)` of `dir` when opened, to notice it deleted or replaced.
    identity: (u64, u64),
    #[cfg(test)]
    pub(crate) fail_after_commits: Option<usize>,
}

/// `(device, inode)` of a directory.
fn identity(dir: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = fs::metadata(dir)?;
    Ok((meta.dev(), meta.ino()))
}

/// Opens (creating if needed) the tantivy index in `path`.
pub(crate) fn open_index(path: &Path, fields: &Fields) -> Result<Index, IndexError> {
    fs::create_dir_all(path).map_err(IndexError::io("creating", path))?;
    let index = if path.join("meta.json").exists() {
        Index::open_in_dir(path)
    } else {
        Index::create_in_dir(path, fields.schema.clone())
    }
    .map_err(IndexError::tantivy(path))?;
    schema::register_tokenizers(&index);
    Ok(index)
}

impl Indexer {
    /// Opens the index directory, recovering the position after a crash. Blocking I/O.
    pub fn open(dir: &Path, opts: IndexerOptions) -> Result<Indexer, IndexError> {
        fs::create_dir_all(dir).map_err(IndexError::io("creating", dir))?;
        let fields = Fields::new();
        let mut payloads = BTreeMap::new();
        let mut slots: Vec<(String, PathBuf)> =
            day::list_days(dir)?.into_iter().map(|(d, p)| (d.dir_name(), p)).collect();
        let position_dir = dir.join(POSITION_DIR);
        if position_dir.is_dir() {
            slots.push((POSITION_DIR.to_owned(), position_dir));
        }
        for (name, path) in slots {
            if !path.join("meta.json").exists() {
                // Created by a writer that died before tantivy wrote anything: empty.
                fs::remove_dir_all(&path).map_err(IndexError::io("removing", &path))?;
                continue;
            }
            let index = Index::open_in_dir(&path).map_err(IndexError::tantivy(&path))?;
            let metas = index.load_metas().map_err(IndexError::tantivy(&path))?;
            let payload = match metas.payload.as_deref() {
                None => None,
                Some(text) => Some(
                    CommitPayload::decode(text)
                        .map_err(|detail| IndexError::BadPayload { path: path.clone(), detail })?,
                ),
            };
            payloads.insert(name, payload);
        }
        let (position, round) = payload::recover(&payloads);
        tracing::info!(dir = %dir.display(), position, round, indexes = payloads.len(), "opened index");
        let identity = identity(dir).map_err(IndexError::io("reading metadata of", dir))?;
        let days = day::list_days(dir)?.into_iter().map(|(d, _)| d).collect();
        Ok(Indexer {
            dir: dir.to_owned(),
            opts,
            fields,
            writers: BTreeMap::new(),
            touched: BTreeSet::new(),
            committed: position,
            complete_seq: position,
            round,
            pending_docs: 0,
            pending_bytes: 0,
            added: 0,
            floor: None,
            days,
            seen: BTreeMap::new(),
            poisoned: false,
            identity,
            #[cfg(test)]
            fail_after_commits: None,
        })
    }

    /// Whether the index was ever committed (a fresh directory was not).
    pub fn is_fresh(&self) -> bool {
        self.round == 0
    }

    /// Fails with [`IndexError::Lost`] when the index directory is no longer the one opened
    /// (deleted, or deleted and created again), or the folder of a day being written is gone:
    /// commits would then go nowhere, or into an index that lost everything before.
    pub fn check_intact(&self) -> Result<(), IndexError> {
        let lost = |detail: String| Err(IndexError::Lost { path: self.dir.clone(), detail });
        match identity(&self.dir) {
            Ok(now) if now == self.identity => {}
            Ok(_) => return lost("the directory was replaced".into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return lost("the directory was deleted".into()),
            Err(e) => return Err(IndexError::io("reading metadata of", &self.dir)(e)),
        }
        for open in self.writers.values() {
            if !open.path.is_dir() {
                return lost(format!("{} was deleted", open.path.display()));
            }
        }
        Ok(())
    }

    /// The spool position whose decisions are all committed: resume reading after it.
    pub fn position(&self) -> u64 {
        self.committed
    }

    /// The options it was opened with.
    pub fn options(&self) -> &IndexerOptions {
        &self.opts
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds every decision of spool record `seq`. Not durable until [`Indexer::commit`].
    pub fn index_batch(&mut self, seq: u64, batch: &Batch) -> Result<(), IndexError> {
        self.check()?;
        // gatelog's own audit records are kept in ClickHouse (`access_log`), not searched.
        for decision in batch.decisions.iter().filter(|d| d.source != gatelog_model::Source::Gatelog) {
            self.add(decision)?;
        }
        self.complete_seq = self.complete_seq.max(seq);
        Ok(())
    }

    /// Marks spool record `seq` as done without decisions (a record that does not decode).
    pub fn skip_record(&mut self, seq: u64) {
        self.complete_seq = self.complete_seq.max(seq);
    }

    /// Adds one decision (replacing any document with its `event_id` in its day index).
    pub fn add(&mut self, d: &AccessDecision) -> Result<(), IndexError> {
        self.check()?;
        let day = Day::of(d.time);
        if self.floor.is_some_and(|floor| day < floor) {
            tracing::debug!(event_id = %d.event_id, day = %day, "skipped decision older than retention");
            return Ok(());
        }
        let slot = Slot::Day(day);
        let (doc, bytes) = self.fields.document(d);
        let id = d.event_id.as_bytes();
        let field = self.fields.event_id;
        let term = || Term::from_field_text(field, &d.event_id);
        for other in self.neighbours(d.time) {
            // A copy on the other side of midnight: replaced too, when that day may hold it.
            if self.seen(other)?.may_contain(id) {
                self.writer(Slot::Day(other))?.delete_term(term());
                self.touched.insert(Slot::Day(other));
            }
        }
        // An id its day cannot hold has nothing to replace: the delete would match nothing
        // and cost a term lookup in every segment (see `crate::seen`).
        let copy = !id.is_empty() && self.seen(day)?.insert(id);
        let writer = self.writer(slot)?;
        if copy {
            writer.delete_term(term());
        }
        writer.add_document(doc).map_err(IndexError::tantivy(day.dir_name()))?;
        self.touched.insert(slot);
        self.pending_docs += 1;
        self.pending_bytes += bytes;
        self.added += 1;
        Ok(())
    }

    /// The ids `day`'s index may hold, loaded from its committed segments on first use.
    fn seen(&mut self, day: Day) -> Result<&mut SeenIds, IndexError> {
        Ok(match self.seen.entry(day) {
            std::collections::btree_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let path = self.dir.join(day.dir_name());
                let committed = self.days.contains(&day) && path.join("meta.json").exists();
                slot.insert(if committed { SeenIds::load(&path, &self.fields)? } else { SeenIds::with_capacity(0) })
            }
        })
    }

    /// The existing days other than `time`'s own within `dedup_window` of it.
    fn neighbours(&self, time: gatelog_model::UnixMillis) -> Vec<Day> {
        let window = i64::try_from(self.opts.dedup_window.as_millis()).unwrap_or(i64::MAX).min(86_400_000);
        let own = Day::of(time);
        let mut out = Vec::new();
        for edge in [
            gatelog_model::UnixMillis(time.0.saturating_sub(window)),
            gatelog_model::UnixMillis(time.0.saturating_add(window)),
        ] {
            let day = Day::of(edge);
            let live = self.floor.is_none_or(|floor| day >= floor);
            if day != own && live && self.days.contains(&day) && !out.contains(&day) {
                out.push(day);
            }
        }
        out
    }

    /// Whether the waiting work reached `commit_docs` or `commit_bytes`.
    pub fn should_commit(&self) -> bool {
        self.pending_docs >= self.opts.commit_docs || self.pending_bytes >= self.opts.commit_bytes
    }

    /// Whether anything (documents, or a position to record) waits for a commit.
    pub fn has_pending(&self) -> bool {
        !self.touched.is_empty() || self.complete_seq > self.committed
    }

    /// Decisions added since the last commit.
    pub fn pending_docs(&self) -> usize {
        self.pending_docs
    }

    /// Decisions added since [`Indexer::open`], committed or not (those skipped by
    /// retention are not counted). Only grows, so a difference counts one batch's documents.
    pub fn added_docs(&self) -> u64 {
        self.added
    }

    /// Runs a commit round (see the module docs) and returns the new position.
    pub fn commit(&mut self) -> Result<u64, IndexError> {
        self.check()?;
        if !self.has_pending() {
            return Ok(self.committed);
        }
        let seq = self.complete_seq;
        self.commit_round(seq)?;
        // Writers idle in this round are closed, so memory follows the days being written.
        let touched = std::mem::take(&mut self.touched);
        self.writers.retain(|slot, _| touched.contains(slot));
        // Id filters of days without a writer (all committed) can be loaded again: keep a
        // few, the newest days, and let older ones go.
        let idle: Vec<Day> = self.seen.keys().copied().filter(|d| !self.writers.contains_key(&Slot::Day(*d))).collect();
        let excess = self.seen.len().saturating_sub(SEEN_DAYS_KEPT);
        for day in idle.into_iter().take(excess) {
            self.seen.remove(&day);
        }
        Ok(self.committed)
    }

    fn commit_round(&mut self, seq: u64) -> Result<(), IndexError> {
        if self.touched.is_empty() {
            self.writer(Slot::Position)?;
            self.touched.insert(Slot::Position);
        }
        let round = self.round + 1;
        let members: Vec<String> = self.touched.iter().map(|s| s.name()).collect();
        let payload = CommitPayload::new(round, seq, self.committed, members).encode();
        self.poisoned = true; // cleared only when every member committed
        #[cfg(test)]
        let mut budget = self.fail_after_commits;
        for slot in self.touched.clone() {
            #[cfg(test)]
            if let Some(left) = budget.as_mut() {
                if *left == 0 {
                    return Err(IndexError::Injected);
                }
                *left -= 1;
            }
            let Some(open) = self.writers.get_mut(&slot) else {
                continue; // dropped by retention during this round
            };
            let mut prepared = open.writer.prepare_commit().map_err(IndexError::tantivy(&open.path))?;
            prepared.set_payload(&payload);
            prepared.commit().map_err(IndexError::tantivy(&open.path))?;
        }
        self.poisoned = false;
        tracing::debug!(round, seq, docs = self.pending_docs, indexes = self.touched.len(), "committed index round");
        self.round = round;
        self.committed = seq;
        self.pending_docs = 0;
        self.pending_bytes = 0;
        Ok(())
    }

    fn writer(&mut self, slot: Slot) -> Result<&mut IndexWriter<TantivyDocument>, IndexError> {
        if !self.writers.contains_key(&slot) {
            if self.writers.len() >= self.opts.max_open_writers.max(1) {
                // Commit what is there (records before the current one are complete; the
                // current one's documents so far are replay-safe) and close every writer.
                if !self.touched.is_empty() {
                    let seq = self.complete_seq;
                    self.commit_round(seq)?;
                    self.touched.clear();
                }
                self.writers.clear();
            }
            let path = self.dir.join(slot.name());
            let index = open_index(&path, &self.fields)?;
            if let Slot::Day(day) = slot {
                self.days.insert(day);
            }
            let options = IndexWriterOptions::builder()
                .memory_budget_per_thread(self.opts.writer_memory_bytes.max(15_000_000))
                .num_worker_threads(1)
                .num_merge_threads(1)
                .build();
            let writer = index.writer_with_options(options).map_err(IndexError::tantivy(&path))?;
            writer.set_merge_policy(Box::new(CappedMergePolicy::new(self.opts.merge_max_docs)));
            tracing::debug!(index = %slot.name(), "opened index writer");
            self.writers.insert(slot, OpenWriter { path, writer });
        }
        match self.writers.get_mut(&slot) {
            Some(open) => Ok(&mut open.writer),
            None => Err(IndexError::Worker("writer vanished".into())),
        }
    }

    /// Deletes the day indexes before `before` (discarding their uncommitted documents) and
    /// skips decisions before it from now on. Returns the days removed.
    pub fn drop_before(&mut self, before: Day) -> Result<Vec<Day>, IndexError> {
        self.writers.retain(|slot, _| !matches!(slot, Slot::Day(d) if *d < before));
        self.touched.retain(|slot| !matches!(slot, Slot::Day(d) if *d < before));
        self.floor = Some(self.floor.map_or(before, |f| f.max(before)));
        self.days.retain(|d| *d >= before);
        self.seen.retain(|d, _| *d >= before);
        day::drop_before(&self.dir, before)
    }

    /// Applies `retention` at `now`: deletes the day indexes that end before `now - retention`
    /// (the day holding that instant is kept whole) and skips older decisions from now on.
    /// Cheap when nothing newly expired. Returns the days removed.
    pub fn expire(&mut self, now: UnixMillis) -> Result<Vec<Day>, IndexError> {
        let Some(retention) = self.opts.retention else {
            return Ok(Vec::new());
        };
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let before = Day::of(UnixMillis(now.0.saturating_sub(retention_ms)));
        if self.floor.is_some_and(|floor| floor >= before) {
            return Ok(Vec::new());
        }
        let dropped = self.drop_before(before)?;
        if !dropped.is_empty() {
            tracing::info!(days = dropped.len(), first_kept = %before, "retention: dropped expired day indexes");
        }
        Ok(dropped)
    }

    fn check(&self) -> Result<(), IndexError> {
        if self.poisoned { Err(IndexError::Poisoned) } else { Ok(()) }
    }
}
