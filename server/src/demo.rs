//! `gatelog demo`, the one-command tour: runs what `gatelog serve` runs (managed ClickHouse
//! unless a URL is configured, the spool and index under the data dir, the receiver on the
//! `--listen` address or a free loopback port when it is busy), posts the sample data to it
//! over HTTP as Logpush and a Tail Worker would ([`post`]), waits until ClickHouse and the
//! index hold everything the spool acknowledged, prints what was stored and the URLs to try
//! ([`report`]) and where the alert e-mails went (`.eml` files under `<data_dir>/outbox`
//! unless `[notify.smtp]` is configured), and serves until Ctrl-C or SIGTERM (graceful
//! drain), or stops at once with `--exit-after-ingest`.
//!
//! Without a configured ingest token it generates one for the run (and prints it), so the
//! demo never serves unauthenticated; it also generates one token per reading role
//! (viewer, responder, auditor, admin) for the run and prints them, since the ingest token
//! reads nothing.

mod evidence;
mod post;
mod report;

use crate::cli::DemoArgs;
use crate::serve::{self, Running};
use anyhow::Context;
use gatelog_edge::auth::Role;
use gatelog_edge::config::TokenEntry;
use gatelog_ingest::http::client::Client;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long the sinks may take to store the samples before the demo says so and goes on.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);
const DEMO_SEARCH: &str = "decision:deny";
/// How long the demo waits for the mailer to deliver the alerts the samples opened, beyond
/// `notify.events_grace` (a mail may wait that long for the decisions behind its alert).
const MAIL_WAIT: Duration = Duration::from_secs(10);

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.keep_running {
        tracing::debug!("--keep-running is the default now; --exit-after-ingest stops after the tour");
    }
    let mut config = serve::resolve_config(&args.store, &args.receiver)?;
    let samples = post::sample_files(&args.samples)?;
    let generated_token = if config.receiver.tokens.is_empty() {
        let token = generate_token()?;
        config.receiver.tokens = vec![token.clone()];
        config.receiver.allow_unauthenticated = false;
        Some(token)
    } else {
        None
    };
    let token = config.receiver.tokens[0].clone();
    let mut role_tokens = Vec::new();
    for role in [Role::Viewer, Role::Responder, Role::Auditor, Role::Admin] {
        let value = generate_token()?;
        let sha256 = crate::tokens::sha256_hex(&value);
        config.auth.tokens.push(TokenEntry { name: format!("demo-{role}"), role, sha256 });
        role_tokens.push((role, value));
    }
    // Before the server starts, so its reports page and route sign bundles too.
    let key_note = evidence::ensure_key(&config)?;
    let (listener, moved) = bind(config.server.listen).await?;
    let running = serve::start(&config, listener).await?;
    let addr = running.addr();
    let link = running.link();
    let managed = if link.is_managed() { "managed " } else { "" };
    let mut out = format!("gatelog demo: serving on http://{addr}, storing into {managed}ClickHouse at {}\n", link.url);
    if let Some(note) = key_note {
        let _ = writeln!(out, "  {note}");
    }
    if let Some(busy) = moved {
        let _ = writeln!(out, "  ({busy} is in use, so the demo listens on {addr} instead; --listen picks another)");
    }
    crate::print_stdout(&out)?;

    let tour = Tour {
        args: &args,
        config: &config,
        running: &running,
        samples: &samples,
        token: &token,
        generated_token: generated_token.as_deref(),
        role_tokens: &role_tokens,
    };
    let toured = tokio::select! {
        result = tour.run() => result.map(|()| true),
        () = crate::clickhouse::wait_for_shutdown_signal() => Ok(false),
    };
    let keep_serving = match toured {
        Ok(finished) => finished && !args.exit_after_ingest,
        Err(e) => {
            if let Err(stop) = running.shutdown().await {
                tracing::warn!(error = %format!("{stop:#}"), "demo: shutdown after a failed tour failed too");
            }
            return Err(e);
        }
    };
    if keep_serving {
        crate::print_stdout("\nserving until Ctrl-C or SIGTERM (--exit-after-ingest stops here instead)\n")?;
        crate::clickhouse::wait_for_shutdown_signal().await;
    }
    crate::print_stdout("stopping: draining the spool, stopping the sinks and ClickHouse\n")?;
    running.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

