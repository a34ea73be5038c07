//! Types and traits shared on and off chain by FAST DATA.
//!
//! Pallets know each other only through the traits declared here and wired in the runtime;
//! the operator daemon and the SDK use the same types to sign and check tokens, receipts
//! and sealed keys.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

/// Account identifiers used across the marketplace (sr25519 public keys, as in the runtime).
pub type AccountId = sp_runtime::AccountId32;
/// Balance type of the runtime.
pub type Balance = u128;
/// Block number type of the runtime.
pub type BlockNumber = u32;

/// Symbol of the FAST DATA token.
pub const TOKEN_SYMBOL: &str = "FAST";
/// Decimals of the token: one FAST is `10^TOKEN_DECIMALS` planck.
pub const TOKEN_DECIMALS: u8 = 12;
/// One FAST in planck.
pub const UNIT: Balance = 10u128.pow(TOKEN_DECIMALS as u32);
/// A thousandth of a FAST.
pub const MILLIUNIT: Balance = UNIT / 1_000;
/// A millionth of a FAST.
pub const MICROUNIT: Balance = UNIT / 1_000_000;
/// SS58 address prefix of the chain (the generic Substrate one).
pub const SS58_PREFIX: u16 = 42;
/// Para id of the FAST DATA parachain in dev and local networks (runtime presets, chain specs,
/// `zombienet/network.toml`).
pub const PARA_ID: u32 = 2000;
/// Most operators a stream is replicated to: `pallet-operators`' `MaxReplication` in the
/// runtime, which `pallet-offers` reads through [`OperatorProvider::max_replication`].
pub const MAX_REPLICATION: u32 = 5;

pub mod traits;
pub use traits::*;

/// A chain's genesis hash as the [`sp_core::H256`] every off-chain signature is bound to,
/// from the bytes of a runtime's `Hash` (32 bytes; shorter input is zero-padded, longer
/// truncated).
pub fn genesis_h256(hash: &[u8]) -> sp_core::H256 {
    let mut bytes = [0u8; 32];
    let n = hash.len().min(32);
    bytes[..n].copy_from_slice(&hash[..n]);
    sp_core::H256(bytes)
}

pub mod api_identity;

pub mod api_escrow;
pub mod api_market;
pub mod custody;
pub mod escrow;
pub mod heads;
pub mod receipt;
pub mod sealed;
pub mod tokens;

/// The operator daemon's HTTP protocol (paths, headers, request and answer types).
#[cfg(feature = "std")]
pub mod operator_api;

/// The segment envelope (AES-256-GCM + HMAC-SHA256 with a clear, authenticated header).
#[cfg(feature = "envelope")]
pub mod envelope;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_the_decimals() {
        assert_eq!(UNIT, 1_000_000_000_000);
        assert_eq!(MILLIUNIT * 1_000, UNIT);
        assert_eq!(MICROUNIT * 1_000_000, UNIT);
        assert_eq!(UNIT, 10u128.pow(u32::from(TOKEN_DECIMALS)));
    }
}
