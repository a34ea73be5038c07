//! The `fastdata` binary's integration tests, one binary, all without a node (the CLI's live
//! trade is `e2e/tests/e2e/cli_trade.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod keystore;
mod usage;
