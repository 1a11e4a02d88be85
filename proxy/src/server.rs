//! Start-up, the axum router, policy reload and graceful shutdown.
//!
//! Routes: `GET|POST /` is the ClickHouse HTTP interface ([`crate::clickhouse`]);
//! `/ping` and `/healthz` answer `Ok.`; everything else goes to the BI routes
//! ([`crate::bi`]) or is a 404. The policy (roles and role mappings) reloads on SIGHUP
//! and when the config file's mtime changes; a config that fails validation is logged
//! and the running policy kept.

use crate::config::{ConfigError, ProxyConfig, Secret};
use crate::emit::spill::Spill;
use crate::emit::{DecisionSink, Emitter, HttpSink};
use crate::forward::{HyperUpstream, Upstream};
use crate::identity::{Authenticator, Fetch, ReqwestFetch};
use crate::limits::Limiter;
use crate::policy::Policy;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use gatelog_model::{Clock, SystemClock};
use http::StatusCode;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Why the proxy could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot open the decision spill in {dir}: {source}")]
    Spill { dir: PathBuf, source: std::io::Error },
    #[error("cannot build a client: {0}")]
    Client(String),
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// External resources, injectable for tests.
#[derive(Debug, Clone)]
pub struct ProxyDeps {
    pub clock: Arc<dyn Clock>,
    pub upstream: Arc<dyn Upstream>,
    pub bi_upstream: Arc<dyn Upstream>,
    pub fetch: Arc<dyn Fetch>,
    pub sink: Option<Arc<dyn DecisionSink>>,
}

impl ProxyDeps {
    /// The real ones: system clock, pooled hyper client, reqwest for JWKS and decisions.
    pub fn real(config: &ProxyConfig) -> Result<ProxyDeps, ProxyError> {
        let upstream: Arc<dyn Upstream> = Arc::new(HyperUpstream::new(config.clickhouse.connect_timeout));
        let fetch = ReqwestFetch::new(Duration::from_secs(10)).map_err(ProxyError::Client)?;
        let sink: Option<Arc<dyn DecisionSink>> = match &config.decisions.url {
            Some(url) => {
                let token = config.decisions.token.resolve("decisions.token")?;
                Some(Arc::new(HttpSink::new(url.clone(), token, config.decisions.timeout).map_err(ProxyError::Client)?))
            }
            None => None,
        };
        Ok(ProxyDeps {
            clock: Arc::new(SystemClock),
            bi_upstream: upstream.clone(),
            upstream,
            fetch: Arc::new(fetch),
            sink,
        })
    }
}

/// State shared by every request.
#[derive(Debug)]
pub struct Shared {
    pub config: ProxyConfig,
    policy: RwLock<Arc<Policy>>,
    pub auth: Authenticator,
    pub upstream: Arc<dyn Upstream>,
    pub bi_upstream: Arc<dyn Upstream>,
    pub emitter: Emitter,
    pub limiter: Limiter,
    pub clock: Arc<dyn Clock>,
    log_comment: AtomicBool,
    default_password: Secret,
}

impl Shared {
    /// Builds the state and starts the decision worker (needs a tokio runtime).
    pub fn new(config: ProxyConfig, deps: ProxyDeps) -> Result<Arc<Shared>, ProxyError> {
        config.validate()?;
        let policy = Policy::compile(&config)?;
        let spill = Spill::open(&config.data_dir)
            .map_err(|source| ProxyError::Spill { dir: config.data_dir.clone(), source })?;
        let emitter = Emitter::start(&config.decisions, deps.sink.clone(), Arc::new(spill));
        Ok(Arc::new(Shared {
            auth: Authenticator::new(&config.issuers, deps.fetch.clone(), deps.clock.clone()),
            default_password: config.clickhouse.password.resolve("clickhouse.password")?,
            policy: RwLock::new(Arc::new(policy)),
            upstream: deps.upstream,
            bi_upstream: deps.bi_upstream,
            emitter,
            limiter: Limiter::new(deps.clock.clone()),
            clock: deps.clock,
            log_comment: AtomicBool::new(false),
            config,
        }))
    }

