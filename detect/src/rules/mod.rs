//! The built-in detectors, one module each, and [`build`], which makes the enabled ones
//! from a [`DetectConfig`].
//!
//! | rule id | module | judges | state of its own |
//! | --- | --- | --- | --- |
//! | `runaway_select` | [`runaway`] | one query's figures against per-role limits | none |
//! | `new_country`, `new_asn` | [`novelty`] | an allowed request against the principal's countries / ASNs | none (baselines) |
//! | `off_hours` | [`off_hours`] | sessions outside the principal's usual hours | open sessions |
//! | `impossible_travel` | [`travel`] | the principal's last place and the speed it implies | none (baselines) |
//! | `deny_burst_ip`, `deny_burst_principal` | [`deny_burst`] | denials per key in a sliding window | recent denials per key |
//! | `volume_outlier` | [`volume`] | hourly counts against the same hour of earlier weeks (median/MAD) | hourly rings per principal |
//! | `rare_pair` | [`rare_pair`] | a new principal–resource pair on a rarely used resource | pairs, resource users |
//! | `privileged_change` | [`privileged`] | audit-log changes to security resources, new IP, off-hours | none (baselines) |
//! | `dlp_exfil` | [`dlp`] | repeated DLP-matched uploads to personal hosts | recent uploads per user |
//! | `source_silence` | [`silence`] | gaps between arrivals of a dataset/zone, on clock ticks | arrival cadence per source |
//! | `sigma` (findings carry each Sigma rule's id) | [`crate::sigma::detector`] | the Sigma rules of `detect.sigma_dir` | correlation windows |
//! | `canary` | [`canary`] | gatelog's own canary decisions only (the engine routes them there, always on) | none |

pub(crate) mod canary;
pub(crate) mod deny_burst;
pub(crate) mod dlp;
pub(crate) mod novelty;
pub(crate) mod off_hours;
pub(crate) mod privileged;
pub(crate) mod rare_pair;
pub(crate) mod runaway;
pub(crate) mod silence;
pub(crate) mod travel;
pub(crate) mod volume;
pub(crate) mod window;

#[cfg(test)]
pub(crate) mod testing;

use crate::config::DetectConfig;
use crate::detector::Detector;

/// Every built-in rule id, in the order [`build`] makes them.
pub const RULE_IDS: &[&str] = &[
    "runaway_select",
    "new_country",
    "new_asn",
    "off_hours",
    "impossible_travel",
    "deny_burst_ip",
    "deny_burst_principal",
    "volume_outlier",
    "rare_pair",
    "privileged_change",
    "dlp_exfil",
    "source_silence",
];

/// `(rule id, version)` of the detectors `config` enables, in [`RULE_IDS`] order: what a
/// run record names as the rule set it ran.
pub fn enabled_versions(config: &DetectConfig) -> Vec<(&'static str, u32)> {
    build(config, "default").iter().map(|d| (d.rule().id, d.rule().version)).collect()
}

/// The enabled detectors of `config`, fresh, for one tenant.
pub(crate) fn build(config: &DetectConfig, tenant: &str) -> Vec<Box<dyn Detector>> {
    let c = config;
    let mut out: Vec<Box<dyn Detector>> = Vec::new();
    if c.runaway_select.enabled {
        out.push(Box::new(runaway::Runaway::new(c.runaway_select.clone())));
    }
    if c.new_country.enabled {
        out.push(Box::new(novelty::Novelty::new(novelty::Attribute::Country, c.new_country.clone())));
    }
    if c.new_asn.enabled {
        out.push(Box::new(novelty::Novelty::new(novelty::Attribute::Asn, c.new_asn.clone())));
    }
    if c.off_hours.enabled {
        out.push(Box::new(off_hours::OffHours::new(c.off_hours.clone())));
    }
    if c.impossible_travel.enabled {
        out.push(Box::new(travel::Travel::new(c.impossible_travel.clone())));
    }
    if c.deny_burst_ip.enabled {
        out.push(Box::new(deny_burst::DenyBurst::new(deny_burst::By::Ip, c.deny_burst_ip.clone())));
    }
    if c.deny_burst_principal.enabled {
        out.push(Box::new(deny_burst::DenyBurst::new(deny_burst::By::Principal, c.deny_burst_principal.clone())));
    }
    if c.volume_outlier.enabled {
        out.push(Box::new(volume::Volume::new(c.volume_outlier.clone())));
    }
    if c.rare_pair.enabled {
        out.push(Box::new(rare_pair::RarePair::new(c.rare_pair.clone())));
    }
    if c.privileged_change.enabled {
        out.push(Box::new(privileged::Privileged::new(c.privileged_change.clone())));
    }
    if c.dlp_exfil.enabled {
        out.push(Box::new(dlp::Dlp::new(c.dlp_exfil.clone())));
    }
    if c.source_silence.enabled {
        out.push(Box::new(silence::Silence::new(c.source_silence.clone(), tenant)));
    }
    if !c.sigma_rules.is_empty() {
        out.push(Box::new(crate::sigma::detector::SigmaDetector::new(&c.sigma_rules)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_built_with_its_id_and_can_be_turned_off() {
        let ids: Vec<&str> = build(&DetectConfig::default(), "default").iter().map(|d| d.rule().id).collect();
        assert_eq!(ids, RULE_IDS);
        let mut c = DetectConfig::default();
        c.volume_outlier.enabled = false;
        c.dlp_exfil.enabled = false;
        let ids: Vec<&str> = build(&c, "default").iter().map(|d| d.rule().id).collect();
        assert_eq!(ids.len(), RULE_IDS.len() - 2);
        assert!(!ids.contains(&"volume_outlier") && !ids.contains(&"dlp_exfil"));
    }
}
