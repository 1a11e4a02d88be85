//! `gatelog raw EVENT_ID`: an event's exact original line, through the one store lookup
//! (`Store::raw_line`) the HTTP route and the web UI use. With managed ClickHouse it uses the
//! server `gatelog serve` runs under the data dir.

use crate::cli::RawArgs;
use crate::clickhouse::Target;
use gatelog_store::raw::RawError;
use std::io::Write as _;
use std::process::ExitCode;

/// No decision has that event id (or its batch kept no line for it).
const NOT_FOUND: u8 = 3;
/// The stored bytes do not hash to their stored SHA-256.
const INTEGRITY: u8 = 9;

pub async fn run(args: RawArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::resolve(&args.store)?;
    let target = Target::connect_beside_serve(&config).await?;
    let found = target.store.raw_line(&args.tenant, &args.event_id).await;
    target.shutdown().await;
    match found {
        Ok(Some(raw)) => {
            if args.verbose {
                eprintln!(
                    "event {} of tenant {}: {} line {} of batch {} (received {}), checked against SHA-256 {} ({})",
                    args.event_id,
                    args.tenant,
                    raw.dataset,
                    raw.line,
                    raw.batch_id,
                    raw.received_at.to_rfc3339(),
                    raw.checked_sha256,
                    raw.table
                );
            }
            let mut out = std::io::stdout().lock();
            let written = out.write_all(&raw.bytes).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush());
            match written {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(ExitCode::SUCCESS),
            }
        }
        Ok(None) => {
            eprintln!("error: no event {:?} of tenant {:?} with a stored line", args.event_id, args.tenant);
            Ok(ExitCode::from(NOT_FOUND))
        }
        Err(e @ RawError::Integrity { .. }) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(INTEGRITY))
        }
        Err(RawError::Store(e)) => Err(e.into()),
    }
}
