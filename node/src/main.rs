//! `fastdata-node`: the FAST DATA collator and dev node.
//!
//! A thin binary on `polkadot-omni-node-lib` with the FAST DATA runtime embedded:
//! `fastdata-node --dev` starts a single-node dev chain (blocks every second by default,
//! RPC on 9944) without any chain-spec file; `--chain local` builds the local-testnet spec
//! for collators under a relay chain; any other `--chain` value is read as a JSON spec file.

mod chain_spec;

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = RunConfig::new(
        Box::new(DefaultRuntimeResolver),
        Box::new(chain_spec::FastDataSpecLoader),
    );
    run::<FastDataCli>(config)?;
    Ok(())
}
