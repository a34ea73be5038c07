//! Test runtime: frame-system, pallet-balances and this pallet, with mock identity, trust and
//! operator providers. Accounts are `AccountId32` sr25519 public keys so upload tokens can be
//! signed and checked end to end.

use crate as pallet_offers;
use crate::*;
use codec::Encode;
use fastdata_primitives::{
    IdentityProvider, OfferId, OperatorProvider, Score, StreamId, TrustProvider, X25519Public,
};
use frame_support::{
    derive_impl, parameter_types,
    storage::unhashed,
    traits::{ConstU32, ConstU64},
};
use sp_core::{sr25519, Pair, H256};
use sp_runtime::{traits::IdentityLookup, AccountId32, BuildStorage, DispatchError, Perbill};
use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet},
};

type Block = frame_system::mocking::MockBlock<Test>;
pub type AccountId = AccountId32;
pub type Balance = u64;

frame_support::construct_runtime!(
    pub enum Test {
        System: frame_system,
        Balances: pallet_balances,
        Offers: pallet_offers,
    }
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
    type Block = Block;
    type AccountId = AccountId;
    type Lookup = IdentityLookup<AccountId>;
    type AccountData = pallet_balances::AccountData<Balance>;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
    type AccountStore = System;
    type RuntimeHoldReason = RuntimeHoldReason;
}

/// The sr25519 key pair of test account `n`.
pub fn pair(n: u8) -> sr25519::Pair {
    sr25519::Pair::from_seed(&[n; 32])
}

/// Test account `n` (the public key of [`pair`]`(n)`).
pub fn account(n: u8) -> AccountId {
    AccountId32::from(pair(n).public())
}

/// The seller used by most tests.
pub fn alice() -> AccountId {
    account(1)
}
/// A second seller.
pub fn bob() -> AccountId {
    account(2)
}
/// An account without a verified identity.
pub fn mallory() -> AccountId {
    account(3)
}
/// The operators the mock storage network assigns, in order.
pub fn operator(n: u8) -> AccountId {
    account(100 + n)
}

thread_local! {
    static VERIFIED: RefCell<BTreeSet<AccountId>> = const { RefCell::new(BTreeSet::new()) };
    static TRUST: RefCell<BTreeMap<AccountId, Score>> = const { RefCell::new(BTreeMap::new()) };
    static POOL: RefCell<Vec<AccountId>> = const { RefCell::new(Vec::new()) };
    static NEEDED: RefCell<BTreeMap<OfferId, u64>> = const { RefCell::new(BTreeMap::new()) };
}

/// How long purchases need each offer's stream, as `pallet-escrow` reports it.
pub struct MockPurchases;
impl fastdata_primitives::OfferPurchases<u64> for MockPurchases {
    fn needed_until(offer: OfferId) -> Option<u64> {
        NEEDED.with(|n| n.borrow().get(&offer).copied())
    }
    fn forget(offer: OfferId) {
        NEEDED.with(|n| n.borrow_mut().remove(&offer));
    }
}

/// Purchases of `offer` need its stream hosted until block `until`.
pub fn purchases_need(offer: OfferId, until: u64) {
    NEEDED.with(|n| n.borrow_mut().insert(offer, until));
}

/// Verified sellers set by tests.
pub struct MockIdentity;
impl IdentityProvider<AccountId> for MockIdentity {
    fn is_verified(who: &AccountId) -> bool {
        VERIFIED.with(|v| v.borrow().contains(who))
    }
    fn key_agreement_key(_who: &AccountId) -> Option<X25519Public> {
        None
    }
    fn credential_weights(_who: &AccountId) -> Vec<Perbill> {
        Vec::new()
    }
}

/// Marks `who` as verified or not.
pub fn set_verified(who: &AccountId, verified: bool) {
    VERIFIED.with(|v| {
        if verified {
            v.borrow_mut().insert(who.clone());
        } else {
            v.borrow_mut().remove(who);
        }
    });
}

/// Trust scores set by tests.
pub struct MockTrust;
impl TrustProvider<AccountId> for MockTrust {
    fn trust_score(who: &AccountId) -> Score {
        TRUST.with(|t| t.borrow().get(who).copied().unwrap_or(0))
    }
}

