//! The marketplace pallets: identity, trust, offers, operators and escrow, wired to each
//! other through the traits of `fastdata-primitives`.

use cumulus_pallet_parachain_system::{RelayChainStateProof, ValidationData};
use cumulus_primitives_core::{
    relay_chain::well_known_keys::CURRENT_BLOCK_RANDOMNESS, PersistedValidationData,
};
use frame_support::{parameter_types, weights::Weight, PalletId};
use sp_runtime::{
    traits::{AccountIdConversion, Verify},
    Perbill,
};

use crate::{
    AccountId, Balance, Balances, BlockNumber, Did, Escrow, Hash, Offers, Operators, Runtime,
    RuntimeHoldReason, Signature, System, Trust, DAYS, HOURS, MICROUNIT, MILLIUNIT, MINUTES, UNIT,
};
use fastdata_primitives::SCORE_ONE;

/// The relay parent's BABE VRF output as a relay-chain state proof shows it.
enum RelayVrf {
    /// The output (`Babe::AuthorVrfRandomness`).
    Output(Hash),
    /// The relay state proves there is none: a dev chain's mock relay state.
    None,
    /// The proof leaves it out.
    LeftOut,
}

fn relay_vrf_output(state: &RelayChainStateProof) -> RelayVrf {
    match state.read_optional_entry::<Option<[u8; 32]>>(CURRENT_BLOCK_RANDOMNESS) {
        Ok(Some(Some(output))) => RelayVrf::Output(Hash::from(output)),
        Ok(_) => RelayVrf::None,
        Err(_) => RelayVrf::LeftOut,
    }
}

/// Draws the pending operator assignments inside the parachain inherent, before any
/// transaction of the block can change the candidates, with the relay parent's VRF output from
/// the relay-chain state proof the validators check (the parent hash on a dev chain, whose
/// mock relay state proves there is none). A proof that leaves the output out draws nothing.
pub struct DrawAssignments;
impl cumulus_pallet_parachain_system::OnSystemEvent for DrawAssignments {
    fn on_validation_data(_data: &PersistedValidationData) {}

    fn on_validation_code_applied() {}

    fn on_relay_state_proof(state: &RelayChainStateProof) -> Weight {
        let Some(data) = ValidationData::<Runtime>::get() else {
            return Weight::zero();
        };
        let output = match relay_vrf_output(state) {
            RelayVrf::Output(output) => output,
            RelayVrf::None => System::parent_hash(),
            RelayVrf::LeftOut => return Weight::zero(),
        };
        Operators::draw_pending(output, data.relay_parent_number)
    }
}

parameter_types! {
    pub const DidDeposit: Balance = 100 * MILLIUNIT;
    pub const CredentialDeposit: Balance = 50 * MILLIUNIT;
    pub const DidByteDeposit: Balance = 100 * MICROUNIT;
}

impl pallet_did::Config for Runtime {
    type Currency = Balances;
    type RuntimeHoldReason = RuntimeHoldReason;
    type IssuerOrigin = super::ArbitersTwoThirds;
    type DidDeposit = DidDeposit;
    type CredentialDeposit = CredentialDeposit;
    type ByteDeposit = DidByteDeposit;
    type MaxServices = frame_support::traits::ConstU32<8>;
    type MaxServiceFieldLength = frame_support::traits::ConstU32<32>;
    type MaxServiceUrlLength = frame_support::traits::ConstU32<256>;
    type MaxIssuers = frame_support::traits::ConstU32<64>;
    type MaxIssuerNameLength = frame_support::traits::ConstU32<64>;
    type MaxCredentialTypeLength = frame_support::traits::ConstU32<32>;
    type MaxCredentialsPerDid = frame_support::traits::ConstU32<16>;
    type WeightInfo = pallet_did::weights::SubstrateWeight<Runtime>;
}

parameter_types! {
    pub const RatingDeposit: Balance = 10 * MILLIUNIT;
    /// Trust epochs are an hour of dev blocks, so a demo sees the window move.
    pub const TrustEpochLength: BlockNumber = 60 * MINUTES;
    pub const WindowEpochs: u32 = 30;
    pub const RatingPeriod: BlockNumber = 14 * DAYS;
    pub const PriorWeight: u32 = SCORE_ONE;
    pub const BaseCredibility: u32 = SCORE_ONE / 2;
    pub const ContextWeight: Perbill = Perbill::from_percent(20);
    pub const ReferenceValue: Balance = 10 * UNIT;
}

