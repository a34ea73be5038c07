//! Runtime APIs: what the node, polkadot.js apps, subxt and the FAST DATA tools call.

use alloc::vec::Vec;
use frame_support::{
    genesis_builder_helper::{build_state, get_preset},
    weights::Weight,
};
use sp_api::impl_runtime_apis;
// Provides `create_extrinsics` and `check_extrinsics` on inherent data.
use crate::InherentDataExt;
use sp_core::{crypto::KeyTypeId, OpaqueMetadata};
use sp_runtime::{
    traits::Block as BlockT,
    transaction_validity::{TransactionSource, TransactionValidity},
    ApplyExtrinsicResult,
};
use sp_version::RuntimeVersion;

use fastdata_primitives::{
    api_identity::{DidDocumentInfo, ReputationInfo},
    api_market::{OfferListing, OfferPage, OperatorView, StreamView},
    escrow::PurchaseView,
    tokens::{SignedUploadToken, TokenError},
    EpochIndex, OfferId, PurchaseId, Score, StreamId, X25519Public,
};

use crate::{
    configs::ConsensusHook, AccountId, AuraId, Balance, Block, BlockNumber, Did, Escrow, Executive,
    Nonce, Offers, Operators, ParachainInfo, ParachainSystem, Runtime, RuntimeCall,
    RuntimeGenesisConfig, SessionKeys, System, TransactionPayment, Trust, SLOT_DURATION, VERSION,
};

