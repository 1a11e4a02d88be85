//! Mapping a body's lines in pieces on the mapping threads, with what they hold bounded.
//!
//! The reader cuts the body into [`Chunk`]s of at most [`LINES_PER_TASK`] lines and
//! [`PIECE_BYTES`] bytes (plus the line that crosses it) and hands each to a mapping thread,
//! which maps and encodes it ([`EncodedRows`]). At most two pieces per thread are handed out
//! and not yet taken back; past that the reader maps the next piece itself, which paces the
//! reading to the mapping, so however fast a body inflates, only a few pieces are ever held
//! besides the output. Each mapped piece is charged to the request's
//! [`Reservation`](gatelog_edge::budget::Reservation) as the reader takes it back, by what it
//! holds (its buffers' capacity), so the batch cannot outgrow `receiver.max_batch_bytes`
//! nor the receiver's total budget, whatever the lines are: a blank line holds nothing, a
//! dead letter its encoding.

use super::days::{DayCounts, restrict};
use super::{Mapper, PrepareError};
use crate::decode::LineReader;
use crate::map::decisions::{DecisionLineContext, map_decision_line};
use crate::{BodyContext, Chunk, LineOutcome, map_split_line, next_chunk};
use gatelog_edge::budget::Reservation;
use gatelog_model::EncodedRows;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::sync::mpsc;

/// Lines per piece: small enough that mapping starts while most of a 2,000-line Logpush
/// body is still being inflated, big enough that handing a piece over costs nothing next to
/// mapping it.
pub(super) const LINES_PER_TASK: usize = 128;
/// A piece takes no further line once it holds this many bytes.
pub(super) const PIECE_BYTES: usize = 512 * 1024;

/// Room for one encoded decision: `http_requests` decisions average about 390 bytes.
const DECISION_BYTES: usize = 448;

/// What a body, or one piece of it, mapped to: the rows already encoded for the spool.
#[derive(Debug, Default)]
pub(crate) struct MappedBody {
    /// The rows and dead letters, one run per piece, in line order.
    pub(super) runs: Vec<EncodedRows>,
    pub(super) lines: u64,
    pub(super) probes: u64,
    /// Empty or whitespace-only lines: counted, nothing kept.
    pub(super) blanks: u64,
    /// Partial problems in usable lines (a field that did not parse, kept in the raw record).
    pub(super) warnings: u64,
    /// The first dead letter's reason, in line order.
    pub(super) first_error: Option<String>,
    /// Lines per UTC day of their events.
    pub(super) days: DayCounts,
}

impl MappedBody {
    pub(super) fn decisions(&self) -> usize {
        self.runs.iter().map(EncodedRows::decisions).sum()
    }

    /// Usable lines: their bytes are kept in the batch's body, not as rows of their own.
    pub(super) fn mapped_lines(&self) -> usize {
        self.runs.iter().map(EncodedRows::mapped_lines).sum()
    }

    pub(super) fn dead_letters(&self) -> usize {
        self.runs.iter().map(EncodedRows::dead_letters).sum()
    }

    /// The memory the piece holds (what its reservation is charged).
    fn held(&self) -> usize {
        self.runs.iter().map(EncodedRows::held_bytes).sum::<usize>()
            + self.first_error.as_ref().map_or(0, String::capacity)
    }
}

/// A run holding less than this is appended to the run before it rather than kept as a part
/// of its own, so a body of many pieces with little in them holds few runs.
const SMALL_RUN: usize = 64 * 1024;

/// Puts mapped pieces back in line order as they come in and merges them into one
/// [`MappedBody`] at once, charging what they hold: pieces waiting for an earlier one are at
/// most the pieces handed out, and a piece costs its runs' buffers, not a record of its own.
struct Assembler<'r> {
    out: MappedBody,
    next: usize,
    waiting: BTreeMap<usize, MappedBody>,
    reservation: &'r mut Reservation,
}

