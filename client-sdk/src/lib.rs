//! FAST DATA SDK: typed access to the FAST DATA chain for sellers and buyers, on subxt.
//!
//! This crate will hold the seller and buyer flows (offers, streams, purchases, sealed keys,
//! receipts) and the `fastdata` CLI. Today it provides the chain connection used by the
//! tools and tests.

pub use subxt;
pub use subxt_signer;

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
