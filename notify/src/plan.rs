//! What the mailer does next, decided from what ClickHouse says and the time: a pure
//! function ([`plan`]) of the undelivered alerts with their `alert_deliveries` rows, the
//! rate-limit count of the current window, and now. No I/O, no clock: every rule of the
//! outbox is unit-tested here.
//!
//! Per undelivered alert (no `sent` row), oldest first:
//! - folded (a `folded` row): it waits for its digest;
//! - failed before (its last failed attempt n): attempt n+1 once [`backoff`]`(n)` has passed;
//! - never attempted: the rate limits decide. Within the current window (aligned to the
//!   epoch) at most `max_mails` alerts in all and `max_mails_per_rule` per rule get their own
//!   mail (counting alerts first attempted in the window, so an outage does not let a flood
//!   through later); the rest fold into the window's digest.
//!
//! A digest is sent once its window is over (and its own backoff after a failure), listing
//! every alert folded into it. Its Message-ID is fixed by the first fold of the window
//! ([`crate::mail::digest_message_id`]) and recorded with each fold, so a digest sent again
//! after a crash is the same message with the same alerts.

use crate::config::{NotifyConfig, RetryConfig};
use crate::mail::{MailKind, digest_message_id};
use gatelog_model::{Alert, UnixMillis};
use gatelog_store::sql::deliveries::AlertDelivery;
use std::collections::BTreeMap;
use std::time::Duration;

/// `outcome` values of `alert_deliveries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Sent,
    Failed,
    Folded,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Sent, Outcome::Failed, Outcome::Folded];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Failed => "failed",
            Outcome::Folded => "folded",
        }
    }
}

/// An opened alert without a `sent` delivery, and its delivery rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub alert: Alert,
    pub opened: UnixMillis,
    pub deliveries: Vec<AlertDelivery>,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Attempt `attempt` at the alert's own mail.
    Send { alert_id: String, attempt: u32 },
    /// Record that the alert goes out in digest `message_id`.
    Fold { alert_id: String, message_id: String },
    /// Attempt `attempt` at digest `message_id`, listing `alert_ids` (oldest first), folded
    /// in the window that starts at `window_start`.
    SendDigest { message_id: String, alert_ids: Vec<String>, window_start: UnixMillis, attempt: u32 },
}

/// What to do now, and when something not yet due becomes due.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub next_due: Option<UnixMillis>,
}

/// The wait after the `failures`-th failed attempt: `initial × 2^(failures−1)`, at most `max`.
pub fn backoff(failures: u32, retry: &RetryConfig) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
    retry.initial_backoff.checked_mul(factor).unwrap_or(retry.max_backoff).min(retry.max_backoff)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The start of the rate-limit window holding `t` (windows aligned to the epoch).
pub fn window_start(t: UnixMillis, window: Duration) -> UnixMillis {
    let w = ms(window).max(1);
    UnixMillis(t.0 - t.0.rem_euclid(w))
}

/// The highest failed attempt among `rows` of `kind` (and `message_id`), and when it was.
fn failures<'a>(rows: impl Iterator<Item = &'a AlertDelivery>) -> (u32, i64) {
    rows.filter(|d| d.outcome == Outcome::Failed.as_str())
        .fold((0, i64::MIN), |(n, at), d| (n.max(d.attempt), at.max(d.at_ms)))
}

#[derive(Debug, Default)]
struct Digest {
    alert_ids: Vec<String>,
    first_fold_ms: i64,
    failures: u32,
    last_failure_ms: i64,
}

fn earliest(a: Option<UnixMillis>, b: UnixMillis) -> Option<UnixMillis> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// What to do at `now` about `pending` (oldest first), given `begun`: `(rule_id, alerts)`
/// whose own mail was first attempted in the current window.
pub fn plan(pending: &[Pending], begun: &[(String, u64)], now: UnixMillis, config: &NotifyConfig) -> Plan {
    let limits = &config.rate_limit;
    let current = window_start(now, limits.window);
    let mut out = Plan::default();
    let mut digests: BTreeMap<String, Digest> = BTreeMap::new();
    let mut fresh: Vec<&Pending> = Vec::new();
    for p in pending {
        let rows = &p.deliveries;
        if let Some(fold) = rows.iter().find(|d| d.outcome == Outcome::Folded.as_str()) {
            let digest = digests.entry(fold.message_id.clone()).or_insert_with(|| Digest {
                first_fold_ms: i64::MAX,
                last_failure_ms: i64::MIN,
                ..Digest::default()
            });
            digest.alert_ids.push(p.alert.alert_id.clone());
            digest.first_fold_ms = digest.first_fold_ms.min(fold.at_ms);
            let of_digest =
                rows.iter().filter(|d| d.kind == MailKind::Digest.as_str() && d.message_id == fold.message_id);
            let (n, at) = failures(of_digest);
            digest.failures = digest.failures.max(n);
            digest.last_failure_ms = digest.last_failure_ms.max(at);
            continue;
        }
        let (n, last) = failures(rows.iter().filter(|d| d.kind == MailKind::Alert.as_str()));
        if n == 0 {
            fresh.push(p);
            continue;
        }
        let due = UnixMillis(last.saturating_add(ms(backoff(n, &config.retry))));
        if now >= due {
            out.steps.push(Step::Send { alert_id: p.alert.alert_id.clone(), attempt: n + 1 });
        } else {
            out.next_due = earliest(out.next_due, due);
        }
    }

    let mut global: u64 = begun.iter().map(|(_, n)| n).sum();
    let mut per_rule: BTreeMap<String, u64> = begun.iter().cloned().collect();
    // The digest of the current window, if an earlier round opened one.
    let mut open_digest: Option<String> =
        digests.iter().find(|(_, d)| d.first_fold_ms >= current.0).map(|(id, _)| id.clone());
    for p in fresh {
        let rule = per_rule.entry(p.alert.rule_id.clone()).or_default();
        if global < limits.max_mails && *rule < limits.max_mails_per_rule {
            global += 1;
            *rule += 1;
            out.steps.push(Step::Send { alert_id: p.alert.alert_id.clone(), attempt: 1 });
            continue;
        }
        let id = open_digest.get_or_insert_with(|| digest_message_id(current, &p.alert.alert_id)).clone();
        out.steps.push(Step::Fold { alert_id: p.alert.alert_id.clone(), message_id: id.clone() });
        let digest = digests.entry(id).or_insert_with(|| Digest {
            first_fold_ms: now.0,
            last_failure_ms: i64::MIN,
            ..Digest::default()
        });
        digest.alert_ids.push(p.alert.alert_id.clone());
    }

    for (message_id, d) in digests {
        let start = window_start(UnixMillis(d.first_fold_ms), limits.window);
        let end = UnixMillis(start.0.saturating_add(ms(limits.window)));
        let retry_at = UnixMillis(d.last_failure_ms.saturating_add(ms(backoff(d.failures, &config.retry))));
        let due = if d.failures > 0 { end.max(retry_at) } else { end };
        if now >= due {
            out.steps.push(Step::SendDigest {
                message_id,
                alert_ids: d.alert_ids,
                window_start: start,
                attempt: d.failures + 1,
            });
        } else {
            out.next_due = earliest(out.next_due, due);
        }
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
