//! The end-to-end tests, one binary; all need a running dev node (`scripts/test`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_trade;
mod cluster;
mod fair_pay;
mod integrity;
mod marketplace;
mod restart;
mod revocation;
mod seller_service;
mod takeover;
mod vernemq;
