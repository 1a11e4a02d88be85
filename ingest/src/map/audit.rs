//! `audit_logs` (v1) and `audit_logs_v2` (account-scoped Logpush): who changed what in the
//! Cloudflare account. The record's own id is the event id.

use super::fields::{Bool, Int, Obj, RawTs, Str};
use super::support::{Cx, Kind, Mapped, logpush_ts, parse_line, strip_colo};
use gatelog_model::{AccessDecision, Decision, PrincipalType};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[allow(non_snake_case)]
struct AuditV1<'a> {
    #[serde(borrow, default)]
    When: RawTs<'a>,
    #[serde(borrow, default)]
    ID: Str<'a>,
    #[serde(default)]
    ActionResult: Bool,
    #[serde(borrow, default)]
    ActionType: Str<'a>,
    #[serde(borrow, default)]
    ActorEmail: Str<'a>,
    #[serde(borrow, default)]
    ActorID: Str<'a>,
    #[serde(borrow, default)]
    ActorIP: Str<'a>,
    #[serde(borrow, default)]
    ActorType: Str<'a>,
    #[serde(borrow, default)]
    Interface: Str<'a>,
    #[serde(borrow, default)]
    ResourceID: Str<'a>,
    #[serde(borrow, default)]
    ResourceType: Str<'a>,
}

#[derive(Debug, Deserialize)]
#[allow(non_snake_case)]
struct AuditV2<'a> {
    #[serde(borrow, default)]
    ActionTimestamp: RawTs<'a>,
    #[serde(borrow, default)]
    AuditLogID: Str<'a>,
    #[serde(borrow, default)]
    ActionDescription: Str<'a>,
    #[serde(borrow, default)]
    ActionResult: Str<'a>,
    #[serde(borrow, default)]
    ActionType: Str<'a>,
    #[serde(borrow, default)]
    ActorContext: Str<'a>,
    #[serde(borrow, default)]
    ActorEmail: Str<'a>,
    #[serde(borrow, default)]
    ActorID: Str<'a>,
    #[serde(borrow, default)]
    ActorIPAddress: Str<'a>,
    #[serde(borrow, default)]
    ActorType: Str<'a>,
    #[serde(borrow, default)]
    ResourceID: Str<'a>,
    #[serde(borrow, default)]
    ResourceProduct: Str<'a>,
    #[serde(borrow, default)]
    ResourceType: Str<'a>,
    #[serde(borrow, default)]
    ZoneName: Str<'a>,
    #[serde(borrow, default)]
    Raw: Obj<RawRequest<'a>>,
}

#[derive(Debug, Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow, default)]
    cf_ray_id: Str<'a>,
    #[serde(borrow, default)]
    user_agent: Str<'a>,
    #[serde(default)]
    status_code: Int,
}

/// The actor: e-mail (else id); `user` actors are users, other actor types are services.
fn set_actor(d: &mut AccessDecision, email: &str, id: &str, actor_type: &str) {
    let principal = if email.trim().is_empty() { id.trim() } else { email.trim() };
    d.principal = principal.to_owned();
    d.principal_type = if principal.is_empty() {
        PrincipalType::Anonymous
    } else if actor_type.eq_ignore_ascii_case("user") || (actor_type.is_empty() && principal.contains('@')) {
        PrincipalType::User
    } else {
        PrincipalType::Service
    };
}

pub(crate) fn map_v1(line: &str, cx: &Cx<'_>) -> Result<Mapped, String> {
    let r: AuditV1<'_> = parse_line(line, Kind::Object)?;
    let ts = logpush_ts("When", r.When)?;
    let mut d = cx.decision(cx.id_or_sha(r.ID.as_str().trim(), &[]), ts.ms);
    set_actor(&mut d, r.ActorEmail.as_str(), r.ActorID.as_str(), r.ActorType.as_str());
    d.decision = match r.ActionResult.0 {
        Some(true) => Decision::Allow,
        Some(false) => Decision::Deny,
        None => Decision::Log,
    };
    let action = r.ActionType.as_str();
    let rtype = r.ResourceType.as_str();
    d.action = action.to_owned();
    d.resource = format!("cloudflare:{rtype}/{}", r.ResourceID.as_str());
    let mut reason = format!("{} {}", or(action, "change"), or(rtype, "resource"));
    if let Some(interface) = r.Interface.non_empty() {
        reason.push_str(" via ");
        reason.push_str(interface);
    }
    reason.push_str(match d.decision {
        Decision::Allow => " succeeded",
        Decision::Deny => " failed",
        _ => "",
    });
    d.reason = reason;
    d.client_ip = r.ActorIP.to_owned_string();
    Ok(Mapped::one(d))
}

pub(crate) fn map_v2(line: &str, cx: &Cx<'_>) -> Result<Mapped, String> {
    let r: AuditV2<'_> = parse_line(line, Kind::Object)?;
    let ts = logpush_ts("ActionTimestamp", r.ActionTimestamp)?;
    let mut d = cx.decision(cx.id_or_sha(r.AuditLogID.as_str().trim(), &[]), ts.ms);
    set_actor(&mut d, r.ActorEmail.as_str(), r.ActorID.as_str(), r.ActorType.as_str());
    let result = r.ActionResult.as_str().trim();
    d.decision = if result.is_empty() {
        Decision::Log
    } else if result.eq_ignore_ascii_case("success") {
        Decision::Allow
    } else {
        Decision::Deny
    };
    d.action = r.ActionType.to_owned_string();
    d.resource =
        format!("cloudflare:{}/{}/{}", r.ResourceProduct.as_str(), r.ResourceType.as_str(), r.ResourceID.as_str());
    d.reason = match r.ActionDescription.non_empty() {
        Some(description) => description.to_owned(),
        None => format!(
            "{} {} ({})",
            or(r.ActionType.as_str(), "change"),
            or(r.ResourceType.as_str(), "resource"),
            or(result, "no result")
        ),
    };
    d.client_ip = r.ActorIPAddress.to_owned_string();
    d.auth_method = r.ActorContext.to_owned_string();
    d.zone = r.ZoneName.to_owned_string();
    if let Some(raw) = r.Raw.0 {
        d.user_agent = raw.user_agent.to_owned_string();
        d.status = raw.status_code.status();
        d.ray_id = strip_colo(raw.cf_ray_id.as_str()).to_owned();
    }
    Ok(Mapped::one(d))
}

fn or<'a>(text: &'a str, fallback: &'a str) -> &'a str {
    if text.is_empty() { fallback } else { text }
}
