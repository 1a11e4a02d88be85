//! OIDC discovery: `{issuer}/.well-known/openid-configuration` gives the `jwks_uri`.
//! The document's `issuer` must be the configured one (a mix-up defence).

use super::Fetch;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// The discovery URL for an issuer.
pub fn discovery_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

/// Fetches the discovery document and returns its `jwks_uri`.
pub async fn jwks_uri(fetch: &dyn Fetch, url: &str, issuer: &str) -> Result<String, String> {
    let body = fetch.get(url).await?;
    let doc: Discovery =
        serde_json::from_slice(&body).map_err(|e| format!("bad discovery document from {url}: {e}"))?;
    if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(format!("discovery document from {url} names issuer {:?}, expected {issuer:?}", doc.issuer));
    }
    Ok(doc.jwks_uri)
}
