//! The FAST DATA dev node: the runtime on a single-node chain for development, tests and the
//! demo. It seals a block every `--dev-block-time` ms with the parachain inherent's relay
//! data mocked, stores state in ParityDb and serves the usual RPC. Relay-backed networks use
//! `fastdata-collator` (on polkadot-omni-node-lib), which loads the same chain specs.

// `sc_cli::Error` and `sc_service::Error` are Substrate's own (large) error types.
#![allow(clippy::result_large_err)]

pub mod chain_spec;
pub mod cli;
pub mod service;
