//! gatelog's SOC 2 evidence: reports auditors can re-perform and bundles they can verify.
//!
//! Module map:
//! - [`bundle`]: the evidence bundle: a deterministic zip whose `manifest.json` (every file's
//!   SHA-256 and size, gatelog's version, the parameters, the period's chain head) is signed;
//!   [`bundle::BundleBuilder`] writes it, [`bundle::verify()`] checks it offline and names
//!   each failure with its class and exit code.
//! - [`sign`]: Ed25519 keys in OpenSSH's formats and SSH signatures (`ssh-keygen -Y verify`
//!   checks a bundle's manifest without gatelog).
//! - [`table`]: [`table::Report`] → sections → [`table::Table`]s, each carrying the
//!   [`gatelog_model::IpeRecord`] of its query; samples drawn from populations.
//! - [`render`]: HTML (self-contained, A4), Markdown, CSV (formula-guarded) and JSON
//!   (schema-versioned, sorted keys) renderings, and the bundle's file set.
//! - [`sample`]: seeded samples (rank by SHA-256(seed ‖ id)), the sample-size table, and the
//!   ClickHouse SQL that re-draws a sample.
//! - [`chain`]: the hash chain over stored batches (links, heads, verification that names the
//!   first link that disagrees); the store recomputes its facts from ClickHouse.
//! - [`json`]: canonical JSON (sorted keys), for the manifest and the JSON rendering.
//! - [`soc2`]: `gatelog report soc2`: each criterion's sections from the store's evidence
//!   queries, with IPE records, reconciliations and seeded samples.
//!
//! Dependencies point down: `model` and `store` (whose read side runs every query and fills
//! its IPE record); this crate decides what a report shows, renders and signs it.

pub mod bundle;
pub mod chain;
pub mod json;
pub mod render;
pub mod sample;
pub mod sign;
pub mod soc2;
pub mod table;
