//! The operator daemon's integration tests, one binary (each test file would link the whole
//! dependency graph again).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod attestation;
mod client_routes;
mod common;
mod fair_gate;
mod kill9;
mod mosquitto_gate;
mod restart;
mod serving_replication;
mod stream_head;
mod supervision;
mod tls;
