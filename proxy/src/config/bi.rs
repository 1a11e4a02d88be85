//! Generic reverse-proxy routes for BI tools.

use serde::Deserialize;

/// Generic HTTP routes for BI tools.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BiConfig {
    /// Where browsers without a session are sent.
    pub login_url: Option<String>,
    pub routes: Vec<BiRoute>,
    /// Header names set for the upstream (incoming copies, in any spelling, are stripped).
    pub principal_header: Option<String>,
    pub roles_header: Option<String>,
}

/// One reverse-proxy route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BiRoute {
    pub name: String,
    /// Path prefix on the proxy, starting and ending with `/`, e.g. `/bi/metabase/`.
    pub prefix: String,
    /// Upstream base URL, e.g. `http://127.0.0.1:3000` (an optional base path is kept).
    pub upstream: String,
    /// Remove the prefix before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// The upstream ignores the case of paths (a tool on IIS, say): paths are lowercased
    /// before the route and the role's `http_allow`/`http_deny` see them.
    #[serde(default)]
    pub case_insensitive: bool,
}
