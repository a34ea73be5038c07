//! Test runtime for the trust pallet: the real `pallet-did` provides identities, a mock
//! provides settled trades.

use crate as pallet_trust;
use core::cell::RefCell;
use fastdata_primitives::{PurchaseId, SettledTrade, SettledTrades, SCORE_ONE};
use frame_support::{derive_impl, parameter_types, traits::ConstU32};
use frame_system::EnsureRoot;
use sp_runtime::{BuildStorage, Perbill};
use std::collections::BTreeMap;

type Block = frame_system::mocking::MockBlock<Test>;
pub type AccountId = u64;
pub type Balance = u128;
pub type BlockNumber = u64;

#[frame_support::runtime]
mod runtime {
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
    pub struct Test;

    #[runtime::pallet_index(0)]
    pub type System = frame_system;
    #[runtime::pallet_index(1)]
    pub type Balances = pallet_balances;
    #[runtime::pallet_index(2)]
    pub type Did = pallet_did;
    #[runtime::pallet_index(3)]
    pub type Trust = pallet_trust;
}

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
    type Block = Block;
    type AccountId = AccountId;
    type Lookup = sp_runtime::traits::IdentityLookup<AccountId>;
    type AccountData = pallet_balances::AccountData<Balance>;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
    type Balance = Balance;
    type ExistentialDeposit = ConstU128<1>;
    type AccountStore = System;
    type RuntimeHoldReason = RuntimeHoldReason;
}

use frame_support::traits::ConstU128;

impl pallet_did::Config for Test {
    type Currency = Balances;
    type RuntimeHoldReason = RuntimeHoldReason;
    type IssuerOrigin = EnsureRoot<AccountId>;
    type DidDeposit = ConstU128<10>;
    type CredentialDeposit = ConstU128<10>;
    type ByteDeposit = ConstU128<0>;
    type MaxServices = ConstU32<2>;
    type MaxServiceFieldLength = ConstU32<16>;
    type MaxServiceUrlLength = ConstU32<64>;
    type MaxIssuers = ConstU32<8>;
    type MaxIssuerNameLength = ConstU32<16>;
    type MaxCredentialTypeLength = ConstU32<16>;
    type MaxCredentialsPerDid = ConstU32<4>;
    type WeightInfo = ();
}

/// Deposit of a rating.
pub const RATING_DEPOSIT: Balance = 5;
/// Epoch length in blocks.
pub const EPOCH: BlockNumber = 10;
/// Window length in epochs.
pub const WINDOW: u32 = 3;
/// Rating period in blocks.
pub const RATING_PERIOD: BlockNumber = 20;
/// Trade value whose context factor is ½.
pub const REFERENCE_VALUE: Balance = 1_000;

parameter_types! {
    pub const RatingDeposit: Balance = RATING_DEPOSIT;
    pub const EpochLength: BlockNumber = EPOCH;
    pub const RatingPeriod: BlockNumber = RATING_PERIOD;
    pub const PriorWeight: u32 = SCORE_ONE;
    pub const BaseCredibility: u32 = SCORE_ONE / 2;
    pub const ContextWeight: Perbill = Perbill::from_percent(20);
    pub const ReferenceValue: Balance = REFERENCE_VALUE;
}

thread_local! {
    static TRADES: RefCell<BTreeMap<PurchaseId, SettledTrade<AccountId, Balance, BlockNumber>>> =
        const { RefCell::new(BTreeMap::new()) };
}

/// Settled trades as `pallet-escrow` will report them.
pub struct MockTrades;

impl MockTrades {
    /// Records a settled trade.
    pub fn settle(
        purchase: PurchaseId,
        buyer: AccountId,
        seller: AccountId,
        value: Balance,
        settled_at: BlockNumber,
    ) {
        TRADES.with(|t| {
            t.borrow_mut().insert(
                purchase,
                SettledTrade {
                    buyer,
                    seller,
                    value,
                    settled_at,
                },
            )
        });
    }
}

