//! `fastdata-collator`: the FAST DATA collator.
//!
//! A thin binary on `polkadot-omni-node-lib` with the FAST DATA runtime embedded, for
//! relay-backed networks (zombienet): `--chain local` builds the local-testnet spec; any
//! other `--chain` value is read as a JSON spec file. (`fastdata-node` is the dev node.)
//!
//! `fastdata-collator benchmark pallet --runtime <wasm> …` runs the runtime benchmarks of a wasm
//! runtime built with the `runtime-benchmarks` feature (what `frame-omni-bencher v1 benchmark
//! pallet` does; `scripts/weights` uses it to generate the pallets' weights).

mod chain_spec;

use std::ffi::OsString;

use frame_benchmarking_cli::PalletCmd;
use polkadot_omni_node_lib::{run, runtime::DefaultRuntimeResolver, CliConfig, RunConfig};

struct FastDataCli;

impl CliConfig for FastDataCli {
    fn impl_version() -> String {
        env!("CARGO_PKG_VERSION").into()
    }

    fn author() -> String {
        env!("CARGO_PKG_AUTHORS").into()
    }

    fn support_url() -> String {
        "https://github.com/fastdata/fastdata/issues".into()
    }

    fn copyright_start_year() -> u16 {
        2026
    }
}

/// Host functions a parachain runtime may call besides Substrate's own: the storage proof
/// size (PoV reclaim).
type ParachainHostFunctions =
    (cumulus_primitives_proof_size_hostfunction::storage_proof_size::HostFunctions,);

/// Runs `benchmark pallet` with the arguments that follow it, on the runtime given by
/// `--runtime`, without a node: the node's own runtime is built without benchmarks.
fn benchmark_pallet(args: &[OsString]) -> Result<(), Box<dyn std::error::Error>> {
    sc_cli::LoggerBuilder::new("").init()?;
    let cmd = <PalletCmd as clap::Parser>::parse_from(
        std::iter::once(OsString::from("fastdata-collator benchmark pallet"))
            .chain(args.iter().cloned()),
    );
    cmd.run_with_spec::<sp_runtime::traits::BlakeTwo256, ParachainHostFunctions>(None)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let [_, benchmark, pallet, rest @ ..] = args.as_slice() {
        if benchmark == "benchmark" && pallet == "pallet" {
            return benchmark_pallet(rest);
        }
    }
    let config = RunConfig::new(
        Box::new(DefaultRuntimeResolver),
        Box::new(chain_spec::FastDataSpecLoader),
    );
    run::<FastDataCli>(config)?;
    Ok(())
}
