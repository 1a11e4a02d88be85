//! Support for the ClickHouse test: the generated world, the scenarios, result tables, the
//! chdb runner and the per-panel checks.
#![allow(dead_code)] // each test binary uses its own part

pub mod alerts;
pub mod chdb;
pub mod checks;
pub mod ingest;
pub mod results;
pub mod scenarios;
pub mod world;
