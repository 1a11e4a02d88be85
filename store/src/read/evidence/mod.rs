//! The queries behind the SOC 2 report's criteria (`gatelog report soc2`, built in
//! `gatelog-report`'s `soc2` module): more [`Catalog`] methods, one module per group of
//! criteria, each following the catalog's rule for counting an event once.
//!
//! - [`access`]: CC6.1–CC6.3 and CC6.6 (privileged access, new principals, usage against
//!   grants, the boundary).
//! - [`operations`]: CC7.2–CC7.4 and CC8.1 (detectors and their runs, canaries, alerts and
//!   their lifecycle, changes).
//!
//! Every query here is registered by [`register`] (so `gatelog sql dump` prints it and the
//! compatibility tests run it on 18.16 and 26.9).

use super::catalog::{Catalog, Registered};
use super::period::Period;

pub mod access;
pub mod operations;

/// Registers every evidence query, bound with representative values over `period`.
pub(crate) fn register(c: &Catalog, period: Period, out: &mut Vec<Registered>) {
    access::register(c, period, out);
    operations::register(c, period, out);
}
