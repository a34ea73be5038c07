//! PVF execute worker, versioned like the relay node it runs beside.

polkadot_node_core_pvf_common::decl_worker_main!(
	"execute-worker",
	polkadot_node_core_pvf_execute_worker::worker_entrypoint,
	polkadot_node_primitives::NODE_VERSION,
	"fastdata",
);
