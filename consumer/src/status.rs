//! [`Status`]: what one consumer is doing, how far behind it is, and why it stopped; shared
//! between the consumer (which writes it) and whoever reports it (`/readyz`, `/metrics`,
//! later an alert, which can wait for changes with [`Status::subscribe`]).
//!
//! # Lag
//!
//! In records: the spool's last record − the consumer's acknowledged position.
//! In seconds ([`Snapshot::lag_seconds`]): 0 once the acknowledged position covers the
//! spool's last record; otherwise now − the `received_at` of the oldest record the consumer
//! has read but not acknowledged; before it read the next one, the `received_at` of the newest
//! record it acknowledged stands in (an upper bound: records arrive in roughly spool order).
//! Unknown (nothing read yet): `None`.

use gatelog_model::UnixMillis;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;

/// What a consumer is doing, as it says itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not registered with the spool yet.
    Starting,
    /// Reading and storing (caught up or not: see [`Phase`]).
    Running,
    /// Cannot make progress now and retries by itself (its store is unreachable).
    Waiting(String),
    /// Making its own data again (the index, from ClickHouse), with progress.
    Rebuilding(String),
    /// Gave up; consumes nothing more until gatelog restarts. Needs an operator.
    Stopped(String),
}

/// The closed set of phases exported as the `state` label: [`State`], with `Running` split
/// into `running` and `caught_up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Starting,
    Running,
    CaughtUp,
    Waiting,
    Rebuilding,
    Stopped,
}

impl Phase {
    pub const ALL: [Phase; 6] =
        [Phase::Starting, Phase::Running, Phase::CaughtUp, Phase::Waiting, Phase::Rebuilding, Phase::Stopped];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::CaughtUp => "caught_up",
            Phase::Waiting => "waiting",
            Phase::Rebuilding => "rebuilding",
            Phase::Stopped => "stopped",
        }
    }

    /// Whether a consumer in this phase is doing its job (`/readyz`).
    pub fn is_ready(self) -> bool {
        matches!(self, Phase::Running | Phase::CaughtUp)
    }
}

/// One consumer's status at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub name: &'static str,
    pub phase: Phase,
    /// Why it waits, what it rebuilds, or why it stopped.
    pub reason: Option<String>,
    /// The acknowledged spool position.
    pub position: u64,
    pub lag_records: u64,
    pub lag_seconds: Option<f64>,
}

impl Snapshot {
    /// `"<name>: <phase>: <reason>"`, for `/readyz` and logs.
    pub fn describe(&self) -> String {
        match &self.reason {
            Some(reason) => format!("{}: {}: {reason}", self.name, self.phase.as_str()),
            None => format!("{}: {}", self.name, self.phase.as_str()),
        }
    }
}

