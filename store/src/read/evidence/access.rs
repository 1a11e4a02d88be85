//! Evidence queries: see [`super`].

use super::super::catalog::{Catalog, Registered};
use super::super::period::Period;

/// Registers this module's queries (see [`super::register`]).
pub(crate) fn register(_c: &Catalog, _period: Period, _out: &mut Vec<Registered>) {}
