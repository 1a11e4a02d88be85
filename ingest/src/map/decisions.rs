//! gatelog proxy decision lines (the body of `POST /v1/decisions`): one serialised
//! [`AccessDecision`] from gatelog's proxy per NDJSON line, checked and stamped. The mapper
//! of the `proxy` dataset, beside the Cloudflare ones.
//!
//! Rules, per line (pure; tested below):
//! - the line must be a JSON object that deserialises as an `AccessDecision` (every field
//!   has a default); anything else is a dead letter with serde's reason;
//! - `event_id` must be non-empty (the proxy's decision id is what makes retries idempotent),
//!   else a dead letter;
//! - `source` is always set to `proxy`: the field records the path a decision entered
//!   gatelog by, and a holder of an ingest token must not be able to pass rows off as
//!   Cloudflare evidence;
//! - `dataset` defaults to `proxy` when empty, `tenant` to `default`; `received_at` is the
//!   receiver's clock; `raw_sha256` is the SHA-256 of the line; `spool_seq` is reset to 0
//!   (the sinks assign it);
//! - a missing `time` (0) becomes `received_at`, with a warning; a `time` outside the
//!   receiver's [`TimeWindow`] makes the line a dead letter;
//! - the line itself is kept as a [`RawRecord`] (dataset `proxy`, the decision's id and time).
//!
//! Blank lines are skipped; invalid UTF-8 and over-long lines are dead letters, as on every
//! other route.

use crate::decode::Line;
use crate::{LineOutcome, TimeWindow};
use gatelog_model::{AccessDecision, DeadLetter, RawRecord, Source, UnixMillis, sha256_hex};

/// The dataset (and metrics label) of proxy decisions.
pub const PROXY_DATASET: &str = "proxy";

/// Where a decisions body came from and when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct DecisionLineContext<'a> {
    pub received_at: UnixMillis,
    pub origin: &'a str,
    pub max_line: usize,
    /// A decision whose time is outside it is a dead letter.
    pub window: TimeWindow,
}

fn dead(ctx: &DecisionLineContext<'_>, line_no: u64, bytes: &[u8], error: impl std::fmt::Display) -> LineOutcome {
    LineOutcome::Dead(DeadLetter {
        dataset: PROXY_DATASET.to_owned(),
        received_at: ctx.received_at,
        origin: ctx.origin.to_owned(),
        line_no,
        line: String::from_utf8_lossy(bytes).into_owned(),
        sha256: sha256_hex(bytes),
        error: format!("line {line_no}: {error}"),
    })
}