impl<'r> Assembler<'r> {
    fn new(reservation: &'r mut Reservation) -> Self {
        Assembler { out: MappedBody::default(), next: 0, waiting: BTreeMap::new(), reservation }
    }

    /// Takes piece `index` (any order).
    fn add(&mut self, index: usize, piece: MappedBody) -> Result<(), PrepareError> {
        self.reservation.grow_batch(piece.held())?;
        self.waiting.insert(index, piece);
        while let Some(piece) = self.waiting.remove(&self.next) {
            self.next += 1;
            self.append(piece)?;
        }
        Ok(())
    }

    fn append(&mut self, piece: MappedBody) -> Result<(), PrepareError> {
        let out = &mut self.out;
        out.lines += piece.lines;
        out.probes += piece.probes;
        out.blanks += piece.blanks;
        out.warnings += piece.warnings;
        if out.first_error.is_none() {
            out.first_error = piece.first_error;
        }
        out.days.merge(&piece.days);
        for run in piece.runs {
            let held = run.held_bytes();
            match out.runs.last_mut() {
                _ if run.is_empty() => self.reservation.shrink_batch(held),
                Some(last) if held < SMALL_RUN => {
                    let before = last.held_bytes() + held;
                    last.append(run);
                    match last.held_bytes() {
                        after if after > before => self.reservation.grow_batch(after - before)?,
                        after => self.reservation.shrink_batch(before - after),
                    }
                }
                _ => out.runs.push(run),
            }
        }
        Ok(())
    }

    fn finish(self) -> MappedBody {
        debug_assert!(self.waiting.is_empty(), "every piece handed out came back");
        self.out
    }
}

/// How each line of one body is mapped.
#[derive(Clone, Copy)]
pub(super) struct LineMapper<'a> {
    pub(super) mapper: Mapper,
    pub(super) ctx: &'a BodyContext<'a>,
    pub(super) decision_ctx: &'a DecisionLineContext<'a>,
    /// The days a line's events may fall on, when the body spans more than the batch may.
    pub(super) allowed_days: Option<&'a BTreeSet<i64>>,
    /// Lines before the body's first in its file: a line's number in the body is its number
    /// minus these (decisions keep the body's, so the line is found in the stored body).
    pub(super) lines_before: u64,
}

