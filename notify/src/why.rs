//! Why an alert of each built-in rule matters, in on-call's words: the paragraph under
//! "Why it matters" in the mail. A rule without an entry (a SQL rule, an imported Sigma rule)
//! gets a general one.

/// `(title, why it matters)` of `rule_id`.
pub fn explain(rule_id: &str) -> (&'static str, &'static str) {
    match rule_id {
        "runaway_select" => (
            "Runaway query",
            "A query read or returned far more than its role is expected to. It can slow the \
             cluster for everyone, and a large unbounded read of sensitive tables is also how \
             data is taken out. Check who ran it and whether it is still running.",
        ),
        "new_country" => (
            "Access from a new country",
            "This principal was allowed in from a country it has never used. A stolen \
             password, session or token used from elsewhere looks exactly like this. Confirm \
             with the person (travel, VPN) before assuming it is benign.",
        ),
        "new_asn" => (
            "Access from a new network",
            "This principal was allowed in from a network (ASN) it has never used: a new ISP, \
             a cloud provider or a VPN exit. Credentials used from an attacker's \
             infrastructure appear this way.",
        ),
        "off_hours" => (
            "Activity at unusual hours",
            "This principal was active at an hour its own history says it almost never is. \
             Automated misuse of a person's credentials often runs while they are asleep.",
        ),
        "impossible_travel" => (
            "Impossible travel",
            "Two accesses by the same principal came from places too far apart for the time \
             between them. At least one of them is probably not the person: a shared or \
             stolen credential.",
        ),
        "deny_burst_ip" => (
            "Burst of denials from one IP",
            "Many requests from one address were denied in a short time: password spraying, \
             credential stuffing, scanning, or a misconfigured client hammering a protected \
             resource. If it continues, consider blocking the address at the edge.",
        ),
        "deny_burst_principal" => (
            "Burst of denials for one principal",
            "One principal was denied many times in a short time. Someone may be trying \
             resources they are not allowed to read, or an account is being probed.",
        ),
        "volume_outlier" => (
            "Unusual volume",
            "This principal made far more requests than it usually does at this hour of the \
             week. Bulk downloads and scripted misuse of an account show up this way.",
        ),
        "rare_pair" => (
            "Rare access to a resource",
            "This principal accessed a resource that few others use and that it never used \
             before. Lateral movement and curiosity about sensitive data look like this.",
        ),
        "privileged_change" => (
            "Privileged change off-hours from a new IP",
            "A security-relevant setting was changed from an address new to this actor, at an \
             hour it does not usually work. Attackers who gain admin access change exactly \
             these settings to keep it.",
        ),
        "dlp_exfil" => (
            "Sensitive data sent to a personal host",
            "Uploads matching a data-loss-prevention profile went repeatedly to a personal \
             destination (webmail, personal storage). This is how data leaves the company.",
        ),
        "source_silence" => (
            "A log source went silent",
            "A dataset or zone stopped arriving. While it is silent, nothing that happens \
             there is detected or kept as evidence. Check the Logpush job and the receiver.",
        ),
        _ => (
            "Detection rule matched",
            "A detection rule matched the events below. Its description and runbook say what \
             it looks for and what to do.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_rule_is_explained() {
        let general = explain("not-a-rule");
        for rule in gatelog_detect::rules::RULE_IDS {
            assert_ne!(explain(rule), general, "{rule}");
        }
    }
}
