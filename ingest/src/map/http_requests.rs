//! `http_requests` (zone-scoped Logpush): one decision per request.
//!
//! This is the high-volume dataset, so the record struct borrows every string from the line
//! and names only the ~25 fields the mapping reads; serde skips the other ~70 without
//! building values.

use super::fields::{Int, KeyNames, Picked, RawTs, Str, StrList};
use super::support::{Cx, Kind, Mapped, country, http_resource, logpush_ts, parse_line};
use gatelog_model::{Decision, PrincipalType};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[allow(non_snake_case)]
struct HttpRequest<'a> {
    #[serde(borrow, default)]
    EdgeStartTimestamp: RawTs<'a>,
    #[serde(borrow, default)]
    EdgeEndTimestamp: RawTs<'a>,
    #[serde(borrow, default)]
    RayID: Str<'a>,
    #[serde(borrow, default)]
    ZoneName: Str<'a>,
    #[serde(borrow, default)]
    ClientIP: Str<'a>,
    #[serde(default)]
    ClientASN: Int,
    #[serde(borrow, default)]
    ClientCountry: Str<'a>,
    #[serde(borrow, default)]
    ClientRequestHost: Str<'a>,
    #[serde(borrow, default)]
    EdgeRequestHost: Str<'a>,
    #[serde(borrow, default)]
    ClientRequestMethod: Str<'a>,
    #[serde(borrow, default)]
    ClientRequestPath: Str<'a>,
    #[serde(borrow, default)]
    ClientRequestURI: Str<'a>,
    #[serde(borrow, default)]
    ClientRequestScheme: Str<'a>,
    #[serde(borrow, default)]
    ClientRequestUserAgent: Str<'a>,
    #[serde(default)]
    EdgeResponseStatus: Int,
    #[serde(default)]
    OriginResponseDurationMs: Int,
    #[serde(borrow, default)]
    SecurityAction: Str<'a>,
    #[serde(borrow, default)]
    SecurityRuleID: Str<'a>,
    #[serde(borrow, default)]
    SecurityRuleDescription: Str<'a>,
    #[serde(borrow, default)]
    SecuritySources: StrList<'a>,
    #[serde(borrow, default)]
    RequestHeaders: Picked<'a, AccessHeaders>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AccessHeaders;

impl KeyNames for AccessHeaders {
    const NAMES: &'static [&'static str] = &["cf-access-authenticated-user-email"];
}

/// What a `SecurityAction` (http_requests) or firewall `Action` means, if it decides by itself.
pub(crate) fn security_decision(action: &str) -> Option<Decision> {
    let a = action.to_ascii_lowercase();
    if a.ends_with("solved") || a.ends_with("bypassed") {
        return Some(Decision::Allow);
    }
    match a.as_str() {
        "block" | "connectionclose" | "forceconnectionclose" => Some(Decision::Deny),
        "challenge"
        | "jschallenge"
        | "managedchallenge"
        | "managedchallengenoninteractive"
        | "managedchallengeinteractive"
        | "interactivechallenge" => Some(Decision::Challenge),
        _ if a.contains("challenge") => Some(Decision::Challenge),
        _ => None,
    }
}

pub(crate) fn map(line: &str, cx: &Cx<'_>) -> Result<Mapped, String> {
    let r: HttpRequest<'_> = parse_line(line, Kind::Object)?;
    let (start_field, start_raw) = if r.EdgeStartTimestamp.is_some() || r.EdgeEndTimestamp.is_none() {
        ("EdgeStartTimestamp", r.EdgeStartTimestamp)
    } else {
        ("EdgeEndTimestamp", r.EdgeEndTimestamp)
    };
    let ts = logpush_ts(start_field, start_raw)?;
    let event_id = cx.id_or_sha(r.RayID.as_str(), &[&ts.text]);
    let mut d = cx.decision(event_id, ts.ms);

    let status = r.EdgeResponseStatus.status();
    let email = r.RequestHeaders.get(0).trim();
    if !email.is_empty() {
        d.principal = email.to_owned();
        d.principal_type = PrincipalType::User;
    }
    let security = r.SecurityAction.as_str();
    d.decision = match security_decision(security) {
        Some(decision) => decision,
        None if matches!(status, 401 | 403 | 429) => Decision::Deny,
        None if status >= 500 => Decision::Error,
        None => Decision::Allow,
    };
    d.policy =
        r.SecurityRuleID.non_empty().or_else(|| r.SecuritySources.first_non_empty()).unwrap_or_default().to_owned();
    d.reason = match r.SecurityRuleDescription.non_empty() {
        Some(description) => description.to_owned(),
        None if !security.is_empty() && security_decision(security).is_some() => {
            match r.SecuritySources.first_non_empty() {
                Some(source) => format!("security action {security} by {source}"),
                None => format!("security action {security}"),
            }
        }
        None if status > 0 => format!("edge answered {status}"),
        None => String::new(),
    };

    let host = r.ClientRequestHost.non_empty().unwrap_or(r.EdgeRequestHost.as_str());
    let path = match r.ClientRequestPath.non_empty() {
        Some(path) => path,
        None => {
            let uri = r.ClientRequestURI.as_str();
            &uri[..uri.find('?').unwrap_or(uri.len())]
        }
    };
    d.resource = http_resource(r.ClientRequestScheme.as_str(), host, path);
    d.action = r.ClientRequestMethod.to_owned_string();
    d.status = status;
    d.host = host.to_owned();
    d.zone = r.ZoneName.to_owned_string();
    d.path = path.to_owned();
    d.client_ip = r.ClientIP.to_owned_string();
    d.country = country(r.ClientCountry.as_str());
    d.asn = r.ClientASN.asn();
    d.user_agent = r.ClientRequestUserAgent.to_owned_string();
    d.ray_id = r.RayID.to_owned_string();
    let end = match start_field {
        "EdgeStartTimestamp" => logpush_ts("EdgeEndTimestamp", r.EdgeEndTimestamp).ok(),
        _ => None,
    };
    d.duration_ms = match end {
        Some(end) => u64::try_from(end.ms.0.saturating_sub(ts.ms.0)).unwrap_or(0),
        None => r.OriginResponseDurationMs.u64(),
    };
    Ok(Mapped::one(d))
}