impl LineMapper<'_> {
    /// Maps a piece's lines and encodes their rows and dead letters.
    fn map(&self, chunk: &Chunk) -> Result<MappedBody, PrepareError> {
        // Sized for the usual case, one decision a non-empty line (the line itself stays in
        // the batch's body); trimmed afterwards if much stays unused.
        let used = chunk.lines.iter().filter(|(_, span, _)| !span.is_empty()).count();
        let mut rows = EncodedRows::with_capacity(used * DECISION_BYTES, 0);
        let mut out = MappedBody::default();
        for line in (0..chunk.lines.len()).filter_map(|i| chunk.line(i)) {
            out.lines += 1;
            let no = line.no;
            let outcome = match self.mapper {
                Mapper::Dataset(dataset, _) => map_split_line(dataset, line, self.ctx),
                Mapper::Decisions => map_decision_line(line, self.decision_ctx),
            };
            let outcome = match self.allowed_days {
                Some(allowed) => restrict(outcome, allowed, self.ctx.origin, no),
                None => outcome,
            };
            match outcome {
                // Warnings (partial problems in a usable line) are counted for `gatelog ingest`'s report.
                LineOutcome::Mapped { decisions, raw, warnings } => {
                    out.warnings += warnings.len() as u64;
                    out.days.count_line(raw.time, decisions.iter().map(|d| d.time));
                    let in_body = u32::try_from(no.saturating_sub(self.lines_before)).unwrap_or(u32::MAX);
                    for decision in &decisions {
                        rows.push_decision(decision, in_body)?;
                    }
                    rows.count_mapped_line();
                }
                LineOutcome::Probe => out.probes += 1,
                LineOutcome::Blank => out.blanks += 1,
                LineOutcome::Dead(dead) => {
                    rows.push_dead_letter(&dead)?;
                    if out.first_error.is_none() {
                        out.first_error = Some(dead.error);
                    }
                }
            }
        }
        rows.trim();
        out.runs.push(rows);
        Ok(out)
    }

    /// Reads and maps every line on the calling thread (small bodies).
    pub(super) fn sequential<R: BufRead>(
        self,
        mut lines: LineReader<R>,
        reservation: &mut Reservation,
    ) -> Result<MappedBody, PrepareError> {
        let mut out = Assembler::new(reservation);
        let mut chunk = Chunk::default();
        let mut index = 0;
        while let Some(read) = next_chunk(&mut lines, LINES_PER_TASK, PIECE_BYTES, chunk)? {
            out.add(index, self.map(&read)?)?;
            index += 1;
            chunk = read;
        }
        Ok(out.finish())
    }

    /// Reads (inflating and hashing, for gzip) the body piece by piece and maps each on
    /// `pool` as soon as it is read, so inflating and mapping overlap; see the module docs
    /// for what bounds the pieces held. A read error or an exceeded budget ends the body:
    /// what was mapped is dropped.
    ///
    /// `ThreadPool::scope` runs the reading on a pool thread too. `in_place_scope` (reading
    /// on the calling thread) looked faster in the latency phase (map p50 23 → 16 ms), but in
    /// full runs its p50 was within noise of this one and (b)'s peak RSS rose from 468 to
    /// 529 MB, over the 512 MB target.
    pub(super) fn pipelined<R: BufRead + Send>(
        self,
        lines: LineReader<R>,
        pool: &rayon::ThreadPool,
        reservation: &mut Reservation,
    ) -> Result<MappedBody, PrepareError> {
        type Done = (usize, Result<MappedBody, PrepareError>, Chunk);
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let max_in_flight = 2 * pool.current_num_threads().max(1);
        let mut out = Assembler::new(reservation);
        let (read, done_rx) = {
            let out = &mut out;
            pool.scope(move |scope| {
                let mut lines = lines;
                let mut take = |(index, piece, chunk): Done, free: &mut Vec<Chunk>| -> Result<(), PrepareError> {
                    free.push(chunk);
                    out.add(index, piece?)
                };
                let mut read = || -> Result<(), PrepareError> {
                    let mut free: Vec<Chunk> = Vec::new();
                    let (mut in_flight, mut index, mut last_bytes) = (0usize, 0usize, 0usize);
                    loop {
                        while let Ok(done) = done_rx.try_recv() {
                            in_flight -= 1;
                            take(done, &mut free)?;
                        }
                        // A mapped piece's buffers if one is back; else buffers sized like the last piece.
                        let chunk = free
                            .pop()
                            .unwrap_or_else(|| Chunk::with_capacity(LINES_PER_TASK, last_bytes + last_bytes / 8));
                        let Some(chunk) = next_chunk(&mut lines, LINES_PER_TASK, PIECE_BYTES, chunk)? else {
                            return Ok(());
                        };
                        last_bytes = chunk.bytes.len();
                        if in_flight >= max_in_flight {
                            // Enough pieces are waiting for a thread: map this one here.
                            let piece = self.map(&chunk);
                            take((index, piece, chunk), &mut free)?;
                        } else {
                            let done = done_tx.clone();
                            in_flight += 1;
                            // `done_rx` outlives the scope, so the send cannot fail.
                            scope.spawn(move |_| {
                                let piece = self.map(&chunk);
                                let _ = done.send((index, piece, chunk));
                            });
                        }
                        index += 1;
                    }
                };
                let result = read();
                drop(done_tx);
                (result, done_rx)
            })
        };
        read?;
        // The scope waited for every piece handed out; take the ones not taken back yet.
        for (index, piece, _) in done_rx.try_iter() {
            out.add(index, piece?)?;
        }
        Ok(out.finish())
    }
}
