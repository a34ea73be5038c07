//! Chain specs built from the embedded runtime, so no spec file is needed for dev or local
//! nets. The collator wraps the same specs in its own extension type.

use sc_chain_spec::{ChainSpec, ChainType, GenericChainSpec, Properties};

/// Para id of the dev and local-testnet specs (the runtime presets' own).
pub const PARA_ID: u32 = fastdata_runtime::PARACHAIN_ID;

/// Relay chain the embedded specs name (rococo-local on zombienet).
pub const RELAY_CHAIN: &str = "rococo-local";

fn properties() -> Properties {
    let mut p = Properties::new();
    p.insert("tokenSymbol".into(), fastdata_runtime::TOKEN_SYMBOL.into());
    p.insert(
        "tokenDecimals".into(),
        fastdata_runtime::TOKEN_DECIMALS.into(),
    );
    p.insert("ss58Format".into(), fastdata_runtime::SS58_PREFIX.into());
    p
}

fn embedded<E>(
    extensions: E,
    name: &str,
    id: &str,
    chain_type: ChainType,
    preset: &str,
) -> Result<Box<dyn ChainSpec>, String>
where
    E: sc_chain_spec::Extension + sc_chain_spec::GetExtension + Send + Sync + 'static,
    E: serde::Serialize + serde::de::DeserializeOwned + Clone,
{
    let wasm = fastdata_runtime::WASM_BINARY.ok_or_else(|| {
        "this node was built without the wasm runtime (SKIP_WASM_BUILD); rebuild it, or pass \
         --chain <spec.json>"
            .to_string()
    })?;
    Ok(Box::new(
        GenericChainSpec::<E>::builder(wasm, extensions)
            .with_name(name)
            .with_id(id)
            .with_chain_type(chain_type)
            .with_genesis_config_preset_name(preset)
            .with_properties(properties())
            .build(),
    ))
}

/// Loads `dev` / `local` from the embedded runtime and anything else from a JSON file, with
/// `extensions(relay_chain, para_id)` as the spec's extensions.
pub fn load<E>(id: &str, extensions: impl Fn(&str, u32) -> E) -> Result<Box<dyn ChainSpec>, String>
where
    E: sc_chain_spec::Extension + sc_chain_spec::GetExtension + Send + Sync + 'static,
    E: serde::Serialize + serde::de::DeserializeOwned + Clone,
{
    match id {
        "" | "dev" | "development" => embedded(
            extensions(RELAY_CHAIN, PARA_ID),
            "FAST DATA Development",
            "fastdata_dev",
            ChainType::Development,
            "development",
        ),
        "local" | "local_testnet" => embedded(
            extensions(RELAY_CHAIN, PARA_ID),
            "FAST DATA Local Testnet",
            "fastdata_local",
            ChainType::Local,
            "local_testnet",
        ),
        path => Ok(Box::new(GenericChainSpec::<E>::from_json_file(
            path.into(),
        )?)),
    }
}

/// The parachain extensions of a spec (`relay_chain`, `para_id`), as the collator writes them.
#[derive(
    Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, sc_chain_spec::ChainSpecExtension,
)]
pub struct Extensions {
    /// The relay chain of the parachain.
    #[serde(alias = "relayChain", alias = "RelayChain")]
    pub relay_chain: String,
    /// The parachain's id.
    #[serde(alias = "paraId", alias = "ParaId")]
    pub para_id: u32,
}
