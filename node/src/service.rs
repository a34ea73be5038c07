//! The dev node's service: a client on ParityDb, a transaction pool, a network that takes no
//! peers, the RPC server (with `system_accountNextIndex` and `payment_queryInfo`) and manual
//! seal on a timer. Every block carries the parachain inherent with mocked relay-chain data
//! (a state proof, a relay parent that advances with each block), so the runtime runs the
//! code it runs under a relay chain, without the relay-chain client crates.

use std::{sync::Arc, time::Duration};

use codec::Encode;
use cumulus_primitives_core::{
    relay_chain, CollectCollationInfo, GetParachainInfo, PersistedValidationData,
    RelayParentOffsetApi,
};
use cumulus_primitives_parachain_inherent::ParachainInherentData;
use cumulus_test_relay_sproof_builder::RelayStateSproofBuilder;
use fastdata_runtime::{apis::RuntimeApi, opaque::Block};
use futures::{FutureExt, StreamExt};
use sc_client_api::HeaderBackend;
use sc_consensus_manual_seal::{
    consensus::aura::AuraConsensusDataProvider, EngineCommand, ManualSealParams,
};
use sc_network::{config::FullNetworkConfiguration, service::traits::NetworkBackend};
use sc_service::{error::Error as ServiceError, Configuration, TaskManager};
use sp_api::ProvideRuntimeApi;
use sp_consensus_aura::AuraApi;
use sp_runtime::traits::Header as _;

/// Host functions of a parachain runtime: Substrate's and the storage proof size (PoV
/// reclaim).
pub type HostFunctions = (
    sp_io::SubstrateHostFunctions,
    cumulus_primitives_proof_size_hostfunction::storage_proof_size::HostFunctions,
);

type Executor = sc_executor::WasmExecutor<HostFunctions>;
type Client = sc_service::TFullClient<Block, RuntimeApi, Executor>;
type Hash = <Block as sp_runtime::traits::Block>::Hash;

/// Relay-chain slot of the mocked relay chain (Polkadot's).
const RELAY_SLOT_MILLIS: u64 = 6000;
/// Para blocks per epoch of the mocked relay chain.
const PARA_BLOCKS_PER_RELAY_EPOCH: u32 = 10;

/// Starts the dev node; blocks are sealed every `block_time`.
pub fn new_dev(config: Configuration, block_time: Duration) -> Result<TaskManager, ServiceError> {
    match config.network.network_backend {
        sc_network::config::NetworkBackendType::Libp2p => {
            start::<sc_network::NetworkWorker<Block, Hash>>(config, block_time)
        }
        sc_network::config::NetworkBackendType::Litep2p => {
            start::<sc_network::Litep2pNetworkBackend>(config, block_time)
        }
    }
}

fn start<Network: NetworkBackend<Block, Hash>>(
    mut config: Configuration,
    block_time: Duration,
) -> Result<TaskManager, ServiceError> {
    let executor = sc_service::new_wasm_executor::<HostFunctions>(&config.executor);
    let (client, backend, keystore_container, mut task_manager) =
        sc_service::new_full_parts_record_import::<Block, RuntimeApi, _>(
            &config,
            None,
            executor,
            true,
            Default::default(),
        )?;
    let client = Arc::new(client);

    let transaction_pool = Arc::from(
        sc_transaction_pool::Builder::new(
            task_manager.spawn_essential_handle(),
            client.clone(),
            config.role.is_authority().into(),
        )
        .with_options(config.transaction_pool.clone())
        .with_prometheus(config.prometheus_registry())
        .build(),
    );

    let import_queue = sc_consensus_manual_seal::import_queue(
        Box::new(client.clone()),
        &task_manager.spawn_essential_handle(),
        config.prometheus_registry(),
    );

    // A dev chain has one node: no peers in or out.
    config.network.default_peers_set.in_peers = 0;
    config.network.default_peers_set.out_peers = 0;
    let net_config = FullNetworkConfiguration::<Block, Hash, Network>::new(
        &config.network,
        config.prometheus_registry().cloned(),
    );
    let metrics = Network::register_notification_metrics(config.prometheus_registry());
    let (network, system_rpc_tx, tx_handler_controller, sync_service, _bitswap) =
        sc_service::build_network(sc_service::BuildNetworkParams {
            config: &config,
            client: client.clone(),
            transaction_pool: transaction_pool.clone(),
            spawn_handle: task_manager.spawn_handle(),
            spawn_essential_handle: task_manager.spawn_essential_handle(),
            import_queue,
            net_config,
            block_announce_validator_builder: None,
            warp_sync_config: None,
            block_relay: None,
            metrics,
            gap_sync_body_policy: None,
        })?;

    let best = client.info().best_hash;
    let slot_duration = client
        .runtime_api()
        .slot_duration(best)
        .map_err(|e| ServiceError::Application(Box::new(e)))?;
    let para_id = client
        .runtime_api()
        .parachain_id(best)
        .map_err(|e| ServiceError::Application(Box::new(e)))?;

    // Seal a block every `block_time`; each one finalized at once.
    let (mut seal_tx, seal_rx) = futures::channel::mpsc::channel(16);
    task_manager
        .spawn_essential_handle()
        .spawn("dev-block-timer", None, async move {
            loop {
                futures_timer::Delay::new(block_time).await;
                let command = EngineCommand::SealNewBlock {
                    create_empty: true,
                    finalize: true,
                    parent_hash: None,
                    sender: None,
                };
                if seal_tx.try_send(command).is_err() && seal_tx.is_closed() {
                    break;
                }
            }
        });
    let proposer = sc_basic_authorship::ProposerFactory::new(
        task_manager.spawn_handle(),
        client.clone(),
        transaction_pool.clone(),
        config.prometheus_registry(),
        None,
    );
    let seal = sc_consensus_manual_seal::run_manual_seal(ManualSealParams {
        block_import: client.clone(),
        env: proposer,
        client: client.clone(),
        pool: transaction_pool.clone(),
        select_chain: sc_consensus::LongestChain::new(backend.clone()),
        commands_stream: seal_rx.boxed(),
        consensus_data_provider: Some(Box::new(
            AuraConsensusDataProvider::<Block>::new_with_slot_duration(slot_duration),
        )),
        create_inherent_data_providers: inherent_data(client.clone(), para_id, slot_duration),
    });
    task_manager
        .spawn_essential_handle()
        .spawn_blocking("manual-seal", None, seal.boxed());

    let rpc_builder = {
        let client = client.clone();
        let pool = transaction_pool.clone();
        Box::new(move |_| {
            use pallet_transaction_payment_rpc::{TransactionPayment, TransactionPaymentApiServer};
            use substrate_frame_rpc_system::{System, SystemApiServer};
            let mut module = jsonrpsee::RpcModule::new(());
            module
                .merge(System::new(client.clone(), pool.clone()).into_rpc())
                .map_err(|e| ServiceError::Application(Box::new(e)))?;
            module
                .merge(TransactionPayment::new(client.clone()).into_rpc())
                .map_err(|e| ServiceError::Application(Box::new(e)))?;
            Ok(module)
        })
    };
    sc_service::spawn_tasks(sc_service::SpawnTasksParams {
        network,
        client,
        keystore: keystore_container.keystore(),
        task_manager: &mut task_manager,
        transaction_pool,
        rpc_builder,
        backend,
        system_rpc_tx,
        tx_handler_controller,
        sync_service,
        config,
        telemetry: None,
        tracing_execute_block: None,
    })?;
    Ok(task_manager)
}

