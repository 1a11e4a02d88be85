//! [`Consumer`]: register at a position, read and decode records in order, and hand out an
//! [`Acker`] for the side that makes data durable. See the crate docs for the policies.

use crate::{ConsumerError, Status};
use gatelog_model::Batch;
use gatelog_spool::{Record, Spool, SpoolError, SpoolReader};
use std::sync::Arc;

/// How much of each batch a consumer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// Everything, raw lines included (the ClickHouse sink).
    Full,
    /// Without the raw lines, which are checked but not copied (the index, detection).
    WithoutRaw,
}

/// What to do when the consumer's stored position is older than the spool's oldest record
/// (the records in between were deleted after every consumer acknowledged them, so this
/// consumer had them once and its own store lost them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenGone {
    /// Fail with the spool's `PositionGone`: the caller can rebuild from the store of record.
    Fail,
    /// Resume after the oldest record's predecessor, with a warning naming the gap: for the
    /// store of record itself, which nothing else can refill.
    ResumeAtOldest,
}

/// Makes sure the spool keeps what consumer `name` has not stored, before the consumer can say
/// where it stands: a consumer the spool does not know yet (a new spool, or the first run
/// stopped before it registered) is registered just before the spool's oldest record, so no
/// other consumer's acknowledgement lets those records go. A known one keeps its position.
/// Call it for every consumer before any of them starts (one whose store is unreachable
/// registers only later). Blocking file I/O (a small fsynced write). Returns whether it
/// registered.
pub fn hold(spool: &Spool, name: &str) -> Result<bool, SpoolError> {
    let stats = spool.stats();
    if stats.consumers.iter().any(|c| c.name == name) {
        return Ok(false);
    }
    spool.register_consumer(name, stats.first_seq.saturating_sub(1))?;
    Ok(true)
}

/// One decoded spool record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub seq: u64,
    pub batch: Batch,
}

/// A registered reader of the spool (see the crate docs).
#[derive(Debug)]
pub struct Consumer {
    spool: Spool,
    status: Arc<Status>,
    reader: SpoolReader,
    decode: Decode,
    /// The first error, returned again by every later read.
    failed: Option<ConsumerError>,
}

impl Consumer {
    /// Registers `status`'s consumer with the spool at `committed`, the position it stored
    /// with its own data, and starts reading after it. A position ahead of the spool's last
    /// record fails (`PositionAhead`: the spool directory does not belong to that data).
    pub async fn register(
        spool: &Spool,
        status: Arc<Status>,
        committed: u64,
        when_gone: WhenGone,
        decode: Decode,
    ) -> Result<Consumer, ConsumerError> {
        let name = status.name();
        let position = match register(spool, name, committed).await {
            Ok(()) => committed,
            Err(SpoolError::PositionGone { oldest, .. }) if when_gone == WhenGone::ResumeAtOldest => {
                let resumed = oldest.saturating_sub(1);
                tracing::warn!(
                    consumer = name,
                    stored = committed,
                    resumed,
                    "the consumer's stored position is older than the spool's oldest record: records {}..={resumed} \
                     were acknowledged by it before but are not in its store; resuming after them",
                    committed + 1
                );
                register(spool, name, resumed).await.map_err(ConsumerError::spool(name))?;
                resumed
            }
            Err(e) => return Err(ConsumerError::Spool { consumer: name, source: e }),
        };
        status.registered(position);
        tracing::info!(consumer = name, position, "spool consumer registered");
        Ok(Consumer { spool: spool.clone(), reader: spool.reader(position), status, decode, failed: None })
    }

