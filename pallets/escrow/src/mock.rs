//! Test runtime: System, Balances and Escrow, with the other pallets replaced by mocks whose
//! state lives in a thread-local [`MockState`].

use crate::{self as pallet_escrow};
use core::cell::RefCell;
use fastdata_primitives::{
    receipt::Receipt, sealed, EpochIndex, IdentityProvider, OfferId, OfferProvider, OfferSummary,
    OperatorProvider, PaymentMode, PurchaseId, Score, Sequence, StreamId, StreamSummary,
    TrustProvider, X25519Public,
};
use frame_support::{
    derive_impl, parameter_types,
    traits::{ConstU32, ConstU64, Hooks},
    weights::Weight,
};
use frame_system::EnsureRoot;
use sp_core::{sr25519, Pair, H256};
use sp_runtime::{
    traits::{IdentifyAccount, IdentityLookup, Verify},
    BuildStorage, DispatchError, MultiSignature, Perbill,
};
use std::collections::{BTreeMap, BTreeSet};

type Block = frame_system::mocking::MockBlock<Test>;
/// The signer type of `MultiSignature`.
pub type AccountPublic = <MultiSignature as Verify>::Signer;
/// Accounts are `AccountId32`, as in the runtime, so receipts carry real sr25519 signatures.
pub type AccountId = <AccountPublic as IdentifyAccount>::AccountId;
/// Balance of the test runtime.
pub type Balance = u64;
/// Block number of the test runtime.
pub type BlockNumber = u64;

frame_support::construct_runtime!(
    pub enum Test {
        System: frame_system,
        Balances: pallet_balances,
        Escrow: pallet_escrow,
    }
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
    type AccountId = AccountId;
    type Lookup = IdentityLookup<AccountId>;
    type Block = Block;
    type AccountData = pallet_balances::AccountData<Balance>;
}

/// Existential deposit of the test runtime.
pub const ED: Balance = 5;

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
    type AccountStore = System;
    type ExistentialDeposit = ConstU64<ED>;
}

parameter_types! {
    pub TreasuryAccount: AccountId = treasury();
    pub const ProtocolFee: Perbill = Perbill::from_percent(10);
    pub const StorageShare: Perbill = Perbill::from_percent(20);
    /// The claim grace period; [`GRACE`] unless a test sets another.
    pub static ClaimGraceBlocks: BlockNumber = GRACE;
    /// The key delivery period; [`KEY_DELIVERY`] unless a test sets another.
    pub static KeyDeliveryBlocks: BlockNumber = KEY_DELIVERY;
    /// The dispute period; [`DISPUTE_PERIOD`] unless a test sets another.
    pub static DisputeBlocks: BlockNumber = DISPUTE_PERIOD;
}

/// Purchase deposit in the mock.
pub const PURCHASE_DEPOSIT: Balance = 10;
/// Key deposit base in the mock.
pub const KEY_DEPOSIT_BASE: Balance = 5;
/// Dispute deposit in the mock.
pub const DISPUTE_DEPOSIT: Balance = 50;
/// Blocks a dispute may stay unresolved.
pub const DISPUTE_PERIOD: BlockNumber = 15;
/// Key delivery period in the mock.
pub const KEY_DELIVERY: BlockNumber = 5;
/// Claim grace period in the mock.
pub const GRACE: BlockNumber = 2;
/// Batch access period in the mock.
pub const BATCH_ACCESS: BlockNumber = 20;
/// Retention period in the mock.
pub const RETENTION: BlockNumber = 30;