impl SettledTrades<AccountId, Balance, BlockNumber> for MockTrades {
    fn settled_trade(
        purchase: PurchaseId,
    ) -> Option<SettledTrade<AccountId, Balance, BlockNumber>> {
        TRADES.with(|t| t.borrow().get(&purchase).cloned())
    }
}

impl pallet_trust::Config for Test {
    type Currency = Balances;
    type RuntimeHoldReason = RuntimeHoldReason;
    type Identity = Did;
    type Trades = MockTrades;
    type RatingDeposit = RatingDeposit;
    type EpochLength = EpochLength;
    type WindowEpochs = ConstU32<WINDOW>;
    type RatingPeriod = RatingPeriod;
    type PriorWeight = PriorWeight;
    type BaseCredibility = BaseCredibility;
    type ContextWeight = ContextWeight;
    type ReferenceValue = ReferenceValue;
    type WeightInfo = ();
    #[cfg(feature = "runtime-benchmarks")]
    type BenchmarkHelper = BenchHelper;
}

/// The issuer the tests verify accounts with (weight 60 %).
pub const KYC: AccountId = 100;
/// A second issuer (weight 30 %).
pub const CHAMBER: AccountId = 101;
/// Free balance of every funded account.
pub const INITIAL_BALANCE: Balance = 1_000_000;

/// Gives `who` a DID (if needed) and a credential from `issuer`.
pub fn verify_with(who: AccountId, issuer: AccountId, ctype: &[u8]) {
    if !pallet_did::Dids::<Test>::contains_key(who) {
        Did::create_did(RuntimeOrigin::signed(who), [1u8; 32], vec![]).expect("DID created");
    }
    Did::attest_credential(
        RuntimeOrigin::signed(issuer),
        who,
        ctype.to_vec(),
        sp_core::H256::repeat_byte(1),
        1_000_000,
    )
    .expect("credential attested");
}

/// Benchmark setup on the mock.
#[cfg(feature = "runtime-benchmarks")]
pub struct BenchHelper;

#[cfg(feature = "runtime-benchmarks")]
impl crate::BenchmarkHelper<AccountId, Balance, BlockNumber> for BenchHelper {
    fn make_verified(who: &AccountId) {
        Did::benchmark_make_verified(who).expect("benchmark identity set up");
    }

    fn settle_trade(purchase: PurchaseId, trade: SettledTrade<AccountId, Balance, BlockNumber>) {
        MockTrades::settle(
            purchase,
            trade.buyer,
            trade.seller,
            trade.value,
            trade.settled_at,
        );
    }
}

/// Builds test externalities with funded accounts `1..=20` and the two issuers registered.
pub struct ExtBuilder {
    initial_balance: Balance,
}

impl Default for ExtBuilder {
    fn default() -> Self {
        Self {
            initial_balance: INITIAL_BALANCE,
        }
    }
}

impl ExtBuilder {
    /// The externalities (block 1).
    pub fn build(self) -> sp_io::TestExternalities {
        TRADES.with(|t| t.borrow_mut().clear());
        let mut storage = frame_system::GenesisConfig::<Test>::default()
            .build_storage()
            .expect("genesis builds");
        let balances = (1..=20)
            .chain([KYC, CHAMBER])
            .map(|a| (a, self.initial_balance))
            .collect();
        pallet_balances::GenesisConfig::<Test> {
            balances,
            ..Default::default()
        }
        .assimilate_storage(&mut storage)
        .expect("balances genesis builds");
        let mut ext = sp_io::TestExternalities::new(storage);
        ext.execute_with(|| {
            System::set_block_number(1);
            Did::register_issuer(
                RuntimeOrigin::root(),
                KYC,
                b"KYC".to_vec(),
                Perbill::from_percent(60),
            )
            .expect("issuer registers");
            Did::register_issuer(
                RuntimeOrigin::root(),
                CHAMBER,
                b"Chamber".to_vec(),
                Perbill::from_percent(30),
            )
            .expect("issuer registers");
        });
        ext
    }

    /// Builds, runs `test`, then checks both pallets' invariants.
    pub fn build_and_execute(self, test: impl FnOnce()) {
        self.build().execute_with(|| {
            test();
            Trust::do_try_state().expect("trust invariants hold");
        });
    }
}