impl_runtime_apis! {
    impl sp_consensus_aura::AuraApi<Block, AuraId> for Runtime {
        fn slot_duration() -> sp_consensus_aura::SlotDuration {
            sp_consensus_aura::SlotDuration::from_millis(SLOT_DURATION)
        }

        fn authorities() -> Vec<AuraId> {
            pallet_aura::Authorities::<Runtime>::get().into_inner()
        }
    }

    impl cumulus_primitives_aura::AuraUnincludedSegmentApi<Block> for Runtime {
        fn can_build_upon(
            included_hash: <Block as BlockT>::Hash,
            slot: cumulus_primitives_aura::Slot,
        ) -> bool {
            ConsensusHook::can_build_upon(included_hash, slot)
        }
    }

    impl sp_api::Core<Block> for Runtime {
        fn version() -> RuntimeVersion {
            VERSION
        }

        fn execute_block(block: <Block as BlockT>::LazyBlock) {
            Executive::execute_block(block)
        }

        fn initialize_block(header: &<Block as BlockT>::Header) -> sp_runtime::ExtrinsicInclusionMode {
            Executive::initialize_block(header)
        }
    }

    impl sp_api::Metadata<Block> for Runtime {
        fn metadata() -> OpaqueMetadata {
            OpaqueMetadata::new(Runtime::metadata().into())
        }

        fn metadata_at_version(version: u32) -> Option<OpaqueMetadata> {
            Runtime::metadata_at_version(version)
        }

        fn metadata_versions() -> Vec<u32> {
            Runtime::metadata_versions()
        }
    }

    impl frame_support::view_functions::runtime_api::RuntimeViewFunction<Block> for Runtime {
        fn execute_view_function(
            id: frame_support::view_functions::ViewFunctionId,
            input: Vec<u8>,
        ) -> Result<Vec<u8>, frame_support::view_functions::ViewFunctionDispatchError> {
            Runtime::execute_view_function(id, input)
        }
    }

    impl sp_block_builder::BlockBuilder<Block> for Runtime {
        fn apply_extrinsic(extrinsic: <Block as BlockT>::Extrinsic) -> ApplyExtrinsicResult {
            Executive::apply_extrinsic(extrinsic)
        }

        fn finalize_block() -> <Block as BlockT>::Header {
            Executive::finalize_block()
        }

        fn inherent_extrinsics(data: sp_inherents::InherentData) -> Vec<<Block as BlockT>::Extrinsic> {
            data.create_extrinsics()
        }

        fn check_inherents(
            block: <Block as BlockT>::LazyBlock,
            data: sp_inherents::InherentData,
        ) -> sp_inherents::CheckInherentsResult {
            data.check_extrinsics(&block)
        }
    }

    impl sp_transaction_pool::runtime_api::TaggedTransactionQueue<Block> for Runtime {
        fn validate_transaction(
            source: TransactionSource,
            tx: <Block as BlockT>::Extrinsic,
            block_hash: <Block as BlockT>::Hash,
        ) -> TransactionValidity {
            Executive::validate_transaction(source, tx, block_hash)
        }
    }

    impl sp_offchain::OffchainWorkerApi<Block> for Runtime {
        fn offchain_worker(header: &<Block as BlockT>::Header) {
            Executive::offchain_worker(header)
        }
    }

    impl sp_session::SessionKeys<Block> for Runtime {
        fn generate_session_keys(
            owner: Vec<u8>,
            seed: Option<Vec<u8>>,
        ) -> sp_session::OpaqueGeneratedSessionKeys {
            SessionKeys::generate(&owner, seed).into()
        }

        fn decode_session_keys(encoded: Vec<u8>) -> Option<Vec<(Vec<u8>, KeyTypeId)>> {
            SessionKeys::decode_into_raw_public_keys(&encoded)
        }
    }

    impl frame_system_rpc_runtime_api::AccountNonceApi<Block, AccountId, Nonce> for Runtime {
        fn account_nonce(account: AccountId) -> Nonce {
            System::account_nonce(account)
        }
    }

    impl pallet_transaction_payment_rpc_runtime_api::TransactionPaymentApi<Block, Balance> for Runtime {
        fn query_info(
            uxt: <Block as BlockT>::Extrinsic,
            len: u32,
        ) -> pallet_transaction_payment_rpc_runtime_api::RuntimeDispatchInfo<Balance> {
            TransactionPayment::query_info(uxt, len)
        }
        fn query_fee_details(
            uxt: <Block as BlockT>::Extrinsic,
            len: u32,
        ) -> pallet_transaction_payment::FeeDetails<Balance> {
            TransactionPayment::query_fee_details(uxt, len)
        }
        fn query_weight_to_fee(weight: Weight) -> Balance {
            TransactionPayment::weight_to_fee(weight)
        }
        fn query_length_to_fee(length: u32) -> Balance {
            TransactionPayment::length_to_fee(length)
        }
    }

    impl pallet_transaction_payment_rpc_runtime_api::TransactionPaymentCallApi<Block, Balance, RuntimeCall>
        for Runtime
    {
        fn query_call_info(
            call: RuntimeCall,
            len: u32,
        ) -> pallet_transaction_payment::RuntimeDispatchInfo<Balance> {
            TransactionPayment::query_call_info(call, len)
        }
        fn query_call_fee_details(
            call: RuntimeCall,
            len: u32,
        ) -> pallet_transaction_payment::FeeDetails<Balance> {
            TransactionPayment::query_call_fee_details(call, len)
        }
        fn query_weight_to_fee(weight: Weight) -> Balance {
            TransactionPayment::weight_to_fee(weight)
        }
        fn query_length_to_fee(length: u32) -> Balance {
            TransactionPayment::length_to_fee(length)
        }
    }

    impl cumulus_primitives_core::CollectCollationInfo<Block> for Runtime {
        fn collect_collation_info(header: &<Block as BlockT>::Header) -> cumulus_primitives_core::CollationInfo {
            ParachainSystem::collect_collation_info(header)
        }
    }

    impl cumulus_primitives_core::GetParachainInfo<Block> for Runtime {
        fn parachain_id() -> cumulus_primitives_core::ParaId {
            ParachainInfo::parachain_id()
        }
    }

    impl cumulus_primitives_core::RelayParentOffsetApi<Block> for Runtime {
        fn relay_parent_offset() -> u32 {
            0
        }

        fn max_claim_queue_offset() -> u8 {
            ParachainSystem::max_claim_queue_offset()
        }
    }

    impl cumulus_primitives_core::TargetBlockRate<Block> for Runtime {
        fn target_block_rate() -> u32 {
            1
        }
    }

    impl fastdata_primitives::api_identity::DidApi<Block, AccountId, Balance, BlockNumber> for Runtime {
        fn did_document(who: AccountId) -> Option<DidDocumentInfo<AccountId, Balance, BlockNumber>> {
            Did::did_document(&who)
        }

        fn is_verified(who: AccountId) -> bool {
            Did::is_verified(&who)
        }

        fn key_agreement_key(who: AccountId) -> Option<X25519Public> {
            Did::key_agreement_key(&who)
        }
    }

    impl fastdata_primitives::api_identity::TrustApi<Block, AccountId> for Runtime {
        fn trust_score(who: AccountId) -> Score {
            Trust::trust_score(&who)
        }

        fn credibility(who: AccountId) -> Score {
            Trust::credibility(&who)
        }

        fn reputation(who: AccountId) -> ReputationInfo {
            Trust::reputation(&who)
        }

        fn trust_scores(who: Vec<AccountId>) -> Vec<Score> {
            Trust::trust_scores(who)
        }
    }

    impl fastdata_primitives::api_market::OffersApi<Block, AccountId, Balance, BlockNumber> for Runtime {
        fn offers(start: OfferId, limit: u32) -> OfferPage<AccountId, Balance, BlockNumber> {
            Offers::offers_page(start, limit)
        }

        fn offers_by_seller(seller: AccountId) -> Vec<OfferListing<AccountId, Balance, BlockNumber>> {
            Offers::offers_by_seller(&seller)
        }

        fn offer(id: OfferId) -> Option<OfferListing<AccountId, Balance, BlockNumber>> {
            Offers::offer_listing(id)
        }

        fn stream(id: StreamId) -> Option<StreamView<AccountId, BlockNumber>> {
            Offers::stream_view(id)
        }

        fn check_upload_token(
            token: SignedUploadToken<AccountId, BlockNumber>,
            operator: AccountId,
            last_nonce: Option<u64>,
        ) -> Result<(), TokenError> {
            Offers::check_upload_token(&token, &operator, last_nonce)
        }
    }

    impl fastdata_primitives::api_market::OperatorsApi<Block, AccountId, Balance, BlockNumber> for Runtime {
        fn operator(who: AccountId) -> Option<OperatorView<AccountId, Balance, BlockNumber>> {
            Operators::operator_view(who)
        }

        fn operators() -> Vec<OperatorView<AccountId, Balance, BlockNumber>> {
            Operators::operator_views()
        }

        fn streams_of(who: AccountId) -> Vec<StreamId> {
            Operators::streams_of(&who)
        }
    }

    impl fastdata_primitives::api_escrow::EscrowApi<Block, AccountId, Balance, BlockNumber> for Runtime {
        fn purchases_of_buyer(buyer: AccountId) -> Vec<PurchaseId> {
            Escrow::purchases_of_buyer(&buyer)
        }

        fn purchases_of_offer(offer: OfferId) -> Vec<PurchaseId> {
            Escrow::purchases_of_offer(offer)
        }

        fn purchase(id: PurchaseId) -> Option<PurchaseView<AccountId, Balance, BlockNumber>> {
            Escrow::purchase_view(id)
        }

        fn sealed_key(id: PurchaseId, epoch: EpochIndex) -> Option<Vec<u8>> {
            Escrow::sealed_key(id, epoch)
        }
    }

    #[cfg(feature = "try-runtime")]
    impl frame_try_runtime::TryRuntime<Block> for Runtime {
        fn on_runtime_upgrade(checks: frame_try_runtime::UpgradeCheckSelect) -> (Weight, Weight) {
            let weight = Executive::try_runtime_upgrade(checks)
                .unwrap_or_else(|e| panic!("try_runtime_upgrade failed: {e:?}"));
            (weight, crate::configs::RuntimeBlockWeights::get().max_block)
        }

        fn execute_block(
            block: <Block as BlockT>::LazyBlock,
            state_root_check: bool,
            signature_check: bool,
            select: frame_try_runtime::TryStateSelect,
        ) -> Weight {
            Executive::try_execute_block(block, state_root_check, signature_check, select)
                .unwrap_or_else(|e| panic!("try_execute_block failed: {e:?}"))
        }
    }

    #[cfg(feature = "runtime-benchmarks")]
    impl frame_benchmarking::Benchmark<Block> for Runtime {
        fn benchmark_metadata(extra: bool) -> (
            Vec<frame_benchmarking::BenchmarkList>,
            Vec<frame_support::traits::StorageInfo>,
        ) {
            crate::benchmarks::metadata(extra)
        }

        fn dispatch_benchmark(
            config: frame_benchmarking::BenchmarkConfig,
        ) -> Result<Vec<frame_benchmarking::BenchmarkBatch>, alloc::string::String> {
            crate::benchmarks::dispatch(config)
        }
    }

    impl sp_genesis_builder::GenesisBuilder<Block> for Runtime {
        fn build_state(config: Vec<u8>) -> sp_genesis_builder::Result {
            build_state::<RuntimeGenesisConfig>(config)
        }

        fn get_preset(id: &Option<sp_genesis_builder::PresetId>) -> Option<Vec<u8>> {
            get_preset::<RuntimeGenesisConfig>(id, crate::genesis_config_presets::get_preset)
        }

        fn preset_names() -> Vec<sp_genesis_builder::PresetId> {
            crate::genesis_config_presets::preset_names()
        }
    }
}
