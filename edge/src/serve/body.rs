//! [`TimedBody`]: a request body that must keep arriving.
//!
//! A body fails with [`BodyTimeout`] when no byte of it arrives for `body_read_timeout`, or
//! when, `body_read_timeout` after it started, it arrives more slowly on average than
//! `min_body_rate` bytes a second: by time `t` after its start it must have delivered
//! `min_body_rate × (t − body_read_timeout)` bytes. The handler answers 408 and the
//! connection closes, so a client trickling a body cannot hold a connection, nor the memory
//! its body already holds, for longer than its size allows at that rate.

use super::stats::{ConnStats, DropReason};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Why a body was cut off: it stopped or slowed below the configured rate.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the request body arrived too slowly: {received} bytes in {elapsed_ms} ms ({why})")]
pub struct BodyTimeout {
    pub received: u64,
    pub elapsed_ms: u64,
    pub why: &'static str,
}

/// The body timeouts of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BodyPace {
    pub read_timeout: Duration,
    /// Bytes a second; 0 turns the rate check off.
    pub min_rate: u64,
}

/// A request body with [`BodyPace`] enforced.
#[derive(Debug)]
pub(super) struct TimedBody {
    inner: Incoming,
    pace: BodyPace,
    started: Instant,
    last: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
    stats: Arc<ConnStats>,
}

impl TimedBody {
    pub(super) fn new(inner: Incoming, pace: BodyPace, stats: Arc<ConnStats>) -> Self {
        let now = Instant::now();
        let timer = Box::pin(tokio::time::sleep_until(now + pace.read_timeout));
        TimedBody { inner, pace, started: now, last: now, received: 0, timer, stats }
    }

    /// When the body fails unless more of it arrives, and why.
    fn deadline(&self) -> (Instant, &'static str) {
        let pause = (self.last + self.pace.read_timeout, "no byte for server.body_read_timeout");
        if self.pace.min_rate == 0 {
            return pause;
        }
        let earned = Duration::from_millis(self.received.saturating_mul(1000) / self.pace.min_rate);
        let rate = (self.started + self.pace.read_timeout + earned, "slower than server.min_body_rate");
        if rate.0 < pause.0 { rate } else { pause }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    this.last = Instant::now();
                    let (at, _) = this.deadline();
                    this.timer.as_mut().reset(at);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let (at, why) = this.deadline();
                if this.timer.deadline() != at {
                    this.timer.as_mut().reset(at);
                }
                if this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.stats.dropped(DropReason::BodyTimeout);
                let elapsed_ms = u64::try_from(this.started.elapsed().as_millis()).unwrap_or(u64::MAX);
                Poll::Ready(Some(Err(Box::new(BodyTimeout { received: this.received, elapsed_ms, why }))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
