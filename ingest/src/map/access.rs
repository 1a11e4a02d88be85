//! `access_requests` (account-scoped Logpush): Cloudflare Access logins and logouts.

use super::fields::{Bool, RawTs, Str};
use super::support::{Cx, Kind, Mapped, country, logpush_ts, parse_line};
use gatelog_model::{Decision, PrincipalType};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[allow(non_snake_case)]
struct AccessRequest<'a> {
    #[serde(borrow, default)]
    CreatedAt: RawTs<'a>,
    #[serde(borrow, default)]
    RayID: Str<'a>,
    #[serde(borrow, default)]
    Action: Str<'a>,
    #[serde(default)]
    Allowed: Bool,
    #[serde(borrow, default)]
    AppDomain: Str<'a>,
    #[serde(borrow, default)]
    AppUUID: Str<'a>,
    #[serde(borrow, default)]
    Connection: Str<'a>,
    #[serde(borrow, default)]
    Country: Str<'a>,
    #[serde(borrow, default)]
    Email: Str<'a>,
    #[serde(borrow, default)]
    IPAddress: Str<'a>,
}

pub(crate) fn map(line: &str, cx: &Cx<'_>) -> Result<Mapped, String> {
    let r: AccessRequest<'_> = parse_line(line, Kind::Object)?;
    let ts = logpush_ts("CreatedAt", r.CreatedAt)?;
    let mut d = cx.decision(cx.id_or_sha(r.RayID.as_str(), &[&ts.text]), ts.ms);
    let email = r.Email.as_str().trim();
    if !email.is_empty() {
        d.principal = email.to_owned();
        d.principal_type = PrincipalType::User;
    }
    d.decision = match r.Allowed.0 {
        Some(true) => Decision::Allow,
        Some(false) => Decision::Deny,
        None => Decision::Log,
    };
    let action = r.Action.as_str();
    d.action = action.to_owned();
    let domain = r.AppDomain.as_str().trim();
    if !domain.is_empty() {
        let domain = domain.split_once("://").map_or(domain, |(_, rest)| rest);
        d.resource = format!("https://{domain}");
        let split = domain.find('/').unwrap_or(domain.len());
        d.host = domain[..split].to_owned();
        d.path = domain[split..].to_owned();
    }
    if let Some(app) = r.AppUUID.non_empty() {
        d.policy = format!("access:{app}");
    }
    let verdict = match d.decision {
        Decision::Allow => "allowed",
        Decision::Deny => "denied",
        _ => "recorded",
    };
    let what = if action.is_empty() { "request" } else { action };
    d.reason = match r.Connection.non_empty() {
        Some(idp) => format!("cloudflare access {verdict} {what} via identity provider {idp}"),
        None => format!("cloudflare access {verdict} {what}"),
    };
    d.client_ip = r.IPAddress.to_owned_string();
    d.country = country(r.Country.as_str());
    d.ray_id = r.RayID.to_owned_string();
    Ok(Mapped::one(d))
}
