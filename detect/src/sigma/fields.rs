//! The Sigma field names gatelog knows, and [`DecisionEvent`], an [`AccessDecision`] as a
//! Sigma event.
//!
//! A Sigma rule names fields; gatelog maps each name to one [`AccessDecision`] field
//! ([`FIELDS`]). The canonical names are the decision's own (`principal`, `client_ip`, …,
//! as in SQL and search); a few names of Sigma's web/proxy taxonomy are accepted as aliases
//! (`c-ip`, `c-useragent`, `cs-host`, …). A rule naming any other field is refused at load
//! ([`lookup`] returns `None`), so a typo never becomes a rule that silently matches
//! nothing. The table is also in `rules/sigma/README.md`.

use gatelog_model::AccessDecision;
use rsigma_eval::event::{Event, EventValue};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// An [`AccessDecision`] field a Sigma name maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    EventId,
    Time,
    Source,
    Dataset,
    Decision,
    Principal,
    PrincipalType,
    Roles,
    ClientIp,
    Country,
    Asn,
    UserAgent,
    Resource,
    Action,
    Policy,
    Reason,
    Query,
    QueryFingerprint,
    RowsRead,
    BytesRead,
    ResultRows,
    DurationMs,
    Status,
    RayId,
    RequestId,
    Zone,
    Host,
    Path,
    AuthMethod,
    Error,
    Tenant,
}

/// Sigma field name → decision field. Canonical names first, then aliases.
pub const FIELDS: &[(&str, Field)] = &[
    ("event_id", Field::EventId),
    ("time", Field::Time),
    ("source", Field::Source),
    ("dataset", Field::Dataset),
    ("decision", Field::Decision),
    ("principal", Field::Principal),
    ("principal_type", Field::PrincipalType),
    ("roles", Field::Roles),
    ("client_ip", Field::ClientIp),
    ("country", Field::Country),
    ("asn", Field::Asn),
    ("user_agent", Field::UserAgent),
    ("resource", Field::Resource),
    ("action", Field::Action),
    ("policy", Field::Policy),
    ("reason", Field::Reason),
    ("query", Field::Query),
    ("query_fingerprint", Field::QueryFingerprint),
    ("rows_read", Field::RowsRead),
    ("bytes_read", Field::BytesRead),
    ("result_rows", Field::ResultRows),
    ("duration_ms", Field::DurationMs),
    ("status", Field::Status),
    ("ray_id", Field::RayId),
    ("request_id", Field::RequestId),
    ("zone", Field::Zone),
    ("host", Field::Host),
    ("path", Field::Path),
    ("auth_method", Field::AuthMethod),
    ("error", Field::Error),
    ("tenant", Field::Tenant),
    // Aliases: Sigma's web / proxy taxonomy and common names.
    ("outcome", Field::Decision),
    ("user", Field::Principal),
    ("User", Field::Principal),
    ("c-ip", Field::ClientIp),
    ("src_ip", Field::ClientIp),
    ("c-useragent", Field::UserAgent),
    ("cs-host", Field::Host),
    ("cs-uri-stem", Field::Path),
    ("cs-method", Field::Action),
    ("sc-status", Field::Status),
];

/// The decision field a Sigma field name maps to; `None` for a name gatelog does not know.
pub fn lookup(name: &str) -> Option<Field> {
    FIELDS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The canonical name of `field` (the decision's own field name).
pub fn canonical(field: Field) -> &'static str {
    FIELDS.iter().find(|(_, f)| *f == field).map_or("", |(n, _)| n)
}

fn int(n: u64) -> EventValue<'static> {
    EventValue::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn text(s: &str) -> EventValue<'_> {
    EventValue::Str(Cow::Borrowed(s))
}

