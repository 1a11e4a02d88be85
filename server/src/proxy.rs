//! `gatelog proxy`: runs `gatelog_proxy` until SIGINT/SIGTERM; `gatelog proxy check`: the
//! policy dry-run, with exit codes policy authors can use in CI (0 allow, 1 deny, 2 config);
//! `gatelog proxy grants`: ClickHouse's own restrictions mirroring the policy (warnings on
//! stderr, 2 for a configuration error).

use crate::cli::{GrantsServer, ProxyArgs, ProxyCommand};
use anyhow::Context;
use gatelog_proxy::ProxyConfig;
use std::process::ExitCode;

pub async fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = args.config else {
        eprintln!("error: --config proxy.toml is required (see examples/proxy.toml)");
        return Ok(ExitCode::from(2));
    };
    let config = match ProxyConfig::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    match args.command {
        Some(ProxyCommand::Check { role, sql, database, json }) => {
            let report = gatelog_proxy::check(&config, &role, &sql, database.as_deref());
            let text = if json {
                serde_json::to_string_pretty(&report).context("cannot render the report")? + "\n"
            } else {
                format!("{report}\n")
            };
            crate::print_stdout(&text)?;
            Ok(ExitCode::from(u8::try_from(report.exit_code()).unwrap_or(2)))
        }
        Some(ProxyCommand::Grants { server, without_passwords, networks }) => {
            let options = gatelog_proxy::grants::Options {
                server: match server {
                    GrantsServer::Legacy => gatelog_proxy::grants::Server::Legacy,
                    GrantsServer::Modern => gatelog_proxy::grants::Server::Modern,
                },
                passwords: !without_passwords,
                networks,
            };
            match gatelog_proxy::grants::render(&config, &options) {
                Ok(grants) => {
                    for w in &grants.warnings {
                        eprintln!("warning: {w}");
                    }
                    crate::print_stdout(&grants.text)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    if !without_passwords {
                        eprintln!("(--without-passwords writes the rights of users that exist already)");
                    }
                    Ok(ExitCode::from(2))
                }
            }
        }
        None => {
            gatelog_proxy::install_crypto_provider();
            gatelog_proxy::serve(config, Some(path), crate::clickhouse::wait_for_shutdown_signal())
                .await
                .context("the proxy stopped with an error")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
