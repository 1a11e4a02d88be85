//! `gateway_http` (account-scoped Logpush): Zero Trust Gateway HTTP policy decisions.

use super::fields::{Int, RawTs, Str, StrList};
use super::support::{Cx, Kind, Mapped, country, logpush_ts, parse_line, url_host_path};
use gatelog_model::{Decision, PrincipalType};
use serde::Deserialize;
use std::fmt::Write as _;

#[derive(Debug, Deserialize)]
#[allow(non_snake_case)]
struct GatewayRequest<'a> {
    #[serde(borrow, default)]
    Datetime: RawTs<'a>,
    #[serde(borrow, default)]
    RequestID: Str<'a>,
    #[serde(borrow, default)]
    Action: Str<'a>,
    #[serde(borrow, default)]
    PolicyID: Str<'a>,
    #[serde(borrow, default)]
    PolicyName: Str<'a>,
    #[serde(borrow, default)]
    Email: Str<'a>,
    #[serde(borrow, default)]
    SourceIP: Str<'a>,
    #[serde(borrow, default)]
    SourceIPCountryCode: Str<'a>,
    #[serde(borrow, default)]
    HTTPHost: Str<'a>,
    #[serde(borrow, default)]
    HTTPMethod: Str<'a>,
    #[serde(default)]
    HTTPStatusCode: Int,
    #[serde(borrow, default)]
    URL: Str<'a>,
    #[serde(borrow, default)]
    UserAgent: Str<'a>,
    #[serde(borrow, default)]
    BlockedFileName: Str<'a>,
    #[serde(borrow, default)]
    BlockedFileReason: Str<'a>,
    #[serde(borrow, default)]
    UploadMatchedDlpProfiles: StrList<'a>,
    #[serde(borrow, default)]
    DownloadMatchedDlpProfiles: StrList<'a>,
}

fn action_decision(action: &str) -> Decision {
    match action.to_ascii_lowercase().as_str() {
        "block" | "redirect" => Decision::Deny,
        "allow" | "on" | "off" | "scan" | "noscan" | "isolate" | "noisolate" => Decision::Allow,
        _ => Decision::Log,
    }
}

pub(crate) fn map(line: &str, cx: &Cx<'_>) -> Result<Mapped, String> {
    let r: GatewayRequest<'_> = parse_line(line, Kind::Object)?;
    let ts = logpush_ts("Datetime", r.Datetime)?;
    let mut d = cx.decision(cx.id_or_sha(r.RequestID.as_str().trim(), &[]), ts.ms);
    let email = r.Email.as_str().trim();
    if !email.is_empty() {
        d.principal = email.to_owned();
        d.principal_type = PrincipalType::User;
    }
    let action = r.Action.as_str();
    d.decision = action_decision(action);
    let policy = r.PolicyName.non_empty().or(r.PolicyID.non_empty()).unwrap_or_default();
    d.policy = policy.to_owned();

    let mut reason =
        if action.is_empty() { "gateway logged the request".to_owned() } else { format!("gateway action {action}") };
    if !policy.is_empty() {
        let _ = write!(reason, " by policy {policy}");
    }
    match (r.BlockedFileName.non_empty(), r.BlockedFileReason.non_empty()) {
        (Some(file), Some(why)) => {
            let _ = write!(reason, "; blocked file {file} ({why})");
        }
        (Some(file), None) => {
            let _ = write!(reason, "; blocked file {file}");
        }
        (None, Some(why)) => {
            let _ = write!(reason, "; blocked file ({why})");
        }
        (None, None) => {}
    }
    let upload: Vec<&str> = r.UploadMatchedDlpProfiles.non_empty().collect();
    if !upload.is_empty() {
        let _ = write!(reason, "; upload matched DLP profiles: {}", upload.join(", "));
    }
    let download: Vec<&str> = r.DownloadMatchedDlpProfiles.non_empty().collect();
    if !download.is_empty() {
        let _ = write!(reason, "; download matched DLP profiles: {}", download.join(", "));
    }
    d.reason = reason;

    let url = r.URL.as_str();
    let (url_host, path) = url_host_path(url);
    d.resource = url.to_owned();
    d.action = r.HTTPMethod.to_owned_string();
    d.status = r.HTTPStatusCode.status();
    d.client_ip = r.SourceIP.to_owned_string();
    d.country = country(r.SourceIPCountryCode.as_str());
    d.host = r.HTTPHost.non_empty().unwrap_or(url_host).to_owned();
    d.path = path.to_owned();
    d.user_agent = r.UserAgent.to_owned_string();
    d.request_id = r.RequestID.to_owned_string();
    Ok(Mapped::one(d))
}
