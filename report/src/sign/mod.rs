//! Keys and signatures in OpenSSH's formats (see ARCHITECTURE.md for why SSH signatures).
//!
//! - [`keys`]: [`SigningKey`] / [`PublicKey`], their files ([`KeyFiles`]).
//! - [`sshsig`]: SSH signatures over a manifest, verifiable with `ssh-keygen -Y verify`.
//! - `wire`: the SSH wire encoding and armour both use.

pub mod keys;
pub mod sshsig;
mod wire;

pub use keys::{KeyError, KeyFiles, PRINCIPAL, PublicKey, SigningKey};
pub use sshsig::{NAMESPACE, SigError, SshSignature};
