//! Strict JWT validation on top of `jsonwebtoken`: an algorithm allow-list per issuer
//! (never `none`, never HMAC: a public key is not a shared secret), no critical header
//! parameters (`crit`: extensions gatelog would have to understand), `iss`, `aud`, and
//! `exp`/`nbf`/`iat` checked against the injected clock with bounded skew, and a maximum
//! lifetime.

use super::AuthError;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::time::Duration;

/// Parses a configured algorithm name; symmetric algorithms are refused.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let alg: Algorithm = name.parse().map_err(|_| format!("unknown algorithm `{name}`"))?;
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            Err(format!("`{name}` is symmetric; only public-key algorithms are accepted"))
        }
        other => Ok(other),
    }
}

/// What a validation needs to know about the issuer.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub audiences: &'a [String],
    pub leeway: Duration,
    /// The longest `exp` − issue time accepted.
    pub max_lifetime: Duration,
    /// Seconds since the epoch, from the injected clock.
    pub now: i64,
}

/// Refuses headers gatelog does not fully understand: `crit` (RFC 7515 §4.1.11: a
/// recipient that does not understand every listed extension must reject the token) and
/// the unencoded-payload option `b64` that comes with it.
pub fn check_header(header: &jsonwebtoken::Header) -> Result<(), AuthError> {
    if header.crit.is_some() {
        return Err(AuthError::Critical);
    }
    if header.extras.inner().contains_key("b64") || header.enc.is_some() || header.zip.is_some() {
        return Err(AuthError::Malformed);
    }
    Ok(())
}

/// Verifies the signature with `key` and checks every claim. Returns the claims.
pub fn verify(
    token: &str,
    alg: Algorithm,
    key: &DecodingKey,
    expect: &Expectations<'_>,
) -> Result<serde_json::Map<String, serde_json::Value>, AuthError> {
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.set_issuer(&[expect.issuer]);
    validation.set_audience(expect.audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    // Time is checked below against the injected clock, not the system clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    let data =
        jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidIssuer => AuthError::Claim("iss does not match the issuer"),
                K::InvalidAudience => AuthError::Claim("aud does not match any accepted audience"),
                K::MissingRequiredClaim(_) => AuthError::Claim("a required claim (exp, iss, aud) is missing"),
                K::InvalidSignature => AuthError::Signature,
                K::InvalidAlgorithm => AuthError::Algorithm("token algorithm does not match the key".into()),
                _ => AuthError::Malformed,
            }
        })?;
    let claims = data.claims;
    let leeway = i64::try_from(expect.leeway.as_secs()).unwrap_or(300);
    let number = |name: &str| claims.get(name).map(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
    match number("exp") {
        Some(Some(exp)) if expect.now > exp + leeway => return Err(AuthError::Expired),
        Some(Some(_)) => {}
        _ => return Err(AuthError::Claim("exp is not a number")),
    }
    match number("nbf") {
        Some(Some(nbf)) if expect.now + leeway < nbf => return Err(AuthError::NotYetValid),
        Some(None) => return Err(AuthError::Claim("nbf is not a number")),
        _ => {}
    }
    let iat = match number("iat") {
        Some(Some(iat)) if expect.now + leeway < iat => return Err(AuthError::NotYetValid),
        Some(Some(iat)) => Some(iat),
        Some(None) => return Err(AuthError::Claim("iat is not a number")),
        None => None,
    };
    // The lifetime runs from the issue time; without `iat`, from `nbf`; without either,
    // from now (so what is left of it is what is bounded). A start in the future (within
    // the leeway) counts as now.
    let exp = number("exp").flatten().unwrap_or(i64::MAX);
    let nbf = number("nbf").flatten();
    let start = iat.or(nbf).unwrap_or(expect.now).min(expect.now);
    let max = i64::try_from(expect.max_lifetime.as_secs()).unwrap_or(i64::MAX);
    if exp.saturating_sub(start) > max {
        return Err(AuthError::TooLongLived);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_symmetric_and_none() {
        assert!(parse_algorithm("RS256").is_ok());
        assert!(parse_algorithm("ES256").is_ok());
        assert!(parse_algorithm("HS256").is_err());
        assert!(parse_algorithm("none").is_err());
    }
}