impl pallet_escrow::Config for Test {
    type Currency = Balances;
    type RuntimeHoldReason = RuntimeHoldReason;
    type Identity = MockIdentity;
    type Trust = MockTrust;
    type Offers = MockOffers;
    type Operators = MockOperators;
    type ReceiptSignature = MultiSignature;
    type ReceiptSigner = AccountPublic;
    type DisputeOrigin = EnsureRoot<AccountId>;
    type TreasuryAccount = TreasuryAccount;
    type ProtocolFee = ProtocolFee;
    type StorageShare = StorageShare;
    type PurchaseDeposit = ConstU64<PURCHASE_DEPOSIT>;
    type KeyDepositBase = ConstU64<KEY_DEPOSIT_BASE>;
    type KeyDepositPerByte = ConstU64<1>;
    type DisputeDeposit = ConstU64<DISPUTE_DEPOSIT>;
    type DisputePeriod = DisputeBlocks;
    type KeyDeliveryPeriod = KeyDeliveryBlocks;
    type ClaimGracePeriod = ClaimGraceBlocks;
    type BatchAccessPeriod = ConstU64<BATCH_ACCESS>;
    type RetentionPeriod = ConstU64<RETENTION>;
    type MaxPeriods = ConstU32<12>;
    type MaxEpochsPerPurchase = ConstU32<4>;
    type MaxOperatorsPerPurchase = ConstU32<3>;
    type MaxSealedKeyLen = ConstU32<{ sealed::MAX_SEALED_KEY_LEN }>;
    type WeightInfo = ();
    #[cfg(feature = "runtime-benchmarks")]
    type BenchmarkHelper = MockBenchmarkHelper;
}

// ---------------------------------------------------------------------------------------
// Accounts and keys

/// The sr25519 key pair of test account `seed`.
pub fn pair(seed: u8) -> sr25519::Pair {
    sr25519::Pair::from_seed(&[seed; 32])
}

/// Test account `seed`.
pub fn account(seed: u8) -> AccountId {
    pair(seed).public().into()
}

/// The X25519 secret key-agreement key of test account `seed`.
pub fn x25519_secret(seed: u8) -> [u8; 32] {
    [seed; 32]
}

/// The X25519 public key-agreement key of test account `seed`.
pub fn x25519_public(seed: u8) -> X25519Public {
    sealed::x25519_public_key(&x25519_secret(seed)).unwrap_or_default()
}

/// Seed of the default buyer.
pub const BUYER: u8 = 1;
/// Seed of the seller of every test offer.
pub const SELLER: u8 = 2;
/// Seed of a second buyer.
pub const BUYER2: u8 = 3;
/// Seeds of the operators assigned to the test streams (`OP4` has no account).
pub const OP1: u8 = 10;
/// Second operator.
pub const OP2: u8 = 11;
/// Third operator.
pub const OP3: u8 = 12;
/// Fourth operator (no funds: payouts below the existential deposit are redirected).
pub const OP4: u8 = 13;
/// An operator that is registered but not assigned to the test streams.
pub const OP_UNASSIGNED: u8 = 14;
/// An account with funds and no role.
pub const STRANGER: u8 = 50;

/// The treasury account.
pub fn treasury() -> AccountId {
    account(99)
}

/// The stream of the stream offer.
pub const STREAM: H256 = H256::repeat_byte(0xaa);
/// The stream of the batch offer.
pub const BATCH_STREAM: H256 = H256::repeat_byte(0xbb);
/// The stream offer: 1 000 per period of 10 blocks.
pub const STREAM_OFFER: OfferId = 0;
/// The batch offer: 1 000 for segments 100..=199.
pub const BATCH_OFFER: OfferId = 1;
/// Price per period of the stream offer and price of the batch offer.
pub const PRICE: Balance = 1_000;
/// Period of the stream offer.
pub const PERIOD: BlockNumber = 10;
/// Attested head of the batch offer's stream: its window and more were published.
pub const BATCH_HEAD: u64 = 1_000;
/// Price per MB of `OP1`.
pub const OP1_PRICE: Balance = 100;
/// Price per MB of `OP2`, `OP3` and `OP4`.
pub const OP_PRICE: Balance = 200;

/// The epoch keys the seller uses for `epoch` of every test stream.
pub fn epoch_keys(epoch: EpochIndex) -> sealed::EpochKeys {
    sealed::EpochKeys::new([epoch as u8 + 1; 32], [epoch as u8 + 101; 32])
}

// ---------------------------------------------------------------------------------------
// Mocks of the other pallets

