//! One connection: its state as the accept loop and its own watchdog see it, and the task
//! that serves it.
//!
//! A connection is *busy* from the moment hyper hands a request to the router until the
//! response body is done; otherwise it is *waiting*: for its first request head (at most
//! `header_read_timeout` from the accept), for the next one (at most `idle_timeout` after
//! the last response), or, once a byte of a head has arrived, for the rest of that head (at
//! most `header_read_timeout` from that byte). A waiting connection past its deadline is
//! closed; so is one the accept loop evicts or shutdown closes. A busy one is asked to close
//! after its response (hyper's graceful shutdown); its body is bounded by [`super::body`],
//! and shutdown drops it at `drain_timeout` at the latest.

use super::body::{BodyPace, TimedBody};
use super::stats::{ConnStats, DropReason};
use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a connection being closed may take to flush what it wrote before it is dropped.
const FLUSH_GRACE: Duration = Duration::from_millis(500);

/// The waiting-state timeouts of a connection, and its bodies' pace.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
    pub body: BodyPace,
}

/// What the accept loop and the connection's task share.
#[derive(Debug)]
pub(super) struct Conn {
    id: u64,
    /// The registry's clock origin: times below are milliseconds after it, plus one (0 = unset).
    origin: Instant,
    accepted_ms: u64,
    /// Requests being handled (a pipelined request may start before the last one's body ends).
    busy: AtomicUsize,
    served: AtomicU64,
    /// The end of the last response (or the accept).
    last_activity_ms: AtomicU64,
    /// The first byte of the head being read, while waiting.
    head_started_ms: AtomicU64,
    close: AtomicBool,
    changed: Notify,
}

impl Conn {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn at(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms.saturating_sub(1))
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    /// Asks the connection's task to close it (shutdown, eviction).
    fn request_close(&self) {
        self.close.store(true, Ordering::Release);
        self.changed.notify_one();
    }

    /// When a waiting connection is closed, and why; `None` while busy.
    fn deadline(&self, t: &Timeouts) -> Option<(Instant, DropReason)> {
        if self.is_busy() {
            return None;
        }
        // The first head is due `header_read` after the accept, however late its first
        // byte came: a client cannot wait almost that long and then trickle for as long again.
        if self.served.load(Ordering::Acquire) == 0 {
            return Some((self.at(self.accepted_ms) + t.header_read, DropReason::HeaderTimeout));
        }
        let head = self.head_started_ms.load(Ordering::Acquire);
        if head != 0 {
            return Some((self.at(head) + t.header_read, DropReason::HeaderTimeout));
        }
        Some((self.at(self.last_activity_ms.load(Ordering::Acquire)) + t.idle, DropReason::IdleTimeout))
    }

    /// Marks a request as handed to the router; the guard marks its end when dropped (with
    /// the response body, or with the handler if the connection goes first).
    fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.head_started_ms.store(0, Ordering::Release);
        RequestGuard { conn: self.clone() }
    }

    /// A byte arrived: if the connection was waiting for a head, the head has started.
    fn bytes_read(&self) {
        if !self.is_busy() && self.head_started_ms.load(Ordering::Relaxed) == 0 {
            self.head_started_ms.store(self.now_ms(), Ordering::Release);
            self.changed.notify_one();
        }
    }
}

/// Ends a request's busy time when dropped.
#[derive(Debug)]
struct RequestGuard {
    conn: Arc<Conn>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let conn = &self.conn;
        conn.last_activity_ms.store(conn.now_ms(), Ordering::Release);
        conn.served.fetch_add(1, Ordering::AcqRel);
        conn.busy.fetch_sub(1, Ordering::AcqRel);
        conn.changed.notify_one();
    }
}

/// A response body that holds its request's [`RequestGuard`] until it is done.
#[derive(Debug)]
struct Guarded {
    body: Body,
    _guard: RequestGuard,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Every open connection, for the cap and for shutdown.
#[derive(Debug)]
pub(super) struct Registry {
    origin: Instant,
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    pub(super) fn new() -> Self {
        Registry { origin: Instant::now(), next: AtomicU64::new(0), conns: Mutex::new(HashMap::new()) }
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections open and not being closed.
    pub(super) fn live(&self) -> usize {
        self.conns().values().filter(|c| !c.close.load(Ordering::Acquire)).count()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.conns().is_empty()
    }

    pub(super) fn add(&self) -> Arc<Conn> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let conn = Arc::new(Conn {
            id,
            origin: self.origin,
            accepted_ms: now,
            busy: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            last_activity_ms: AtomicU64::new(now),
            head_started_ms: AtomicU64::new(0),
            close: AtomicBool::new(false),
            changed: Notify::new(),
        });
        self.conns().insert(id, conn.clone());
        conn
    }

    fn remove(&self, id: u64) {
        self.conns().remove(&id);
    }

