//! Chain specs built from the embedded runtime, so no spec file is needed for dev or local nets.

use polkadot_omni_node_lib::chain_spec::{ChainSpec, Extensions, GenericChainSpec, LoadSpec};
use sc_chain_spec::{ChainType, Properties};

/// Para id used by the dev and local-testnet specs (must match the runtime presets).
pub const PARA_ID: u32 = 2000;

/// Loads `dev` / `local` from the embedded runtime and anything else from a JSON file.
pub struct FastDataSpecLoader;

fn properties() -> Properties {
    let mut p = Properties::new();
    p.insert("tokenSymbol".into(), "FAST".into());
    p.insert("tokenDecimals".into(), 12.into());
    p.insert("ss58Format".into(), 42.into());
    p
}

fn embedded(
    name: &str,
    id: &str,
    chain_type: ChainType,
    preset: &str,
    relay: &str,
) -> Result<Box<dyn ChainSpec>, String> {
    let wasm = fastdata_runtime::WASM_BINARY.ok_or_else(|| {
        "this node was built without the wasm runtime (SKIP_WASM_BUILD); rebuild it, or pass \
         --chain <spec.json>"
            .to_string()
    })?;
    Ok(Box::new(
        GenericChainSpec::builder(wasm, Extensions::new(relay.into(), PARA_ID))
            .with_name(name)
            .with_id(id)
            .with_chain_type(chain_type)
            .with_genesis_config_preset_name(preset)
            .with_properties(properties())
            .build(),
    ))
}

impl LoadSpec for FastDataSpecLoader {
    fn load_spec(&self, id: &str) -> Result<Box<dyn ChainSpec>, String> {
        match id {
            "" | "dev" | "development" => embedded(
                "FAST DATA Development",
                "fastdata_dev",
                ChainType::Development,
                "development",
                "rococo-local",
            ),
            "local" | "local_testnet" => embedded(
                "FAST DATA Local Testnet",
                "fastdata_local",
                ChainType::Local,
                "local_testnet",
                "rococo-local",
            ),
            path => Ok(Box::new(GenericChainSpec::from_json_file(path.into())?)),
        }
    }
}
