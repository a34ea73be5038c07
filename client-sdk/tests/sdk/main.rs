//! The SDK's integration tests, one binary. The `#[ignore]`d tests need a running dev node
//! (`scripts/test` starts one and runs them with `--ignored`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod data_plane;
mod live;
mod metadata;
mod smoke;
