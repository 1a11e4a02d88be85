//! [`map_reader_parallel`]: [`map_reader`](crate::map_reader) on several threads, for
//! backfills (`gatelog ingest FILE…`) where one core cannot keep up with the input.
//!
//! The calling thread decompresses and splits lines into chunks; `threads` scoped workers
//! map chunks; the calling thread hands outcomes to the callback in line order. Memory
//! stays bounded: at most `2 × threads` chunks wait for a worker.

use crate::Dataset;
use crate::body::{BodyContext, map_split_line};
use crate::decode::{BodyReader, DecodeError, Line, LineReader};
use crate::map::LineOutcome;
use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::sync::{Mutex, mpsc};

/// Lines per chunk handed to a worker.
const CHUNK_LINES: usize = 512;
/// Bytes per chunk handed to a worker (whichever limit comes first).
const CHUNK_BYTES: usize = 1024 * 1024;

/// Lines copied out of the reader's buffer, to be mapped on another thread.
#[derive(Debug, Default)]
struct Chunk {
    data: Vec<u8>,
    /// (line number, start, end, full length if over-long)
    lines: Vec<(u64, usize, usize, Option<u64>)>,
}

impl Chunk {
    fn push(&mut self, line: &Line<'_>) {
        let start = self.data.len();
        self.data.extend_from_slice(line.bytes);
        self.lines.push((line.no, start, self.data.len(), line.overlong));
    }

    fn is_full(&self) -> bool {
        self.lines.len() >= CHUNK_LINES || self.data.len() >= CHUNK_BYTES
    }

    fn map(&self, dataset: Dataset, ctx: &BodyContext<'_>) -> Vec<(u64, LineOutcome)> {
        self.lines
            .iter()
            .map(|&(no, start, end, overlong)| {
                let line = Line { no, bytes: self.data.get(start..end).unwrap_or_default(), overlong };
                (no, map_split_line(dataset, line, ctx))
            })
            .collect()
    }
}

type Done = (u64, Vec<(u64, LineOutcome)>);

/// Streams `reader` (gzip or plain) like [`map_reader`](crate::map_reader), mapping lines on
/// `threads` worker threads; `each` still sees every line once, in order, on the calling
/// thread. `threads <= 1` maps on the calling thread. Returns the number of lines read.
pub fn map_reader_parallel<R: Read>(
    dataset: Dataset,
    reader: R,
    ctx: &BodyContext<'_>,
    threads: usize,
    mut each: impl FnMut(u64, LineOutcome),
) -> Result<u64, DecodeError> {
    if threads <= 1 {
        return crate::body::map_reader(dataset, reader, ctx, each);
    }
    let body = BodyReader::new(reader, ctx.limits.max_decompressed)?;
    let mut lines = LineReader::new(BufReader::with_capacity(256 * 1024, body), ctx.limits.max_line);

    let (work_tx, work_rx) = mpsc::sync_channel::<(u64, Chunk)>(threads * 2);
    let work_rx = Mutex::new(work_rx);
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let work_rx = &work_rx;
            scope.spawn(move || {
                loop {
                    let next = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, chunk)) = next else { return };
                    if done_tx.send((seq, chunk.map(dataset, ctx))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);

        let mut order = InOrder::default();
        let mut sent = 0u64;
        let mut failure = None;
        let mut chunk = Chunk::default();
        loop {
            let end = match lines.next_line() {
                Ok(Some(line)) => {
                    chunk.push(&line);
                    if !chunk.is_full() {
                        continue;
                    }
                    false
                }
                Ok(None) => true,
                Err(e) => {
                    failure = Some(e);
                    true
                }
            };
            if !chunk.lines.is_empty() {
                if work_tx.send((sent, std::mem::take(&mut chunk))).is_err() {
                    break;
                }
                sent += 1;
            }
            while let Ok(done) = done_rx.try_recv() {
                order.accept(done, &mut each);
            }
            if end {
                break;
            }
        }
        drop(work_tx);
        for done in done_rx {
            order.accept(done, &mut each);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(lines.line_no()),
        }
    })
}

/// Releases mapped chunks to the callback in the order they were read.
#[derive(Debug, Default)]
struct InOrder {
    next: u64,
    waiting: BTreeMap<u64, Vec<(u64, LineOutcome)>>,
}

impl InOrder {
    fn accept(&mut self, (seq, outcomes): Done, each: &mut impl FnMut(u64, LineOutcome)) {
        self.waiting.insert(seq, outcomes);
        while let Some(outcomes) = self.waiting.remove(&self.next) {
            for (no, outcome) in outcomes {
                each(no, outcome);
            }
            self.next += 1;
        }
    }
}
