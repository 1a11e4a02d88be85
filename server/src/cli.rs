//! The command line: subcommands, and the flags every deployment script relies on.
//!
//! Each store flag has an environment twin (`--clickhouse-url` / `GATELOG_CLICKHOUSE_URL`);
//! flags and variables override the config file, which overrides the defaults.

use crate::config::Overrides;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

mod investigate;
pub use investigate::*;

mod evidence;
pub use evidence::{KeyLocationArgs, KeysCommand, ReportCommand, Soc2Args, VerifyArgs};

#[derive(Debug, Parser)]
#[command(name = "gatelog", version, about = "Turns edge access decisions into evidence.")]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "GATELOG_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive Logpush, Tail and proxy decisions over HTTP; store them in ClickHouse and the index.
    Serve(ServeArgs),
    /// Search the full-text index of `gatelog serve` (tantivy query syntax), newest first.
    Search(SearchArgs),
    /// The full-text index: rebuild it from ClickHouse.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Backfill Logpush files (plain or gzip NDJSON, as found in an R2/S3 bucket) into ClickHouse.
    Ingest(IngestArgs),
    /// The tour: run `serve` (managed ClickHouse), post the sample data over HTTP as Logpush and
    /// a Tail Worker would, show what was stored and the URLs to open; serve until Ctrl-C.
    Demo(DemoArgs),
    /// The enforcing edge proxy in front of ClickHouse and BI tools.
    Proxy(ProxyArgs),
    /// Run gatelog's managed ClickHouse in the foreground (for inspection and benchmarks).
    Clickhouse {
        #[command(subcommand)]
        command: ClickhouseCommand,
    },
    /// SOC 2 evidence: `report soc2 --from --to --out DIR` writes the report (HTML, Markdown,
    /// JSON, a CSV per table) and its signed evidence bundle.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// The key that signs evidence bundles.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check an evidence bundle offline: its signature, every file's SHA-256 and size, and
    /// that no file is missing or extra. Exit codes: 0 verified; 1 could not check (unreadable
    /// bundle or key); 3 not a readable bundle (not a zip, truncated, no manifest or
    /// signature); 4 signature invalid (manifest or signature changed, or another key);
    /// 5 a file's content differs from the manifest; 6 a file missing, added or renamed;
    /// 7 intact, but no trusted key was given to check the signer against.
    ///
    /// With --store --from --to: check the records stored in ClickHouse against the hash
    /// chain instead (the batches received in the period: their links, row ledgers, stored
    /// rows and signed checkpoints). Exit codes: 0 verified; 1 could not check (ClickHouse
    /// unreachable, a bad period); 4 a checkpoint's signature does not verify; 7 intact, but
    /// a signed checkpoint could not be checked (no trusted key); 8 the stored records
    /// disagree with the chain: a row, ledger, batch marker or link was deleted, inserted or
    /// edited (the verdict names the first batch, and the event for a row).
    Verify(VerifyArgs),
    /// On-call's alerts (findings of `gatelog serve`'s detection grouped by dedup key): list
    /// them, show one with its findings and history, acknowledge or resolve it.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Canaries, the proof that monitoring operated (`[detect.canary]`): list the runs
    /// `gatelog serve` recorded in `canary_runs`.
    Canary {
        #[command(subcommand)]
        command: CanaryCommand,
    },
    /// Print an event's exact original line, byte for byte, from its stored batch (the body
    /// as received, inflated and checked against the batch's SHA-256, which the hash chain
    /// links), or from `raw_records` for events stored before migration 18. Exit codes: 0
    /// printed; 1 could not look (ClickHouse unreachable); 3 no such event; 9 the stored
    /// bytes do not match their SHA-256 (integrity).
    Raw(RawArgs),
    /// Access reviews (SOC 2 CC6.3): record a completed review sheet as evidence.
    Review {
        #[command(subcommand)]
        command: ReviewCommand,
    },
    /// Backtest: run stored history from --from to --to through the detectors of `[detect]`
    /// and print what would have fired (findings and alerts). Nothing is stored or sent.
    Detect(DetectArgs),
    /// API tokens for `gatelog serve`'s HTTP routes (kept in gatelog.toml as SHA-256).
    #[command(alias = "token")]
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Rules as code: the SQL detections of `rules/*.toml` (built-in) and `detect.rules_dir`.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Print SQL that gatelog emits.
    Sql {
        #[command(subcommand)]
        command: SqlCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Print a new random token for ROLE, once, and the `[[auth.tokens]]` entry (its
    /// SHA-256, name and role) to add to gatelog.toml or the tokens file.
    #[command(alias = "create")]
    New(TokensNewArgs),
}

/// What a token may do (see README, "HTTP API and roles").
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// The receiver's routes only (Logpush, Tail, proxy decisions).
    Ingest,
    /// Search, alerts, dashboards (read-only).
    Viewer,
    /// A viewer who also acknowledges and resolves alerts.
    Responder,
    /// A viewer who also reads reports and bundles.
    Auditor,
    /// Every reading and responding route (not ingest).
    Admin,
}

