//! Test runtime: frame-system, pallet-balances and this pallet, with a mock trust provider and
//! a deterministic, seedable randomness source.

use crate as pallet_operators;
use crate::*;
use codec::Encode;
use fastdata_primitives::{Score, TrustProvider, SCORE_ONE};
use frame_support::{
    derive_impl, parameter_types,
    traits::{ConstU32, ConstU64, Hooks},
    weights::Weight,
};
use frame_system::EnsureRoot;
use sp_core::H256;
use sp_runtime::{
    testing::{TestSignature, UintAuthorityId},
    BuildStorage,
};
use std::{cell::RefCell, collections::BTreeMap};

type Block = frame_system::mocking::MockBlock<Test>;
pub type AccountId = u64;
pub type Balance = u64;

frame_support::construct_runtime!(
    pub enum Test {
        System: frame_system,
        Balances: pallet_balances,
        Operators: pallet_operators,
    }
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
    type Block = Block;
    type AccountData = pallet_balances::AccountData<Balance>;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
    type AccountStore = System;
    type RuntimeHoldReason = RuntimeHoldReason;
}

thread_local! {
    static TRUST: RefCell<BTreeMap<AccountId, Score>> = const { RefCell::new(BTreeMap::new()) };
    static RANDOM_SEED: RefCell<u64> = const { RefCell::new(0) };
}

/// Trust scores set by tests (default 0).
pub struct MockTrust;
impl TrustProvider<AccountId> for MockTrust {
    fn trust_score(who: &AccountId) -> Score {
        TRUST.with(|t| t.borrow().get(who).copied().unwrap_or(0))
    }
}

/// Sets the trust score of `who`.
pub fn set_trust(who: AccountId, score: Score) {
    TRUST.with(|t| t.borrow_mut().insert(who, score));
}

/// Block-hash randomness: `blake2_256(seed ‖ parent hash)`, known since the parent block.
/// The same seed and blocks give the same assignment.
pub fn mock_randomness() -> H256 {
    let seed = RANDOM_SEED.with(|s| *s.borrow());
    H256(sp_io::hashing::blake2_256(
        &(seed, System::parent_hash()).encode(),
    ))
}

/// Sets the mock randomness seed.
pub fn set_random_seed(seed: u64) {
    RANDOM_SEED.with(|s| *s.borrow_mut() = seed);
}

pub const MIN_STAKE: Balance = 100;
pub const UNBONDING: u64 = 10;
pub const HEARTBEAT_TIMEOUT: u64 = 20;
pub const MAX_OPERATORS: u32 = 32;
pub const MAX_REPLICATION: u32 = 5;
pub const MAX_LIVENESS_CHECKS: u32 = 4;
pub const ENDOWMENT: Balance = 1_000_000;
pub const ASSIGNMENT_DELAY: u64 = 2;
pub const MAX_PENDING_ASSIGNMENTS: u32 = 8;

parameter_types! {
    /// Streams per operator; tests lower it to exercise capacity limits.
    pub static MaxStreamsPerOperator: u32 = 1000;
    pub const MaxTrustBoost: Score = 4 * SCORE_ONE;
}

/// Blocks of one hosting period.
pub const HOSTING_PERIOD: u64 = 100;
/// Hosting price per MB per period.
pub const HOSTING_PRICE_PER_MB: u64 = 1_000;
/// Largest hosting quota, in MB.
pub const MAX_QUOTA_MB: u32 = 1_000;

impl pallet_operators::Config for Test {
    type Currency = Balances;
    type RuntimeHoldReason = RuntimeHoldReason;
    type Trust = MockTrust;
    type RandomnessClock = System;
    type AssignmentDelay = ConstU64<ASSIGNMENT_DELAY>;
    type MaxPendingAssignments = ConstU32<MAX_PENDING_ASSIGNMENTS>;
    type SlashOrigin = EnsureRoot<AccountId>;
    type OnSlash = ();
    type StatementSignature = TestSignature;
    type StatementSigner = UintAuthorityId;
    type EquivocationSlash = EquivocationSlash;
    type MinStake = ConstU64<MIN_STAKE>;
    type UnbondingPeriod = ConstU64<UNBONDING>;
    type HeartbeatTimeout = ConstU64<HEARTBEAT_TIMEOUT>;
    type MaxOperators = ConstU32<MAX_OPERATORS>;
    type MaxReplication = ConstU32<MAX_REPLICATION>;
    type MaxStreamsPerOperator = MaxStreamsPerOperator;
    type MaxUrlLen = ConstU32<64>;
    type MaxLivenessChecksPerBlock = ConstU32<MAX_LIVENESS_CHECKS>;
    type MaxTrustBoost = MaxTrustBoost;
    type HostingPeriod = ConstU64<HOSTING_PERIOD>;
    type HostingPricePerMb = ConstU64<HOSTING_PRICE_PER_MB>;
    type MaxQuotaMb = ConstU32<MAX_QUOTA_MB>;
    type WeightInfo = ();
    #[cfg(feature = "runtime-benchmarks")]
    type BenchmarkHelper = MockBenchmarkHelper;
}

