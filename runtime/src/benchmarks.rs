//! Runtime benchmarks: every benchmarked pallet, run through the runtime to produce weights.

use alloc::{string::String, vec::Vec};
use frame_benchmarking::{BenchmarkBatch, BenchmarkConfig, BenchmarkError, BenchmarkList};
use frame_support::traits::{StorageInfo, StorageInfoTrait, WhitelistedStorageKeys};

use crate::{AllPalletsWithSystem, ParachainSystem, Runtime, System};

type SystemBench = frame_system_benchmarking::Pallet<Runtime>;

frame_benchmarking::define_benchmarks!(
    [frame_system, SystemBench]
    [pallet_balances, Balances]
    [pallet_timestamp, Timestamp]
    [pallet_sudo, Sudo]
);

use crate::{Balances, Sudo, Timestamp};

impl frame_system_benchmarking::Config for Runtime {
    fn setup_set_code_requirements(code: &Vec<u8>) -> Result<(), BenchmarkError> {
        ParachainSystem::initialize_for_set_code_benchmark(code.len() as u32);
        Ok(())
    }

    fn verify_set_code() {
        System::assert_last_event(
            cumulus_pallet_parachain_system::Event::<Runtime>::ValidationFunctionStored.into(),
        );
    }
}

/// The list of benchmarks and the storage info of every pallet.
pub fn metadata(extra: bool) -> (Vec<BenchmarkList>, Vec<StorageInfo>) {
    let mut list = Vec::<BenchmarkList>::new();
    list_benchmarks!(list, extra);
    (list, AllPalletsWithSystem::storage_info())
}

/// Runs the benchmarks selected by `config`.
pub fn dispatch(config: BenchmarkConfig) -> Result<Vec<BenchmarkBatch>, String> {
    let whitelist = AllPalletsWithSystem::whitelisted_storage_keys();
    let mut batches = Vec::<BenchmarkBatch>::new();
    let params = (&config, &whitelist);
    add_benchmarks!(params, batches);
    Ok(batches)
}
