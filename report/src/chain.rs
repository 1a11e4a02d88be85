//! The tamper-evidence chain over stored batches: [`gatelog_model::chain`], re-exported here
//! (it lives in the model so that the store, which writes the links and the row ledger, and
//! this crate, which puts a period's head in a bundle's manifest, share one definition).

pub use gatelog_model::chain::*;
