//! [`NotifyStats`]: what the mailer did since the start, for `/metrics`. Every label set is
//! closed: `kind` is [`MailKind::ALL`], `channel` [`Channel::ALL`], `outcome` [`Outcome::ALL`].

use crate::mail::MailKind;
use crate::plan::Outcome;
use crate::transport::Channel;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const CELLS: usize = MailKind::ALL.len() * Channel::ALL.len() * Outcome::ALL.len();

/// Counters the mailer keeps and `/metrics` reads.
#[derive(Debug, Default)]
pub struct NotifyStats {
    /// Delivery rows recorded, by kind × channel × outcome (a digest counts once per attempt).
    deliveries: [AtomicU64; CELLS],
    /// Undelivered alerts (no `sent` row) at the last round.
    pub pending: AtomicU64,
    /// Rounds that could not read or write ClickHouse.
    pub rounds_failed: AtomicU64,
    /// Whether the last attempt at handing a mail over failed (the transport is down).
    pub transport_failing: AtomicBool,
    /// The last delivery error, for `/readyz`-like reporting and the demo.
    last_error: Mutex<Option<String>>,
}

fn index(kind: MailKind, channel: Channel, outcome: Outcome) -> usize {
    let k = MailKind::ALL.iter().position(|x| *x == kind).unwrap_or(0);
    let c = Channel::ALL.iter().position(|x| *x == channel).unwrap_or(0);
    let o = Outcome::ALL.iter().position(|x| *x == outcome).unwrap_or(0);
    (k * Channel::ALL.len() + c) * Outcome::ALL.len() + o
}

impl NotifyStats {
    pub fn add(&self, kind: MailKind, channel: Channel, outcome: Outcome, n: u64) {
        self.deliveries[index(kind, channel, outcome)].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, kind: MailKind, channel: Channel, outcome: Outcome) -> u64 {
        self.deliveries[index(kind, channel, outcome)].load(Ordering::Relaxed)
    }

    /// `(kind, channel, outcome, count)` for every combination.
    pub fn deliveries(&self) -> Vec<(&'static str, &'static str, &'static str, u64)> {
        let mut out = Vec::with_capacity(CELLS);
        for kind in MailKind::ALL {
            for channel in Channel::ALL {
                for outcome in Outcome::ALL {
                    out.push((kind.as_str(), channel.as_str(), outcome.as_str(), self.get(kind, channel, outcome)));
                }
            }
        }
        out
    }

    pub fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = error;
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_has_its_own_counter() {
        let s = NotifyStats::default();
        s.add(MailKind::Digest, Channel::File, Outcome::Sent, 2);
        s.add(MailKind::Alert, Channel::Smtp, Outcome::Failed, 1);
        let all = s.deliveries();
        assert_eq!(all.len(), 12);
        assert!(all.contains(&("digest", "file", "sent", 2)) && all.contains(&("alert", "smtp", "failed", 1)));
        assert_eq!(all.iter().map(|x| x.3).sum::<u64>(), 3);
    }
}
