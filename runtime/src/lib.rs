//! The FAST DATA runtime: a parachain runtime for a fair, secure and trusted marketplace of
//! industrial IoT data streams.
//!
//! Shaped like polkadot-sdk's `templates/parachain`: this file declares the runtime and its
//! basic types, `configs/` holds one `impl Config` per pallet, `apis.rs` the runtime APIs,
//! `genesis_config_presets.rs` the `development` and `local_testnet` presets.
#![cfg_attr(not(feature = "std"), no_std)]
#![recursion_limit = "256"]

#[cfg(feature = "std")]
include!(concat!(env!("OUT_DIR"), "/wasm_binary.rs"));

extern crate alloc;

pub mod apis;
#[cfg(feature = "runtime-benchmarks")]
mod benchmarks;
pub mod configs;
pub mod genesis_config_presets;

use alloc::vec::Vec;

use sp_runtime::{
    generic, impl_opaque_keys,
    traits::{BlakeTwo256, IdentifyAccount, Verify},
    MultiAddress, MultiSignature,
};
use sp_version::RuntimeVersion;

pub use sp_consensus_aura::sr25519::AuthorityId as AuraId;
pub use sp_runtime::{Perbill, Permill};

/// Signature of a transaction (sr25519 for the dev keys, any of the three schemes in general).
pub type Signature = MultiSignature;
/// An account: the public key of the signing scheme.
pub type AccountId = <<Signature as Verify>::Signer as IdentifyAccount>::AccountId;
/// Balance of an account (12 decimals, token FAST).
pub type Balance = u128;
/// Transaction index of an account.
pub type Nonce = u32;
/// Hash of blocks and tries.
pub type Hash = sp_core::H256;
/// Block number.
pub type BlockNumber = u32;
/// Address format of extrinsics.
pub type Address = MultiAddress<AccountId, ()>;
/// Block header.
pub type Header = generic::Header<BlockNumber, BlakeTwo256>;
/// Block.
pub type Block = generic::Block<Header, UncheckedExtrinsic>;
/// Signed block with justifications.
pub type SignedBlock = generic::SignedBlock<Block>;

/// Transaction extensions checked for every signed transaction.
pub type TxExtension = (
    frame_system::CheckNonZeroSender<Runtime>,
    frame_system::CheckSpecVersion<Runtime>,
    frame_system::CheckTxVersion<Runtime>,
    frame_system::CheckGenesis<Runtime>,
    frame_system::CheckMortality<Runtime>,
    frame_system::CheckNonce<Runtime>,
    frame_system::CheckWeight<Runtime>,
    pallet_transaction_payment::ChargeTransactionPayment<Runtime>,
    frame_system::WeightReclaim<Runtime>,
);

/// Extrinsic format of this runtime.
pub type UncheckedExtrinsic =
    generic::UncheckedExtrinsic<Address, RuntimeCall, Signature, TxExtension>;

/// Dispatches extrinsics to the pallets.
pub type Executive = frame_executive::Executive<
    Runtime,
    Block,
    frame_system::ChainContext<Runtime>,
    Runtime,
    AllPalletsWithSystem,
>;

/// Opaque types for the node, independent of the runtime's extrinsic format.
pub mod opaque {
    use super::*;
    pub use sp_runtime::OpaqueExtrinsic as UncheckedExtrinsic;
    /// Opaque block header.
    pub type Header = generic::Header<BlockNumber, BlakeTwo256>;
    /// Opaque block.
    pub type Block = generic::Block<Header, UncheckedExtrinsic>;
}

impl_opaque_keys! {
    /// Session keys of a collator.
    pub struct SessionKeys {
        /// Aura block-authoring key.
        pub aura: Aura,
    }
}

/// Runtime version.
#[sp_version::runtime_version]
pub const VERSION: RuntimeVersion = RuntimeVersion {
    spec_name: alloc::borrow::Cow::Borrowed("fastdata"),
    impl_name: alloc::borrow::Cow::Borrowed("fastdata"),
    authoring_version: 1,
    spec_version: 1,
    impl_version: 0,
    apis: apis::RUNTIME_API_VERSIONS,
    transaction_version: 1,
    system_version: 1,
};

/// Target block time under a relay chain. The dev node seals blocks on its own timer
/// (`--dev-block-time`); each block then advances chain time by one slot.
pub const MILLISECS_PER_BLOCK: u64 = 6000;
/// Aura slot duration (cannot change after genesis).
pub const SLOT_DURATION: u64 = MILLISECS_PER_BLOCK;
/// Blocks per minute.
pub const MINUTES: BlockNumber = 60_000 / (MILLISECS_PER_BLOCK as BlockNumber);
/// Blocks per hour.
pub const HOURS: BlockNumber = MINUTES * 60;
/// Blocks per day.
pub const DAYS: BlockNumber = HOURS * 24;

