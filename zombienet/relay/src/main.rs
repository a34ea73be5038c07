//! `polkadot`: the relay chain node of the local zombienet network (rococo-local).

fn main() -> polkadot_cli::Result<()> {
	polkadot_cli::run()
}
