//! What a SOC 2 report is generated from besides the store: the period and seed, and facts
//! only the caller knows (the proxy's policy, the identity provider's export, the detector
//! catalogue), handed over as plain data so this crate depends on neither the proxy nor the
//! detection crates.

use gatelog_model::UnixMillis;
use gatelog_store::read::Period;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Datasets gatelog writes itself: never part of a population (canaries prove monitoring,
/// CC7.2, and are reported there; `gatelog` batches are the audit trail of reads).
pub const INTERNAL_DATASETS: [&str; 2] = ["gatelog", "gatelog_canary"];

/// Everything `generate` needs besides the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Soc2Input {
    /// The period under report, `[from, to)` by event time.
    pub period: Period,
    /// The data the report is "as of": every IPE record's `ran_at` (so the same data gives
    /// the same bytes; the wall-clock timings go to the log, not the bundle).
    pub as_of: UnixMillis,
    /// The seed every sample is drawn with (recorded in each sample).
    pub seed: String,
    /// Roles whose decisions make the privileged population (CC6.1), e.g. `admin`.
    pub privileged_roles: Vec<String>,
    /// The proxy's policy in force, when the caller has it (CC6.1, CC6.3).
    pub policy: Option<PolicyFacts>,
    /// The identity provider's export (`--users users.csv`), when given (CC6.2).
    pub users: Option<Vec<UserWindow>>,
    /// The detector catalogue in force when the report was made (CC7.2).
    pub detectors: Vec<DetectorFacts>,
    /// Datasets expected to arrive continuously, and the silence that counts as a gap (CC7.2).
    pub expected_datasets: Vec<String>,
    pub max_silence: Duration,
    /// The parameters as given, printed in the report and the bundle's manifest.
    pub parameters: Vec<(String, String)>,
    /// The command that regenerates this report.
    pub regenerate: String,
    pub gatelog_version: String,
}

/// The proxy's policy file as read when the report was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFacts {
    /// Where it was read from.
    pub path: String,
    /// SHA-256 of the file's bytes, lower-case hex.
    pub sha256: String,
    /// The file's text, as evidence of the policy in force.
    pub text: String,
    /// The identity issuers the proxy accepts (`iss` values, or `cloudflare-access:<team>`).
    pub issuers: Vec<String>,
    /// Claims → roles mappings, one line each, as the policy states them.
    pub role_mappings: Vec<String>,
    /// Per role, what it grants.
    pub roles: Vec<RoleGrants>,
}

/// What one role may do, as the proxy enforces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrants {
    pub role: String,
    /// Resources it may reach, as patterns over the decisions' `resource` column
    /// (`clickhouse:analytics.*`, `clickhouse:analytics.events`, `https://bi.example.com/*`):
    /// `*` matches any run of characters.
    pub resources: Vec<String>,
    /// Statement kinds or HTTP methods it may use (`select`, `GET`, …).
    pub actions: Vec<String>,
    /// Its limits as `name = value` (`max_rows_to_read = 100000000`, …).
    pub limits: Vec<String>,
}

/// One row of the identity provider's export: when a principal's access began and ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserWindow {
    pub principal: String,
    pub start: Option<UnixMillis>,
    /// `None`: still employed / still active.
    pub end: Option<UnixMillis>,
}

/// One detector of the catalogue in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorFacts {
    pub id: String,
    pub version: String,
    /// `streaming`, `scheduled` (SQL rule) or `sigma`.
    pub kind: String,
    pub severity: String,
    pub description: String,
    /// SHA-256 of the rule's definition (file or built-in source), lower-case hex.
    pub definition_sha256: String,
}
