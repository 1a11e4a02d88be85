//! The tamper-evidence chain over stored batches: [`gatelog_model::chain`], re-exported here
//! (it lives in the model so that the store, which writes the links and the row ledger, and
//! this crate, which puts a period's head in a bundle's manifest, share one definition), and
//! the signatures of its checkpoints: SSH signatures in namespace [`CHECKPOINT_NAMESPACE`]
//! over [`checkpoint_message`], by the bundle signing key.

pub use gatelog_model::chain::*;

use crate::sign::{PublicKey, SigningKey, SshSignature, sshsig};

/// The SSH signature namespace of chain checkpoints (not a bundle's: a checkpoint signature
/// can never pass for a manifest's, nor the other way round).
pub const CHECKPOINT_NAMESPACE: &str = "gatelog-chain";

/// `(signer fingerprint, armoured signature)` of a checkpoint of `head` taken at `at_ms`.
pub fn sign_checkpoint(key: &SigningKey, head: &ChainHead, at_ms: i64) -> (String, String) {
    let signature = sshsig::sign(key, CHECKPOINT_NAMESPACE, &checkpoint_message(head, at_ms));
    (key.public_key().fingerprint(), signature)
}

/// What a checkpoint's signature proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointSignature {
    /// No signature was recorded.
    Unsigned,
    /// Made by the trusted key over this head and time.
    Valid { signer: String },
    /// Intact against the key it names, but there was no trusted key to check that against.
    NoTrustedKey { signer: String },
    /// Does not verify: the head, the time or the signature was changed, or another key signed.
    Invalid { reason: String },
}

/// Checks `signature` (armoured, empty when unsigned) over the checkpoint of `head` at
/// `at_ms` against `trusted`.
pub fn check_checkpoint(
    signature: &str,
    head: &ChainHead,
    at_ms: i64,
    trusted: Option<&PublicKey>,
) -> CheckpointSignature {
    if signature.is_empty() {
        return CheckpointSignature::Unsigned;
    }
    let parsed = match SshSignature::parse(signature) {
        Ok(s) => s,
        Err(e) => return CheckpointSignature::Invalid { reason: e.to_string() },
    };
    let signer = parsed.public_key.fingerprint();
    match parsed.verify(&checkpoint_message(head, at_ms), CHECKPOINT_NAMESPACE, trusted) {
        Err(e) => CheckpointSignature::Invalid { reason: e.to_string() },
        Ok(()) if trusted.is_some() => CheckpointSignature::Valid { signer },
        Ok(()) => CheckpointSignature::NoTrustedKey { signer },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_signature_covers_the_head_and_the_time() {
        let key = SigningKey::from_seed([7; 32], "");
        let head = ChainHead { links: 9, last_batch_id: Some("b9".into()), hash: "ab".repeat(32) };
        let (signer, sig) = sign_checkpoint(&key, &head, 1000);
        let trusted = key.public_key();
        assert_eq!(check_checkpoint(&sig, &head, 1000, Some(&trusted)), CheckpointSignature::Valid { signer });
        assert!(matches!(check_checkpoint(&sig, &head, 1001, Some(&trusted)), CheckpointSignature::Invalid { .. }));
        let moved = ChainHead { links: 10, ..head.clone() };
        assert!(matches!(check_checkpoint(&sig, &moved, 1000, Some(&trusted)), CheckpointSignature::Invalid { .. }));
        assert!(matches!(check_checkpoint(&sig, &head, 1000, None), CheckpointSignature::NoTrustedKey { .. }));
        assert_eq!(check_checkpoint("", &head, 1000, None), CheckpointSignature::Unsigned);
        let other = SigningKey::from_seed([8; 32], "").public_key();
        assert!(matches!(check_checkpoint(&sig, &head, 1000, Some(&other)), CheckpointSignature::Invalid { .. }));
    }
}