type InherentData = (sp_timestamp::InherentDataProvider, ParachainInherentData);

/// The inherents of each sealed block: the parachain inherent with a mocked relay chain, and
/// a timestamp at the relay parent's slot. The relay parent of para block `n` is relay block
/// `offset + n × relay_per_para` (one relay slot per 6 s of para slot), so Aura's slot and
/// the relay slot agree as `cumulus-pallet-aura-ext` requires; time starts two hours back so
/// fast dev blocks do not run ahead of the wall clock at once. The relay state proof
/// (`cumulus-test-relay-sproof-builder`) holds the para head, the host configuration, the
/// epoch (10 para blocks each), the empty message queues and, when the runtime has a code
/// upgrade pending, the relay chain's go-ahead.
fn inherent_data(
    client: Arc<Client>,
    para_id: cumulus_primitives_core::ParaId,
    slot_duration: sp_consensus_aura::SlotDuration,
) -> impl Fn(
    Hash,
    (),
) -> futures::future::Ready<Result<InherentData, Box<dyn std::error::Error + Send + Sync>>>
       + Send
       + Sync {
    let start_slot = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(Duration::from_secs(2 * 60 * 60))
        .as_millis() as u64
        / RELAY_SLOT_MILLIS;
    let relay_per_para = (slot_duration.as_millis() / RELAY_SLOT_MILLIS).max(1) as u32;
    move |parent: Hash, ()| {
        let build = || -> Result<InherentData, Box<dyn std::error::Error + Send + Sync>> {
            let head = client
                .header(parent)?
                .ok_or_else(|| format!("parent block {parent} is not in the database"))?;
            let api = client.runtime_api();
            let number = *head.number() + 1;
            let relay_slot = start_slot + u64::from(number) * u64::from(relay_per_para);
            let relay_parent_number = relay_slot as u32;
            let upgrade_pending = api
                .collect_collation_info(parent, &head)
                .map(|info| info.new_validation_code.is_some())
                .unwrap_or_default();
            let proof = RelayStateSproofBuilder {
                para_id,
                current_slot: relay_chain::Slot::from(u64::from(relay_parent_number)),
                current_epoch: u64::from(number / PARA_BLOCKS_PER_RELAY_EPOCH),
                dmq_mqc_head: Some(Default::default()),
                included_para_head: Some(relay_chain::HeadData(head.encode())),
                upgrade_go_ahead: upgrade_pending.then_some(relay_chain::UpgradeGoAhead::GoAhead),
                num_authorities: 2,
                ..Default::default()
            };
            let relay_parent_offset = api.relay_parent_offset(parent).unwrap_or_default();
            let (relay_parent_storage_root, relay_chain_state, relay_parent_descendants) =
                proof.into_state_root_proof_and_descendants(relay_parent_offset.into());
            let relay = ParachainInherentData {
                validation_data: PersistedValidationData {
                    parent_head: Default::default(),
                    relay_parent_storage_root,
                    relay_parent_number,
                    max_pov_size: Default::default(),
                },
                relay_chain_state,
                downward_messages: Vec::new(),
                horizontal_messages: Default::default(),
                relay_parent_descendants,
                collator_peer_id: None,
            };
            let timestamp =
                sp_timestamp::InherentDataProvider::new((relay_slot * RELAY_SLOT_MILLIS).into());
            Ok((timestamp, relay))
        };
        futures::future::ready(build())
    }
}