impl pallet_trust::Config for Runtime {
    type Currency = Balances;
    type RuntimeHoldReason = RuntimeHoldReason;
    type Identity = Did;
    type Trades = Escrow;
    type RatingDeposit = RatingDeposit;
    type EpochLength = TrustEpochLength;
    type WindowEpochs = WindowEpochs;
    type RatingPeriod = RatingPeriod;
    type PriorWeight = PriorWeight;
    type BaseCredibility = BaseCredibility;
    type ContextWeight = ContextWeight;
    type ReferenceValue = ReferenceValue;
    type WeightInfo = pallet_trust::weights::SubstrateWeight<Runtime>;
    #[cfg(feature = "runtime-benchmarks")]
    type BenchmarkHelper = crate::benchmarks::Helper;
}

parameter_types! {
    pub const MinStake: Balance = 100 * UNIT;
    /// A departing operator's stake stays slashable for a week after it stops serving,
    /// longer than buyers need to compare the statements it signed (and than a dispute).
    pub const UnbondingPeriod: BlockNumber = 7 * DAYS;
    pub const HeartbeatTimeout: BlockNumber = 10 * MINUTES;
    pub const MaxTrustBoost: u32 = 4 * SCORE_ONE;
    /// Relay blocks between a registration and its operators' draw: more than the relay
    /// parents a collator may build on, so nobody knows the output at registration.
    pub const AssignmentDelay: BlockNumber = 4;
}

parameter_types! {
    /// An operator loses a tenth of its stake per segment it is proven to have served
    /// other than it stored.
    pub const EquivocationSlash: sp_runtime::Perbill = sp_runtime::Perbill::from_percent(10);
}

parameter_types! {
    /// Hosting is paid per MB stored per hour.
    pub const HostingPeriod: BlockNumber = HOURS;
    pub const HostingPricePerMb: Balance = MILLIUNIT;
}

impl pallet_operators::Config for Runtime {
    type Currency = Balances;
    type RuntimeHoldReason = RuntimeHoldReason;
    type Trust = Trust;
    type RandomnessClock = cumulus_pallet_parachain_system::RelaychainDataProvider<Runtime>;
    type AssignmentDelay = AssignmentDelay;
    type MaxPendingAssignments = frame_support::traits::ConstU32<256>;
    type SlashOrigin = super::ArbitersTwoThirds;
    type OnSlash = ();
    type StatementSignature = Signature;
    type StatementSigner = <Signature as Verify>::Signer;
    type EquivocationSlash = EquivocationSlash;
    type MinStake = MinStake;
    type UnbondingPeriod = UnbondingPeriod;
    type HeartbeatTimeout = HeartbeatTimeout;
    type MaxOperators = frame_support::traits::ConstU32<100>;
    type MaxReplication = frame_support::traits::ConstU32<{ fastdata_primitives::MAX_REPLICATION }>;
    type MaxStreamsPerOperator = frame_support::traits::ConstU32<256>;
    type MaxUrlLen = frame_support::traits::ConstU32<256>;
    type MaxLivenessChecksPerBlock = frame_support::traits::ConstU32<8>;
    type MaxTrustBoost = MaxTrustBoost;
    type HostingPeriod = HostingPeriod;
    type HostingPricePerMb = HostingPricePerMb;
    type MaxQuotaMb = frame_support::traits::ConstU32<100_000>;
    type WeightInfo = pallet_operators::weights::SubstrateWeight<Runtime>;
    #[cfg(feature = "runtime-benchmarks")]
    type BenchmarkHelper = crate::benchmarks::Helper;
}

parameter_types! {
    pub const OfferDeposit: Balance = UNIT;
    pub const OfferByteDeposit: Balance = 10 * MILLIUNIT;
    pub const StreamDeposit: Balance = 2 * UNIT;
    pub const EpochDeposit: Balance = 10 * MILLIUNIT;
    pub const MaxBatchSegments: u64 = 10_000_000;
    pub const MinPeriod: BlockNumber = 10;
    pub const MaxRetention: BlockNumber = 365 * DAYS;
    pub const RemovalDelay: BlockNumber = 100;
}

