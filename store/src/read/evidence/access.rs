//! Evidence queries of CC6.1–CC6.3 and CC6.6 (see [`super`]): access populations with their
//! own independent counts, principals first seen, usage per principal × role × resource, the
//! boundary (firewall / WAF / Gateway actions, denies by source), and the imported access
//! reviews.
//!
//! Every population takes the copy of each event `decisions FINAL` keeps, in a subquery
//! ([`Catalog::events`]), with the period, the filter and the query's own condition applied
//! outside it; each `*_count` query counts the same events the other way
//! ([`Catalog::event_count`]'s `GROUP BY tenant, event_id` with `argMax` by [`POSITION`]), so
//! a report can reconcile a population it cannot express as a [`DecisionFilter`].
//!
//! Conditions (SQL over one `decisions` row):
//! - [`AUTH_FAILURE`]: an authentication failure: a login Cloudflare Access denied
//!   (`access_requests`, `Allowed=false`), an answer 401 that denied or failed, or a denial by
//!   the proxy's `identity` rule (no valid identity).
//! - [`BOUNDARY`]: a firewall / WAF event (`firewall_events`, every action) or a request
//!   Gateway denied (`gateway_http`).
//! - [`Catalog::user_window_violations`]: a user's decision before the start or after the end
//!   the identity provider's export gives, or by a user the export does not list.

mod rows;

pub use rows::{AccessEventRow, BoundaryActionRow, FirstSeenRow, RoleUsageRow, SourceCountRow};

use super::super::catalog::register as add;
use super::super::catalog::{Catalog, FROM, POSITION, Registered, SKEW, TO, in_period};
use super::super::period::{DecisionFilter, Period};
use super::super::query::{Param, ReadQuery, Value};
use super::super::rows::EventCount;
use crate::StoreError;
use crate::sql::reviews::AccessReviewRow;
use gatelog_model::UnixMillis;

/// An authentication failure (see the module docs).
pub const AUTH_FAILURE: &str = "(dataset = 'access_requests' AND decision = 'deny') \
     OR (status = 401 AND decision IN ('deny', 'error')) OR (decision = 'deny' AND policy = 'identity')";

/// What kind of authentication failure an [`AUTH_FAILURE`] event is.
const AUTH_FAILURE_KIND: &str = "multiIf(dataset = 'access_requests', 'access_login_denied', \
     status = 401, 'answered_401', 'proxy_identity_refused')";

/// The events [`Catalog::role_usage`] covers: a principal and at least one role.
pub const ROLE_USAGE: &str = "principal != '' AND notEmpty(roles)";

/// A boundary event (see the module docs).
pub const BOUNDARY: &str = "dataset = 'firewall_events' OR (dataset = 'gateway_http' AND decision = 'deny')";

/// The columns every condition here may use, besides the filter's.
const ROW_COLUMNS: [&str; 16] = [
    "dataset",
    "decision",
    "source",
    "principal",
    "principal_type",
    "roles",
    "resource",
    "action",
    "client_ip",
    "country",
    "asn",
    "status",
    "auth_method",
    "policy",
    "reason",
    "tenant",
];

/// The SELECT list of an [`AccessEventRow`], `finding` being `finding`.
fn event_select(finding: &str) -> String {
    format!(
        "concat(tenant, '/', event_id) AS event_key, time_ms, tenant, event_id, dataset, decision, principal, roles, \
         resource, action, client_ip, country, status, auth_method, policy, reason, {finding} AS finding"
    )
}

/// Which user of the export a decision's principal is (0: none).
const USER: &str = "indexOf({users}, principal)";

/// Why a user's decision is outside its window: `not_in_export`, `before_start`, `after_end`,
/// or empty. Starts and ends are epoch milliseconds as text (empty: no bound).
fn window_finding() -> String {
    format!(
        "multiIf({USER} = 0, 'not_in_export', \
         {{user_starts}}[{USER}] != '' AND time_ms < toInt64OrZero({{user_starts}}[{USER}]), 'before_start', \
         {{user_ends}}[{USER}] != '' AND time_ms >= toInt64OrZero({{user_ends}}[{USER}]), 'after_end', '')"
    )
}

/// One user of an identity provider's export, for [`Catalog::user_window_violations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserBounds {
    pub principal: String,
    pub start: Option<UnixMillis>,
    pub end: Option<UnixMillis>,
}

fn user_params(users: &[UserBounds]) -> Vec<Param> {
    let ms = |t: Option<UnixMillis>| t.map(|t| t.0.to_string()).unwrap_or_default();
    vec![
        Param::new("users", Value::Strs(users.iter().map(|u| u.principal.clone()).collect())),
        Param::new("user_starts", Value::Strs(users.iter().map(|u| ms(u.start)).collect())),
        Param::new("user_ends", Value::Strs(users.iter().map(|u| ms(u.end)).collect())),
    ]
}

