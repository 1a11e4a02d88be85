//! Start-up, the axum router, policy reload and graceful shutdown.
//!
//! One handler takes every request ([`dispatch`]): `/ping` and `/healthz` answer `Ok.` and
//! `/metrics` the counters, without a decision (probes are not access); every other
//! request gets a decision, passes the per-source rate limit, and goes to the ClickHouse
//! route (`/`, [`crate::clickhouse`]) or the BI routes ([`crate::bi`], which answer 404
//! for an unrouted path). The policy (roles and role mappings) reloads on SIGHUP and when
//! the config file's mtime changes; a config that fails validation is logged and the
//! running policy kept.

use crate::config::ProxyConfig;
use crate::request::{Pending, admit};
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::Method;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::request::error_response;
pub use crate::state::{ProxyDeps, ProxyError, Shared};

/// Every request.
async fn dispatch(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path();
    let probe = req.method() == Method::GET || req.method() == Method::HEAD;
    match path {
        "/ping" | "/healthz" if probe => return "Ok.\n".into_response(),
        "/metrics" if probe => {
            let mut resp = shared.metrics.render().into_response();
            resp.headers_mut()
                .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; version=0.0.4"));
            return resp;
        }
        _ => {}
    }
    let is_sql = path == "/";
    let pending = Pending::new(&shared, &req, path);
    let pending = match admit(&shared, pending) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    if is_sql {
        crate::clickhouse::handle(shared, req, pending).await
    } else {
        crate::bi::handle(shared, req, pending).await
    }
}

/// The proxy's routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
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
