//! [`Edge`]: what every route of one server shares: who may call it (static tokens and, when
//! configured, identity tokens), its metrics registry and its readiness checks.

use crate::auth::{Access, Credentials, Principal};
use crate::config::OpsAccess;
use crate::error::ApiError;
use crate::identity::IdentityVerifier;
use crate::metrics::MetricsRegistry;
use crate::ops::ReadinessCheck;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, PoisonError, RwLock};

/// The shared edge of one server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Edge {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    credentials: Credentials,
    identity: Option<IdentityVerifier>,
    ops: OpsAccess,
    metrics: Arc<MetricsRegistry>,
    readiness: RwLock<Vec<Arc<dyn ReadinessCheck>>>,
}

impl Edge {
    /// An edge accepting `credentials`, opening the operator routes as `ops` says, with an
    /// empty registry and no readiness checks.
    pub fn new(credentials: Credentials, ops: OpsAccess) -> Self {
        Self::with_identity(credentials, None, ops)
    }

    /// An edge that also accepts the identity tokens `identity` verifies.
    pub fn with_identity(credentials: Credentials, identity: Option<IdentityVerifier>, ops: OpsAccess) -> Self {
        Edge {
            inner: Arc::new(Inner {
                credentials,
                identity,
                ops,
                metrics: Arc::new(MetricsRegistry::default()),
                readiness: RwLock::new(Vec::new()),
            }),
        }
    }

    /// The credentials requests are checked against.
    pub fn credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    /// Who reads `/healthz`, `/readyz` and `/metrics` without a token.
    pub fn ops_access(&self) -> OpsAccess {
        self.inner.ops
    }

    /// The caller, if it may have `access`: 401 without a known credential, 403 when its
    /// role lacks it (see [`crate::auth`]). Static tokens first (constant time); when none
    /// matched and the request presents an identity token, the identity's answer
    /// (see [`crate::identity`]).
    pub async fn authorize(&self, headers: &HeaderMap, access: Access) -> Result<Principal, ApiError> {
        let static_answer = self.inner.credentials.authorize(headers, access);
        match (&static_answer, &self.inner.identity) {
            (Err(refused), Some(identity)) if refused.status == StatusCode::UNAUTHORIZED => {
                identity.authorize(headers, access).await.unwrap_or(static_answer)
            }
            _ => static_answer,
        }
    }

    /// Who `headers` present as, whatever the route (`None`: no known credential, or an
    /// identity token that fails verification or maps to no role): a static token's name and
    /// role, else a verified identity's name with its first mapped role. What gatelog's own
    /// audit trail records as the reader.
    pub async fn identify(&self, headers: &HeaderMap) -> Option<Principal> {
        if let Some(known) = self.inner.credentials.identify(headers) {
            return Some(known);
        }
        let identity = self.inner.identity.as_ref()?;
        identity.authorize(headers, Access::Read).await?.ok()
    }

    /// The registry behind `/metrics`.
    pub fn metrics(&self) -> &Arc<MetricsRegistry> {
        &self.inner.metrics
    }

    /// Answers `result`: a success as it is; an error counted by its code
    /// (`gatelog_rejected_requests_total`), logged once (warning for 5xx and 429, debug
    /// otherwise; with its internal detail, which the client never sees) and rendered.
    /// `routes` names who refused in the log line (`receiver`, `search`).
    pub fn finish(&self, routes: &'static str, result: Result<Response, ApiError>) -> Response {
        match result {
            Ok(response) => response,
            Err(error) => {
                self.inner.metrics.rejected(error.code);
                let internal = error.internal.as_deref().unwrap_or("");
                if error.status.is_server_error() || error.status == StatusCode::TOO_MANY_REQUESTS {
                    tracing::warn!(routes, status = error.status.as_u16(), code = error.code.as_str(), message = %error.message, internal, "request refused");
                } else {
                    tracing::debug!(routes, status = error.status.as_u16(), code = error.code.as_str(), message = %error.message, internal, "request refused");
                }
                error.into_response()
            }
        }
    }

    /// Adds a check that `/readyz` asks, after those added before it.
    pub fn add_readiness_check(&self, check: Arc<dyn ReadinessCheck>) {
        self.inner.readiness.write().unwrap_or_else(PoisonError::into_inner).push(check);
    }

    /// Why the server should not get traffic now (every check's reasons, `; `-separated), if
    /// it should not.
    pub fn not_ready_reason(&self) -> Option<String> {
        let checks = self.inner.readiness.read().unwrap_or_else(PoisonError::into_inner);
        let reasons: Vec<String> = checks.iter().flat_map(|c| c.not_ready()).collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}
