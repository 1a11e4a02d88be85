//! What every request shares ([`Shared`]: configuration, the compiled policy and role
//! mappings, the authenticator, upstreams, emitter, limiter, metrics) and the external
//! resources it is built from ([`ProxyDeps`], injectable for tests).

use crate::config::{ConfigError, ProxyConfig, Secret};
use crate::emit::spill::Spill;
use crate::emit::{DecisionSink, Emitter, HttpSink};
use crate::forward::{HyperUpstream, Upstream};
use crate::identity::{Authenticator, Fetch, ReqwestFetch, RoleMapper};
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::net::{Cidr, UpstreamBase};
use crate::policy::Policy;
use gatelog_model::{Clock, SystemClock};
use std::collections::BTreeMap;
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

/// The parts of the configuration that reload together: the policy, the role mappings,
/// and each role's `http_deny` prefixes lowercased (a deny also holds in any case).
#[derive(Debug)]
pub struct Compiled {
    pub policy: Arc<Policy>,
    pub mapper: RoleMapper,
    pub http_deny_folded: BTreeMap<String, Vec<String>>,
}

impl Compiled {
    fn new(config: &ProxyConfig) -> Result<Compiled, ConfigError> {
        config.validate()?;
        let http_deny_folded = config
            .roles
            .iter()
            .map(|(name, r)| {
                let folded = r.http_deny.iter().map(|p| crate::http_path::lowercase(p.trim_end_matches('*'))).collect();
                (name.clone(), folded)
            })
            .collect();
        Ok(Compiled {
            policy: Arc::new(Policy::compile(config)?),
            mapper: RoleMapper::new(&config.role_mappings),
            http_deny_folded,
        })
    }
}

/// State shared by every request.
#[derive(Debug)]
pub struct Shared {
    pub config: ProxyConfig,
    compiled: RwLock<Arc<Compiled>>,
    pub auth: Authenticator,
    pub upstream: Arc<dyn Upstream>,
    pub bi_upstream: Arc<dyn Upstream>,
    pub emitter: Emitter,
    pub limiter: Limiter,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// `[clickhouse] url`, parsed.
    pub clickhouse: UpstreamBase,
    /// Each BI route's upstream, parsed (same order as `config.bi.routes`).
    pub bi_upstreams: Vec<UpstreamBase>,
    pub trusted_proxies: Vec<Cidr>,
    log_comment: AtomicBool,
    /// The proxy's own ClickHouse password (version detection, `KILL QUERY`).
    pub(crate) own_password: Secret,
}

impl Shared {
    /// Builds the state and starts the decision worker (needs a tokio runtime).
    pub fn new(config: ProxyConfig, deps: ProxyDeps) -> Result<Arc<Shared>, ProxyError> {
        let compiled = Compiled::new(&config)?;
        let parse =
            |key: String, url: &str| UpstreamBase::parse(url).map_err(|m| ConfigError::Invalid { key, message: m });
        let clickhouse = parse("clickhouse.url".into(), &config.clickhouse.url)?;
        let bi_upstreams = config
            .bi
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| parse(format!("bi.routes[{i}].upstream"), &r.upstream))
            .collect::<Result<Vec<_>, _>>()?;
        let trusted_proxies = config.ingress.trusted_proxies.iter().filter_map(|t| Cidr::parse(t).ok()).collect();
        let metrics = Arc::new(Metrics::default());
        let spill = Spill::open(&config.data_dir, config.decisions.spill_max_bytes.as_u64(), metrics.clone())
            .map_err(|source| ProxyError::Spill { dir: config.data_dir.clone(), source })?;
        let emitter = Emitter::start(&config.decisions, deps.sink.clone(), Arc::new(spill), metrics.clone());
        Ok(Arc::new(Shared {
            auth: Authenticator::new(&config.issuers, deps.fetch.clone(), deps.clock.clone()),
            own_password: config.clickhouse.password.resolve("clickhouse.password")?,
            compiled: RwLock::new(Arc::new(compiled)),
            upstream: deps.upstream,
            bi_upstream: deps.bi_upstream,
            emitter,
            limiter: Limiter::new(deps.clock.clone()),
            metrics,
            clock: deps.clock,
            clickhouse,
            bi_upstreams,
            trusted_proxies,
            log_comment: AtomicBool::new(false),
            config,
        }))
    }

    /// The current policy and role mappings.
    pub fn compiled(&self) -> Arc<Compiled> {
        self.compiled.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current policy.
    pub fn policy(&self) -> Arc<Policy> {
        self.compiled().policy.clone()
    }

    /// Replaces the policy and role mappings with those of `config` (validated first).
    pub fn reload(&self, config: &ProxyConfig) -> Result<(), ConfigError> {
        let compiled = Compiled::new(config)?;
        *self.compiled.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(compiled);
        Ok(())
    }

    pub fn log_comment_supported(&self) -> bool {
        self.log_comment.load(Ordering::Relaxed)
    }

    /// Asks ClickHouse for its version once; `log_comment` exists from 20.x on.
    pub async fn detect_server_version(&self) {
        let c = &self.config.clickhouse;
        match crate::forward::server_version(
            self.upstream.as_ref(),
            &self.clickhouse,
            &c.user,
            self.own_password.expose(),
        )
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
