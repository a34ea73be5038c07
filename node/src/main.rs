//! `fastdata-node --dev`: a single-node FAST DATA chain (see the library's docs).

#![allow(clippy::result_large_err)] // sc_cli::Error is Substrate's

fn main() -> sc_cli::Result<()> {
    fastdata_node::cli::run()
}