/// Sets the trust score of `who`.
pub fn set_trust(who: &AccountId, score: Score) {
    TRUST.with(|t| t.borrow_mut().insert(who.clone(), score));
}

/// A storage network that assigns the first `R` operators of a pool. Assignments are kept in
/// storage (so they roll back with failed calls and count in `assert_noop!`).
pub struct MockOperators;

fn assignment_key(stream: &StreamId) -> Vec<u8> {
    (b"mock-operators/assignment", stream).encode()
}

impl OperatorProvider<AccountId, Balance> for MockOperators {
    fn is_active(who: &AccountId) -> bool {
        POOL.with(|p| p.borrow().contains(who))
    }
    fn price_per_mb(who: &AccountId) -> Option<Balance> {
        Self::is_active(who).then_some(1)
    }
    /// Assigns at once (the deferred draw is `pallet-operators`' own business).
    fn request_assignment(
        stream: &StreamId,
        replication: u32,
        _payer: &AccountId,
    ) -> Result<(), DispatchError> {
        let pool = POOL.with(|p| p.borrow().clone());
        if replication as usize > pool.len() {
            return Err(DispatchError::Other("not enough operators"));
        }
        let chosen: Vec<AccountId> = pool.into_iter().take(replication as usize).collect();
        unhashed::put(&assignment_key(stream), &chosen);
        Ok(())
    }
    fn assigned(stream: &StreamId) -> Vec<AccountId> {
        unhashed::get(&assignment_key(stream)).unwrap_or_default()
    }
    fn release(stream: &StreamId) {
        unhashed::kill(&assignment_key(stream));
    }
    fn stream_head(_stream: &StreamId) -> fastdata_primitives::Sequence {
        0
    }
    fn hosting(_stream: &StreamId) -> Option<(u32, bool)> {
        Some((16, true))
    }
    fn max_replication() -> u32 {
        MAX_REPLICATION
    }
}

/// Sets the pool of operators the mock storage network assigns from.
pub fn set_operator_pool(pool: Vec<AccountId>) {
    POOL.with(|p| *p.borrow_mut() = pool);
}

pub const OFFER_DEPOSIT: Balance = 100;
pub const BYTE_DEPOSIT: Balance = 1;
pub const STREAM_DEPOSIT: Balance = 50;
pub const EPOCH_DEPOSIT: Balance = 5;
pub const MAX_OFFERS: u32 = 4;
pub const MAX_REPLICATION: u32 = 3;
pub const MAX_RETAINED_EPOCHS: u32 = 4;
pub const MAX_BATCH: u64 = 1_000;
pub const MIN_PERIOD: u64 = 10;
pub const MAX_RETENTION: u64 = 10_000;
pub const REMOVAL_DELAY: u64 = 100;
pub const MAX_PAGE: u32 = 5;
pub const ENDOWMENT: Balance = 1_000_000;

#[cfg(feature = "runtime-benchmarks")]
pub struct MockBenchmarkHelper;
#[cfg(feature = "runtime-benchmarks")]
impl BenchmarkHelper<AccountId, u64> for MockBenchmarkHelper {
    fn verify_seller(who: &AccountId) {
        set_verified(who, true);
    }
    fn prepare_operators(replication: u32) {
        set_operator_pool((0..replication as u8).map(operator).collect());
    }
    fn purchases_need(offer: OfferId, until: u64) {
        purchases_need(offer, until);
    }
    /// The mock assigns at registration.
    fn draw_operators() {}
}

parameter_types! {
    pub const MaxBatchSegments: u64 = MAX_BATCH;
}

