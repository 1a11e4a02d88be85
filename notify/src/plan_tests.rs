//! The outbox's rules, decided without I/O: backoff, retries, rate limits, folds, digests.

use super::*;
use crate::mail::alert_message_id;

const HOUR: i64 = 3_600_000;
/// 10:00 UTC on some day: the start of a one-hour window.
const T0: i64 = 1_740_996_000_000;

fn config(max_mails: u64, per_rule: u64) -> NotifyConfig {
    let mut c = NotifyConfig::default();
    c.rate_limit.max_mails = max_mails;
    c.rate_limit.max_mails_per_rule = per_rule;
    c.retry = RetryConfig { initial_backoff: Duration::from_secs(10), max_backoff: Duration::from_secs(60) };
    c
}

fn pending(id: &str, rule: &str, rows: Vec<AlertDelivery>) -> Pending {
    let alert = Alert { alert_id: id.into(), rule_id: rule.into(), ..Alert::default() };
    Pending { alert, opened: UnixMillis(T0), deliveries: rows }
}

fn row(id: &str, kind: MailKind, message_id: &str, attempt: u32, outcome: Outcome, at: i64) -> AlertDelivery {
    AlertDelivery {
        alert_id: id.into(),
        kind: kind.as_str().into(),
        message_id: message_id.into(),
        attempt,
        outcome: outcome.as_str().into(),
        at_ms: at,
        ..AlertDelivery::default()
    }
}

fn failed(id: &str, attempt: u32, at: i64) -> AlertDelivery {
    row(id, MailKind::Alert, &alert_message_id(id), attempt, Outcome::Failed, at)
}

fn send(id: &str, attempt: u32) -> Step {
    Step::Send { alert_id: id.into(), attempt }
}

#[test]
fn backoff_doubles_from_the_initial_wait_and_stops_at_the_maximum() {
    let r = RetryConfig { initial_backoff: Duration::from_millis(500), max_backoff: Duration::from_secs(8) };
    let waits: Vec<u64> = (0..8).map(|n| backoff(n, &r).as_millis() as u64).collect();
    assert_eq!(waits, vec![0, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
    assert_eq!(backoff(u32::MAX, &r), r.max_backoff, "no overflow, however many failures");
    assert_eq!(
        backoff(
            40,
            &RetryConfig { initial_backoff: Duration::from_secs(86_400), max_backoff: Duration::from_secs(86_400) }
        ),
        Duration::from_secs(86_400)
    );
}

#[test]
fn windows_are_aligned_to_the_epoch() {
    assert_eq!(window_start(UnixMillis(T0 + 59 * 60_000), Duration::from_secs(3600)), UnixMillis(T0));
    assert_eq!(window_start(UnixMillis(T0 + HOUR), Duration::from_secs(3600)), UnixMillis(T0 + HOUR));
}

#[test]
fn a_new_alert_is_sent_and_a_failed_one_retried_after_its_backoff() {
    let c = config(30, 10);
    let now = UnixMillis(T0 + 1000);
    let p = [
        pending("a", "r", vec![]),
        pending("b", "r", vec![failed("b", 1, T0 - 5_000)]),
        pending("c", "r", vec![failed("c", 1, T0 - 60_000), failed("c", 2, T0 - 15_000)]),
    ];
    let plan = plan(&p, &[], now, &c);
    // b failed once 6 s ago (waits 10 s); c failed twice, the last 16 s ago (waits 20 s).
    assert_eq!(plan.steps, vec![send("a", 1)]);
    assert_eq!(plan.next_due, Some(UnixMillis(T0 + 5_000)), "b's retry is the next thing due");
    let later = super::plan(&p, &[], UnixMillis(T0 + 5_000), &c);
    assert_eq!(later.steps, vec![send("b", 2), send("c", 3), send("a", 1)], "retries first, then new mails");
}

#[test]
fn the_rate_limits_fold_the_excess_into_one_digest_per_window() {
    let c = config(4, 2);
    let now = UnixMillis(T0 + 10 * 60_000);
    let p: Vec<Pending> = ["a1", "a2", "a3", "b1", "b2"]
        .iter()
        .map(|id| pending(id, if id.starts_with('a') { "ra" } else { "rb" }, vec![]))
        .collect();
    // One mail of rule rb already went out in this window (before a restart, say).
    let plan = plan(&p, &[("rb".into(), 1)], now, &c);
    let digest = digest_message_id(UnixMillis(T0), "a3");
    let fold = |id: &str| Step::Fold { alert_id: id.into(), message_id: digest.clone() };
    assert_eq!(plan.steps, vec![send("a1", 1), send("a2", 1), fold("a3"), send("b1", 1), fold("b2")]);
    assert_eq!(plan.next_due, Some(UnixMillis(T0 + HOUR)), "the digest is due when the window ends");
}

#[test]
fn a_zero_limit_folds_everything_and_folds_join_the_window_s_digest() {
    let c = config(0, 0);
    let earlier = digest_message_id(UnixMillis(T0), "x");
    let folded = row("x", MailKind::Digest, &earlier, 0, Outcome::Folded, T0 + 60_000);
    let p = [pending("x", "r", vec![folded]), pending("y", "r", vec![])];
    let plan = plan(&p, &[], UnixMillis(T0 + 120_000), &c);
    assert_eq!(plan.steps, vec![Step::Fold { alert_id: "y".into(), message_id: earlier }], "same window, same digest");
}

#[test]
fn a_digest_goes_out_after_its_window_listing_every_fold_and_is_retried_with_backoff() {
    let c = config(1, 1);
    let id = digest_message_id(UnixMillis(T0), "x");
    let fold = |a: &str| row(a, MailKind::Digest, &id, 0, Outcome::Folded, T0 + 60_000);
    let p = [pending("x", "r", vec![fold("x")]), pending("y", "r", vec![fold("y")]), pending("z", "r", vec![])];
    let in_window = plan(&p, &[("r".into(), 1)], UnixMillis(T0 + HOUR - 1), &c);
    assert!(in_window.steps.iter().all(|s| !matches!(s, Step::SendDigest { .. })), "{:?}", in_window.steps);
    let after = plan(&p, &[], UnixMillis(T0 + HOUR), &c);
    let expected = Step::SendDigest {
        message_id: id.clone(),
        alert_ids: vec!["x".into(), "y".into()],
        window_start: UnixMillis(T0),
        attempt: 1,
    };
    assert_eq!(after.steps, vec![send("z", 1), expected], "a new window: z gets its own mail");

    let failed_at = T0 + HOUR + 1000;
    let with_failure = |a: &str| vec![fold(a), row(a, MailKind::Digest, &id, 1, Outcome::Failed, failed_at)];
    let p = [pending("x", "r", with_failure("x")), pending("y", "r", with_failure("y"))];
    let soon = plan(&p, &[], UnixMillis(failed_at + 9_999), &c);
    assert_eq!((soon.steps.len(), soon.next_due), (0, Some(UnixMillis(failed_at + 10_000))));
    let retry = plan(&p, &[], UnixMillis(failed_at + 10_000), &c);
    assert!(
        matches!(&retry.steps[..], [Step::SendDigest { attempt: 2, alert_ids, .. }] if alert_ids.len() == 2),
        "{:?}",
        retry.steps
    );
}
