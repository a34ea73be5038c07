//! `fastdata-operator`: the daemon a FAST DATA storage operator runs next to its MQTT broker.
//!
//! It decides from its local view of chain state ([`chain`]) who may publish and subscribe
//! ([`auth`]), enforces that on the broker ([`gate`]: VerneMQ webhooks or Mosquitto dynamic
//! security), stores every segment of its assigned streams durably ([`ingest`], [`store`]),
//! serves purchased ranges over HTTP ([`api`]) and live topics within one receipt window W past
//! the buyer's receipts (one rule for both, [`receipts::window_end`]), keeps receipts (never
//! beyond what it served or stored) and claims payment ([`receipts`]), and backfills gaps from
//! other operators
//! ([`replication`]). [`follower`] keeps the view in line with a node's finalized blocks,
//! registers the operator, sends heartbeats and submits claims (subxt). [`tls`] serves the API
//! over HTTPS. [`daemon`] wires it all, each long-running part a named task restarted or
//! failed by the [`supervisor`]; `main.rs` is the CLI.

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
pub mod mosquitto;
pub mod receipts;
pub mod registration;
pub mod replication;
pub mod store;
pub mod supervisor;
pub mod tls;

/// Resolves at the first Ctrl-C (SIGINT) or SIGTERM.
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves once `shutdown` is (or becomes) true; never holds the watch lock afterwards.
pub(crate) async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