/// State of the mocked pallets.
#[derive(Default)]
pub struct MockState {
    /// Offers by id.
    pub offers: BTreeMap<OfferId, OfferSummary<AccountId, Balance, BlockNumber>>,
    /// Streams by id.
    pub streams: BTreeMap<StreamId, StreamSummary<AccountId>>,
    /// Epoch commitments.
    pub commitments: BTreeMap<(StreamId, EpochIndex), H256>,
    /// Verified accounts.
    pub verified: BTreeSet<AccountId>,
    /// Key-agreement keys.
    pub keys: BTreeMap<AccountId, X25519Public>,
    /// Trust scores.
    pub trust: BTreeMap<AccountId, Score>,
    /// Registered operators and their price per MB.
    pub operators: BTreeMap<AccountId, Balance>,
    /// Operator assignment per stream.
    pub assigned: BTreeMap<StreamId, Vec<AccountId>>,
    /// Attested head per stream (absent: 0).
    pub heads: BTreeMap<StreamId, Sequence>,
    /// Key pairs of benchmark accounts.
    #[cfg(feature = "runtime-benchmarks")]
    pub pairs: BTreeMap<AccountId, sr25519::Pair>,
}

thread_local! {
    static STATE: RefCell<MockState> = RefCell::new(MockState::default());
}

/// Reads or changes the mock state.
pub fn with_state<R>(f: impl FnOnce(&mut MockState) -> R) -> R {
    STATE.with(|state| f(&mut state.borrow_mut()))
}

/// Mock of `pallet-did`.
pub struct MockIdentity;
impl IdentityProvider<AccountId> for MockIdentity {
    fn is_verified(who: &AccountId) -> bool {
        with_state(|s| s.verified.contains(who))
    }
    fn key_agreement_key(who: &AccountId) -> Option<X25519Public> {
        with_state(|s| s.keys.get(who).copied())
    }
    fn credential_weights(_who: &AccountId) -> Vec<Perbill> {
        Vec::new()
    }
}

/// Mock of `pallet-trust`.
pub struct MockTrust;
impl TrustProvider<AccountId> for MockTrust {
    fn trust_score(who: &AccountId) -> Score {
        with_state(|s| s.trust.get(who).copied().unwrap_or_default())
    }
}

/// Mock of `pallet-offers`.
pub struct MockOffers;
impl OfferProvider<AccountId, Balance, BlockNumber> for MockOffers {
    fn offer(id: OfferId) -> Option<OfferSummary<AccountId, Balance, BlockNumber>> {
        with_state(|s| s.offers.get(&id).cloned())
    }
    fn stream(id: &StreamId) -> Option<StreamSummary<AccountId>> {
        with_state(|s| s.streams.get(id).cloned())
    }
    fn epoch_commitment(id: &StreamId, epoch: EpochIndex) -> Option<H256> {
        with_state(|s| s.commitments.get(&(*id, epoch)).copied())
    }
}

/// Mock of `pallet-operators`.
pub struct MockOperators;
impl OperatorProvider<AccountId, Balance> for MockOperators {
    fn is_active(who: &AccountId) -> bool {
        with_state(|s| s.operators.contains_key(who))
    }
    fn price_per_mb(who: &AccountId) -> Option<Balance> {
        with_state(|s| s.operators.get(who).copied())
    }
    fn request_assignment(
        _stream: &StreamId,
        _replication: u32,
        _payer: &AccountId,
    ) -> Result<(), DispatchError> {
        Ok(())
    }
    fn assigned(stream: &StreamId) -> Vec<AccountId> {
        with_state(|s| s.assigned.get(stream).cloned().unwrap_or_default())
    }
    fn release(stream: &StreamId) {
        with_state(|s| s.assigned.remove(stream));
    }
    fn stream_head(stream: &StreamId) -> Sequence {
        with_state(|s| s.heads.get(stream).copied().unwrap_or_default())
    }
    fn hosting(_stream: &StreamId) -> Option<(u32, bool)> {
        None
    }
    fn max_replication() -> u32 {
        fastdata_primitives::MAX_REPLICATION
    }
}

