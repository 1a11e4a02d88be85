//! SSH signatures (OpenSSH's `PROTOCOL.sshsig`), the format `ssh-keygen -Y sign` writes and
//! `ssh-keygen -Y verify` checks. The Ed25519 signature covers
//! `"SSHSIG" ‖ string(namespace) ‖ string("") ‖ string("sha512") ‖ string(SHA-512(message))`,
//! and the armoured file carries the signer's public key beside it.

use super::keys::{PublicKey, SigningKey};
use super::wire::{Reader, armor, dearmor, put_string, put_u32};
use sha2::{Digest, Sha512};

/// The namespace bundle signatures are made in: `ssh-keygen -Y verify -n gatelog-bundle`.
pub const NAMESPACE: &str = "gatelog-bundle";

const MAGIC: &[u8] = b"SSHSIG";
const VERSION: u32 = 1;
const HASH: &str = "sha512";
const LABEL: &str = "SSH SIGNATURE";

/// Why a signature does not verify, in words an auditor can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("cannot be parsed: {0}")]
    Malformed(String),
    #[error("made in namespace {found:?}, expected {expected:?}")]
    Namespace { found: String, expected: String },
    #[error("made by key {found}, not by the trusted key {expected}")]
    WrongKey { found: String, expected: String },
    #[error("does not match the signed file (it or the signature was changed)")]
    Mismatch,
}

/// A parsed SSH signature.
#[derive(Debug, Clone)]
pub struct SshSignature {
    /// The key the signature says made it (trust it only if it is the key you were given).
    pub public_key: PublicKey,
    pub namespace: String,
    hash: String,
    signature: [u8; 64],
}

fn signed_data(namespace: &str, hash: &str, message: &[u8]) -> Vec<u8> {
    let digest = Sha512::digest(message);
    let mut out = MAGIC.to_vec();
    put_string(&mut out, namespace.as_bytes());
    put_string(&mut out, b"");
    put_string(&mut out, hash.as_bytes());
    put_string(&mut out, &digest);
    out
}

/// Signs `message` in `namespace`; the armoured text is what `ssh-keygen -Y sign` writes.
pub fn sign(key: &SigningKey, namespace: &str, message: &[u8]) -> String {
    let signature = key.sign(&signed_data(namespace, HASH, message));
    let mut sig_blob = Vec::with_capacity(83);
    put_string(&mut sig_blob, b"ssh-ed25519");
    put_string(&mut sig_blob, &signature);
    let mut out = MAGIC.to_vec();
    put_u32(&mut out, VERSION);
    put_string(&mut out, &key.public_key().blob());
    put_string(&mut out, namespace.as_bytes());
    put_string(&mut out, b"");
    put_string(&mut out, HASH.as_bytes());
    put_string(&mut out, &sig_blob);
    armor(LABEL, &out, 70)
}

impl SshSignature {
    /// Parses the armoured text of an SSH signature.
    pub fn parse(text: &str) -> Result<Self, SigError> {
        let m = SigError::Malformed;
        let bytes = dearmor(LABEL, text).map_err(m)?;
        let mut r = Reader::new(&bytes);
        if r.bytes(MAGIC.len(), "magic").map_err(m)? != MAGIC {
            return Err(m("no SSHSIG magic".into()));
        }
        let version = r.u32("version").map_err(m)?;
        if version != VERSION {
            return Err(m(format!("version {version}, expected {VERSION}")));
        }
        let public_key = PublicKey::from_blob(r.string("public key").map_err(m)?).map_err(m)?;
        let namespace = String::from_utf8_lossy(r.string("namespace").map_err(m)?).into_owned();
        r.string("reserved").map_err(m)?;
        let hash = String::from_utf8_lossy(r.string("hash algorithm").map_err(m)?).into_owned();
        if hash != "sha512" && hash != "sha256" {
            return Err(m(format!("hash algorithm {hash:?} is not sha512 or sha256")));
        }
        let mut s = Reader::new(r.string("signature").map_err(m)?);
        s.expect_string(b"ssh-ed25519", "signature type").map_err(m)?;
        let signature: [u8; 64] =
            s.string("signature").map_err(m)?.try_into().map_err(|_| m("an ed25519 signature is 64 bytes".into()))?;
        if !r.remaining().is_empty() || !s.remaining().is_empty() {
            return Err(m("trailing bytes".into()));
        }
        Ok(SshSignature { public_key, namespace, hash, signature })
    }

    /// Checks the signature over `message` against the `trusted` key (or, when `None`, the
    /// key the signature names, which proves integrity but not who signed).
    pub fn verify(&self, message: &[u8], namespace: &str, trusted: Option<&PublicKey>) -> Result<(), SigError> {
        if self.namespace != namespace {
            return Err(SigError::Namespace { found: self.namespace.clone(), expected: namespace.to_owned() });
        }
        if let Some(trusted) = trusted
            && *trusted != self.public_key
        {
            return Err(SigError::WrongKey { found: self.public_key.fingerprint(), expected: trusted.fingerprint() });
        }
        let data = match self.hash.as_str() {
            "sha256" => {
                let mut out = MAGIC.to_vec();
                put_string(&mut out, self.namespace.as_bytes());
                put_string(&mut out, b"");
                put_string(&mut out, b"sha256");
                put_string(&mut out, &sha2::Sha256::digest(message));
                out
            }
            _ => signed_data(&self.namespace, &self.hash, message),
        };
        if self.public_key.verify(&data, &self.signature) { Ok(()) } else { Err(SigError::Mismatch) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_names_each_failure() {
        let key = SigningKey::from_seed([3; 32], "");
        let text = sign(&key, NAMESPACE, b"manifest");
        let sig = SshSignature::parse(&text).unwrap();
        sig.verify(b"manifest", NAMESPACE, Some(&key.public_key())).unwrap();
        assert_eq!(sig.verify(b"manifesT", NAMESPACE, None), Err(SigError::Mismatch));
        assert!(matches!(sig.verify(b"manifest", "file", None), Err(SigError::Namespace { .. })));
        let other = SigningKey::from_seed([4; 32], "").public_key();
        assert!(matches!(sig.verify(b"manifest", NAMESPACE, Some(&other)), Err(SigError::WrongKey { .. })));
        assert!(matches!(SshSignature::parse("hello"), Err(SigError::Malformed(_))));
    }
}