impl pallet_offers::Config for Test {
    type Currency = Balances;
    type RuntimeHoldReason = RuntimeHoldReason;
    type Identity = MockIdentity;
    type Trust = MockTrust;
    type Operators = MockOperators;
    type OfferDeposit = ConstU64<OFFER_DEPOSIT>;
    type ByteDeposit = ConstU64<BYTE_DEPOSIT>;
    type StreamDeposit = ConstU64<STREAM_DEPOSIT>;
    type EpochDeposit = ConstU64<EPOCH_DEPOSIT>;
    type MaxTopicLen = ConstU32<32>;
    type MaxStreamNameLen = ConstU32<16>;
    type MaxOffersPerSeller = ConstU32<MAX_OFFERS>;
    type MaxRetainedEpochs = ConstU32<MAX_RETAINED_EPOCHS>;
    type MaxBatchSegments = MaxBatchSegments;
    type MinPeriod = ConstU64<MIN_PERIOD>;
    type MaxRetention = ConstU64<MAX_RETENTION>;
    type Purchases = MockPurchases;
    type RemovalDelay = ConstU64<REMOVAL_DELAY>;
    type MaxPageSize = ConstU32<MAX_PAGE>;
    type WeightInfo = ();
    #[cfg(feature = "runtime-benchmarks")]
    type BenchmarkHelper = MockBenchmarkHelper;
}

/// A bounded topic.
pub fn topic(s: &str) -> TopicOf<Test> {
    s.as_bytes().to_vec().try_into().expect("test topic fits")
}

/// A bounded stream name.
pub fn name(s: &str) -> StreamNameOf<Test> {
    s.as_bytes().to_vec().try_into().expect("test name fits")
}

/// Terms with the given replication and defaults otherwise.
pub fn terms(replication: u32) -> OfferTermsOf<Test> {
    OfferTerms {
        licence: Licence::Commercial,
        resale_allowed: false,
        verified_only: false,
        verified_discount: Perbill::from_percent(10),
        min_trust_score: 0,
        retention: 1_000,
        replication,
    }
}

/// A live-stream payment mode with a period of 100 blocks.
pub fn stream_mode() -> PaymentModeOf<Test> {
    fastdata_primitives::PaymentMode::Stream { period: 100 }
}

/// Commitment `n` (stands for `H(k_e ‖ k_m)`).
pub fn commitment(n: u8) -> H256 {
    H256::repeat_byte(n)
}

/// The id of `seller`'s stream `name` at `timestamp`.
pub fn stream_id_of(seller: &AccountId, stream_name: &str, timestamp: u64) -> StreamId {
    fastdata_primitives::api_market::stream_id(seller, stream_name.as_bytes(), timestamp)
}

/// The events of this pallet so far.
pub fn offer_events() -> Vec<Event<Test>> {
    System::events()
        .into_iter()
        .filter_map(|r| {
            if let RuntimeEvent::Offers(e) = r.event {
                Some(e)
            } else {
                None
            }
        })
        .collect()
}

/// Builds test externalities: alice, bob, mallory endowed; alice and bob verified; three
/// operators in the pool.
pub struct ExtBuilder {
    verified: Vec<AccountId>,
}

impl Default for ExtBuilder {
    fn default() -> Self {
        Self {
            verified: vec![alice(), bob()],
        }
    }
}

impl ExtBuilder {
    /// The externalities.
    pub fn build(self) -> sp_io::TestExternalities {
        let mut storage = frame_system::GenesisConfig::<Test>::default()
            .build_storage()
            .unwrap();
        pallet_balances::GenesisConfig::<Test> {
            balances: vec![
                (alice(), ENDOWMENT),
                (bob(), ENDOWMENT),
                (mallory(), ENDOWMENT),
            ],
            ..Default::default()
        }
        .assimilate_storage(&mut storage)
        .unwrap();
        let mut ext = sp_io::TestExternalities::new(storage);
        ext.execute_with(|| {
            System::set_block_number(1);
            VERIFIED.with(|v| v.borrow_mut().clear());
            TRUST.with(|t| t.borrow_mut().clear());
            NEEDED.with(|n| n.borrow_mut().clear());
            for who in &self.verified {
                set_verified(who, true);
            }
            set_operator_pool((0..3).map(operator).collect());
        });
        ext
    }

    /// Builds, runs `test`, then checks the pallet's invariants.
    pub fn build_and_execute(self, test: impl FnOnce()) {
        self.build().execute_with(|| {
            test();
            Offers::do_try_state().expect("invariants hold");
        });
    }
}