/// Lists an offer with a registered open stream at epoch 0 with commitments for epochs
/// `0..=3`, assigned to `operators`.
pub fn add_offer(
    id: OfferId,
    stream: StreamId,
    mode: PaymentMode<BlockNumber>,
    price: Balance,
    operators: Vec<AccountId>,
) {
    with_state(|s| {
        // Only a verified seller lists an offer (pallet-offers checks it).
        s.verified.insert(account(SELLER));
        s.offers.insert(
            id,
            OfferSummary {
                seller: account(SELLER),
                stream: Some(stream),
                mode,
                price,
                verified_only: false,
                verified_discount: Perbill::zero(),
                min_trust_score: 0,
                active: true,
            },
        );
        s.streams.insert(
            stream,
            StreamSummary {
                seller: account(SELLER),
                offer: id,
                operators: operators.clone(),
                epoch: 0,
                open: true,
            },
        );
        for epoch in 0..=3 {
            s.commitments
                .insert((stream, epoch), epoch_keys(epoch).commitment());
        }
        s.assigned.insert(stream, operators);
    });
}

/// The seller publishes `n` more segments of `stream` (its attested head grows by `n`).
pub fn publish(stream: StreamId, n: u64) {
    with_state(|s| *s.heads.entry(stream).or_default() += n);
}

/// Changes the offer `id` in place.
pub fn edit_offer(id: OfferId, f: impl FnOnce(&mut OfferSummary<AccountId, Balance, BlockNumber>)) {
    with_state(|s| s.offers.get_mut(&id).map(f));
}

/// Changes the stream `id` in place.
pub fn edit_stream(id: StreamId, f: impl FnOnce(&mut StreamSummary<AccountId>)) {
    with_state(|s| s.streams.get_mut(&id).map(f));
}

// ---------------------------------------------------------------------------------------
// Helpers for tests

/// A receipt for `purchase` from `operator`.
pub fn receipt(
    purchase: PurchaseId,
    operator: u8,
    up_to_sequence: u64,
    bytes: u64,
    nonce: u64,
) -> Receipt<AccountId> {
    Receipt {
        purchase,
        operator: account(operator),
        up_to_sequence,
        bytes,
        nonce,
    }
}

/// `signer`'s signature of `receipt`.
pub fn sign(signer: u8, receipt: &Receipt<AccountId>) -> MultiSignature {
    MultiSignature::Sr25519(receipt.sign_sr25519(&pair(signer), &Escrow::genesis_hash()))
}

/// Moves to block `n` without running hooks.
pub fn jump_to(n: BlockNumber) {
    System::set_block_number(n);
}

/// Runs blocks up to `n`, calling `on_idle` with ample weight at each, and checks the
/// invariants after each block.
pub fn run_to_block(n: BlockNumber) {
    while System::block_number() < n {
        let next = System::block_number() + 1;
        System::set_block_number(next);
        Escrow::on_idle(next, Weight::MAX);
        assert_eq!(Escrow::do_try_state(), Ok(()));
    }
}

/// Free balance of test account `seed`.
pub fn free(seed: u8) -> Balance {
    Balances::free_balance(account(seed))
}

/// Builds the test externalities.
pub struct ExtBuilder {
    balances: Vec<(AccountId, Balance)>,
}

impl Default for ExtBuilder {
    fn default() -> Self {
        Self {
            balances: vec![
                (account(BUYER), 100_000),
                (account(BUYER2), 100_000),
                (account(SELLER), 10_000),
                (account(OP1), 1_000),
                (account(OP2), 1_000),
                (account(OP3), 1_000),
                (account(OP_UNASSIGNED), 1_000),
                (account(STRANGER), 1_000),
                (treasury(), ED),
            ],
        }
    }
}

impl ExtBuilder {
    /// Sets the free balance of `who` at genesis.
    pub fn balance(mut self, who: AccountId, amount: Balance) -> Self {
        self.balances.retain(|(a, _)| *a != who);
        self.balances.push((who, amount));
        self
    }

