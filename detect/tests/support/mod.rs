//! Shared by the integration tests and the throughput bench.

#![allow(dead_code, clippy::unwrap_used)] // test helpers: a failure is a test failure; each binary uses a part

pub mod generated;
pub mod plants;