impl Catalog {
    /// `SELECT select FROM (events) [array_join] WHERE period AND filter AND condition tail`.
    #[allow(clippy::too_many_arguments)]
    fn over_events<R>(
        &self,
        name: &'static str,
        period: Period,
        filter: &DecisionFilter,
        select: &str,
        array_join: &str,
        condition: &str,
        tail: &str,
        extra: Vec<Param>,
    ) -> Result<ReadQuery<R>, StoreError> {
        let (fc, mut params) = filter.condition();
        let mut keep = in_period();
        if !filter.is_empty() {
            keep = format!("{keep} AND {fc}");
        }
        if !condition.is_empty() {
            keep = format!("{keep} AND ({condition})");
        }
        let sql = format!("SELECT {select}\nFROM\n(\n{}\n){array_join}\nWHERE {keep}{tail}", self.events(&ROW_COLUMNS));
        params.extend(Self::period_params(period));
        params.extend(extra);
        ReadQuery::new(name, self.table("decisions"), sql, params)
    }

    /// The events of `period` passing `filter` and `condition`, counted once per
    /// `(tenant, event_id)` without `FINAL` (as [`Catalog::event_count`]).
    fn count_where(
        &self,
        name: &'static str,
        period: Period,
        filter: &DecisionFilter,
        condition: &str,
        extra: Vec<Param>,
    ) -> Result<ReadQuery<EventCount>, StoreError> {
        let (fc, mut params) = filter.condition();
        let member = format!("{} AND {fc} AND ({condition})", in_period());
        let sql = format!(
            "SELECT toUInt64(countIf(in_population)) AS events\nFROM\n(\n    \
             SELECT argMax({member}, {POSITION}) AS in_population\n    FROM {}\n    WHERE {}\n    \
             GROUP BY tenant, event_id\n)",
            self.table("decisions"),
            self.near_period()
        );
        params.extend(Self::period_params(period));
        params.extend(extra);
        ReadQuery::new(name, self.table("decisions"), sql, params)
    }

    /// The events of `period` passing `filter` (e.g. `roles_any`: the privileged population
    /// of CC6.1), oldest first. Reconciled by [`super::super::Reader::reconcile_population`].
    pub fn access_events(
        &self,
        period: Period,
        filter: &DecisionFilter,
    ) -> Result<ReadQuery<AccessEventRow>, StoreError> {
        let tail = "\nORDER BY time_ms, tenant, event_id";
        self.over_events("read.access_events", period, filter, &event_select("''"), "", "", tail, Vec::new())
    }

    /// The users' decisions of `period` (passing `filter`, `principal_type = 'user'`) outside
    /// their window in `users`, or by users it does not list; `finding` says which.
    pub fn user_window_violations(
        &self,
        period: Period,
        filter: &DecisionFilter,
        users: &[UserBounds],
    ) -> Result<ReadQuery<AccessEventRow>, StoreError> {
        let finding = window_finding();
        let condition = format!("principal_type = 'user' AND {finding} != ''");
        let tail = "\nORDER BY time_ms, tenant, event_id";
        let select = event_select(&finding);
        self.over_events(
            "read.user_window_violations",
            period,
            filter,
            &select,
            "",
            &condition,
            tail,
            user_params(users),
        )
    }

    /// The condition (and its parameters) that makes a decision a window violation of
    /// `users`: what [`Catalog::user_window_violation_count`] counts, for a batched count.
    pub fn user_window_condition(users: &[UserBounds]) -> (String, Vec<Param>) {
        (format!("principal_type = 'user' AND {} != ''", window_finding()), user_params(users))
    }

    /// [`Catalog::user_window_violations`] counted independently.
    pub fn user_window_violation_count(
        &self,
        period: Period,
        filter: &DecisionFilter,
        users: &[UserBounds],
    ) -> Result<ReadQuery<EventCount>, StoreError> {
        let condition = format!("principal_type = 'user' AND {} != ''", window_finding());
        self.count_where("read.user_window_violation_count", period, filter, &condition, user_params(users))
    }

    /// The authentication failures of `period` passing `filter` ([`AUTH_FAILURE`]); `finding`
    /// is their kind.
    pub fn auth_failures(
        &self,
        period: Period,
        filter: &DecisionFilter,
    ) -> Result<ReadQuery<AccessEventRow>, StoreError> {
        let tail = "\nORDER BY time_ms, tenant, event_id";
        let select = event_select(AUTH_FAILURE_KIND);
        self.over_events("read.auth_failures", period, filter, &select, "", AUTH_FAILURE, tail, Vec::new())
    }