impl pallet_offers::Config for Runtime {
    type Currency = Balances;
    type RuntimeHoldReason = RuntimeHoldReason;
    type Identity = Did;
    type Trust = Trust;
    type Operators = Operators;
    type OfferDeposit = OfferDeposit;
    type ByteDeposit = OfferByteDeposit;
    type StreamDeposit = StreamDeposit;
    type EpochDeposit = EpochDeposit;
    type MaxTopicLen = frame_support::traits::ConstU32<128>;
    type MaxStreamNameLen = frame_support::traits::ConstU32<64>;
    type MaxOffersPerSeller = frame_support::traits::ConstU32<100>;
    type MaxRetainedEpochs = frame_support::traits::ConstU32<1024>;
    type MaxBatchSegments = MaxBatchSegments;
    type MinPeriod = MinPeriod;
    type MaxRetention = MaxRetention;
    type Purchases = Escrow;
    type RemovalDelay = RemovalDelay;
    type MaxPageSize = frame_support::traits::ConstU32<100>;
    type WeightInfo = pallet_offers::weights::SubstrateWeight<Runtime>;
    #[cfg(feature = "runtime-benchmarks")]
    type BenchmarkHelper = crate::benchmarks::Helper;
}

parameter_types! {
    /// The protocol treasury: receives the protocol fee of every settlement.
    pub TreasuryAccount: AccountId = TREASURY_PALLET_ID.into_account_truncating();
    pub const ProtocolFee: Perbill = Perbill::from_percent(2);
    pub const StorageShare: Perbill = Perbill::from_percent(20);
    pub const PurchaseDeposit: Balance = 10 * MILLIUNIT;
    pub const KeyDepositBase: Balance = 5 * MILLIUNIT;
    pub const KeyDepositPerByte: Balance = 10 * MICROUNIT;
    pub const DisputeDeposit: Balance = UNIT;
    /// Arbitration has two days; then the escrow's rule ends the dispute.
    pub const DisputePeriod: BlockNumber = 2 * DAYS;
    pub const KeyDeliveryPeriod: BlockNumber = 10 * MINUTES;
    pub const ClaimGracePeriod: BlockNumber = 5 * MINUTES;
    pub const BatchAccessPeriod: BlockNumber = DAYS;
    pub const RetentionPeriod: BlockNumber = 30 * DAYS;
}

/// Pallet id whose account is the protocol treasury.
pub const TREASURY_PALLET_ID: PalletId = PalletId(*b"fd/trsry");

impl pallet_escrow::Config for Runtime {
    type Currency = Balances;
    type RuntimeHoldReason = RuntimeHoldReason;
    type Identity = Did;
    type Trust = Trust;
    type Offers = Offers;
    type Operators = Operators;
    type ReceiptSignature = Signature;
    type ReceiptSigner = <Signature as Verify>::Signer;
    type DisputeOrigin = super::ArbitersMajority;
    type TreasuryAccount = TreasuryAccount;
    type ProtocolFee = ProtocolFee;
    type StorageShare = StorageShare;
    type PurchaseDeposit = PurchaseDeposit;
    type KeyDepositBase = KeyDepositBase;
    type KeyDepositPerByte = KeyDepositPerByte;
    type DisputeDeposit = DisputeDeposit;
    type DisputePeriod = DisputePeriod;
    type KeyDeliveryPeriod = KeyDeliveryPeriod;
    type ClaimGracePeriod = ClaimGracePeriod;
    type BatchAccessPeriod = BatchAccessPeriod;
    type RetentionPeriod = RetentionPeriod;
    type MaxPeriods = frame_support::traits::ConstU32<365>;
    type MaxEpochsPerPurchase = frame_support::traits::ConstU32<256>;
    type MaxOperatorsPerPurchase = frame_support::traits::ConstU32<8>;
    type MaxSealedKeyLen =
        frame_support::traits::ConstU32<{ fastdata_primitives::sealed::MAX_SEALED_KEY_LEN }>;
    type WeightInfo = pallet_escrow::weights::SubstrateWeight<Runtime>;
    #[cfg(feature = "runtime-benchmarks")]
    type BenchmarkHelper = crate::benchmarks::Helper;
}
