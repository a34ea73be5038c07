//! FAST DATA SDK: everything a seller or a buyer needs to trade IIoT data streams on the
//! FAST DATA chain, on [subxt] (chain) and [rumqttc] (operator brokers).
//!
//! - [`FastData`] is one connection to a node plus the account acting through it. Its methods
//!   are grouped by role: identity ([`identity`]: DIDs, issuers, credentials), seller
//!   ([`seller`]: offers, streams, epochs, key delivery), buyer ([`buyer`]: listings with
//!   trust scores, purchases, sealed keys, ratings, disputes).
//! - [`keystore::Keystore`] keeps the secrets that never go on chain: the X25519
//!   key-agreement key of a DID and the seller's per-epoch data keys (file mode 0600;
//!   encrypted with the passphrase in `FASTDATA_KEYSTORE_PASSPHRASE` when it is set).
//! - [`operator::OperatorClient`] speaks the storage operator daemon's HTTP protocol
//!   (broker sessions, segment downloads, receipts); [`publish::StreamPublisher`] seals and
//!   publishes segments to every assigned operator's broker; [`receive`] downloads or
//!   subscribes, fails over between replicas, and hands out verified plaintext in sequence
//!   order with no gaps or duplicates.
//! - [`seller_service`] runs a seller in one long-running process (`fastdata seller run`):
//!   records batched into segments and published, keys delivered, epochs rotated.
//!
//! Chain access is typed: calls, events, storage and runtime APIs go through the code subxt
//! generates from `metadata/fastdata.scale` ([`runtime`]), with the runtime's own types from
//! `fastdata-primitives` substituted for their generated copies, so a renamed call, event,
//! field or runtime API is a compile error and no type is duplicated between the chain and
//! this crate. `tests/sdk/metadata.rs` checks the exported metadata against a running node
//! (stale metadata fails the test).
//!
//! ```no_run
//! # async fn demo() -> Result<(), fastdata_sdk::Error> {
//! use fastdata_sdk::{account::Account, FastData};
//! let alice = Account::from_suri("//Alice")?;
//! let chain = FastData::connect(fastdata_sdk::DEFAULT_URL, alice).await?;
//! for offer in chain.offers(0, 20).await?.offers {
//!     println!("{} {} trust {}", offer.id, String::from_utf8_lossy(&offer.topic), offer.seller_trust_score);
//! }
//! # Ok(()) }
//! ```

pub use fastdata_primitives as primitives;
pub use subxt;
pub use subxt_signer;

pub mod account;
pub mod buyer;
pub mod chain;
pub mod error;
pub mod http;
pub mod identity;
pub mod keystore;
pub mod operator;
pub mod operator_account;
pub mod publish;
pub mod receive;
pub mod runtime;
pub mod sales;
pub mod seller;
pub mod seller_service;

pub use account::Account;
pub use chain::FastData;
pub use error::Error;

/// The chain configuration: FAST DATA uses Substrate's defaults (sr25519 `MultiSignature`,
/// `AccountId32`, `u32` block numbers, `MultiAddress<AccountId32, ()>`).
pub type FastDataConfig = subxt::SubstrateConfig;

/// A client connected to a FAST DATA node.
pub type Client = subxt::OnlineClient<FastDataConfig>;

/// Default RPC endpoint of a local node.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:9944";

/// Connects to the node at `url` (plain `ws://` is accepted for local nodes).
pub async fn connect(url: &str) -> Result<Client, subxt::Error> {
    Ok(Client::from_insecure_url(url).await?)
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A nonce for tokens, access requests and receipts: strictly increasing within the process
/// and, being based on the clock in microseconds, across restarts.
pub fn fresh_nonce() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn nonces_strictly_increase() {
        let mut last = 0;
        for _ in 0..10_000 {
            let n = super::fresh_nonce();
            assert!(n > last);
            last = n;
        }
    }
}