/// Maps one line of a `/v1/decisions` body (as split by [`crate::LineReader`]).
pub fn map_decision_line(line: Line<'_>, ctx: &DecisionLineContext<'_>) -> LineOutcome {
    let no = line.no;
    if let Some(len) = line.overlong {
        return dead(
            ctx,
            no,
            line.bytes,
            format!(
                "line is {len} bytes, over the limit of {} bytes (only its first {} bytes are kept)",
                ctx.max_line,
                line.bytes.len()
            ),
        );
    }
    let text = match std::str::from_utf8(line.bytes) {
        Ok(text) => text,
        Err(e) => return dead(ctx, no, line.bytes, format!("invalid UTF-8 at byte {}", e.valid_up_to())),
    };
    if text.trim().is_empty() {
        return LineOutcome::Blank;
    }
    let json = text.strip_prefix('\u{feff}').unwrap_or(text);
    if !json.trim_start().starts_with('{') {
        let found = match json.trim_start().as_bytes().first() {
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b'-' | b'0'..=b'9') => "a number",
            _ => "something else",
        };
        return dead(ctx, no, line.bytes, format!("expected a JSON object (an AccessDecision), found {found}"));
    }
    let mut d: AccessDecision = match serde_json::from_str(json) {
        Ok(d) => d,
        Err(e) => return dead(ctx, no, line.bytes, format!("not an AccessDecision: {e}")),
    };
    if d.event_id.trim().is_empty() {
        return dead(ctx, no, line.bytes, "event_id is missing or empty");
    }
    let mut warnings = Vec::new();
    let sha256 = sha256_hex(text.as_bytes());
    d.source = Source::Proxy;
    if d.dataset.is_empty() {
        d.dataset = PROXY_DATASET.to_owned();
    }
    if d.tenant.is_empty() {
        d.tenant = gatelog_model::decision::DEFAULT_TENANT.to_owned();
    }
    d.received_at = ctx.received_at;
    if d.time.0 == 0 {
        d.time = ctx.received_at;
        warnings.push("time is missing; using received_at".to_owned());
    }
    d.raw_sha256 = sha256.clone();
    d.spool_seq = 0;
    let raw = RawRecord {
        event_id: d.event_id.clone(),
        dataset: PROXY_DATASET.to_owned(),
        received_at: ctx.received_at,
        time: d.time,
        line: text.to_owned(),
        sha256,
    };
    ctx.window.apply(LineOutcome::Mapped { decisions: vec![d], raw, warnings }, ctx.origin, no)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_model::Decision;

    const AT: UnixMillis = UnixMillis(1_741_132_800_000);

    fn map(text: &[u8]) -> LineOutcome {
        let ctx =
            DecisionLineContext { received_at: AT, origin: "decisions", max_line: 1024, window: TimeWindow::default() };
        map_decision_line(Line { no: 3, bytes: text, overlong: None }, &ctx)
    }

    #[test]
    fn stamps_a_proxy_decision() {
        let line = br#"{"event_id":"d-1","time":"2025-03-03T00:00:00.000Z","source":"logpush","decision":"deny","principal":"a@example.com","spool_seq":99,"received_at":"2000-01-01T00:00:00Z"}"#;
        let LineOutcome::Mapped { decisions, raw, warnings } = map(line) else { panic!("not mapped") };
        let d = &decisions[0];
        assert_eq!(d.event_id, "d-1");
        assert_eq!(d.source, Source::Proxy, "source is forced");
        assert_eq!(d.dataset, "proxy");
        assert_eq!(d.decision, Decision::Deny);
        assert_eq!(d.received_at, AT);
        assert_eq!(d.spool_seq, 0);
        assert_eq!(d.tenant, "default");
        assert_eq!(d.raw_sha256, sha256_hex(line));
        assert_eq!(raw.line.as_bytes(), line);
        assert_eq!(raw.event_id, "d-1");
        assert_eq!(raw.dataset, "proxy");
        assert_eq!(raw.time.0, 1_740_960_000_000);
        assert!(warnings.is_empty());
    }

    #[test]
    fn keeps_a_given_dataset_and_fills_a_missing_time() {
        let LineOutcome::Mapped { decisions, warnings, .. } = map(br#"{"event_id":"d-2","dataset":"bi"}"#) else {
            panic!("not mapped")
        };
        assert_eq!(decisions[0].dataset, "bi");
        assert_eq!(decisions[0].time, AT);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn bad_lines_are_dead_letters_with_reasons() {
        let cases: [(&[u8], &str); 7] = [
            (br#"{"decision":"allow"}"#, "line 3: event_id is missing or empty"),
            (br#"{"event_id":""}"#, "line 3: event_id is missing or empty"),
            (br#"[{"event_id":"x"}]"#, "line 3: expected a JSON object (an AccessDecision), found an array"),
            (br#"{"event_id":"x","decision":"maybe"}"#, "line 3: not an AccessDecision: unknown variant"),
            (b"{\"event_id\":\"\xff\"}", "line 3: invalid UTF-8 at byte 13"),
            (
                br#"{"event_id":"x","time":"9999-01-01T00:00:00Z"}"#,
                "line 3: event time 9999-01-01T00:00:00.000Z is after",
            ),
            (
                br#"{"event_id":"x","time":"1900-01-01T00:00:00Z"}"#,
                "line 3: event time 1900-01-01T00:00:00.000Z is before",
            ),
        ];
        for (line, want) in cases {
            let LineOutcome::Dead(dead) = map(line) else { panic!("{line:?} was accepted") };
            assert!(dead.error.starts_with(want), "{:?}: {}", String::from_utf8_lossy(line), dead.error);
            assert_eq!(dead.sha256, sha256_hex(line));
            assert_eq!(dead.line_no, 3);
        }
        assert_eq!(map(b"  "), LineOutcome::Blank);
    }

    #[test]
    fn overlong_lines_are_dead_letters() {
        let ctx =
            DecisionLineContext { received_at: AT, origin: "decisions", max_line: 4, window: TimeWindow::default() };
        let out = map_decision_line(Line { no: 1, bytes: b"{\"ev", overlong: Some(5000) }, &ctx);
        let LineOutcome::Dead(dead) = out else { panic!("accepted") };
        assert!(dead.error.contains("5000 bytes, over the limit of 4 bytes"), "{}", dead.error);
    }
}
