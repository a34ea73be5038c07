//! `fastdata-operator`: the daemon a FAST DATA storage operator runs next to its MQTT broker.
//!
//! It decides from its local view of chain state ([`chain`]) who may publish and subscribe
//! ([`auth`]), enforces that on the broker ([`gate`]: VerneMQ webhooks or Mosquitto dynamic
//! security; [`gate::sync`] keeps the grants in line with the chain), stores every segment of
//! its assigned streams durably ([`ingest`], [`store`]) and deletes what it need not keep
//! ([`retention`]), serves purchased ranges over HTTP ([`api`], by the rules of [`serving`])
//! and live topics within one receipt window W past the buyer's receipts (one rule for both,
//! [`receipts::window_end`]), keeps receipts (never beyond what it served or stored) and
//! claims payment ([`receipts`]), and backfills gaps from other operators ([`replication`]).
//! [`follower`] keeps the view in line with a node's finalized blocks and sends heartbeats;
//! [`registration`] registers the operator, [`claims`] submits claims and [`attestation`]
//! attests stream heads (subxt). [`tls`] serves the API over HTTPS. [`daemon`] wires it all,
//! each long-running part a named task restarted or failed by the [`supervisor`]; `main.rs`
//! is the CLI. The test harness (a Mosquitto broker as a child process) is the
//! `fastdata-test-support` crate.

pub mod api;
pub mod attestation;
pub mod auth;
pub mod chain;
pub mod claims;
pub mod config;
pub mod daemon;
pub mod follower;
pub mod gate;
pub mod ingest;
pub mod metrics;
pub mod receipts;
pub mod registration;
pub mod replication;
pub mod retention;
pub mod serving;
pub mod store;
pub mod supervisor;
pub mod tls;

pub use fastdata_sdk::termination_signal;

/// Resolves once `shutdown` is (or becomes) true; never holds the watch lock afterwards.
pub(crate) async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
