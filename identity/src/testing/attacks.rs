//! The JWT attack corpus (`testdata/jwt.toml`): tokens every verifier of gatelog must refuse,
//! each built here and sent by the caller's route in the way [`Case::credential`] says. The
//! proxy's SQL route and serve's read routes run the same cases.

use super::{ISSUER, NOW, b64, claims, key_bytes};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::Value;
use std::str::FromStr;

/// One attack: see the header of `testdata/jwt.toml` for the fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default = "rs256")]
    pub alg: String,
    #[serde(default = "rsa")]
    pub key: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub claims: serde_json::Map<String, Value>,
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub tamper: Option<String>,
    #[serde(default)]
    pub jku: Option<String>,
    #[serde(default)]
    pub transport: Option<String>,
    #[serde(default)]
    pub raw: Option<String>,
    /// The expected status: 401 unless set (403: a valid token that maps to no role).
    #[serde(default)]
    pub status: Option<u16>,
}

fn rs256() -> String {
    "RS256".into()
}
fn rsa() -> String {
    "rsa".into()
}

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

/// How a case presents its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A request header and its whole value (`authorization: Bearer …`, the Cloudflare header).
    Header(&'static str, String),
    /// The token as an `access_token` query parameter (which no gatelog route reads).
    Query(String),
}

/// Every case of the corpus.
pub fn corpus() -> Vec<Case> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/jwt.toml");
    let text = std::fs::read_to_string(path).expect("testdata/jwt.toml");
    toml::from_str::<Corpus>(&text).expect("the corpus parses").case
}

impl Case {
    /// The expected status.
    pub fn expected_status(&self) -> u16 {
        self.status.unwrap_or(401)
    }

    /// The case's token: ana@example.com in `analysts` from the test issuer at [`NOW`], with
    /// the case's changes.
    pub fn token(&self) -> String {
        self.token_at(ISSUER, NOW)
    }

    /// The case's token from the test keys' issuer at `issuer` (a [`super::LoopbackIssuer`]'s
    /// URL) at `now` (seconds): the case's claims that name [`ISSUER`] name `issuer` instead.
    pub fn token_at(&self, issuer: &str, now: i64) -> String {
        let mut c = claims(issuer, now, "ana@example.com", &["analysts"]);
        for (k, v) in &self.claims {
            let v = match (k.as_str(), v.as_i64(), v.as_str()) {
                ("exp" | "nbf" | "iat", Some(rel), _) => Value::from(now + rel),
                (_, _, Some(s)) if s.starts_with(ISSUER) => Value::from(format!("{issuer}{}", &s[ISSUER.len()..])),
                _ => v.clone(),
            };
            c.insert(k.clone(), v);
        }
        for r in &self.remove {
            c.remove(r);
        }
        let kid = match self.kid.as_deref() {
            Some("") => None,
            Some(k) => Some(k.to_owned()),
            None => Some("rsa-1".to_owned()),
        };
        let token = if self.key == "none" {
            let header = serde_json::json!({"alg": self.alg, "typ": "JWT", "kid": kid});
            format!("{}.{}.", b64(header.to_string().as_bytes()), b64(Value::Object(c.clone()).to_string().as_bytes()))
        } else {
            let alg = Algorithm::from_str(&self.alg).expect("a known algorithm");
            let mut header = Header::new(alg);
            header.kid = kid;
            header.jku = self.jku.clone();
            let pem = key_bytes(&format!("{}.pem", self.key));
            let enc = match alg {
                Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).expect("an EC key"),
                Algorithm::HS256 => EncodingKey::from_secret(&pem),
                _ => EncodingKey::from_rsa_pem(&pem).expect("an RSA key"),
            };
            jsonwebtoken::encode(&header, &c, &enc).expect("a signed token")
        };
        let parts: Vec<&str> = token.split('.').collect();
        match self.tamper.as_deref() {
            Some("payload") => {
                let mut c2 = c.clone();
                c2.insert("groups".into(), serde_json::json!(["admins"]));
                format!("{}.{}.{}", parts[0], b64(Value::Object(c2).to_string().as_bytes()), parts[2])
            }
            Some("header") => {
                let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": "rsa-1"});
                format!("{}.{}.{}", b64(header.to_string().as_bytes()), parts[1], parts[2])
            }
            Some("strip_signature") => format!("{}.{}.", parts[0], parts[1]),
            _ => token,
        }
    }

    /// How the request carries the case's credential.
    pub fn credential(&self) -> Credential {
        self.credential_at(ISSUER, NOW)
    }

    /// [`Case::credential`] with [`Case::token_at`]'s token.
    pub fn credential_at(&self, issuer: &str, now: i64) -> Credential {
        match self.transport.as_deref() {
            Some("raw") => Credential::Header("authorization", self.raw.clone().unwrap_or_default()),
            Some("cf") => Credential::Header("cf-access-jwt-assertion", self.token_at(issuer, now)),
            Some("query") => Credential::Query(self.token_at(issuer, now)),
            _ => Credential::Header("authorization", format!("Bearer {}", self.token_at(issuer, now))),
        }
    }
}