    /// [`Catalog::auth_failures`] counted independently.
    pub fn auth_failure_count(
        &self,
        period: Period,
        filter: &DecisionFilter,
    ) -> Result<ReadQuery<EventCount>, StoreError> {
        self.count_where("read.auth_failure_count", period, filter, AUTH_FAILURE, Vec::new())
    }

    /// The principals (passing `filter`) whose first event ever stored, looking back over
    /// all history, is in `period`: when, from where, by which dataset and authentication.
    pub fn first_seen_principals(
        &self,
        period: Period,
        filter: &DecisionFilter,
    ) -> Result<ReadQuery<FirstSeenRow>, StoreError> {
        let (fc, mut params) = filter.condition();
        let cols = ROW_COLUMNS.join(", ");
        let sql = format!(
            "SELECT principal, min(time_ms) AS first_ms, argMin(client_ip, time_ms) AS first_client_ip, \
             argMin(country, time_ms) AS first_country, argMin(asn, time_ms) AS first_asn, \
             argMin(dataset, time_ms) AS first_dataset, argMin(auth_method, time_ms) AS first_auth_method, \
             toUInt64(countIf(time_ms >= {FROM})) AS events\nFROM\n(\n    SELECT {cols}, event_id, time_ms\n    \
             FROM {} FINAL\n    WHERE {}\n)\nWHERE time_ms < {TO} AND principal != '' AND {fc}\n\
             GROUP BY principal\nHAVING first_ms >= {FROM}\nORDER BY first_ms, principal",
            self.table("decisions"),
            self.range("time", "toInt64(0)", &format!("({TO} + {SKEW})")),
        );
        params.extend(Self::period_params(period));
        ReadQuery::new("read.first_seen_principals", self.table("decisions"), sql, params)
    }

    /// How many principals [`Catalog::first_seen_principals`] lists, counted independently
    /// (each event's copy by `argMax` of its position, without `FINAL`).
    pub fn first_seen_count(
        &self,
        period: Period,
        filter: &DecisionFilter,
    ) -> Result<ReadQuery<EventCount>, StoreError> {
        let (fc, mut params) = filter.condition();
        let sql = format!(
            "SELECT toUInt64(count()) AS events\nFROM\n(\n    SELECT p\n    FROM\n    (\n        \
             SELECT argMax(principal, {POSITION}) AS p, argMax(time_ms, {POSITION}) AS t, argMax({fc}, {POSITION}) AS keep\n        \
             FROM {}\n        WHERE {}\n        GROUP BY tenant, event_id\n    )\n    \
             WHERE keep AND p != '' AND t < {TO}\n    GROUP BY p\n    HAVING min(t) >= {FROM}\n)",
            self.table("decisions"),
            self.range("time", "toInt64(0)", &format!("({TO} + {SKEW})")),
        );
        params.extend(Self::period_params(period));
        ReadQuery::new("read.first_seen_count", self.table("decisions"), sql, params)
    }

    /// Per principal, role held (each of a decision's `roles`) and resource: events, allowed
    /// events, first and last use in `period` (events passing `filter` with a principal).
    pub fn role_usage(&self, period: Period, filter: &DecisionFilter) -> Result<ReadQuery<RoleUsageRow>, StoreError> {
        let select = "principal, role, resource, count() AS events, toUInt64(countIf(decision = 'allow')) AS allowed, \
             min(time_ms) AS first_ms, max(time_ms) AS last_ms, toUInt64(countIf(role_index = 1)) AS events_first_role";
        let join = "\nARRAY JOIN roles AS role, arrayEnumerate(roles) AS role_index";
        let tail = "\nGROUP BY principal, role, resource\nORDER BY principal, role, resource";
        self.over_events("read.role_usage", period, filter, select, join, "principal != ''", tail, Vec::new())
    }

    /// The events [`Catalog::role_usage`] covers (a principal and at least one role), counted
    /// independently: the sum of its `events_first_role`.
    pub fn role_usage_count(
        &self,
        period: Period,
        filter: &DecisionFilter,
    ) -> Result<ReadQuery<EventCount>, StoreError> {
        self.count_where("read.role_usage_count", period, filter, ROLE_USAGE, Vec::new())
    }

