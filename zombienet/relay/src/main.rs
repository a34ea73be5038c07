//! `polkadot`: the relay chain node of the local zombienet network (rococo-local).

fn main() {
	if let Err(e) = polkadot_cli::run() {
		eprintln!("Error: {e}");
		std::process::exit(1);
	}
}