/// The value of `field` in `d`. Empty strings are absent (a Sigma `null` matches them).
pub fn value(d: &AccessDecision, field: Field) -> Option<EventValue<'_>> {
    fn s(v: &str) -> Option<EventValue<'_>> {
        if v.is_empty() { None } else { Some(text(v)) }
    }
    match field {
        Field::EventId => s(&d.event_id),
        Field::Time => Some(EventValue::Str(Cow::Owned(d.time.to_rfc3339()))),
        Field::Source => Some(text(d.source.as_str())),
        Field::Dataset => s(&d.dataset),
        Field::Decision => Some(text(d.decision.as_str())),
        Field::Principal => s(&d.principal),
        Field::PrincipalType => Some(text(d.principal_type.as_str())),
        Field::Roles => Some(EventValue::Array(d.roles.iter().map(|r| text(r)).collect())),
        Field::ClientIp => s(&d.client_ip),
        Field::Country => s(&d.country),
        Field::Asn => (d.asn != 0).then(|| int(u64::from(d.asn))),
        Field::UserAgent => s(&d.user_agent),
        Field::Resource => s(&d.resource),
        Field::Action => s(&d.action),
        Field::Policy => s(&d.policy),
        Field::Reason => s(&d.reason),
        Field::Query => s(&d.query),
        Field::QueryFingerprint => s(&d.query_fingerprint),
        Field::RowsRead => Some(int(d.rows_read)),
        Field::BytesRead => Some(int(d.bytes_read)),
        Field::ResultRows => Some(int(d.result_rows)),
        Field::DurationMs => Some(int(d.duration_ms)),
        Field::Status => (d.status != 0).then(|| int(u64::from(d.status))),
        Field::RayId => s(&d.ray_id),
        Field::RequestId => s(&d.request_id),
        Field::Zone => s(&d.zone),
        Field::Host => s(&d.host),
        Field::Path => s(&d.path),
        Field::AuthMethod => s(&d.auth_method),
        Field::Error => s(&d.error),
        Field::Tenant => s(&d.tenant),
    }
}

/// The canonical fields (not the aliases), in table order.
fn canonical_fields() -> impl Iterator<Item = (&'static str, Field)> {
    let mut seen: Vec<Field> = Vec::new();
    FIELDS.iter().filter_map(move |(n, f)| {
        if seen.contains(f) {
            None
        } else {
            seen.push(*f);
            Some((*n, *f))
        }
    })
}

/// An [`AccessDecision`] seen through the Sigma field names (no copy of the decision).
#[derive(Debug, Clone, Copy)]
pub struct DecisionEvent<'a>(pub &'a AccessDecision);

impl Event for DecisionEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        value(self.0, lookup(path)?)
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        let mut hit = false;
        self.visit_string_values(&mut |s| hit = hit || pred(s));
        hit
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out = Vec::new();
        self.visit_string_values(&mut |s| out.push(Cow::Owned(s.to_owned())));
        out
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        for (_, field) in canonical_fields() {
            match value(self.0, field) {
                Some(EventValue::Str(s)) => visit(&s),
                Some(EventValue::Array(items)) => {
                    for item in items {
                        if let EventValue::Str(s) = item {
                            visit(&s);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The canonical fields as a JSON object (what a correlation keeps of an event: its
    /// `event_id`).
    fn to_json(&self) -> Value {
        let mut map = Map::new();
        for (name, field) in canonical_fields() {
            if let Some(v) = value(self.0, field) {
                map.insert(name.to_owned(), v.to_json());
            }
        }
        Value::Object(map)
    }

    fn top_level_keys(&self) -> Option<Vec<Cow<'_, str>>> {
        Some(FIELDS.iter().map(|(n, _)| Cow::Borrowed(*n)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_model::{Source, UnixMillis};

    #[test]
    fn every_field_has_a_canonical_name_and_aliases_resolve() {
        assert_eq!(lookup("c-ip"), Some(Field::ClientIp));
        assert_eq!(canonical(Field::ClientIp), "client_ip");
        assert_eq!(lookup("ClientIP"), None, "names are exact");
        let d = AccessDecision::new("e1".into(), UnixMillis(0), "proxy", Source::Proxy);
        let json = DecisionEvent(&d).to_json();
        assert_eq!(json["event_id"], "e1");
        assert_eq!(json["decision"], "log");
        assert!(json.get("principal").is_none(), "empty is absent");
    }
}
