//! `firewall_events` (zone-scoped Logpush): one decision per matched rule.
//!
//! Several events share one Ray ID (one per matching rule), so the event id adds the rule,
//! the product and the position in the match chain.

use super::fields::{Int, RawTs, Str};
use super::http_requests::security_decision;
use super::support::{Cx, Kind, Mapped, country, http_resource, logpush_ts, parse_line};
use gatelog_model::Decision;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[allow(non_snake_case)]
struct FirewallEvent<'a> {
    #[serde(borrow, default)]
    Datetime: RawTs<'a>,
    #[serde(borrow, default)]
    RayID: Str<'a>,
    #[serde(borrow, default)]
    Action: Str<'a>,
    #[serde(borrow, default)]
    RuleID: Str<'a>,
    #[serde(borrow, default)]
    Ref: Str<'a>,
    #[serde(borrow, default)]
    Source: Str<'a>,
    #[serde(borrow, default)]
    Description: Str<'a>,
    #[serde(borrow, default)]
    MatchIndex: Str<'a>,
    #[serde(borrow, default)]
    ClientIP: Str<'a>,
    #[serde(default)]
    ClientASN: Int,
    #[serde(borrow, default)]
    ClientCountry: Str<'a>,
    #[serde(borrow, default)]
    ClientRequestHost: Str<'a>,
    #[serde(borrow, default)]
    ClientRequestMethod: Str<'a>,
    #[serde(borrow, default)]
    ClientRequestPath: Str<'a>,
    #[serde(borrow, default)]
    ClientRequestQuery: Str<'a>,
    #[serde(borrow, default)]
    ClientRequestScheme: Str<'a>,
    #[serde(borrow, default)]
    ClientRequestUserAgent: Str<'a>,
    #[serde(default)]
    EdgeResponseStatus: Int,
}

/// A firewall `Action` as a decision; anything unrecognised is `log`.
fn action_decision(action: &str) -> Decision {
    match action.to_ascii_lowercase().as_str() {
        "allow" | "bypass" | "skip" => Decision::Allow,
        "log" | "unknown" | "" => Decision::Log,
        other => security_decision(other).unwrap_or(Decision::Log),
    }
}

pub(crate) fn map(line: &str, cx: &Cx<'_>) -> Result<Mapped, String> {
    let r: FirewallEvent<'_> = parse_line(line, Kind::Object)?;
    let ts = logpush_ts("Datetime", r.Datetime)?;
    let event_id =
        cx.id_or_sha(r.RayID.as_str(), &[&ts.text, r.RuleID.as_str(), r.Source.as_str(), r.MatchIndex.as_str()]);
    let mut d = cx.decision(event_id, ts.ms);
    d.decision = action_decision(r.Action.as_str());
    d.policy = r.RuleID.non_empty().unwrap_or(r.Ref.as_str()).to_owned();
    d.reason = match (r.Description.non_empty(), r.Source.non_empty()) {
        (Some(desc), Some(source)) => format!("{desc} ({source})"),
        (Some(desc), None) => desc.to_owned(),
        (None, Some(source)) => format!("{} by {source}", non_empty_or(r.Action.as_str(), "matched")),
        (None, None) => String::new(),
    };
    let host = r.ClientRequestHost.as_str();
    let path = r.ClientRequestPath.as_str();
    let mut resource = http_resource(r.ClientRequestScheme.as_str(), host, path);
    if let Some(query) = r.ClientRequestQuery.non_empty() {
        if !query.starts_with('?') {
            resource.push('?');
        }
        resource.push_str(query);
    }
    d.resource = resource;
    d.action = r.ClientRequestMethod.to_owned_string();
    d.status = r.EdgeResponseStatus.status();
    d.host = host.to_owned();
    d.path = path.to_owned();
    d.client_ip = r.ClientIP.to_owned_string();
    d.country = country(r.ClientCountry.as_str());
    d.asn = r.ClientASN.asn();
    d.user_agent = r.ClientRequestUserAgent.to_owned_string();
    d.ray_id = r.RayID.to_owned_string();
    Ok(Mapped::one(d))
}

fn non_empty_or<'a>(text: &'a str, fallback: &'a str) -> &'a str {
    if text.is_empty() { fallback } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_action_has_a_decision() {
        use Decision::*;
        let cases = [
            ("unknown", Log),
            ("allow", Allow),
            ("block", Deny),
            ("challenge", Challenge),
            ("jschallenge", Challenge),
            ("log", Log),
            ("connectionclose", Deny),
            ("challengesolved", Allow),
            ("challengebypassed", Allow),
            ("jschallengesolved", Allow),
            ("jschallengebypassed", Allow),
            ("bypass", Allow),
            ("managedchallenge", Challenge),
            ("managedchallengenoninteractivesolved", Allow),
            ("managedchallengeinteractivesolved", Allow),
            ("managedchallengebypassed", Allow),
            ("skip", Allow),
            ("somethingnew", Log),
        ];
        for (action, want) in cases {
            assert_eq!(action_decision(action), want, "{action}");
        }
    }
}