    /// Closes the waiting connection that has waited longest; false when every one is busy.
    pub(super) fn evict_one(&self) -> bool {
        let conns = self.conns();
        let oldest = conns
            .values()
            .filter(|c| !c.is_busy() && !c.close.load(Ordering::Acquire))
            .min_by_key(|c| c.head_started_ms.load(Ordering::Relaxed).max(c.last_activity_ms.load(Ordering::Relaxed)));
        match oldest {
            Some(conn) => {
                conn.request_close();
                true
            }
            None => false,
        }
    }

    /// Asks every connection to close: waiting ones now, busy ones after their response.
    pub(super) fn close_all(&self) {
        for conn in self.conns().values() {
            conn.request_close();
        }
    }
}

/// The socket, noting when a byte of a request head arrives.
struct Watched {
    tcp: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// Serves one connection until it ends, times out, or is told to close.
pub(super) async fn serve(
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    app: Router,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    timeouts: Timeouts,
    stats: Arc<ConnStats>,
) {
    let _ = tcp.set_nodelay(true);
    let service = {
        let (conn, stats) = (conn.clone(), stats.clone());
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let guard = conn.request_started();
            let mut request = request.map(|body| Body::new(TimedBody::new(body, timeouts.body, stats.clone())));
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            let app = app.clone();
            async move {
                let mut response =
                    tower::ServiceExt::oneshot(app, request).await.unwrap_or_else(|e: Infallible| match e {});
                crate::headers::secure(response.headers_mut());
                Ok::<_, Infallible>(response.map(|body| Body::new(Guarded { body, _guard: guard })))
            }
        })
    };
    let io = TokioIo::new(Watched { tcp, conn: conn.clone() });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(connection);
    // Once closing: when to give up on a clean end (`None`: wait, the connection is busy).
    let mut closing: Option<Option<Instant>> = None;
    loop {
        let deadline = match closing {
            Some(grace) => grace.map(|at| (at, None)),
            None => conn.deadline(&timeouts).map(|(at, reason)| (at, Some(reason))),
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "http connection ended with an error");
                }
                break;
            }
            () = conn.changed.notified() => {
                if conn.close.load(Ordering::Acquire) && closing.is_none() {
                    connection.as_mut().graceful_shutdown();
                    closing = Some(None);
                }
                if closing.is_some() && !conn.is_busy() {
                    closing = Some(Some(Instant::now() + FLUSH_GRACE));
                }
            }
            () = tokio::time::sleep_until(deadline.map_or_else(Instant::now, |(at, _)| at)), if deadline.is_some() => {
                let Some((_, reason)) = deadline else { continue };
                match reason {
                    // The grace to flush is over.
                    None => break,
                    Some(reason) => {
                        // Still past the deadline (nothing moved it meanwhile)?
                        if conn.deadline(&timeouts).is_some_and(|(at, _)| at <= Instant::now()) {
                            stats.dropped(reason);
                            tracing::debug!(reason = reason.as_str(), "closing a waiting http connection");
                            connection.as_mut().graceful_shutdown();
                            closing = Some(Some(Instant::now() + FLUSH_GRACE));
                        }
                    }
                }
            }
        }
    }
    registry.remove(conn.id);
    stats.closed();
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        body: BodyPace { read_timeout: Duration::from_secs(30), min_rate: 0 },
    };

    #[tokio::test(start_paused = true)]
    async fn each_waiting_state_has_its_deadline() {
        let registry = Registry::new();
        tokio::time::advance(Duration::from_secs(1)).await;
        let accepted = Instant::now();
        let conn = registry.add();
        assert_eq!(conn.deadline(&T), Some((accepted + T.header_read, DropReason::HeaderTimeout)));

        // A first byte late in the first head does not move its deadline.
        tokio::time::advance(Duration::from_secs(9)).await;
        conn.bytes_read();
        assert_eq!(conn.deadline(&T), Some((accepted + T.header_read, DropReason::HeaderTimeout)));

        // Busy: no deadline (the body has its own pace).
        let guard = conn.request_started();
        assert_eq!(conn.deadline(&T), None);
        conn.bytes_read();
        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(conn.deadline(&T), None);
        let answered = Instant::now();
        drop(guard);

        // Between requests: idle_timeout after the answer, then header_read_timeout after
        // the first byte of the next head.
        assert_eq!(conn.deadline(&T), Some((answered + T.idle, DropReason::IdleTimeout)));
        tokio::time::advance(Duration::from_secs(30)).await;
        let head = Instant::now();
        conn.bytes_read();
        assert_eq!(conn.deadline(&T), Some((head + T.header_read, DropReason::HeaderTimeout)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_waiting_is_evicted_never_a_busy_one() {
        let registry = Registry::new();
        let old = registry.add();
        tokio::time::advance(Duration::from_secs(1)).await;
        let busy = registry.add();
        let _guard = busy.request_started();
        tokio::time::advance(Duration::from_secs(1)).await;
        let newer = registry.add();
        assert_eq!(registry.live(), 3);
        assert!(registry.evict_one());
        assert!(old.close.load(Ordering::Acquire) && !newer.close.load(Ordering::Acquire));
        assert!(registry.evict_one());
        assert!(newer.close.load(Ordering::Acquire));
        assert!(!registry.evict_one(), "only a busy connection is left");
        assert_eq!(registry.live(), 1);
    }
}