/// Share of its stake an operator loses per proven equivocation.
pub const EQUIVOCATION_SLASH_PERCENT: u32 = 10;

frame_support::parameter_types! {
    pub EquivocationSlash: sp_runtime::Perbill =
        sp_runtime::Perbill::from_percent(EQUIVOCATION_SLASH_PERCENT);
}

/// `TestSignature`s, which name their signer: an operator "signs" a statement with
/// `TestSignature(operator, payload)`.
pub fn sign_statement(
    operator: AccountId,
    statement: &fastdata_primitives::custody::SegmentStatement,
) -> TestSignature {
    let genesis = pallet_operators::Pallet::<Test>::genesis_hash();
    TestSignature(operator, statement.signing_payload(&genesis))
}

/// Benchmark setup for the mock: trust costs the same for everyone; accounts sign with
/// `TestSignature`.
#[cfg(feature = "runtime-benchmarks")]
pub struct MockBenchmarkHelper;

#[cfg(feature = "runtime-benchmarks")]
impl crate::BenchmarkHelper<AccountId, TestSignature> for MockBenchmarkHelper {
    fn make_trusted(_who: &AccountId) {}
    fn signer(seed: u32) -> AccountId {
        10_000 + u64::from(seed)
    }
    fn sign(signer: &AccountId, message: &[u8]) -> TestSignature {
        TestSignature(*signer, message.to_vec())
    }
}

/// A bounded URL from a string.
pub fn url(s: &str) -> UrlOf<Test> {
    s.as_bytes().to_vec().try_into().expect("test URL fits")
}

/// The default broker URL of operator `who`.
pub fn broker(who: AccountId) -> UrlOf<Test> {
    url(&format!("mqtts://op{who}.example.com:8883"))
}

/// The default HTTP URL of operator `who`.
pub fn http(who: AccountId) -> UrlOf<Test> {
    url(&format!("https://op{who}.example.com"))
}

/// Registers `who` with `stake` and default endpoints, price 10.
pub fn register(who: AccountId, stake: Balance) {
    frame_support::assert_ok!(Operators::register(
        RuntimeOrigin::signed(who),
        stake,
        broker(who),
        http(who),
        10
    ));
}

/// Stream id `n` for tests.
pub fn stream(n: u32) -> fastdata_primitives::StreamId {
    H256(sp_io::hashing::blake2_256(&(b"stream", n).encode()))
}

/// Advances to block `n`, running `on_idle` with unlimited weight on each block.
pub fn run_to_block(n: u64) {
    run_to_block_with_idle_weight(n, Weight::MAX);
}

/// The hash of block `n` in tests: unpredictable without the mock's seed.
pub fn block_hash(n: u64) -> H256 {
    let seed = RANDOM_SEED.with(|s| *s.borrow());
    H256(sp_io::hashing::blake2_256(&(b"block", n, seed).encode()))
}

/// Advances to block `n`. Each new block first draws the due assignments with its parent's
/// hash, as the runtime does before any transaction, then runs `on_idle` with `weight`.
pub fn run_to_block_with_idle_weight(n: u64, weight: Weight) {
    while System::block_number() < n {
        let current = System::block_number();
        let next = current + 1;
        System::set_block_number(next);
        System::set_parent_hash(block_hash(current));
        Operators::draw_pending(block_hash(current), current);
        Operators::on_idle(next, weight);
    }
}

/// The events of this pallet so far.
pub fn operator_events() -> Vec<Event<Test>> {
    System::events()
        .into_iter()
        .filter_map(|r| {
            if let RuntimeEvent::Operators(e) = r.event {
                Some(e)
            } else {
                None
            }
        })
        .collect()
}

/// Builds test externalities: accounts `1..=60` endowed, optional operators registered.
#[derive(Default)]
pub struct ExtBuilder {
    operators: Vec<(AccountId, Balance)>,
}

impl ExtBuilder {
    /// Registers `(who, stake)` operators at block 1.
    pub fn operators(mut self, operators: Vec<(AccountId, Balance)>) -> Self {
        self.operators = operators;
        self
    }

    /// The externalities.
    pub fn build(self) -> sp_io::TestExternalities {
        let mut storage = frame_system::GenesisConfig::<Test>::default()
            .build_storage()
            .unwrap();
        pallet_balances::GenesisConfig::<Test> {
            balances: (1..=60).map(|who| (who, ENDOWMENT)).collect(),
            ..Default::default()
        }
        .assimilate_storage(&mut storage)
        .unwrap();
        let mut ext = sp_io::TestExternalities::new(storage);
        ext.execute_with(|| {
            System::set_block_number(1);
            TRUST.with(|t| t.borrow_mut().clear());
            set_random_seed(0);
            MaxStreamsPerOperator::set(1000);
            for (who, stake) in self.operators {
                register(who, stake);
            }
        });
        ext
    }

    /// Builds, runs `test`, then checks the pallet's invariants.
    pub fn build_and_execute(self, test: impl FnOnce()) {
        self.build().execute_with(|| {
            test();
            Operators::do_try_state().expect("invariants hold");
        });
    }
}
