//! The arguments of the commands on-call and auditors work with besides `serve`: `detect`
//! (backtests), `rules`, `alerts`, `review`, `raw` and `canary`. Re-exported by the parent.

use super::StoreArgs;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DetectArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Start of the period judged (RFC 3339 or epoch); the history before it (up to
    /// `detect.runtime.warmup_lookback`) is learnt from first, as a warm-up would.
    #[arg(long)]
    pub from: String,
    /// End of the period (exclusive).
    #[arg(long)]
    pub to: String,
    /// Only this rule's findings (repeatable; `new_country`, `deny_burst_ip`, ...). Every
    /// detector still runs, so the baselines are those of `gatelog serve`.
    #[arg(long)]
    pub rule: Vec<String>,
    /// One JSON object per finding and per alert (`"kind"`), instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Never draw a progress bar, even on a terminal (a line per day read instead).
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Every rule: id, version, severity, schedule, window, source file, title; then the Sigma
    /// rules of `detect.sigma_dir` (schedule `stream`, window their kind).
    List(RulesListArgs),
    /// Run every rule's fixtures (or those of the given files) against ClickHouse, each in a
    /// fresh database dropped afterwards; exits 1 if any fails, with expected and got.
    Test(RulesTestArgs),
    /// Run the rules once over stored decisions that arrived from --from to --to, in windows of
    /// each rule's `window`, and print the findings. Nothing is written without --store.
    Run(RulesRunArgs),
    /// Check Sigma rule files (as `detect.sigma_dir` would load them) and list their rules;
    /// with --decisions, run them over a JSON-lines file of access decisions and print the
    /// findings as JSON lines. Exits 1 on a file gatelog cannot evaluate. No ClickHouse.
    Sigma(RulesSigmaArgs),
}

#[derive(Debug, Args)]
pub struct RulesSigmaArgs {
    /// Sigma rule files (`*.yml`), checked together (a correlation and its rules in one file).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// A JSON-lines file of access decisions (the `decisions` row format), in time order.
    #[arg(long)]
    pub decisions: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RulesListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct RulesTestArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Rule files to test instead of every loaded rule.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RulesRunArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Start of the arrival-time period (RFC 3339 or epoch), inclusive.
    #[arg(long)]
    pub from: String,
    /// End of the period, exclusive.
    #[arg(long)]
    pub to: String,
    /// Only this rule (repeatable).
    #[arg(long)]
    pub rule: Vec<String>,
    /// Store the findings, their alerts (with `open` events) and a detector run per window, as
    /// `gatelog serve` would; running the same period again stores nothing twice.
    #[arg(long = "store")]
    pub store_results: bool,
    /// One JSON object per finding instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Alerts seen last, newest first: id, state, severity, rule, count, last seen, summary.
    List(AlertsListArgs),
    /// One alert (its id, or enough of its beginning): what, who, when, its findings and the
    /// events behind them, and every transition with who and when.
    Show(AlertShowArgs),
    /// Acknowledge an open alert: someone is looking at it.
    Ack(AlertAckArgs),
    /// Resolve an open or acknowledged alert with a disposition. Resolved is final.
    Resolve(AlertResolveArgs),
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Check a completed `cc6.3-review-sheet.csv` (every row decided keep or remove, a
    /// rationale for each remove, reviewer and reviewed_at present; problems named by line and
    /// column) and record it in `access_reviews`; the same sheet imported again is stored once.
    Import(ReviewImportArgs),
}

#[derive(Debug, Args)]
pub struct ReviewImportArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The completed review sheet (CSV).
    pub sheet: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct RawArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The event's tenant.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Where it was found (batch, line, dataset, received at, hash) on stderr too.
    #[arg(long)]
    pub verbose: bool,
    /// The event id (`event_id` of the decision).
    pub event_id: String,
}

#[derive(Debug, Subcommand)]
pub enum CanaryCommand {
    /// Canary runs sent last, newest first: run, sent at, outcome, latency, alert, error.
    List(CanaryListArgs),
}

#[derive(Debug, Args)]
pub struct CanaryListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long, default_value_t = 20)]
    pub limit: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlertStateArg {
    Open,
    Acknowledged,
    Resolved,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum DispositionArg {
    TruePositive,
    FalsePositive,
    Benign,
    Duplicate,
}

#[derive(Debug, Args)]
pub struct AlertsListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only alerts in this state.
    #[arg(long, value_enum)]
    pub state: Option<AlertStateArg>,
    #[arg(long, default_value_t = 50)]
    pub limit: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AlertShowArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The alert id (or an unambiguous beginning of it).
    pub id: String,
    /// The alert as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AlertActorArgs {
    /// A note kept with the transition.
    #[arg(long, default_value = "")]
    pub note: String,
    /// Who acts (kept with the transition); default: $GATELOG_ACTOR, else $USER.
    #[arg(long, env = "GATELOG_ACTOR")]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct AlertAckArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The alert id (or an unambiguous beginning of it).
    pub id: String,
    #[command(flatten)]
    pub actor: AlertActorArgs,
}

#[derive(Debug, Args)]
pub struct AlertResolveArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The alert id (or an unambiguous beginning of it).
    pub id: String,
    /// How it turned out.
    #[arg(long, value_enum)]
    pub disposition: DispositionArg,
    #[command(flatten)]
    pub actor: AlertActorArgs,
}