/// The shared status of one consumer. See the module docs.
#[derive(Debug)]
pub struct Status {
    name: &'static str,
    state: watch::Sender<State>,
    /// Acknowledged position.
    position: AtomicU64,
    /// `(seq, received_at ms)` of records read but not acknowledged, oldest first.
    unacked: Mutex<VecDeque<(u64, i64)>>,
    /// `received_at` (ms) of the newest acknowledged record; 0: none yet.
    newest_acked_ms: AtomicI64,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Status {
    /// A consumer called `name` (its spool consumer name and its `sink` label), starting.
    pub fn new(name: &'static str) -> Status {
        Status {
            name,
            state: watch::Sender::new(State::Starting),
            position: AtomicU64::new(0),
            unacked: Mutex::new(VecDeque::new()),
            newest_acked_ms: AtomicI64::new(0),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// Follows every change of state (an alert on a stopped consumer waits here).
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.state.subscribe()
    }

    /// The acknowledged spool position.
    pub fn position(&self) -> u64 {
        self.position.load(Ordering::Relaxed)
    }

    /// Registered (or back) and consuming. Logs the way back from waiting or rebuilding.
    pub fn set_running(&self) {
        let was = self.state.send_replace(State::Running);
        match was {
            State::Waiting(_) => tracing::info!(consumer = self.name, "spool consumer resumed"),
            State::Rebuilding(_) => tracing::info!(consumer = self.name, "spool consumer rebuilt; consuming again"),
            _ => {}
        }
    }

    /// Cannot make progress now; retries by itself. Logged when it starts waiting (the
    /// consumer logs its own retries).
    pub fn set_waiting(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let entering = !matches!(*self.state.borrow(), State::Waiting(_));
        if entering {
            tracing::warn!(consumer = self.name, reason = %reason, "spool consumer waiting");
        }
        self.state.send_replace(State::Waiting(reason));
    }

    /// Rebuilding its own data; `progress` says how far.
    pub fn set_rebuilding(&self, progress: impl Into<String>) {
        self.state.send_replace(State::Rebuilding(progress.into()));
    }

    /// Gave up with `reason`: logged once, loudly, here.
    pub fn stop(&self, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::error!(consumer = self.name, reason = %reason,
            "spool consumer stopped; it consumes nothing more until gatelog restarts, and the spool keeps what it did not acknowledge");
        self.state.send_replace(State::Stopped(reason));
    }

    /// Registered at `position`.
    pub(crate) fn registered(&self, position: u64) {
        self.position.store(position, Ordering::Relaxed);
        guard(&self.unacked).clear();
        self.set_running();
    }

    /// Record `seq`, received at `received_at`, was read.
    pub(crate) fn read(&self, seq: u64, received_at: UnixMillis) {
        guard(&self.unacked).push_back((seq, received_at.0));
    }

    /// Everything up to `position` is acknowledged.
    pub(crate) fn acknowledged(&self, position: u64) {
        let mut unacked = guard(&self.unacked);
        while let Some(&(seq, at)) = unacked.front() {
            if seq > position {
                break;
            }
            self.newest_acked_ms.fetch_max(at, Ordering::Relaxed);
            unacked.pop_front();
        }
        self.position.fetch_max(position, Ordering::Relaxed);
    }

    /// Lag in seconds at `now` against a spool whose last record is `spool_last_seq`.
    fn lag_seconds(&self, spool_last_seq: u64, now: UnixMillis) -> Option<f64> {
        if self.position() >= spool_last_seq {
            return Some(0.0);
        }
        let oldest = guard(&self.unacked).front().map(|&(_, at)| at);
        let oldest = oldest.or_else(|| Some(self.newest_acked_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0))?;
        Some((now.0 - oldest).max(0) as f64 / 1000.0)
    }

    /// The instant before which this consumer has acknowledged every record the spool was
    /// given (by `received_at`), at `now`, against a spool whose last record is
    /// `spool_last_seq`: `now` once caught up; else the receipt of the oldest record read
    /// and not acknowledged, or, before it read one, of the newest acknowledged; `None`
    /// when it knows neither (it has not started). Scheduled rules wait for it to pass a
    /// window's end, so they never judge a window whose arrivals are still in the spool.
    pub fn stored_through(&self, spool_last_seq: u64, now: UnixMillis) -> Option<UnixMillis> {
        if self.position() >= spool_last_seq {
            return Some(now);
        }
        let oldest = guard(&self.unacked).front().map(|&(_, at)| at);
        oldest.or_else(|| Some(self.newest_acked_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0)).map(UnixMillis)
    }

    /// The status now, against a spool whose last record is `spool_last_seq`.
    pub fn snapshot(&self, spool_last_seq: u64, now: UnixMillis) -> Snapshot {
        let position = self.position();
        let (phase, reason) = match self.state() {
            State::Starting => (Phase::Starting, None),
            State::Running if position >= spool_last_seq => (Phase::CaughtUp, None),
            State::Running => (Phase::Running, None),
            State::Waiting(r) => (Phase::Waiting, Some(r)),
            State::Rebuilding(r) => (Phase::Rebuilding, Some(r)),
            State::Stopped(r) => (Phase::Stopped, Some(r)),
        };
        Snapshot {
            name: self.name,
            phase,
            reason,
            position,
            lag_records: spool_last_seq.saturating_sub(position),
            lag_seconds: self.lag_seconds(spool_last_seq, now),
        }
    }
}

/// Every consumer's status, in the order they were added. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Statuses {
    all: Arc<Mutex<Vec<Arc<Status>>>>,
}

impl Statuses {
    /// Adds the status of consumer `name` (a fixed name: it is a metric label).
    pub fn add(&self, name: &'static str) -> Arc<Status> {
        let status = Arc::new(Status::new(name));
        guard(&self.all).push(status.clone());
        status
    }

