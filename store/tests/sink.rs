//! The ClickHouse sink against the real server: it lets the spool forget records only after
//! its `Durability` returned, and stops, keeping them, when that fails.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use gatelog_consumer::{ConsumerError, Status};
use gatelog_spool::{Spool, SpoolOptions};
use gatelog_store::Store;
use gatelog_store::durability::{Durability, SyncFilesystem};
use gatelog_store::sink::{SINK_NAME, SinkError, SinkOptions, SinkStats, run_clickhouse_sink};
use gatelog_store::testing::TestClickHouse;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A sync that waits until the test opens the gate (or fails once the gate says so), counting
/// its calls.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
    calls: AtomicU32,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum GateState {
    #[default]
    Closed,
    Open,
    Failing,
}

impl Gate {
    fn set(&self, state: GateState) {
        *self.state.lock().unwrap() = state;
        self.changed.notify_all();
    }
}

impl Durability for Gate {
    fn sync(&self) -> io::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let guard = self.state.lock().unwrap();
        // Bounded: a test that forgets to open the gate fails instead of hanging.
        let (state, _) =
            self.changed.wait_timeout_while(guard, Duration::from_secs(30), |s| *s == GateState::Closed).unwrap();
        match *state {
            GateState::Open => Ok(()),
            GateState::Failing => Err(io::Error::other("disk went away")),
            GateState::Closed => Err(io::Error::other("the test never opened the gate")),
        }
    }
}

fn committed(spool: &Spool) -> u64 {
    let stats = spool.stats();
    stats.consumers.iter().find(|c| c.name == SINK_NAME).map_or(0, |c| c.committed_seq)
}

/// Polls `done` every 20 ms for at most 20 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most 20 s) until ClickHouse holds the decisions of batch `id`.
async fn stored(store: &Store, id: &str) {
    let started = Instant::now();
    while store.count_rows_of_batch("decisions", id).await.unwrap() != 5 {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting for batch {id} in ClickHouse");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn append_batch(spool: &Spool, id: &str) -> u64 {
    spool.append(common::batch(id, 5, 0).encode().unwrap()).await.unwrap()
}

/// A sink over a fresh spool and database, running until `stop` is sent or dropped.
struct Running {
    _ch: TestClickHouse,
    _dir: tempfile::TempDir,
    store: Store,
    spool: Spool,
    status: Arc<Status>,
    stop: tokio::sync::oneshot::Sender<()>,
    sink: tokio::task::JoinHandle<Result<(), SinkError>>,
}

/// `durability` gets the server's data dir (for the real thing).
async fn start(durability: impl FnOnce(&Path) -> Arc<dyn Durability>) -> Running {
    let ch = TestClickHouse::start().await.unwrap();
    let store = ch.store().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    let stats = Arc::new(SinkStats::default());
    let status = Arc::new(Status::new(SINK_NAME));
    let options = SinkOptions { linger: Duration::from_millis(10), ..SinkOptions::default() };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sink = tokio::spawn(run_clickhouse_sink(
        store.clone(),
        spool.clone(),
        status.clone(),
        stats,
        options,
        Some(durability(ch.data_dir())),
        async move {
            let _ = stopped.await;
        },
    ));
    Running { _ch: ch, _dir: dir, store, spool, status, stop, sink }
}

#[tokio::test]
async fn the_spool_is_acknowledged_only_after_the_sync_and_not_after_a_failed_one() {
    let gate = Arc::new(Gate::default());
    let gate_ = gate.clone();
    let Running { _ch, _dir, store, spool, status, stop, sink } = start(|_| gate_).await;

    append_batch(&spool, "durable-1").await;
    stored(&store, "durable-1").await;
    eventually("the sync to start", || gate.calls.load(Ordering::SeqCst) == 1).await;
    assert_eq!(committed(&spool), 0, "acknowledged before the sync returned");
    assert_eq!(status.position(), 0, "reported as stored before the sync returned");

    // Written while the first sync waits: one later sync covers it.
    let second = append_batch(&spool, "durable-2").await;
    stored(&store, "durable-2").await;
    assert_eq!(committed(&spool), 0);
    gate.set(GateState::Open);
    eventually("the acknowledgement", || committed(&spool) == second).await;
    assert_eq!(status.position(), second);
    assert!(gate.calls.load(Ordering::SeqCst) <= 2, "{} syncs for two batches", gate.calls.load(Ordering::SeqCst));

    // A failed sync stops the sink and leaves the record to the spool.
    gate.set(GateState::Failing);
    let third = append_batch(&spool, "durable-3").await;
    let result = tokio::time::timeout(Duration::from_secs(20), sink).await.unwrap().unwrap();
    match result {
        Err(SinkError::Durability { seq, source }) => {
            assert_eq!(seq, third);
            assert!(source.to_string().contains("disk went away"), "{source}");
        }
        other => panic!("expected a durability error, got {other:?}"),
    }
    assert_eq!(committed(&spool), second);
    drop(stop);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn shutdown_syncs_and_acknowledges_the_last_group() {
    // The real thing, on the server's data dir.
    let Running { _ch, _dir, store, spool, status, stop, sink } = start(|dir| Arc::new(SyncFilesystem::new(dir))).await;
    let seq = append_batch(&spool, "shutdown-1").await;
    stored(&store, "shutdown-1").await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), sink).await.unwrap().unwrap().unwrap();
    assert_eq!(committed(&spool), seq);
    assert_eq!(status.position(), seq);
    assert_eq!(store.count_rows_of_batch("decisions", "shutdown-1").await.unwrap(), 5);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn an_undecodable_record_stops_the_sink_naming_it_and_keeps_it() {
    let Running { _ch, _dir, store, spool, status, stop, sink } = start(|dir| Arc::new(SyncFilesystem::new(dir))).await;
    let first = append_batch(&spool, "before-bad").await;
    let bad = spool.append(b"GLB1 but not postcard".to_vec()).await.unwrap();
    append_batch(&spool, "after-bad").await;
    let result = tokio::time::timeout(Duration::from_secs(30), sink).await.unwrap().unwrap();
    match result {
        Err(SinkError::Consumer(ConsumerError::Undecodable { seq, at: Some(at), .. })) => {
            assert_eq!(seq, bad);
            assert_eq!(at, spool.locate(bad).unwrap());
        }
        other => panic!("expected an undecodable record, got {other:?}"),
    }
    assert_eq!(store.count_rows_of_batch("decisions", "before-bad").await.unwrap(), 5);
    assert_eq!(store.count_rows_of_batch("decisions", "after-bad").await.unwrap(), 0, "nothing after it is stored");
    assert_eq!(committed(&spool), first, "acknowledged up to the record before it");
    assert!(status.position() <= first);
    drop(stop);
    spool.close().await.unwrap();
}