    /// Firewall / WAF / Gateway events of `period` ([`BOUNDARY`]) by dataset, outcome, rule
    /// (`policy`) and WAF source (from the reason `… (source)` or `… by source`).
    pub fn boundary_actions(
        &self,
        period: Period,
        filter: &DecisionFilter,
    ) -> Result<ReadQuery<BoundaryActionRow>, StoreError> {
        let select = "dataset, decision, policy AS rule, \
             if(extract(reason, '\\\\(([A-Za-z_]+)\\\\)$') != '', extract(reason, '\\\\(([A-Za-z_]+)\\\\)$'), \
             extract(reason, ' by ([A-Za-z_]+)$')) AS waf_source, count() AS events";
        let tail =
            "\nGROUP BY dataset, decision, rule, waf_source\nORDER BY dataset, decision, events DESC, rule, waf_source";
        self.over_events("read.boundary_actions", period, filter, select, "", BOUNDARY, tail, Vec::new())
    }

    /// [`Catalog::boundary_actions`]' events counted independently.
    pub fn boundary_count(&self, period: Period, filter: &DecisionFilter) -> Result<ReadQuery<EventCount>, StoreError> {
        self.count_where("read.boundary_count", period, filter, BOUNDARY, Vec::new())
    }

    /// Events of `period` passing `filter` (e.g. the denies) by client IP, country and ASN:
    /// every value of each, most events first.
    pub fn events_by_source(
        &self,
        period: Period,
        filter: &DecisionFilter,
    ) -> Result<ReadQuery<SourceCountRow>, StoreError> {
        let select = "tupleElement(dim, 1) AS dimension, tupleElement(dim, 2) AS value, count() AS events";
        let join = "\nARRAY JOIN [('client_ip', client_ip), ('country', country), ('asn', toString(asn))] AS dim";
        let tail = "\nGROUP BY dimension, value\nORDER BY dimension, events DESC, value";
        self.over_events("read.events_by_source", period, filter, select, join, "", tail, Vec::new())
    }

    /// The access review rows imported in `period` (by `imported_at_ms`), each once.
    pub fn access_reviews(&self, period: Period) -> Result<ReadQuery<AccessReviewRow>, StoreError> {
        let sql = format!(
            "SELECT review_id, principal, role, decision, rationale, reviewer, reviewed_at_ms, imported_at_ms, sheet_sha256\n\
             FROM {} FINAL\nWHERE imported_at_ms >= {FROM} AND imported_at_ms < {TO}\n\
             ORDER BY imported_at_ms, review_id, principal, role",
            self.table("access_reviews")
        );
        ReadQuery::new("read.access_reviews", self.table("access_reviews"), sql, period.params().to_vec())
    }

    /// [`Catalog::access_reviews`]' rows counted without `FINAL`: distinct
    /// `(review_id, principal, role)`.
    pub fn access_review_count(&self, period: Period) -> Result<ReadQuery<EventCount>, StoreError> {
        let sql = format!(
            "SELECT toUInt64(uniqExact(review_id, principal, role)) AS events\nFROM {}\n\
             WHERE imported_at_ms >= {FROM} AND imported_at_ms < {TO}",
            self.table("access_reviews")
        );
        ReadQuery::new("read.access_review_count", self.table("access_reviews"), sql, period.params().to_vec())
    }
}

/// Registers this module's queries (see [`super::register`]).
pub(crate) fn register(c: &Catalog, period: Period, out: &mut Vec<Registered>) {
    let filter = DecisionFilter {
        roles_any: vec!["admin".into()],
        exclude_datasets: vec!["gatelog".into(), "gatelog_canary".into()],
        ..DecisionFilter::default()
    };
    let plain = DecisionFilter::default();
    let users = [
        UserBounds { principal: "alice@example.com".into(), start: Some(UnixMillis(1_740_787_200_000)), end: None },
        UserBounds { principal: "o'brien@example.com".into(), start: None, end: Some(UnixMillis(1_741_046_400_000)) },
    ];
    add(out, "", c.access_events(period, &filter));
    add(out, "", c.user_window_violations(period, &plain, &users));
    add(out, "", c.user_window_violation_count(period, &plain, &users));
    add(out, ".no_users", c.user_window_violations(period, &plain, &[]));
    add(out, "", c.auth_failures(period, &plain));
    add(out, "", c.auth_failure_count(period, &plain));
    add(out, "", c.first_seen_principals(period, &plain));
    add(out, ".filtered", c.first_seen_principals(period, &filter));
    add(out, "", c.first_seen_count(period, &plain));
    add(out, ".filtered", c.first_seen_count(period, &filter));
    add(out, "", c.role_usage(period, &plain));
    add(out, "", c.role_usage_count(period, &plain));
    add(out, "", c.boundary_actions(period, &plain));
    add(out, "", c.boundary_count(period, &plain));
    add(out, "", c.events_by_source(period, &DecisionFilter::decisions(&[gatelog_model::Decision::Deny])));
    add(out, "", c.access_reviews(period));
    add(out, "", c.access_review_count(period));
}
