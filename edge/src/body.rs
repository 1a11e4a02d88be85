//! [`read_body`]: a request body read under a size cap and a [`MemoryBudget`](crate::budget)
//! reservation, with the answers for a body that is too large, too slow or cut off.

use crate::budget::Reservation;
use crate::error::ApiError;
use crate::serve::BodyTimeout;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::BodyExt;

/// The first buffer of a body (or all of it, when it announced less).
const MIN_BODY_BUFFER: usize = 64 * 1024;
/// What of a body with a `Content-Length` arrives before all of it is charged (see
/// [`read_body`]).
const EXACT_AFTER: usize = 1024 * 1024;

/// Reads the body, refusing more than `limit` bytes (by `Content-Length` up front, or as it
/// arrives). The buffer grows with what arrives, doubling from 64 KiB, and every buffer is
/// charged to `reservation` before it is allocated, so a request holds in the budget what it
/// holds in memory. A body with a `Content-Length` moves to one buffer of exactly that size
/// once [`EXACT_AFTER`] of it has arrived (or all of it, when it is smaller): a client that
/// announces 64 MiB and sends a byte a second holds 64 KiB, and a few of them cannot refuse
/// everyone else for as long as they keep trickling (`server.min_body_rate` ends them),
/// while a client that really sends a large body is charged all of it early, before it has
/// filled memory that a refusal would then only give back to the allocator. Returns the
/// body and the bytes charged for it.
///
/// Errors: 413 past `limit`, 503 (`Retry-After: retry_after`) past the budget, 408 for a
/// body slower than the server's pace ([`BodyTimeout`]), 400 for a body cut off.
pub async fn read_body(
    headers: &HeaderMap,
    mut body: Body,
    limit: u64,
    reservation: &mut Reservation,
    retry_after: u64,
) -> Result<(Bytes, usize), ApiError> {
    let too_large = || ApiError::too_large(format!("body is larger than the limit of {limit} bytes"));
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // hyper refuses a body longer than its Content-Length, so the buffer never outgrows it.
    let cap = declared.and_then(|n| usize::try_from(n).ok()).unwrap_or(limit);
    let mut buf: Vec<u8> = Vec::new();
    let mut charged = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(body_error)?;
        let Ok(data) = frame.into_data() else { continue };
        let want = buf.len() + data.len();
        if want > limit {
            return Err(too_large());
        }
        if want > charged {
            let target = if declared.is_some() && want >= EXACT_AFTER.min(cap) {
                cap.max(want)
            } else {
                want.max(charged * 2).max(MIN_BODY_BUFFER).min(cap.max(want))
            };
            reservation.grow_body(target - charged).map_err(|_| busy(retry_after))?;
            charged = target;
        }
        if want > buf.capacity() && buf.try_reserve_exact(charged - buf.len()).is_err() {
            return Err(busy(retry_after));
        }
        buf.extend_from_slice(&data);
    }
    Ok((Bytes::from(buf), charged))
}

/// 503 when the requests together hold as much memory as they may.
pub fn busy(retry_after: u64) -> ApiError {
    ApiError::busy(retry_after, "the receiver is holding as many request bodies as it may; retry later")
}

/// A body that could not be read: too slow (408), or cut off by the client (400).
fn body_error(error: axum::Error) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(timeout) = e.downcast_ref::<BodyTimeout>() {
            return ApiError::request_timeout(format!(
                "the request body arrived too slowly ({} bytes in {} ms); send it at once",
                timeout.received, timeout.elapsed_ms
            ))
            .with_internal(timeout.to_string());
        }
        source = e.source();
    }
    ApiError::bad_request("the request body could not be read").with_internal(error.to_string())
}
