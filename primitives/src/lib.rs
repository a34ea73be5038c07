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
