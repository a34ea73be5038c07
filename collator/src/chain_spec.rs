//! The dev node's embedded chain specs, with omni-node-lib's extension type.

use polkadot_omni_node_lib::chain_spec::{ChainSpec, Extensions, LoadSpec};

/// Loads `dev` / `local` from the embedded runtime and anything else from a JSON file.
pub struct FastDataSpecLoader;

impl LoadSpec for FastDataSpecLoader {
    fn load_spec(&self, id: &str) -> Result<Box<dyn ChainSpec>, String> {
        fastdata_node::chain_spec::load(id, |relay_chain, para_id| {
            Extensions::new(relay_chain.into(), para_id)
        })
    }
}