#[derive(Debug, Args)]
pub struct TokensNewArgs {
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Who holds it: recorded as the actor of what it does (default `<role>-<8 hex>`).
    #[arg(long)]
    pub name: Option<String>,
}

/// Where the configuration and the store are.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// gatelog.toml; without it the defaults apply.
    #[arg(long, env = "GATELOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// State directory (managed ClickHouse lives below it).
    #[arg(long, env = "GATELOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// ClickHouse HTTP URL; absent (or empty) means gatelog starts its own server. Credentials
    /// in it (`http://user:password@host:8123`) are used; its value is never shown in --help.
    #[arg(long, env = "GATELOG_CLICKHOUSE_URL", hide_env_values = true)]
    pub clickhouse_url: Option<String>,
    #[arg(long, env = "GATELOG_CLICKHOUSE_DATABASE")]
    pub clickhouse_database: Option<String>,
    #[arg(long, env = "GATELOG_CLICKHOUSE_USER")]
    pub clickhouse_user: Option<String>,
    #[arg(long, env = "GATELOG_CLICKHOUSE_PASSWORD", hide_env_values = true)]
    pub clickhouse_password: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub receiver: ReceiverArgs,
}

/// The HTTP receiver's flags, shared by `serve` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct ReceiverArgs {
    /// Address of the HTTP listener (ingest, search, metrics).
    #[arg(long, env = "GATELOG_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// A token ingest clients must present; repeat for rotation.
    #[arg(long = "ingest-token", env = "GATELOG_INGEST_TOKENS", value_delimiter = ',', hide_env_values = true)]
    pub ingest_tokens: Vec<String>,
    /// A file of `[[tokens]]` entries (name, role, sha256) read at start; replaces
    /// `auth.tokens_file`.
    #[arg(long, env = "GATELOG_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
}

impl StoreArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            clickhouse_url: self.clickhouse_url.clone(),
            clickhouse_database: self.clickhouse_database.clone(),
            clickhouse_user: self.clickhouse_user.clone(),
            clickhouse_password: self.clickhouse_password.clone(),
            ..Overrides::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only decisions at or after this time (RFC 3339 or epoch).
    #[arg(long)]
    pub from: Option<String>,
    /// Only decisions before this time.
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Continue after the page that printed this cursor.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print the page as JSON.
    #[arg(long)]
    pub json: bool,
    /// e.g. `principal:alice@example.com AND decision:deny AND query:"system.tables"`.
    pub query: String,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Dataset of every file; otherwise taken from each file's name, then from its first record.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Never draw a progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Post the files to the `gatelog serve` listening at this URL (e.g. http://127.0.0.1:8080)
    /// instead of writing the spool under the data dir, which a running serve holds.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// With --server: an ingest token the server accepts (one of its receiver.tokens).
    #[arg(long, env = "GATELOG_INGEST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Files to read: .ndjson, .json, .log, optionally gzip-compressed.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// `--listen` (default 127.0.0.1:8080; a free port when it is busy) and `--ingest-token`
    /// (default: one generated for this run).
    #[command(flatten)]
    pub receiver: ReceiverArgs,
    /// Folder with the sample files (`http_requests.ndjson`, `tail.ndjson`, …).
    #[arg(long, env = "GATELOG_DEMO_SAMPLES")]
    pub samples: PathBuf,
    /// Stop (gracefully) once the samples are stored and the URLs printed, instead of serving
    /// until Ctrl-C.
    #[arg(long)]
    pub exit_after_ingest: bool,
    /// Serving until Ctrl-C is the default now; accepted for old scripts.
    #[arg(long, hide = true, conflicts_with = "exit_after_ingest")]
    pub keep_running: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ProxyArgs {
    /// proxy.toml (see examples/proxy.toml).
    #[arg(long, env = "GATELOG_PROXY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<ProxyCommand>,
}

