//! Test runtime for the DID pallet.

use crate as pallet_did;
use frame_support::{derive_impl, parameter_types, traits::ConstU32};
use frame_system::EnsureRoot;
use sp_runtime::BuildStorage;

type Block = frame_system::mocking::MockBlock<Test>;
pub type AccountId = u64;
pub type Balance = u128;

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
    type ExistentialDeposit = ExistentialDeposit;
    type AccountStore = System;
    type RuntimeHoldReason = RuntimeHoldReason;
}

/// Base deposit of a DID document.
pub const DID_DEPOSIT: Balance = 100;
/// Base deposit of a credential.
pub const CREDENTIAL_DEPOSIT: Balance = 50;
/// Deposit per byte.
pub const BYTE_DEPOSIT: Balance = 1;

parameter_types! {
    pub const ExistentialDeposit: Balance = 1;
    pub const DidDeposit: Balance = DID_DEPOSIT;
    pub const CredentialDeposit: Balance = CREDENTIAL_DEPOSIT;
    pub const ByteDeposit: Balance = BYTE_DEPOSIT;
}

impl pallet_did::Config for Test {
    type Currency = Balances;
    type RuntimeHoldReason = RuntimeHoldReason;
    type IssuerOrigin = EnsureRoot<AccountId>;
    type DidDeposit = DidDeposit;
    type CredentialDeposit = CredentialDeposit;
    type ByteDeposit = ByteDeposit;
    type MaxServices = ConstU32<4>;
    type MaxServiceFieldLength = ConstU32<16>;
    type MaxServiceUrlLength = ConstU32<64>;
    type MaxIssuers = ConstU32<4>;
    type MaxIssuerNameLength = ConstU32<32>;
    type MaxCredentialTypeLength = ConstU32<16>;
    type MaxCredentialsPerDid = ConstU32<4>;
    type WeightInfo = ();
}

pub const ALICE: AccountId = 1;
pub const BOB: AccountId = 2;
pub const CHARLIE: AccountId = 3;
/// A KYC issuer.
pub const KYC: AccountId = 10;
/// A chamber of commerce.
pub const CHAMBER: AccountId = 11;
/// An account with no funds.
pub const PAUPER: AccountId = 99;

/// Free balance every funded test account starts with.
pub const INITIAL_BALANCE: Balance = 10_000;

/// Builds test externalities: funded accounts, optionally registered issuers.
pub struct ExtBuilder {
    balances: Vec<(AccountId, Balance)>,
    issuers: Vec<(AccountId, Vec<u8>, sp_runtime::Perbill)>,
}

impl Default for ExtBuilder {
    fn default() -> Self {
        Self {
            balances: [ALICE, BOB, CHARLIE, KYC, CHAMBER]
                .into_iter()
                .map(|a| (a, INITIAL_BALANCE))
                .collect(),
            issuers: Vec::new(),
        }
    }
}

impl ExtBuilder {
    /// Registers `issuer` at genesis with `weight`.
    pub fn with_issuer(mut self, issuer: AccountId, weight: sp_runtime::Perbill) -> Self {
        self.issuers.push((issuer, b"issuer".to_vec(), weight));
        self
    }

    /// The externalities.
    pub fn build(self) -> sp_io::TestExternalities {
        let mut storage = frame_system::GenesisConfig::<Test>::default()
            .build_storage()
            .expect("genesis builds");
        pallet_balances::GenesisConfig::<Test> {
            balances: self.balances,
            ..Default::default()
        }
        .assimilate_storage(&mut storage)
        .expect("balances genesis builds");
        pallet_did::GenesisConfig::<Test> {
            issuers: self.issuers,
            ..Default::default()
        }
        .assimilate_storage(&mut storage)
        .expect("DID genesis builds");
        let mut ext = sp_io::TestExternalities::new(storage);
        ext.execute_with(|| System::set_block_number(1));
        ext
    }

    /// Builds, runs `test`, then checks the pallet's invariants.
    pub fn build_and_execute(self, test: impl FnOnce()) {
        self.build().execute_with(|| {
            test();
            Did::do_try_state().expect("invariants hold");
        });
    }
}
