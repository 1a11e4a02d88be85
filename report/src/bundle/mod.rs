//! Evidence bundles: a deterministic zip of report files with a signed `manifest.json`.
//!
//! - [`manifest`]: [`Manifest`] (files with SHA-256 and size, version, parameters, chain head).
//! - [`write`]: [`BundleBuilder`], which writes the same bytes for the same inputs.
//! - [`verify`]: [`verify()`], offline, with a [`Verdict`] naming each failure and its class.

pub mod manifest;
pub mod verify;
pub mod write;

pub use manifest::{FileEntry, MANIFEST_FILE, MANIFEST_SCHEMA, Manifest, SIGNATURE_FILE};
pub use verify::{Failure, FailureClass, Verdict, verify};
pub use write::{BundleBuilder, BundleError, Written};
