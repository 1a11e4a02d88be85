//! The `gatelog` binary: parses the command line and the config, then wires the crates
//! together. It holds no domain logic of its own.
//!
//! Module map:
//! - [`cli`]: subcommands and flags (each with its `GATELOG_*` twin).
//! - [`config`]: `gatelog.toml`, overrides and validation.
//! - [`clickhouse`]: connects to the configured ClickHouse or starts the managed one.
//! - [`backfill`]: `gatelog ingest FILE...`: files → bodies → the receiver's mapping → the
//!   spool → the sinks `serve` runs (or posted to a running serve with `--server`).
//! - [`demo`]: `gatelog demo`, the one-command tour.
//! - [`detect`]: `gatelog detect --from --to`, a backtest of the detectors over stored history.
//! - [`index`]: `gatelog index rebuild`, and the rebuild from ClickHouse that `serve` runs too.
//! - [`serve`]: `gatelog serve`: receiver → spool → ClickHouse and index sinks; the read
//!   routes (`gatelog_read`) on the same edge.
//! - [`search`]: `gatelog search`, the index read without a server.
//! - [`proxy`]: `gatelog proxy` and `gatelog proxy check`.
//! - [`keys`]: `gatelog keys init | public` (the bundle signing key) and `gatelog verify`.
//! - [`review`]: `gatelog review import SHEET.csv`, a completed access review as evidence.
//! - [`verify_store`]: `gatelog verify --store`, the stored records against the hash chain.
//! - [`tokens`]: `gatelog tokens new --role R`, a fresh API token and its `[auth]` entry.
//! - [`priority`]: the CPU priority of the work behind the spool (the sinks' threads).

mod alerts;
mod backfill;
mod canary;
mod cli;
mod clickhouse;
mod config;
mod demo;
mod detect;
mod index;
mod keys;
mod priority;
mod proxy;
mod raw;
mod report;
mod review;
mod rules;
mod search;
mod serve;
mod tokens;
mod verify_store;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, ClickhouseCommand, Command, IndexCommand, LogFormat, SqlCommand};
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: ingest allocates and frees millions of short strings
/// across threads, where glibc spent a fifth of the CPU (`unlink_chunk`, `malloc_consolidate`)
/// and returned pages it faulted in again for the next batch.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Ingest(args) => backfill::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Proxy(args) => proxy::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Search(args) => search::run_cli(args).await,
        Command::Alerts { command } => alerts::run(command).await,
        Command::Canary { command } => canary::run(command).await,
        Command::Raw(args) => raw::run(args).await,
        Command::Review { command } => review::run(command).await,
        Command::Detect(args) => detect::run(args).await,
        Command::Rules { command } => rules::run(command).await,
        Command::Index { command: IndexCommand::Rebuild(args) } => index::run_cli(args).await,
        Command::Clickhouse { command: ClickhouseCommand::Run(args) } => clickhouse::run_foreground(args).await,
        Command::Report { command } => report::run(command).await,
        Command::Keys { command } => keys::run_keys(command),
        Command::Verify(args) if args.store => verify_store::run(args).await,
        Command::Verify(args) => keys::run_verify(args),
        Command::Tokens { command: cli::TokensCommand::New(args) } => tokens::run_new(args),
        Command::Sql { command: SqlCommand::Dump(args) } => {
            let profile = match args.profile {
                cli::ProfileArg::Legacy => gatelog_store::SchemaProfile::Legacy,
                cli::ProfileArg::Modern => gatelog_store::SchemaProfile::Modern,
            };
            let options = gatelog_store::sql::SchemaOptions {
                database: args.database,
                cluster: args.cluster,
                retention_days: args.retention_days,
            };
            let dump = gatelog_store::sql::render_dump(profile, &options);
            print_stdout(&dump).context("cannot write the dump to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes to stdout, treating a closed pipe (`gatelog sql dump | head`) as success.
pub(crate) fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("GATELOG_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_target(false).compact().init(),
        LogFormat::Json => builder.json().init(),
    }
}