/// The configured address, else a free port on the same interface (and the busy address).
async fn bind(addr: SocketAddr) -> anyhow::Result<(TcpListener, Option<SocketAddr>)> {
    match gatelog_edge::serve::bind(addr) {
        Ok(listener) => Ok((listener, None)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let listener = gatelog_edge::serve::bind(SocketAddr::new(addr.ip(), 0))
                .with_context(|| format!("{addr} is in use, and no free port on {}", addr.ip()))?;
            Ok((listener, Some(addr)))
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr} (server.listen / --listen)")),
    }
}

/// 128 random bits from the kernel, hex: a token for this run only.
fn generate_token() -> anyhow::Result<String> {
    crate::tokens::random_token("demo-", 16)
}

/// The URL a client uses to reach `addr` (loopback for a wildcard listener).
fn client_base(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        if addr.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() }
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

struct Tour<'a> {
    args: &'a DemoArgs,
    config: &'a crate::config::Config,
    running: &'a Running,
    samples: &'a [post::Sample],
    token: &'a str,
    generated_token: Option<&'a str>,
    /// One generated token per reading role, the viewer's first.
    role_tokens: &'a [(Role, String)],
}

impl Tour<'_> {
    async fn run(&self) -> anyhow::Result<()> {
        let base = client_base(self.running.addr());
        let client = Client::new(&base, self.token)?;
        crate::print_stdout(&format!(
            "\nposting {} sample files from {} as Cloudflare would:\n",
            self.samples.len(),
            self.args.samples.display()
        ))?;
        let limit = self.config.receiver.max_decompressed_bytes.as_u64();
        let mut posted = Vec::new();
        for sample in self.samples {
            let (p, line) = post::post(&client, sample, limit).await?;
            crate::print_stdout(&line)?;
            posted.push(p);
        }
        let total = post::Posted::sum(&posted);

        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nposted {} lines in {} requests: {} decisions, {} dead letters, {} validation probe(s) answered and not stored",
            total.lines, total.requests, total.decisions, total.dead_letters, total.probes
        );
        if !self.running.wait_caught_up(CATCH_UP_LIMIT).await {
            let _ = writeln!(
                out,
                "warning: ClickHouse or the index has not caught up with the spool within {CATCH_UP_LIMIT:?}; counts below may be short"
            );
        }
        let (written, skipped) = self.running.clickhouse_batches();
        let _ = writeln!(
            out,
            "ClickHouse sink: {written} batches written, {skipped} already stored (a batch's id comes from its bytes, so a re-post stores nothing)"
        );
        let store = self.running.store().context("ClickHouse is not connected; see /readyz")?;
        let summary = store.summary().await.context("cannot read back what was stored")?;
        let db = &self.config.clickhouse.database;
        let _ = writeln!(out, "\nstored in ClickHouse ({}), database `{db}`:\n", self.running.link().url);
        out.push_str(&report::render_summary(&summary));
        let _ = writeln!(
            out,
            "  (counted FINAL: tail and workers_trace_events describe the same Worker invocations, their\n   decisions share event ids, and each is kept once, as the copy stored last)"
        );

        if self.config.detect.enabled {
            match store.recent_alerts(10_000).await {
                Ok(alerts) => out.push_str(&report::render_alerts(&alerts, &self.config.data_dir)),
                Err(e) => {
                    let _ = writeln!(out, "warning: cannot read the alerts detection raised: {e}");
                }
            }
        }
        out.push_str(&self.mail_report(&store).await);
        match evidence::evidence(self.config, &store).await {
            Ok(text) => out.push_str(&text),
            Err(e) => {
                let _ = writeln!(out, "\nwarning: the demo's SOC 2 report failed: {e:#}");
            }
        }

        let mut queries = vec![DEMO_SEARCH.to_owned()];
        let reader = Client::new(&base, &self.role_tokens[0].1)?;
        match self.first_denied_principal(&reader).await {
            Ok(Some(principal)) => queries.push(format!("{DEMO_SEARCH} AND principal:{principal}")),
            Ok(None) => {}
            Err(e) => {
                let _ = writeln!(out, "warning: the demo's own search failed: {e:#}");
            }
        }
        let searches = queries.into_iter().map(|q| (client.url("/v1/search", &[("q", q.as_str())]), q)).collect();
        out.push_str(&report::render_links(&report::Links {
            base: &base,
            generated_ingest: self.generated_token,
            role_tokens: self.role_tokens,
            searches,
            data_dir: &self.config.data_dir,
            clickhouse_url: &self.running.link().url,
            clickhouse_user: {
                let link = self.running.link();
                (link.has_password || link.user != "default").then_some(link.user.as_str())
            },
            database: db,
        }));
        crate::print_stdout(&out)?;
        Ok(())
    }

    /// What detection opened and where the alert e-mails went, once the mailer delivered
    /// them (waiting at most `notify.events_grace` + [`MAIL_WAIT`]).
    async fn mail_report(&self, store: &gatelog_store::Store) -> String {
        let mut out = String::new();
        let opened: u64 = match store.alert_state_counts().await {
            Ok(states) => states.iter().map(|(_, n)| n).sum(),
            Err(e) => {
                let _ = writeln!(out, "\nwarning: cannot count the alerts: {e}");
                return out;
            }
        };
        let Some(notifier) = self.running.notifier() else {
            let _ = writeln!(
                out,
                "\nalerts: {opened} opened (`gatelog alerts list`); e-mail is off (notify.enabled = false)"
            );
            return out;
        };
        let severities = self.config.notify.severities();
        let started = std::time::Instant::now();
        while started.elapsed() < self.config.notify.events_grace + MAIL_WAIT {
            match store.undelivered_opens(&severities, 1).await {
                Ok(left) if left.is_empty() => break,
                Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(_) => break,
            }
        }
        let stats = &notifier.stats;
        let channel = notifier.channel;
        let count = |kind, outcome| stats.get(kind, channel, outcome);
        use gatelog_notify::MailKind::{Alert, Digest};
        use gatelog_notify::plan::Outcome::{Failed, Folded, Sent};
        let (mails, digests, folded) = (count(Alert, Sent), count(Digest, Sent), count(Digest, Folded));
        let where_ = match channel {
            gatelog_notify::Channel::File => format!("written as .eml files under {}", notifier.destination),
            gatelog_notify::Channel::Smtp => format!("sent to the SMTP server {}", notifier.destination),
        };
        let _ = writeln!(
            out,
            "\nalerts: {opened} opened by detection (`gatelog alerts list`); e-mail to on-call: {mails} alert mail(s) and {digests} digest(s) {where_}"
        );
        if folded > 0 {
            let _ = writeln!(
                out,
                "  ({folded} alert(s) over the rate limit wait for their window's digest: [notify.rate_limit])"
            );
        }
        if count(Alert, Failed) + count(Digest, Failed) > 0
            && let Some(error) = stats.last_error()
        {
            let _ = writeln!(out, "  delivery is failing and retried with backoff: {error}");
        }
        out
    }

    /// The principal of the newest denied decision with one, through `/v1/search`.
    async fn first_denied_principal(&self, client: &Client) -> anyhow::Result<Option<String>> {
        let text = client.get_text("/v1/search", &[("q", DEMO_SEARCH), ("limit", "50")]).await?;
        let page: serde_json::Value =
            serde_json::from_str(&text).context("search answered something that is not JSON")?;
        let hits = page["hits"].as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(hits
            .iter()
            .filter_map(|h| h["principal"].as_str())
            .find(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "@._-".contains(c)))
            .map(str::to_owned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_valid() {
        let (a, b) = (generate_token().unwrap(), generate_token().unwrap());
        assert_ne!(a, b);
        let config = gatelog_ingest::http::ReceiverConfig { tokens: vec![a], ..Default::default() };
        config.validate().unwrap();
    }

    #[test]
    fn a_wildcard_listener_is_reached_on_loopback() {
        assert_eq!(client_base("0.0.0.0:8080".parse().unwrap()), "http://127.0.0.1:8080");
        assert_eq!(client_base("127.0.0.1:9".parse().unwrap()), "http://127.0.0.1:9");
    }

    #[tokio::test]
    async fn a_busy_port_falls_back_to_a_free_one() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let busy = taken.local_addr().unwrap();
        let (listener, moved) = bind(busy).await.unwrap();
        assert_eq!(moved, Some(busy));
        assert_ne!(listener.local_addr().unwrap().port(), busy.port());
    }
}