    /// The current policy.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the policy with the roles and mappings of `config` (validated first).
    pub fn reload(&self, config: &ProxyConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let policy = Policy::compile(config)?;
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policy);
        Ok(())
    }

    pub fn log_comment_supported(&self) -> bool {
        self.log_comment.load(Ordering::Relaxed)
    }

    /// Asks ClickHouse for its version once; `log_comment` exists from 20.x on.
    pub async fn detect_server_version(&self) {
        let c = &self.config.clickhouse;
        match crate::forward::server_version(self.upstream.as_ref(), &c.url, &c.user, self.default_password.expose())
            .await
        {
            Ok((major, minor)) => {
                let supported = major >= 21 || (major == 20 && minor >= 5);
                self.log_comment.store(supported, Ordering::Relaxed);
                tracing::info!(major, minor, log_comment = supported, "clickhouse server version");
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the clickhouse version; not sending log_comment"),
        }
    }
}

/// The JSON error body: `{"error":{"code","rule","reason","decision_id"}}`.
pub fn error_response(status: StatusCode, code: &str, rule: &str, reason: &str, decision_id: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "rule": rule, "reason": reason, "decision_id": decision_id}});
    let mut resp = (status, axum::Json(body)).into_response();
    if let Ok(v) = http::HeaderValue::from_str(decision_id)
        && !decision_id.is_empty()
    {
        resp.headers_mut().insert("x-gatelog-decision-id", v);
    }
    resp
}

/// The proxy's routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", any(crate::clickhouse::handle))
        .route("/ping", get(|| async { "Ok.\n" }))
        .route("/healthz", get(|| async { "Ok.\n" }))
        .fallback(crate::bi::handle)
        .with_state(shared)
}

/// A bound proxy, ready to run.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    config_path: Option<PathBuf>,
}

impl Proxy {
    /// Validates the config, builds the state, detects the ClickHouse version and binds.
    pub async fn bind(config: ProxyConfig, config_path: Option<PathBuf>, deps: ProxyDeps) -> Result<Proxy, ProxyError> {
        let addr = config.listen;
        let shared = Shared::new(config, deps)?;
        shared.detect_server_version().await;
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ProxyError::Bind { addr, source })?;
        Ok(Proxy { shared, listener, config_path })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` resolves, then flushes the decision buffer.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ProxyError> {
        let reloader = self.config_path.clone().map(|p| tokio::spawn(watch_config(self.shared.clone(), p)));
        tracing::info!(listen = ?self.local_addr(), "proxy listening");
        let app = router(self.shared.clone()).into_make_service_with_connect_info::<SocketAddr>();
        // Small responses are written in several frames: without TCP_NODELAY, Nagle and
        // delayed ACKs add ~40 ms per request.
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |tcp: &mut tokio::net::TcpStream| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let result = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
        if let Some(r) = reloader {
            r.abort();
        }
        self.shared.emitter.shutdown().await;
        tracing::info!("proxy stopped");
        result.map_err(ProxyError::Serve)
    }
}

/// Starts the proxy with real resources; runs until `shutdown`.
pub async fn serve(
    config: ProxyConfig,
    config_path: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ProxyError> {
    let deps = ProxyDeps::real(&config)?;
    Proxy::bind(config, config_path, deps).await?.run(shutdown).await
}

fn mtime(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

async fn watch_config(shared: Arc<Shared>, path: PathBuf) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen = mtime(&path);
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        #[cfg(unix)]
        let by_signal = match hup.as_mut() {
            Some(h) => tokio::select! { _ = h.recv() => true, _ = tick.tick() => false },
            None => {
                tick.tick().await;
                false
            }
        };
        #[cfg(not(unix))]
        let by_signal = {
            tick.tick().await;
            false
        };
        let now = mtime(&path);
        if !by_signal && now == seen {
            continue;
        }
        seen = now;
        match ProxyConfig::load(&path).and_then(|c| shared.reload(&c)) {
            Ok(()) => tracing::info!(path = %path.display(), "policy reloaded"),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "policy reload failed; keeping the running policy")
            }
        }
    }
}
