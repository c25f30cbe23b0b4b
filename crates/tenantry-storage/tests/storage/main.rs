//! Integration tests of tenantry-storage. Every store test is written once and run on both
//! backends: a local directory (a temporary one) and S3 (a real S3-compatible server from
//! tenantry-testkit, a fresh bucket per test).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod counting;
mod fixture;
mod memory;
mod presign;
mod put;
mod read;
mod sniff;
