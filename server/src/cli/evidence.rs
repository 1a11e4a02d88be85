//! The evidence commands' flags: `report soc2`, `keys`, `verify` (bundles and `--store`).

use super::StoreArgs;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The evidence for CC6.1–CC6.3, CC6.6, CC7.2–CC7.4 and CC8.1 over a period: every table
    /// with its SQL, parameters, row count and reconciliations; populations as CSV with
    /// seeded samples; a signed bundle `gatelog verify` checks. The same period over the
    /// same data gives the same bytes; the command that regenerates it is printed.
    Soc2(Soc2Args),
}

#[derive(Debug, Args)]
pub struct Soc2Args {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Start of the period (event time, inclusive): RFC 3339, a date (midnight UTC) or epoch.
    #[arg(long)]
    pub from: String,
    /// End of the period (exclusive).
    #[arg(long)]
    pub to: String,
    /// Folder for report.html, report.md, report.json, csv/ and the bundle (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of every sample (default: derived from the period, so reruns draw the same rows).
    #[arg(long)]
    pub seed: Option<String>,
    /// Time every query's record shows (default: when the newest stored batch arrived, so
    /// the same data gives the same bytes).
    #[arg(long)]
    pub as_of: Option<String>,
    /// The proxy's policy file (proxy.toml): its hash, role → permission matrix and issuers
    /// are evidenced (CC6.1) and usage is reviewed against its grants (CC6.3). Default:
    /// `report.proxy_policy`.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The identity provider's export (`principal,start,end`; RFC 3339 or dates, an empty end
    /// for active users): access before a user's start, after its end, or by users it does
    /// not list (CC6.2).
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// A role whose decisions are privileged (repeatable; default `admin`).
    #[arg(long = "privileged-role", value_name = "ROLE")]
    pub privileged_role: Vec<String>,
    /// Write the renderings only, without the signed bundle (no signing key needed).
    #[arg(long)]
    pub no_bundle: bool,
    /// Never draw a progress bar, even on a terminal (a line per section instead).
    #[arg(long)]
    pub no_progress: bool,
}

/// Where the config, and with it the signing key, are.
#[derive(Debug, Clone, Args)]
pub struct KeyLocationArgs {
    /// gatelog.toml (its `report.signing_key` and `data_dir` locate the key).
    #[arg(long, env = "GATELOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// State directory; the key defaults to `<data_dir>/keys/signing.key`.
    #[arg(long, env = "GATELOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the bundle signing key (mode 0600) and print its public key. Refuses to replace
    /// an existing key unless --force.
    Init {
        #[command(flatten)]
        location: KeyLocationArgs,
        /// Write `signing.key`, `signing.pub` and `allowed_signers` into this folder instead
        /// of the configured place (then set `report.signing_key` to `<dir>/signing.key`).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Replace an existing key. Bundles signed with the old key then verify only with the
        /// old public key.
        #[arg(long)]
        force: bool,
    },
    /// Print the public key of the configured signing key (what auditors verify with).
    Public {
        #[command(flatten)]
        location: KeyLocationArgs,
    },
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle (.zip) to check (not with --store).
    #[arg(required_unless_present = "store", conflicts_with = "store")]
    pub bundle: Option<PathBuf>,
    /// The signer's public key: a file (`signing.pub`, `allowed_signers`) or the key itself
    /// (`"ssh-ed25519 AAAA…"`). Without it, the public key beside the configured signing
    /// key is trusted if there is one; otherwise the check ends with exit code 7.
    #[arg(long, env = "GATELOG_PUBLIC_KEY")]
    pub public_key: Option<String>,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub location: KeyLocationArgs,
    /// Check the records stored in ClickHouse against the hash chain (with --from, --to).
    #[arg(long, requires_all = ["from", "to"])]
    pub store: bool,
    /// With --store: the first arrival checked (RFC 3339 or epoch), inclusive.
    #[arg(long, requires = "store")]
    pub from: Option<String>,
    /// With --store: the end of the period (exclusive).
    #[arg(long, requires = "store")]
    pub to: Option<String>,
    /// With --store: ClickHouse HTTP URL; absent, the managed server under the data dir.
    #[arg(long, env = "GATELOG_CLICKHOUSE_URL", hide_env_values = true)]
    pub clickhouse_url: Option<String>,
    #[arg(long, env = "GATELOG_CLICKHOUSE_DATABASE")]
    pub clickhouse_database: Option<String>,
    #[arg(long, env = "GATELOG_CLICKHOUSE_USER")]
    pub clickhouse_user: Option<String>,
    #[arg(long, env = "GATELOG_CLICKHOUSE_PASSWORD", hide_env_values = true)]
    pub clickhouse_password: Option<String>,
    /// With --store: never draw a progress bar, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}
