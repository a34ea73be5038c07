//! Genesis presets: `development` (one collator, Alice is sudo) and `local_testnet`
//! (two collators for a relay-chain network, no sudo). Both fund the well-known dev
//! accounts; Alice is the credential issuer and Alice, Bob and Charlie are the arbiters.

use alloc::{string::String, vec, vec::Vec};
use frame_support::build_struct_json_patch;
use serde_json::Value;
use sp_genesis_builder::{PresetId, DEV_RUNTIME_PRESET, LOCAL_TESTNET_RUNTIME_PRESET};
use sp_keyring::Sr25519Keyring;

use crate::{
    configs::TreasuryAccount, AccountId, ArbitersConfig, AuraConfig, AuraId, BalancesConfig,
    DidConfig, ParachainInfoConfig, RuntimeGenesisConfig, SudoConfig, EXISTENTIAL_DEPOSIT,
    PARACHAIN_ID, UNIT,
};
use sp_runtime::Perbill;

/// Name of the dev credential issuer (Alice) registered at genesis.
pub const DEV_ISSUER_NAME: &[u8] = b"FAST DATA Dev KYC";

/// Balance of every funded dev account: one million FAST.
pub const ENDOWMENT: u128 = 1_000_000 * UNIT;

fn genesis(
    collators: Vec<AuraId>,
    endowed: Vec<AccountId>,
    issuer: AccountId,
    root: Option<AccountId>,
    para_id: u32,
) -> Value {
    let mut balances: Vec<(AccountId, u128)> =
        endowed.iter().cloned().map(|a| (a, ENDOWMENT)).collect();
    balances.push((TreasuryAccount::get(), EXISTENTIAL_DEPOSIT));
    build_struct_json_patch!(RuntimeGenesisConfig {
        balances: BalancesConfig { balances },
        did: DidConfig {
            issuers: vec![(issuer, DEV_ISSUER_NAME.to_vec(), Perbill::from_percent(100))],
        },
        parachain_info: ParachainInfoConfig {
            parachain_id: para_id.into()
        },
        aura: AuraConfig {
            authorities: collators
        },
        sudo: SudoConfig { key: root },
        arbiters: ArbitersConfig {
            members: arbiters(),
        },
    })
}

fn dev_accounts() -> Vec<AccountId> {
    Sr25519Keyring::well_known()
        .map(|k| k.to_account_id())
        .collect()
}

/// The arbiters collective of both presets.
fn arbiters() -> Vec<AccountId> {
    [
        Sr25519Keyring::Alice,
        Sr25519Keyring::Bob,
        Sr25519Keyring::Charlie,
    ]
    .iter()
    .map(|k| k.to_account_id())
    .collect()
}

fn development() -> Value {
    genesis(
        vec![Sr25519Keyring::Alice.public().into()],
        dev_accounts(),
        Sr25519Keyring::Alice.to_account_id(),
        Some(Sr25519Keyring::Alice.to_account_id()),
        PARACHAIN_ID,
    )
}

fn local_testnet() -> Value {
    genesis(
        vec![
            Sr25519Keyring::Alice.public().into(),
            Sr25519Keyring::Bob.public().into(),
        ],
        dev_accounts(),
        Sr25519Keyring::Alice.to_account_id(),
        None,
        PARACHAIN_ID,
    )
}

/// The JSON patch of preset `id`.
pub fn get_preset(id: &PresetId) -> Option<Vec<u8>> {
    let patch = match id.as_ref() {
        DEV_RUNTIME_PRESET => development(),
        LOCAL_TESTNET_RUNTIME_PRESET => local_testnet(),
        _ => return None,
    };
    serde_json::to_string(&patch).ok().map(String::into_bytes)
}

/// Names of the presets.
pub fn preset_names() -> Vec<PresetId> {
    vec![
        PresetId::from(DEV_RUNTIME_PRESET),
        PresetId::from(LOCAL_TESTNET_RUNTIME_PRESET),
    ]
}
