//! `gatelog search QUERY`: the index under the data dir, read directly (no server needed),
//! printed as a table or as `/v1/search`'s JSON ([`gatelog_read::search::PageJson`]).

use gatelog_index::{SearchRequest, Searcher};
use gatelog_model::UnixMillis;
use gatelog_read::search::PageJson;

/// `gatelog search QUERY`: reads the index under the data dir directly (no server needed).
pub async fn run_cli(args: crate::cli::SearchArgs) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context;
    use std::fmt::Write as _;
    let config = crate::config::resolve(&args.store)?;
    let dir = config.data_dir.join("index");
    anyhow::ensure!(
        dir.is_dir(),
        "no index in {} (run `gatelog serve` with this --data-dir, which builds it, or `{}`)",
        dir.display(),
        crate::index::rebuild_command(&config.data_dir)
    );
    if dir.with_file_name("index.rebuild").is_dir() {
        tracing::warn!("the index is being rebuilt from ClickHouse; results may be missing decisions until it is done");
    }
    let parse = |name: &str, v: Option<&str>| -> anyhow::Result<Option<UnixMillis>> {
        v.map(|v| UnixMillis::parse_str(v).with_context(|| format!("--{name} {v:?}"))).transpose()
    };
    let request = SearchRequest {
        q: args.query,
        from: parse("from", args.from.as_deref())?,
        to: parse("to", args.to.as_deref())?,
        limit: args.limit,
        cursor: args.cursor,
    };
    let searcher = Searcher::open(&dir, &config.clickhouse.database);
    let page = tokio::task::spawn_blocking(move || searcher.search(&request))
        .await
        .context("the search task panicked")?
        .context("search failed")?;
    let page = PageJson::from(page);
    let text = if args.json {
        serde_json::to_string_pretty(&page).context("cannot render JSON")? + "\n"
    } else {
        let mut out = String::new();
        for h in &page.hits {
            let _ = writeln!(
                out,
                "{}  {:<9} {:<28} {:<8} {}  {}",
                h.time, h.decision, h.principal, h.action, h.resource, h.event_id
            );
        }
        let _ = writeln!(out, "{} hits", page.hits.len());
        if let Some(c) = &page.next_cursor {
            let _ = writeln!(out, "next page: --cursor {c}");
        }
        out
    };
    crate::print_stdout(&text)?;
    Ok(std::process::ExitCode::SUCCESS)
}