#[derive(Debug, Subcommand)]
pub enum ProxyCommand {
    /// Dry-run the policy: what would the proxy decide for ROLE sending SQL?
    /// Exits 0 for allow, 1 for deny, 2 for a config error.
    Check {
        /// The role to evaluate as.
        #[arg(long)]
        role: String,
        /// The SQL a client would send.
        #[arg(long)]
        sql: String,
        /// The request's `database` parameter (unqualified tables resolve against it).
        #[arg(long)]
        database: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print ClickHouse's own restrictions for the roles' ClickHouse users, mirroring the
    /// policy (defence in depth): a users.d XML file for 18.16, or GRANT statements.
    Grants {
        /// Which server generation to write for.
        #[arg(long, value_enum, default_value_t = GrantsServer::Modern)]
        server: GrantsServer,
        /// Do not read the password secrets; the users must exist already.
        #[arg(long)]
        without_passwords: bool,
        /// An address or CIDR the proxy connects to ClickHouse from (repeatable; default:
        /// loopback when clickhouse.url is on loopback, else anywhere).
        #[arg(long = "network", value_name = "CIDR")]
        networks: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GrantsServer {
    /// ClickHouse 18.16 to 20.x: a users.d XML file (allow_databases, readonly).
    Legacy,
    /// ClickHouse with SQL access control: CREATE USER, GRANT, REVOKE.
    Modern,
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Make the index under the data dir again from ClickHouse (the store of record), with
    /// progress. `gatelog serve` does this by itself when the index is lost or older than the
    /// spool; run this one with serve stopped.
    Rebuild(IndexRebuildArgs),
}

#[derive(Debug, Args)]
pub struct IndexRebuildArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Never draw a progress bar, even on a terminal (a line every few seconds instead).
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClickhouseCommand {
    /// Start managed ClickHouse under the data dir, print its URL, stop it on Ctrl-C or SIGTERM.
    Run(ClickhouseRunArgs),
}

#[derive(Debug, Args)]
pub struct ClickhouseRunArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Also write the URL to this file once the server answers (for scripts).
    #[arg(long)]
    pub url_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SqlCommand {
    /// Print every DDL statement and query gatelog can send, for review or a compatibility check.
    Dump(SqlDumpArgs),
}

#[derive(Debug, Args)]
pub struct SqlDumpArgs {
    /// Which server generation to render for.
    #[arg(long, value_enum, default_value_t = ProfileArg::Modern)]
    pub profile: ProfileArg,
    #[arg(long, default_value = "gatelog", env = "GATELOG_CLICKHOUSE_DATABASE")]
    pub database: String,
    /// Render the `ON CLUSTER` / Replicated / Distributed variant for this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Render the TTL that `retention` (in days) sets on the modern profile.
    #[arg(long)]
    pub retention_days: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProfileArg {
    /// ClickHouse 18.16 to 19.x: DateTime, String, no TTL.
    Legacy,
    /// ClickHouse 20.1 and later: DateTime64(3), LowCardinality, TTL.
    Modern,
}