    /// Resets the mock state and builds the externalities at block 1, with the stream offer
    /// (`STREAM_OFFER`, operators OP1..OP4) and the batch offer (`BATCH_OFFER`, same
    /// operators), buyers with key-agreement keys, and operators registered.
    pub fn build(self) -> sp_io::TestExternalities {
        with_state(|s| *s = MockState::default());
        let ops = vec![account(OP1), account(OP2), account(OP3), account(OP4)];
        add_offer(
            STREAM_OFFER,
            STREAM,
            PaymentMode::Stream { period: PERIOD },
            PRICE,
            ops.clone(),
        );
        add_offer(
            BATCH_OFFER,
            BATCH_STREAM,
            PaymentMode::Batch {
                first: 100,
                last: 199,
            },
            PRICE,
            ops,
        );
        with_state(|s| {
            for seed in [BUYER, BUYER2, STRANGER] {
                s.keys.insert(account(seed), x25519_public(seed));
            }
            // The batch window was published long ago.
            s.heads.insert(BATCH_STREAM, BATCH_HEAD);
            s.operators.insert(account(OP1), OP1_PRICE);
            for seed in [OP2, OP3, OP4, OP_UNASSIGNED] {
                s.operators.insert(account(seed), OP_PRICE);
            }
        });

        let mut storage = frame_system::GenesisConfig::<Test>::default()
            .build_storage()
            .unwrap_or_default();
        pallet_balances::GenesisConfig::<Test> {
            balances: self.balances,
            ..Default::default()
        }
        .assimilate_storage(&mut storage)
        .unwrap_or_default();
        let mut ext = sp_io::TestExternalities::new(storage);
        ext.execute_with(|| System::set_block_number(1));
        ext
    }

    /// Builds, runs `test`, and checks the invariants afterwards.
    pub fn build_and_execute(self, test: impl FnOnce()) {
        self.build().execute_with(|| {
            test();
            assert_eq!(Escrow::do_try_state(), Ok(()));
        });
    }
}

// ---------------------------------------------------------------------------------------
// Benchmark helper

/// Benchmark helper of the test runtime: accounts from seeds, offers in the mock state.
#[cfg(feature = "runtime-benchmarks")]
pub struct MockBenchmarkHelper;

#[cfg(feature = "runtime-benchmarks")]
impl crate::BenchmarkHelper<Test> for MockBenchmarkHelper {
    fn buyer(seed: u32) -> AccountId {
        let secret = sp_io::hashing::blake2_256(&seed.to_le_bytes());
        let pair = sr25519::Pair::from_seed(&secret);
        let who: AccountId = pair.public().into();
        with_state(|s| {
            s.verified.insert(who.clone());
            s.keys.insert(
                who.clone(),
                sealed::x25519_public_key(&secret).unwrap_or_default(),
            );
            s.trust.insert(who.clone(), fastdata_primitives::SCORE_ONE);
            s.pairs.insert(who.clone(), pair);
        });
        who
    }

    fn sign(signer: &AccountId, message: &[u8]) -> MultiSignature {
        let signature = with_state(|s| s.pairs.get(signer).map(|pair| pair.sign(message)));
        MultiSignature::Sr25519(signature.unwrap_or_else(|| sr25519::Signature::from_raw([0; 64])))
    }

    fn offer(
        seller: &AccountId,
        mode: PaymentMode<BlockNumber>,
        price: Balance,
        epochs: EpochIndex,
        operators: &[AccountId],
    ) -> OfferId {
        with_state(|s| {
            s.verified.insert(seller.clone());
            let id = s.offers.keys().next_back().map_or(100, |last| last + 1);
            let stream = H256::from_low_u64_be(id);
            s.offers.insert(
                id,
                OfferSummary {
                    seller: seller.clone(),
                    stream: Some(stream),
                    mode,
                    price,
                    verified_only: true,
                    verified_discount: Perbill::from_percent(10),
                    min_trust_score: fastdata_primitives::SCORE_ONE / 2,
                    active: true,
                },
            );
            s.streams.insert(
                stream,
                StreamSummary {
                    seller: seller.clone(),
                    offer: id,
                    operators: operators.to_vec(),
                    epoch: 0,
                    open: true,
                },
            );
            for epoch in 0..=epochs {
                s.commitments
                    .insert((stream, epoch), epoch_keys(epoch).commitment());
            }
            for operator in operators {
                s.operators.insert(operator.clone(), 1_000);
            }
            s.assigned.insert(stream, operators.to_vec());
            s.heads.insert(stream, Sequence::MAX);
            id
        })
    }

    fn assign(offer: OfferId, operator: &AccountId) {
        with_state(|s| {
            let Some(stream) = s.offers.get(&offer).and_then(|o| o.stream) else {
                return;
            };
            let assigned = s.assigned.entry(stream).or_default();
            if !assigned.contains(operator) {
                assigned.push(operator.clone());
            }
        });
    }
}
