//! The route handlers: auth, backpressure, body limits, mapping off the runtime, the spool
//! append, and the answer (see the module docs of [`super`] for every status).

use super::ReceiverState;
use super::metrics::Route;
use super::process::{INLINE_MAX, Job, Mapper, Plan, PrepareError, prepare};
use crate::decode::DecodeError;
use crate::{Dataset, Limits};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatelog_edge::ApiError;
use gatelog_edge::body::{busy, read_body};
use gatelog_edge::budget::OverBudget;
use gatelog_model::Source;
use gatelog_spool::SpoolError;
use serde::Serialize;

/// The 2xx answer (and the counts of a 400 for a batch of dead letters only).
#[derive(Debug, Serialize)]
struct Accepted {
    /// `null` when nothing was spooled (the validation probe).
    batch_id: Option<String>,
    spool_seq: Option<u64>,
    lines: u64,
    decisions: usize,
    raw_records: usize,
    dead_letters: usize,
    probes: u64,
    /// Empty or whitespace-only lines: counted in `lines`, nothing kept.
    blank_lines: u64,
}

pub(crate) async fn logpush(
    State(state): State<ReceiverState>,
    Path(dataset): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = match (state.authorize(&headers).await, Dataset::parse(&dataset).filter(|d| d.is_logpush())) {
        (Err(refused), _) => Err(refused),
        (Ok(()), Some(d)) => {
            let origin = format!("logpush/{}", d.as_str());
            ingest(&state, Route::Logpush, Mapper::Dataset(d, Source::Logpush), &origin, &headers, body).await
        }
        (Ok(()), None) => {
            let known: Vec<&str> = Dataset::ALL.iter().filter(|d| d.is_logpush()).map(|d| d.as_str()).collect();
            let shown: String = dataset.chars().take(64).collect();
            Err(ApiError::not_found(format!("unknown dataset {shown:?}; known datasets: {}", known.join(", "))))
        }
    };
    finish(&state, result)
}

pub(crate) async fn tail(State(state): State<ReceiverState>, headers: HeaderMap, body: Body) -> Response {
    let result = match state.authorize(&headers).await {
        Err(refused) => Err(refused),
        Ok(()) => {
            ingest(&state, Route::Tail, Mapper::Dataset(Dataset::Tail, Source::Tail), "tail", &headers, body).await
        }
    };
    finish(&state, result)
}

pub(crate) async fn decisions(State(state): State<ReceiverState>, headers: HeaderMap, body: Body) -> Response {
    let result = match state.authorize(&headers).await {
        Err(refused) => Err(refused),
        Ok(()) => ingest(&state, Route::Decisions, Mapper::Decisions, "decisions", &headers, body).await,
    };
    finish(&state, result)
}

/// Counts and logs an error answer once; passes a success through.
fn finish(state: &ReceiverState, result: Result<Response, ApiError>) -> Response {
    state.edge().finish("receiver", result)
}

