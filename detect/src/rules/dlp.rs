//! `dlp_exfil`: one user's uploads that matched a DLP profile, sent to personal file-sharing
//! hosts, repeated — at least `min_matches` within `window`.
//!
//! The gateway mapper states the DLP profiles an upload matched in the decision's `reason`
//! (`…; upload matched DLP profiles: Financial Information, PII`); that clause is what this
//! detector reads (the mapped decision has no column of its own for it). The host is the
//! decision's `host` (else the resource URL's), matched against `personal_hosts` as the host
//! itself or a subdomain of it. Blocked uploads count: the attempt is the signal.
//!
//! One finding per episode (it lasts while matches keep coming within `window`), naming the
//! uploads, hosts and profiles, and whether it was off the user's usual hours. Dedup key:
//! `dlp_exfil:<principal>` (the client IP for an unnamed user).

use crate::baseline::principal_key;
use crate::checkpoint::CheckpointError;
use crate::config::DlpConfig;
use crate::detector::{Context, Detector, Draft, Rule, in_list, load_state, save_state};
use crate::keyed::Keyed;
use crate::rules::window::{Added, Sweep, Window};
use gatelog_model::{AccessDecision, Finding, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

const RULE: Rule = Rule { id: "dlp_exfil", version: 1 };

/// The clause the gateway mapper writes into `reason` (see `ingest::map::gateway`).
const UPLOAD_CLAUSE: &str = "upload matched DLP profiles: ";

/// The DLP profiles an upload matched, from a mapped decision's `reason`.
pub(crate) fn upload_profiles(reason: &str) -> Vec<&str> {
    let Some(at) = reason.find(UPLOAD_CLAUSE) else { return Vec::new() };
    let rest = &reason[at + UPLOAD_CLAUSE.len()..];
    let clause = rest.split(';').next().unwrap_or_default();
    clause.split(", ").map(str::trim).filter(|s| !s.is_empty()).collect()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Upload {
    event_id: String,
    host: String,
    client_ip: String,
    profiles: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    users: Keyed<Window<Upload>>,
    sweep: Sweep,
}

/// Uploads held per user (the finding names at most this many).
const MAX_UPLOADS: usize = 100;

#[derive(Debug)]
pub(crate) struct Dlp {
    cfg: DlpConfig,
    state: State,
}

impl Dlp {
    pub(crate) fn new(cfg: DlpConfig) -> Self {
        Dlp { cfg, state: State::default() }
    }

    fn personal(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        let n = host.len();
        self.cfg.personal_hosts.iter().any(|p| {
            let k = p.len();
            host.eq_ignore_ascii_case(p)
                || (n > k
                    && host.as_bytes()[n - k - 1] == b'.'
                    && host.get(n - k..).is_some_and(|tail| tail.eq_ignore_ascii_case(p)))
        })
    }
}

/// The host of an `https://host/…` URL.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    authority.rsplit_once('@').map_or(authority, |(_, h)| h).split(':').next().unwrap_or_default()
}

impl Detector for Dlp {
    fn rule(&self) -> Rule {
        RULE
    }

    fn on_decision(&mut self, cx: &Context<'_>, d: &AccessDecision, out: &mut Vec<Finding>) {
        if !in_list(&self.cfg.datasets, &d.dataset) || !d.reason.contains(UPLOAD_CLAUSE) {
            return;
        }
        let host = if d.host.is_empty() { url_host(&d.resource) } else { d.host.as_str() };
        let profiles = upload_profiles(&d.reason);
        if profiles.is_empty() || !self.personal(host) {
            return;
        }
        let key = if d.principal.is_empty() { d.client_ip.clone() } else { principal_key(&d.principal).into_owned() };
        if key.is_empty() {
            return;
        }
        let window = i64::try_from(self.cfg.window.as_millis()).unwrap_or(i64::MAX);
        let t = d.time.0;
        if let Some(horizon) = self.state.sweep.tick(t, window) {
            self.state.users.retain(|_, w| w.live_at(horizon));
        }
        let upload = Upload {
            event_id: d.event_id.clone(),
            host: host.to_ascii_lowercase(),
            client_ip: d.client_ip.clone(),
            profiles: profiles.join(", "),
        };
        let e = self.state.users.entry(&key, self.cfg.max_principals, Window::default);
        if e.add(t, upload, window, MAX_UPLOADS) == Added::Ongoing || e.len() < self.cfg.min_matches as usize {
            return;
        }
        e.report(window);
        let (first, newest) = (e.first(), e.newest());
        let hosts: BTreeSet<&str> = e.items().map(|u| u.host.as_str()).collect();
        let found: BTreeSet<&str> = e.items().flat_map(|u| u.profiles.split(", ")).collect();
        let ips: BTreeSet<&str> = e.items().map(|u| u.client_ip.as_str()).filter(|s| !s.is_empty()).collect();
        let hours = cx.principal.map_or(crate::baseline::Assessment::Unknown, |p| p.assess_hours(d.time, cx.profile));
        let join = |s: &BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(",");
        out.push(
            Draft::about(RULE, self.cfg.severity, &key, d)
                .window(UnixMillis(first), UnixMillis(newest))
                .events(e.items().map(|u| u.event_id.as_str()))
                .summary(format!(
                    "{} tried {} uploads matching DLP profiles ({}) to personal hosts ({}) within {} min",
                    if d.principal.is_empty() { &d.client_ip } else { &d.principal },
                    e.len(),
                    join(&found),
                    join(&hosts),
                    (newest - first) / 60_000
                ))
                .evidence("uploads", e.len())
                .evidence("hosts", join(&hosts))
                .evidence("dlp_profiles", join(&found))
                .evidence("client_ips", join(&ips))
                .evidence("off_hours", hours.as_str())
                .evidence("threshold", self.cfg.min_matches)
                .finish(),
        );
    }

    fn save(&self) -> Result<Vec<u8>, CheckpointError> {
        save_state(&self.state)
    }

    fn load(&mut self, state: &[u8]) -> Result<(), CheckpointError> {
        self.state = load_state(RULE, state)?;
        Ok(())
    }

    fn tracked(&self) -> usize {
        self.state.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{MONDAY, assert_deterministic, cx_none, decision};

    fn upload(t: i64, host: &str, reason: &str) -> AccessDecision {
        let mut d = decision("erin@example.com", t, "192.0.2.14", "US");
        d.dataset = "gateway_http".into();
        d.host = host.into();
        d.resource = format!("https://{host}/upload");
        d.action = "POST".into();
        d.reason = reason.into();
        d
    }

    const MATCHED: &str = "gateway action block by policy P; blocked file a.xlsx (dlp); upload matched DLP profiles: Financial Information, PII";

    fn run(det: &mut Dlp, ds: &[AccessDecision]) -> Vec<Finding> {
        let mut out = Vec::new();
        for d in ds {
            det.on_decision(&cx_none(), d, &mut out);
        }
        out
    }

    #[test]
    fn reads_the_profiles_the_mapper_wrote() {
        assert_eq!(upload_profiles(MATCHED), vec!["Financial Information", "PII"]);
        assert_eq!(upload_profiles("x; upload matched DLP profiles: A; download matched DLP profiles: B"), vec!["A"]);
        assert!(upload_profiles("download matched DLP profiles: B").is_empty());
    }

    #[test]
    fn repeated_matches_to_personal_hosts_fire_once() {
        let mut det = Dlp::new(DlpConfig::default());
        let m = 60_000;
        let ds = [
            upload(MONDAY, "mega.nz", MATCHED),
            upload(MONDAY + 5 * m, "www.dropbox.com", MATCHED),
            upload(MONDAY + 10 * m, "mega.nz", MATCHED),
            upload(MONDAY + 15 * m, "www.dropbox.com", MATCHED),
        ];
        let f = run(&mut det, &ds);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].event_ids.len(), 3);
        assert_eq!(f[0].evidence["hosts"], "mega.nz,www.dropbox.com");
        assert_eq!(f[0].dedup_key, "dlp_exfil:erin@example.com");
    }

    #[test]
    fn corporate_hosts_unmatched_uploads_and_spread_out_matches_do_not_fire() {
        let m = 60_000;
        let mut det = Dlp::new(DlpConfig::default());
        let corp: Vec<_> = (0..5).map(|i| upload(MONDAY + i * m, "example.atlassian.net", MATCHED)).collect();
        assert!(run(&mut det, &corp).is_empty());
        let plain: Vec<_> = (0..5).map(|i| upload(MONDAY + i * m, "mega.nz", "gateway action allow")).collect();
        assert!(run(&mut det, &plain).is_empty());
        let spread: Vec<_> = (0..5).map(|i| upload(MONDAY + i * 31 * m, "mega.nz", MATCHED)).collect();
        assert!(run(&mut det, &spread).is_empty(), "never 3 within 30 minutes");
        let lookalike: Vec<_> = (0..5).map(|i| upload(MONDAY + i * m, "notmega.nz", MATCHED)).collect();
        assert!(run(&mut det, &lookalike).is_empty(), "a suffix is not a subdomain");
    }

    #[test]
    fn the_host_falls_back_to_the_url() {
        assert_eq!(url_host("https://user@drive.google.com:443/upload?x=1"), "drive.google.com");
        let mut det = Dlp::new(DlpConfig::default());
        let ds: Vec<_> = (0..3)
            .map(|i| {
                let mut d = upload(MONDAY + i, "x", MATCHED);
                d.host.clear();
                d.resource = "https://drive.google.com/upload".into();
                d
            })
            .collect();
        assert_eq!(run(&mut det, &ds).len(), 1);
    }

    #[test]
    fn deterministic() {
        let m = 60_000;
        let mut stream: Vec<_> = (0..5).map(|i| upload(MONDAY + i * 5 * m, "mega.nz", MATCHED)).collect();
        stream.extend((0..3).map(|i| upload(MONDAY + 600 * m + i * m, "wetransfer.com", MATCHED)));
        assert_eq!(assert_deterministic(|| Box::new(Dlp::new(DlpConfig::default())), &stream).len(), 2);
    }
}