    pub fn all(&self) -> Vec<Arc<Status>> {
        guard(&self.all).clone()
    }

    pub fn get(&self, name: &str) -> Option<Arc<Status>> {
        guard(&self.all).iter().find(|s| s.name == name).cloned()
    }

    pub fn snapshots(&self, spool_last_seq: u64, now: UnixMillis) -> Vec<Snapshot> {
        self.all().iter().map(|s| s.snapshot(spool_last_seq, now)).collect()
    }

    /// One line per consumer that is not doing its job (see [`Phase::is_ready`]).
    pub fn not_ready(&self, spool_last_seq: u64, now: UnixMillis) -> Vec<String> {
        self.snapshots(spool_last_seq, now).iter().filter(|s| !s.phase.is_ready()).map(Snapshot::describe).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_lag_follow_reads_and_acks() {
        let s = Status::new("test");
        let now = UnixMillis(10_000);
        assert_eq!(s.snapshot(0, now).phase, Phase::Starting);
        s.registered(0);
        assert_eq!(s.snapshot(0, now).phase, Phase::CaughtUp);
        assert_eq!(s.snapshot(0, now).lag_seconds, Some(0.0));
        let behind = s.snapshot(2, now);
        assert_eq!((behind.phase, behind.lag_records, behind.lag_seconds), (Phase::Running, 2, None));

        s.read(1, UnixMillis(4_000));
        s.read(2, UnixMillis(7_000));
        assert_eq!(s.snapshot(2, now).lag_seconds, Some(6.0), "age of the oldest unacknowledged record");
        s.acknowledged(1);
        assert_eq!(s.snapshot(2, now).lag_seconds, Some(3.0));
        s.acknowledged(2);
        assert_eq!(s.snapshot(2, now).lag_seconds, Some(0.0));
        assert_eq!(s.snapshot(3, now).lag_seconds, Some(3.0), "the newest acknowledged stands in");
        s.acknowledged(1);
        assert_eq!(s.position(), 2, "a lower ack never moves the position back");
    }

    #[test]
    fn stored_through_follows_the_oldest_unacknowledged_receipt() {
        let s = Status::new("test");
        let now = UnixMillis(10_000);
        assert_eq!(s.stored_through(0, now), Some(now), "an empty spool is all stored");
        assert_eq!(s.stored_through(2, now), None, "records it has not read, nothing acknowledged: unknown");
        s.registered(0);
        s.read(1, UnixMillis(4_000));
        s.read(2, UnixMillis(7_000));
        assert_eq!(s.stored_through(2, now), Some(UnixMillis(4_000)));
        s.acknowledged(1);
        assert_eq!(s.stored_through(2, now), Some(UnixMillis(7_000)));
        s.acknowledged(2);
        assert_eq!(s.stored_through(2, now), Some(now));
        assert_eq!(s.stored_through(3, now), Some(UnixMillis(7_000)), "not read yet: the newest acknowledged");
    }

    #[test]
    fn states_carry_their_reason_and_readiness() {
        let statuses = Statuses::default();
        let a = statuses.add("a");
        let b = statuses.add("b");
        a.registered(5);
        b.registered(5);
        let now = UnixMillis(0);
        assert!(statuses.not_ready(5, now).is_empty());
        let mut changes = b.subscribe();
        b.set_waiting("store unreachable");
        assert_eq!(statuses.not_ready(5, now), ["b: waiting: store unreachable"]);
        assert!(changes.has_changed().unwrap());
        assert_eq!(*changes.borrow_and_update(), State::Waiting("store unreachable".into()));
        b.set_running();
        a.set_rebuilding("12 of 40 decisions");
        assert_eq!(statuses.not_ready(5, now), ["a: rebuilding: 12 of 40 decisions"]);
        a.stop("record 7 does not decode");
        let snap = statuses.get("a").unwrap().snapshot(9, now);
        assert_eq!((snap.phase, snap.lag_records), (Phase::Stopped, 4));
        assert_eq!(snap.describe(), "a: stopped: record 7 does not decode");
    }
}