    pub fn name(&self) -> &'static str {
        self.status.name()
    }

    pub fn status(&self) -> &Arc<Status> {
        &self.status
    }

    /// The position of the last record read.
    pub fn read_position(&self) -> u64 {
        self.reader.position()
    }

    /// What acknowledges for this consumer; clone it to the side that makes data durable.
    pub fn acker(&self) -> Acker {
        Acker { spool: self.spool.clone(), status: self.status.clone() }
    }

    /// The next record, waiting for one if caught up; `Ok(None)` once the spool is closed and
    /// everything durable was read.
    pub async fn next(&mut self) -> Result<Option<Delivery>, ConsumerError> {
        self.check()?;
        let record = self.reader.next().await;
        self.deliver(record).await
    }

    /// The next record if one is durable now; `Ok(None)` when caught up.
    pub async fn try_next(&mut self) -> Result<Option<Delivery>, ConsumerError> {
        self.check()?;
        let record = self.reader.try_next().await;
        self.deliver(record).await
    }

    /// The next record if one becomes durable before `deadline`; `Ok(None)` otherwise (or
    /// once the spool is closed).
    pub async fn next_until(&mut self, deadline: tokio::time::Instant) -> Result<Option<Delivery>, ConsumerError> {
        self.check()?;
        match tokio::time::timeout_at(deadline, self.reader.next()).await {
            Ok(record) => self.deliver(record).await,
            Err(_) => Ok(None),
        }
    }

    fn check(&self) -> Result<(), ConsumerError> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    async fn deliver(&mut self, record: Result<Option<Record>, SpoolError>) -> Result<Option<Delivery>, ConsumerError> {
        let result = match record {
            Ok(Some(record)) => self.decode(record).await.map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(ConsumerError::Spool { consumer: self.name(), source: e }),
        };
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    async fn decode(&self, record: Record) -> Result<Delivery, ConsumerError> {
        let decoded = match self.decode {
            Decode::Full => Batch::decode(&record.payload),
            Decode::WithoutRaw => Batch::decode_without_raw(&record.payload),
        };
        match decoded {
            Ok(batch) => {
                self.status.read(record.seq, batch.received_at);
                Ok(Delivery { seq: record.seq, batch })
            }
            Err(e) => {
                let (spool, seq) = (self.spool.clone(), record.seq);
                let at = match tokio::task::spawn_blocking(move || spool.locate(seq)).await {
                    Ok(Ok(at)) => Some(at),
                    Ok(Err(locate)) => {
                        tracing::warn!(consumer = self.name(), seq, error = %locate, "cannot locate an undecodable spool record");
                        None
                    }
                    Err(_) => None,
                };
                Err(ConsumerError::Undecodable { consumer: self.name(), seq, at, detail: e.to_string() })
            }
        }
    }
}

/// Acknowledges positions for one consumer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Acker {
    spool: Spool,
    status: Arc<Status>,
}

impl Acker {
    /// Tells the spool that everything up to `position` is durable in the consumer's store,
    /// so segments every consumer is done with can go. May do blocking file I/O (the
    /// consumers file, unlinks). A failure to write or delete (a full disk) is logged and
    /// not returned: the position is safe in the consumer's own store, the spool keeps the
    /// files a little longer, and the next acknowledgement tries again. What is returned
    /// means the consumer and the spool disagree (unknown consumer, a position ahead).
    pub fn ack(&self, position: u64) -> Result<(), ConsumerError> {
        let name = self.status.name();
        match self.spool.ack(name, position) {
            Ok(()) => {}
            Err(e @ (SpoolError::Io { .. } | SpoolError::NoSpace { .. })) => {
                tracing::warn!(consumer = name, position, error = %e, "spool acknowledgement not persisted; retried with the next one");
            }
            Err(e) => return Err(ConsumerError::Spool { consumer: name, source: e }),
        }
        self.status.acknowledged(position);
        Ok(())
    }
}

async fn register(spool: &Spool, name: &'static str, position: u64) -> Result<(), SpoolError> {
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || spool.register_consumer(name, position))
        .await
        .map_err(|e| SpoolError::InvalidOptions(format!("registering {name}: {e}")))?
}

#[cfg(test)]
mod tests;