/// One FAST token, a thousandth and a millionth of one, and the token's symbol and decimals
/// (defined once, in `fastdata-primitives`).
pub use fastdata_primitives::{
    MICROUNIT, MILLIUNIT, SS58_PREFIX, TOKEN_DECIMALS, TOKEN_SYMBOL, UNIT,
};
/// Minimum balance of an account.
pub const EXISTENTIAL_DEPOSIT: Balance = MILLIUNIT;

/// Para id of the FAST DATA parachain in dev and local networks.
pub const PARACHAIN_ID: u32 = fastdata_primitives::PARA_ID;

#[frame_support::runtime]
mod runtime {
    /// The FAST DATA runtime.
    #[runtime::runtime]
    #[runtime::derive(
        RuntimeCall,
        RuntimeEvent,
        RuntimeError,
        RuntimeOrigin,
        RuntimeFreezeReason,
        RuntimeHoldReason,
        RuntimeSlashReason,
        RuntimeLockId,
        RuntimeTask,
        RuntimeViewFunction
    )]
    pub struct Runtime;

    #[runtime::pallet_index(0)]
    pub type System = frame_system;
    #[runtime::pallet_index(1)]
    pub type ParachainSystem = cumulus_pallet_parachain_system;
    #[runtime::pallet_index(2)]
    pub type Timestamp = pallet_timestamp;
    #[runtime::pallet_index(3)]
    pub type ParachainInfo = parachain_info;

    #[runtime::pallet_index(10)]
    pub type Balances = pallet_balances;
    #[runtime::pallet_index(11)]
    pub type TransactionPayment = pallet_transaction_payment;

    #[runtime::pallet_index(15)]
    pub type Sudo = pallet_sudo;
    #[runtime::pallet_index(16)]
    pub type Utility = pallet_utility;
    #[runtime::pallet_index(17)]
    pub type Arbiters = pallet_collective<Instance1>;

    #[runtime::pallet_index(23)]
    pub type Aura = pallet_aura;
    #[runtime::pallet_index(24)]
    pub type AuraExt = cumulus_pallet_aura_ext;

    // The marketplace.
    #[runtime::pallet_index(50)]
    pub type Did = pallet_did;
    #[runtime::pallet_index(51)]
    pub type Trust = pallet_trust;
    #[runtime::pallet_index(52)]
    pub type Operators = pallet_operators;
    #[runtime::pallet_index(53)]
    pub type Offers = pallet_offers;
    #[runtime::pallet_index(54)]
    pub type Escrow = pallet_escrow;
}

cumulus_pallet_parachain_system::register_validate_block! {
    Runtime = Runtime,
    BlockExecutor = cumulus_pallet_aura_ext::BlockExecutor::<Runtime, Executive>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use frame_support::traits::Get;
    use sp_genesis_builder::{DEV_RUNTIME_PRESET, LOCAL_TESTNET_RUNTIME_PRESET};

    #[test]
    fn offers_take_the_operators_replication_limit() {
        use fastdata_primitives::OperatorProvider;
        let limit = fastdata_primitives::MAX_REPLICATION;
        assert_eq!(
            <<Runtime as pallet_operators::Config>::MaxReplication as Get<u32>>::get(),
            limit
        );
        // The one limit, declared by `pallet-operators`, is what `pallet-offers` checks
        // offers' replication against.
        assert_eq!(
            <<Runtime as pallet_offers::Config>::Operators as OperatorProvider<
                AccountId,
                Balance,
            >>::max_replication(),
            limit
        );
        assert_eq!(
            <<Runtime as frame_system::Config>::SS58Prefix as Get<u16>>::get(),
            fastdata_primitives::SS58_PREFIX
        );
    }

    #[test]
    fn every_preset_registers_the_shared_para_id() {
        for preset in [DEV_RUNTIME_PRESET, LOCAL_TESTNET_RUNTIME_PRESET] {
            let json = genesis_config_presets::get_preset(&preset.into()).expect("known preset");
            let value: serde_json::Value = serde_json::from_slice(&json).expect("preset is JSON");
            assert_eq!(
                value["parachainInfo"]["parachainId"],
                serde_json::json!(fastdata_primitives::PARA_ID),
                "{preset}"
            );
        }
    }
}