async fn ingest(
    state: &ReceiverState,
    route: Route,
    mapper: Mapper,
    origin: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let config = state.config();
    let retry_after = config.retry_after_secs();
    check_encoding(headers)?;
    if let Some(reason) = state.lag_reason() {
        return Err(ApiError::lagging(retry_after, reason));
    }
    let batch_cap = usize::try_from(config.max_batch_bytes.as_u64()).unwrap_or(usize::MAX);
    let mut reservation = state.inner.budget.reserve(batch_cap);
    let reading = std::time::Instant::now();
    let (body, body_held) =
        read_body(headers, body, config.max_body_bytes.as_u64(), &mut reservation, retry_after).await?;
    let read_in = reading.elapsed();
    if body.is_empty() {
        return Err(ApiError::bad_request("body is empty"));
    }
    let limits = Limits {
        max_decompressed: config.max_decompressed_bytes.as_u64(),
        max_line: usize::try_from(config.max_line_bytes.as_u64()).unwrap_or(usize::MAX),
        window: config.window(),
    };
    let (reject_whole_batch, max_days) = (config.reject_whole_batch, config.max_days_per_batch as usize);
    let received_at = state.inner.clock.now();
    let job = Job { mapper, received_at, origin: "", limits, reject_whole_batch, max_days, lines_before: 0 };
    let started = std::time::Instant::now();
    // Small plain bodies inline (they are mapped without the mapping threads); the rest on
    // the blocking pool, which hands the body to the mapping threads, one body per thread.
    let prepared = if body.len() <= INLINE_MAX && !crate::is_gzip(&body) {
        prepare(&body, &Job { origin, ..job }, state.inner.workers.pool(), &mut reservation)
    } else {
        let origin = origin.to_owned();
        let body = body.clone();
        let workers = state.inner.workers.clone();
        // The semaphore is never closed; a closed one would only mean no limit.
        let _permit = state.inner.mapping.acquire().await.ok();
        let (prepared, back) = tokio::task::spawn_blocking(move || {
            let prepared = prepare(&body, &Job { origin: &origin, ..job }, workers.pool(), &mut reservation);
            (prepared, reservation)
        })
        .await
        .map_err(|e| {
            ApiError::unavailable(retry_after, "the batch could not be processed", format!("mapping task failed: {e}"))
        })?;
        reservation = back;
        prepared
    };
    let prepared = prepared.map_err(|e| prepare_error(e, body.len(), retry_after))?;
    drop(body);
    reservation.release(body_held);
    let mapped_in = started.elapsed();
    let dataset = match mapper {
        Mapper::Dataset(d, _) => Some(d),
        Mapper::Decisions => None,
    };
    state.inner.metrics.received(route, dataset, prepared.lines);
    let mut answer = Accepted {
        batch_id: None,
        spool_seq: None,
        lines: prepared.lines,
        decisions: prepared.decisions,
        raw_records: prepared.raw_records,
        dead_letters: prepared.dead_letters,
        probes: prepared.probes,
        blank_lines: prepared.blanks,
    };
    let (parts, first_error) = match prepared.plan {
        Plan::ProbeOnly => {
            tracing::info!(origin, probes = prepared.probes, "receiver: validation probe answered, nothing stored");
            return Ok((StatusCode::OK, Json(answer)).into_response());
        }
        Plan::NoRecords => return Err(ApiError::bad_request("body has no records (only blank lines)")),
        Plan::Reject { first_error } => {
            return Err(ApiError::bad_request(first_error).with_internal(format!(
                "reject_whole_batch: {} of {} lines bad, nothing stored",
                prepared.dead_letters, prepared.lines
            )));
        }
        Plan::Spool { parts, first_error } => (parts, first_error),
    };
    let (batch_id, lines, dead_letters) = (prepared.batch_id, prepared.lines, prepared.dead_letters);
    let seq = state.spool().append_parts(parts).await.map_err(|e| spool_error(state, e, retry_after))?;
    drop(reservation);
    state.spool_succeeded();
    state.inner.metrics.spooled(dataset, dead_letters as u64);
    tracing::debug!(origin, batch_id = %batch_id, seq, lines, decisions = answer.decisions,
        dead_letters = answer.dead_letters, blank_lines = answer.blank_lines, excess_days = prepared.excess_days,
        read_ms = millis(read_in), map_ms = millis(mapped_in),
        spool_ms = millis(started.elapsed().saturating_sub(mapped_in)), "receiver: batch spooled");
    answer.batch_id = Some(batch_id);
    answer.spool_seq = Some(seq);
    match first_error {
        None => Ok((StatusCode::OK, Json(answer)).into_response()),
        Some(first_error) => {
            let mut extra = serde_json::Map::new();
            extra.insert("batch_id".into(), answer.batch_id.into());
            extra.insert("spool_seq".into(), seq.into());
            extra.insert("dead_letters".into(), answer.dead_letters.into());
            Err(ApiError::bad_request(first_error)
                .with_internal("no usable line; the dead letters were stored")
                .with_extra(extra))
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Refuses (415, naming it) a `Content-Encoding` other than `gzip`, `x-gzip` or `identity`.
/// Bodies are sniffed by their gzip magic bytes whatever the header says (Logpush's header is
/// undocumented), so the header only turns away what could not be read: `br`, `deflate`,
/// `zstd`, a body gzipped twice, or anything unknown, which would otherwise become dead
/// letters reading "invalid UTF-8".
fn check_encoding(headers: &HeaderMap) -> Result<(), ApiError> {
    let mut gzips = 0;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if coding.eq_ignore_ascii_case("identity") {
                continue;
            }
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzips += 1;
                continue;
            }
            let shown: String = coding.chars().filter(|c| !c.is_control()).take(64).collect();
            return Err(ApiError::unsupported_encoding(format!(
                "Content-Encoding {shown:?} is not supported; send the body gzip-compressed or uncompressed"
            )));
        }
    }
    if gzips > 1 {
        return Err(ApiError::unsupported_encoding(
            "Content-Encoding names gzip more than once (a body compressed twice) and is not supported; compress it once",
        ));
    }
    Ok(())
}

fn prepare_error(error: PrepareError, body_len: usize, retry_after: u64) -> ApiError {
    match error {
        PrepareError::Decode(DecodeError::TooLarge { limit }) => {
            ApiError::too_large(format!("body is larger than the limit of {limit} bytes once decompressed"))
        }
        PrepareError::Decode(DecodeError::Corrupt { offset, detail }) => {
            let message = match offset {
                Some(at) if at >= body_len as u64 => format!("gzip stream is truncated at byte {body_len}"),
                Some(at) => format!("gzip stream is corrupt at byte {at}: {detail}"),
                None => format!("gzip stream is corrupt: {detail}"),
            };
            ApiError::bad_request(message)
        }
        PrepareError::Decode(DecodeError::Io(e)) => {
            ApiError::bad_request("the request body could not be decoded").with_internal(e.to_string())
        }
        PrepareError::OverBudget(OverBudget::Busy { .. }) => busy(retry_after),
        PrepareError::OverBudget(OverBudget::BatchTooLarge { limit }) => ApiError::too_large(format!(
            "the batch would be larger than the limit of {limit} bytes once mapped; send smaller batches"
        )),
        PrepareError::Encode(error) => {
            ApiError::unavailable(retry_after, "the batch could not be stored", error.to_string())
        }
    }
}

fn spool_error(state: &ReceiverState, error: SpoolError, retry_after: u64) -> ApiError {
    let internal = error.to_string();
    match error {
        SpoolError::Full { .. } => {
            state.spool_failed("spool is full");
            ApiError::spool_full(retry_after).with_internal(internal)
        }
        SpoolError::RecordTooLarge { max, .. } => ApiError::too_large(format!(
            "the mapped batch is larger than the spool's record limit of {max} bytes; send smaller batches"
        ))
        .with_internal(internal),
        SpoolError::NoSpace { .. } => {
            state.spool_failed("spool disk is full");
            ApiError::unavailable(retry_after, "storage is temporarily unavailable", internal)
        }
        SpoolError::Closed => {
            state.spool_failed("spool is closed");
            ApiError::unavailable(retry_after, "the receiver is shutting down", internal)
        }
        _ => {
            state.spool_failed("spool I/O error");
            ApiError::unavailable(retry_after, "storage is temporarily unavailable", internal)
        }
    }
}
