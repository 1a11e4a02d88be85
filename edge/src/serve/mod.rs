//! [`HttpServer`]: the HTTP/1.1 server `gatelog serve` runs its routes on, with every
//! connection bounded in time and in number.
//!
//! | limit ([`ServerLimits`]) | what happens past it |
//! | --- | --- |
//! | `header_read_timeout` | a connection without a complete request head this long after the accept (or after the first byte of a later head) is closed: slowloris clients and connections that never send anything |
//! | `idle_timeout` | a keep-alive connection with no new request this long after its last response is closed |
//! | `body_read_timeout`, `min_body_rate` | a body that stops for `body_read_timeout`, or arrives more slowly than `min_body_rate` on average after that, is cut off: 408, connection closed |
//! | `max_connections` | a new connection beyond it closes the waiting connection that has waited longest (evicted); when every open connection is busy with a request, the new one is closed at once (refused) |
//! | `drain_timeout` | on shutdown, waiting connections close at once and busy ones after their response; those still busy after it are dropped |
//!
//! So neither idle nor slow clients hold a connection, a slot under the cap, or memory for
//! longer than these limits, and a flood of them only evicts itself: a client that sends its
//! request at once is served. Counters: [`ConnStats`] (`gatelog_http_*` on `/metrics`).
//! Every request carries its peer as axum's `ConnectInfo<SocketAddr>` extension (the
//! operator routes' loopback rule reads it), and every response gets the security headers
//! ([`crate::headers`]), errors and unknown routes included.
//! HTTP/2 is not served (Logpush, Tail Workers and gatelog's proxy all speak HTTP/1.1), so
//! one connection is one request at a time.

mod body;
mod conn;
mod stats;

pub use body::BodyTimeout;
pub use stats::{ConnStats, DropReason};

use axum::Router;
use conn::{Registry, Timeouts};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The limits of [`HttpServer`] (`[server]` in `gatelog.toml`; see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
    /// Bytes a second a body must average once `body_read_timeout` has passed (0: no check).
    pub min_body_rate: u64,
    pub drain_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            min_body_rate: 16 * 1024,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Connections the kernel may hold completed for the server before it accepts them (capped
/// by `net.core.somaxconn`). tokio's (and std's) 128 overflows under a burst of a thousand
/// connects: the kernel then drops handshakes, and clients whose connect already succeeded
/// are left on connections the server never sees, so it cannot close them.
const BACKLOG: u32 = 4096;

/// A listener on `addr` with a backlog of 4096 for bursts of connects.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves a router on a listener within [`ServerLimits`].
#[derive(Debug)]
pub struct HttpServer {
    limits: ServerLimits,
    stats: Arc<ConnStats>,
}

impl HttpServer {
    pub fn new(limits: ServerLimits) -> Self {
        HttpServer { limits, stats: Arc::new(ConnStats::default()) }
    }

    /// The counters, to register with the receiver's `/metrics`.
    pub fn stats(&self) -> Arc<ConnStats> {
        self.stats.clone()
    }

    /// Accepts connections until `shutdown` resolves, then closes them (see the module docs)
    /// and returns once every connection is gone, at most `drain_timeout` later. Raises the
    /// process's open-file limit to its hard limit first, as a server with a connection cap
    /// needs one file per connection.
    pub async fn serve(self, listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
        let HttpServer { limits, stats } = self;
        raise_open_files(limits.max_connections);
        let timeouts = Timeouts {
            header_read: limits.header_read_timeout,
            idle: limits.idle_timeout,
            body: body::BodyPace { read_timeout: limits.body_read_timeout, min_rate: limits.min_body_rate },
        };
        let registry = Arc::new(Registry::new());
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            accept_failed(&e).await;
                            continue;
                        }
                    };
                    stats.accepted();
                    if registry.live() >= limits.max_connections {
                        if registry.evict_one() {
                            stats.dropped(DropReason::Evicted);
                        } else {
                            stats.dropped(DropReason::Refused);
                            stats.closed();
                            tracing::debug!(max_connections = limits.max_connections, "every connection is busy; refusing a new one");
                            continue;
                        }
                    }
                    let conn = registry.add();
                    tasks.spawn(conn::serve(tcp, peer, app.clone(), conn, registry.clone(), timeouts, stats.clone()));
                }
            }
        }
        drop(listener);
        let open = registry.live();
        for _ in 0..open {
            stats.dropped(DropReason::Shutdown);
        }
        tracing::info!(open, drain_timeout = ?limits.drain_timeout, "http: closing connections (waiting ones now, busy ones after their answer)");
        registry.close_all();
        let drained =
            tokio::time::timeout(limits.drain_timeout, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                busy = tasks.len(),
                drain_timeout = ?limits.drain_timeout,
                "http: connections still busy after server.drain_timeout; dropping them (their batches were not acknowledged)"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        debug_assert!(registry.is_empty() || drained.is_err());
    }
}

/// After a failed `accept`: a connection that failed on the way is nothing; running out of
/// file descriptors or memory is worth a warning and a pause (the loop would spin otherwise).
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted) {
        return;
    }
    tracing::warn!(error = %e, "http: accept failed; pausing 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Raises the soft open-file limit to the hard one (as Go's runtime does) and warns when
/// `max_connections` still does not fit in it.
fn raise_open_files(max_connections: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = match (limit.current, limit.maximum) {
        (Some(current), Some(maximum)) if current < maximum => {
            match setrlimit(
                Resource::Nofile,
                rustix::process::Rlimit { current: Some(maximum), maximum: Some(maximum) },
            ) {
                Ok(()) => Some(maximum),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot raise the open-file limit");
                    Some(current)
                }
            }
        }
        (current, _) => current,
    };
    // Beside the connections: the spool, the index, ClickHouse connections, the listener.
    if let Some(files) = raised
        && files < (max_connections as u64).saturating_add(256)
    {
        tracing::warn!(
            open_files = files,
            max_connections,
            "the open-file limit is below server.max_connections + 256; accepts may fail before the cap is reached"
        );
    }
}
