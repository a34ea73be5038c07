//! Wiring: builds every part of the daemon from a [`Config`], runs each long-running part as
//! a named task under a [`Supervisor`] (see [`tasks`] for the names), shuts it down.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use fastdata_primitives::{AccountId, BlockNumber, StreamId};
use fastdata_sdk::http::HttpClient;
use sp_core::Pair;

use crate::{
    api::{self, Node},
    auth::Authorizer,
    chain::{ChainEvent, ChainView, HANDOVER_KEEP_BLOCKS},
    config::{BrokerKind, Config},
    gate::{
        mosquitto::{MosquittoConfig, MosquittoGate},
        vernemq::{VernemqApi, VernemqGate},
        BrokerGate, GateError, Revocation,
    },
    ingest::{self, IngestConfig, SegmentWriter},
    metrics::Metrics,
    receipts::{self, ClaimSubmitter, ReceiptBook},
    replication::{BackfillRequest, Replicator},
    store::Store,
    supervisor::{Restart, Supervisor, TaskContext, TaskError, TaskFailure, TaskStatus},
    tls::TlsListener,
};

/// A running daemon.
pub struct Daemon {
    /// Shared state (for tests and embedding).
    pub node: Arc<Node>,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Whether the API is served over HTTPS (`[http] tls_cert`).
    pub https: bool,
    /// Where the VerneMQ webhooks listen, with that backend.
    pub webhook_addr: Option<SocketAddr>,
    backfill: tokio::sync::mpsc::Sender<BackfillRequest>,
    supervisor: Supervisor,
}

/// Task names, as `/health`, the metrics and the logs show them.
pub mod tasks {
    /// The HTTP API server.
    pub const HTTP: &str = "http";
    /// The TLS handshakes of the HTTPS API.
    pub const HTTPS_ACCEPTOR: &str = "https-acceptor";
    /// The VerneMQ webhook server.
    pub const WEBHOOKS: &str = "webhooks";
    /// The Mosquitto dynsec control connection.
    pub const BROKER_GATE: &str = crate::gate::mosquitto::CONTROL_TASK;
    /// Broker grants kept in line with the chain view.
    pub const GATE_SYNC: &str = "gate-sync";
    /// The broker subscription that stores segments.
    pub const INGEST: &str = "ingest";
    /// Backfill from other operators.
    pub const REPLICATION: &str = "replication";
    /// Claim rounds.
    pub const CLAIMS: &str = "claims";
    /// Retention sweeps.
    pub const RETENTION: &str = "retention";
    /// The chain follower (added by the binary with `[chain] url`).
    pub const CHAIN_FOLLOWER: &str = crate::follower::TASK;
}

impl Daemon {
    /// Builds and starts every part: store, gate, HTTP API (and webhooks), ingest,
    /// replication, gate sync, claims, retention, each a supervised task (see
    /// [`crate::supervisor`]). A part that cannot start fails the start-up, after the
    /// parts already running are stopped.
    pub async fn start(
        config: Config,
        view: Arc<dyn ChainView>,
        submitter: Arc<dyn ClaimSubmitter>,
    ) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new());
        let supervisor = Supervisor::new(config.supervision.policy(), metrics.clone());
        match Self::build(&config, view, submitter, metrics, &supervisor).await {
            Ok(parts) => Ok(Self {
                node: parts.node,
                http_addr: parts.http_addr,
                https: parts.https,
                webhook_addr: parts.webhook_addr,
                backfill: parts.backfill,
                supervisor,
            }),
            Err(e) => {
                supervisor.shutdown().await;
                Err(e)
            }
        }
    }

    async fn build(
        config: &Config,
        view: Arc<dyn ChainView>,
        submitter: Arc<dyn ClaimSubmitter>,
        metrics: Arc<Metrics>,
        supervisor: &Supervisor,
    ) -> anyhow::Result<Parts> {
        let pair = config.operator_pair()?;
        // TLS material first: a bad file stops the start-up before anything else happens.
        let server_tls = config.http.server_tls()?;
        let client_tls = config.http.client_tls()?;
        let broker_tls = config.broker.tls.then(|| client_tls.clone());
        let http_client = HttpClient::with_tls_config(client_tls);
        let me = AccountId::from(pair.public());
        std::fs::create_dir_all(&config.operator.data_dir).with_context(|| {
            format!(
                "cannot create data_dir {}",
                config.operator.data_dir.display()
            )
        })?;
        let db_path = config.operator.data_dir.join("operator.redb");
        let store = Arc::new(
            Store::open(&db_path)
                .with_context(|| format!("cannot open the database {}", db_path.display()))?,
        );
        // Handovers are only seen in block events: the store remembers them across restarts.
        let handovers = view
            .keep_handovers(&store)
            .context("cannot read the stored handovers")?;
        if handovers > 0 {
            tracing::info!(handovers, "stream handovers loaded from the store");
        }
        let genesis = config.chain.genesis();
        tracing::info!(
            genesis = %format!("0x{}", hex::encode(genesis.as_bytes())),
            receipt_window = config.serving.receipt_window,
            "signatures are checked for this chain"
        );
        let auth = Arc::new(
            Authorizer::new(
                me.clone(),
                genesis,
                view.clone(),
                store.clone(),
                metrics.clone(),
            )
            .with_receipt_window(config.serving.receipt_window),
        );

        // Subscribe to chain events before anything reads the view, so no event is missed;
        // restarted tasks subscribe again and resynchronise from the view.
        let gate_events = view.subscribe();
        let ingest_events = view.subscribe();
        let replication_events = view.subscribe();

        let mut webhook_addr = None;
        let gate: Arc<dyn BrokerGate> = match config.broker.kind {
            BrokerKind::Mosquitto => {
                let (gate, connection) = MosquittoGate::new(
                    MosquittoConfig {
                        host: config.broker.host.clone(),
                        port: config.broker.port,
                        username: config.broker.username.clone(),
                        password: config.broker.password.clone(),
                        client_id: config.broker.own_client_id("control"),
                        timeout: Duration::from_secs(10),
                        tls: broker_tls.clone(),
                    },
                    metrics.clone(),
                );
                supervisor.spawn(tasks::BROKER_GATE, Restart::OnError, move |ctx| {
                    let connection = connection.clone();
                    async move { connection.run(ctx).await }
                });
                gate.initialize()
                    .await
                    .context("cannot reach the Mosquitto dynamic-security plugin")?;
                let stale = gate.adopt_existing(view.as_ref(), &me).await?;
                tracing::info!(stale, "took over dynsec clients of the previous run");
                gate
            }
            BrokerKind::Vernemq => {
                let api = match (&config.vernemq.api_url, &config.vernemq.api_key) {
                    (Some(base_url), Some(api_key)) => Some(VernemqApi {
                        base_url: base_url.clone(),
                        api_key: api_key.clone(),
                    }),
                    _ => None,
                };
                let gate = Arc::new(
                    VernemqGate::new(
                        auth.clone(),
                        config.broker.username.clone(),
                        config.broker.password.clone(),
                        api,
                    )
                    .with_http_client(http_client.clone())
                    .with_metrics(metrics.clone())
                    .with_publish_cache(config.vernemq.cache_secs)
                    .with_store(store.clone())
                    .context("cannot read the broker gate's records")?,
                );
                // Before the hooks are served, so no session registers meanwhile.
                if let Err(e) = gate.sync_sessions().await {
                    tracing::warn!("broker sessions not compared with the gate's records: {e}");
                }
                let listener = tokio::net::TcpListener::bind(config.vernemq.webhook_listen)
                    .await
                    .with_context(|| {
                        format!("cannot listen on {}", config.vernemq.webhook_listen)
                    })?;
                webhook_addr = Some(listener.local_addr()?);
                let router = gate.clone().router();
                supervisor.spawn_once(tasks::WEBHOOKS, move |ctx| serve(listener, router, ctx));
                gate
            }
        };

        let receipts = Arc::new(
            ReceiptBook::new(me.clone(), view.clone(), store.clone(), metrics.clone())
                .with_genesis(genesis),
        );
        let node = Arc::new(
            Node::new(
                pair.clone(),
                auth.clone(),
                view.clone(),
                store.clone(),
                metrics.clone(),
                gate.clone(),
                receipts.clone(),
            )
            .with_health(supervisor.health()),
        );
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.http.listen))?;
        let http_addr = listener.local_addr()?;
        let https = server_tls.is_some();
        let router = api::router(node.clone());
        match server_tls {
            Some(tls) => {
                let (listener, acceptor) = TlsListener::with_acceptor(listener, tls)?;
                supervisor.spawn_once(tasks::HTTPS_ACCEPTOR, move |ctx| async move {
                    acceptor.await;
                    if ctx.stopping() {
                        Ok(())
                    } else {
                        Err(TaskError::fatal("the TLS accept loop stopped"))
                    }
                });
                supervisor.spawn_once(tasks::HTTP, move |ctx| serve(listener, router, ctx));
            }
            None => supervisor.spawn_once(tasks::HTTP, move |ctx| serve(listener, router, ctx)),
        }

        let (backfill_tx, backfill_rx) = tokio::sync::mpsc::channel(1024);
        let replicator = Arc::new(
            Replicator::new(pair, genesis, view.clone(), store.clone(), metrics.clone())
                .with_http_client(http_client),
        );
        supervisor.spawn_once(tasks::REPLICATION, move |ctx| async move {
            replicator
                .run(backfill_rx, replication_events, ctx.shutdown)
                .await;
            Ok(())
        });

        let ingest_config = IngestConfig {
            brokers: ingest::BrokerNodes::new(config.broker.nodes()),
            username: config.broker.username.clone(),
            password: config.broker.password.clone(),
            client_id: config.broker.own_client_id("ingest"),
            tls: broker_tls,
        };
        let mut ingest_events = Some(ingest_events);
        let (ingest_auth, ingest_store, ingest_metrics, ingest_view, ingest_backfill) = (
            auth.clone(),
            store.clone(),
            metrics.clone(),
            view.clone(),
            backfill_tx.clone(),
        );
        supervisor.spawn(tasks::INGEST, Restart::OnError, move |ctx| {
            let writer = SegmentWriter::new(
                ingest_auth.clone(),
                ingest_store.clone(),
                ingest_metrics.clone(),
                Some(ingest_backfill.clone()),
            );
            let events = ingest_events
                .take()
                .unwrap_or_else(|| ingest_view.subscribe());
            ingest::run(ingest_config.clone(), writer, events, ctx)
        });

        let mut gate_events = Some(gate_events);
        let (sync_view, sync_me, sync_metrics, sync_auth, sync_store) = (
            view.clone(),
            me.clone(),
            metrics.clone(),
            auth.clone(),
            store.clone(),
        );
        supervisor.spawn(tasks::GATE_SYNC, Restart::OnError, move |ctx| {
            let events = gate_events.take().unwrap_or_else(|| sync_view.subscribe());
            gate_sync(
                GateSync {
                    gate: gate.clone(),
                    view: sync_view.clone(),
                    me: sync_me.clone(),
                    metrics: sync_metrics.clone(),
                    auth: sync_auth.clone(),
                    store: sync_store.clone(),
                },
                events,
                ctx,
            )
        });

        let claim_interval = Duration::from_secs(config.claims.interval_secs.max(1));
        let claim_batch = config.claims.batch;
        supervisor.spawn(tasks::CLAIMS, Restart::OnError, move |ctx| {
            receipts::run_claims(
                receipts.clone(),
                submitter.clone(),
                claim_interval,
                claim_batch,
                ctx,
            )
        });

        let sweep = Duration::from_secs(config.serving.retention_sweep_secs.max(1));
        let retention_metrics = metrics;
        supervisor.spawn(tasks::RETENTION, Restart::OnError, move |ctx| {
            retention(
                view.clone(),
                store.clone(),
                retention_metrics.clone(),
                sweep,
                (UNHOSTED_KEEP_BLOCKS, UNHOSTED_KEEP_TIME),
                ctx,
            )
        });
        tracing::info!(%http_addr, https, ?webhook_addr, operator = %node.me, "operator daemon started");
        Ok(Parts {
            node,
            http_addr,
            https,
            webhook_addr,
            backfill: backfill_tx,
        })
    }

    /// `http://<http_addr>` or `https://<http_addr>`.
    pub fn http_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.http_addr)
    }

    /// Asks the replicator to fill `request` from the other operators of the stream (what
    /// ingest does on a sequence gap).
    pub async fn request_backfill(&self, request: BackfillRequest) -> anyhow::Result<()> {
        self.backfill
            .send(request)
            .await
            .map_err(|_| anyhow::anyhow!("the replicator stopped"))
    }

    /// Runs one more supervised task under the daemon's policy (the binary adds the chain
    /// follower this way); it shows in `/health` and its failure fails the daemon.
    pub fn supervise<F, Fut>(&self, name: &'static str, restart: Restart, task: F)
    where
        F: FnMut(TaskContext) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        self.supervisor.spawn(name, restart, task);
    }

    /// Every task's state (what `GET /health` shows).
    pub fn health(&self) -> Vec<TaskStatus> {
        self.supervisor.health().tasks()
    }

    /// Resolves with the first task that failed for good.
    pub async fn failed(&self) -> TaskFailure {
        self.supervisor.failed().await
    }

    /// Runs until `stop` resolves (then stops cleanly: `Ok`) or a task fails for good (then
    /// stops every task and returns the failure, naming the task).
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let failure = tokio::select! {
            _ = stop => None,
            failure = self.supervisor.failed() => Some(failure),
        };
        match failure {
            None => {
                tracing::info!("shutting down");
                self.shutdown().await;
                Ok(())
            }
            Some(failure) => {
                tracing::error!("{failure}; shutting down");
                self.shutdown().await;
                Err(failure.into())
            }
        }
    }

    /// Stops every task (HTTP servers finish their requests) and waits for them.
    pub async fn shutdown(self) {
        self.supervisor.shutdown().await;
        tracing::info!("operator daemon stopped");
    }
}

/// What [`Daemon::build`] starts.
struct Parts {
    node: Arc<Node>,
    http_addr: SocketAddr,
    https: bool,
    webhook_addr: Option<SocketAddr>,
    backfill: tokio::sync::mpsc::Sender<BackfillRequest>,
}

/// Serves `router` on `listener` until the daemon stops; any other end fails the daemon.
async fn serve<L>(listener: L, router: axum::Router, ctx: TaskContext) -> Result<(), TaskError>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let mut shutdown = ctx.shutdown.clone();
    let stop = async move { crate::stopped(&mut shutdown).await };
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await;
    match served {
        Ok(()) if ctx.stopping() => Ok(()),
        Ok(()) => Err(TaskError::fatal("the server stopped")),
        Err(e) => Err(TaskError::fatal(format!("the server failed: {e}"))),
    }
}

/// What [`gate_sync`] works with.
struct GateSync {
    gate: Arc<dyn BrokerGate>,
    view: Arc<dyn ChainView>,
    me: AccountId,
    metrics: Arc<Metrics>,
    auth: Arc<Authorizer>,
    store: Arc<Store>,
}

/// How often live grants are checked against the receipt window even when nothing was
/// stored (a safety net under the store's wake-ups).
const WINDOW_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Applies the receipt-window rule to every live grant (see [`crate::gate`]).
async fn enforce_windows(sync: &GateSync) -> Result<(), GateError> {
    let purchases = sync.gate.live_purchases();
    if purchases.is_empty() {
        return Ok(());
    }
    let auth = sync.auth.clone();
    let decisions = tokio::task::spawn_blocking(move || {
        purchases
            .into_iter()
            .filter_map(|p| auth.live_window_decision(p).map(|open| (p, open)))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| GateError::Connection(format!("receipt window check failed: {e}")))?;
    sync.gate.apply_windows(&decisions).await.map(|_| ())
}

/// Keeps broker grants in line with the chain: revokes on purchase end/refund and on
/// unassignment, and reconciles on every finalized block (access periods run out by time);
/// and with the receipt window: after every stored segment or receipt (and every
/// [`WINDOW_CHECK_INTERVAL`]) each live grant is checked ([`enforce_windows`]). A failed
/// broker command is retried at the next block or check; the broker connection's own task
/// reports a broker that is gone.
async fn gate_sync(
    sync: GateSync,
    mut events: tokio::sync::broadcast::Receiver<ChainEvent>,
    mut ctx: TaskContext,
) -> Result<(), TaskError> {
    let (gate, view, me, metrics, store) = (
        sync.gate.clone(),
        sync.view.clone(),
        sync.me.clone(),
        sync.metrics.clone(),
        sync.store.clone(),
    );
    ctx.ready();
    metrics.streams.set(view.streams().len() as i64);
    if let Err(e) = gate.reconcile(view.as_ref(), &me).await {
        tracing::warn!("initial gate reconcile failed: {e}");
    }
    let mut tick = tokio::time::interval(WINDOW_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            _ = ctx.stopped() => return Ok(()),
            event = events.recv() => event,
            _ = store.changed().notified() => {
                if let Err(e) = enforce_windows(&sync).await {
                    tracing::warn!("receipt window not enforced (retried at the next change): {e}");
                }
                continue;
            }
            _ = tick.tick() => {
                if let Err(e) = enforce_windows(&sync).await {
                    tracing::warn!("receipt window not enforced (retried): {e}");
                }
                continue;
            }
        };
        let result = match event {
            Ok(
                ChainEvent::PurchaseEnded { purchase } | ChainEvent::PurchaseRefunded { purchase },
            ) => {
                metrics.purchase_closed(purchase);
                gate.revoke(Revocation::Purchase(purchase)).await
            }
            Ok(ChainEvent::StreamUnassigned { stream }) => {
                metrics.streams.set(view.streams().len() as i64);
                gate.revoke(Revocation::Stream(stream)).await
            }
            Ok(ChainEvent::StreamAssigned(_)) => {
                metrics.streams.set(view.streams().len() as i64);
                gate.reconcile(view.as_ref(), &me).await.map(|_| ())
            }
            Ok(ChainEvent::Finalized { .. } | ChainEvent::PurchaseUpdated(_))
            | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                gate.reconcile(view.as_ref(), &me).await.map(|_| ())
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                return Err(TaskError::transient("the chain view's events ended"))
            }
            Ok(_) => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!("broker gate update failed (retried at the next block): {e}");
        }
    }
}

/// How long a stream this operator no longer hosts (released, or reassigned away) keeps its
/// segments: both this many finalized blocks and [`UNHOSTED_KEEP_TIME`] of this process's
/// running time, so a view that is briefly wrong (a node catching up finalizes hundreds of
/// blocks in seconds; a restart starts the count again) deletes nothing it still hosts.
pub const UNHOSTED_KEEP_BLOCKS: BlockNumber = 600;

/// See [`UNHOSTED_KEEP_BLOCKS`]: an hour.
pub const UNHOSTED_KEEP_TIME: Duration = Duration::from_secs(3600);

/// Deletes segments older than their stream's retention, every segment of a stream this
/// operator has not hosted for `keep_blocks` finalized blocks and `keep_time`, and the
/// stored handovers older than [`HANDOVER_KEEP_BLOCKS`]; a sweep the store fails ends the run
/// with the error.
async fn retention(
    view: Arc<dyn ChainView>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    period: Duration,
    (keep_blocks, keep_time): (BlockNumber, Duration),
    mut ctx: TaskContext,
) -> Result<(), TaskError> {
    ctx.ready();
    // Streams stored but not hosted, with the block and time they were first seen so.
    let mut unhosted: BTreeMap<StreamId, (BlockNumber, tokio::time::Instant)> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = ctx.stopped() => return Ok(()),
            _ = tokio::time::sleep(period) => {}
        }
        let now = view.finalized_block();
        let hosted = view.streams();
        let mut sweeps: Vec<(StreamId, Option<BlockNumber>)> = hosted
            .iter()
            .filter(|s| s.retention > 0)
            .filter_map(|s| Some((s.stream, Some(now.checked_sub(s.retention)?))))
            .collect();
        // Before the first finalized block the view is not synced: it hosts nothing yet.
        if now > 0 {
            let store = store.clone();
            let stored = blocking_store(move || store.stored_streams()).await?;
            unhosted.retain(|stream, _| stored.contains(stream));
            for stream in stored {
                if hosted.iter().any(|s| s.stream == stream) {
                    unhosted.remove(&stream);
                    continue;
                }
                let (since, seen) = *unhosted
                    .entry(stream)
                    .or_insert((now, tokio::time::Instant::now()));
                if now.saturating_sub(since) >= keep_blocks && seen.elapsed() >= keep_time {
                    sweeps.push((stream, None));
                }
            }
        }
        if now > HANDOVER_KEEP_BLOCKS {
            let store = store.clone();
            let before = now - HANDOVER_KEEP_BLOCKS;
            blocking_store(move || store.prune_handovers(before)).await?;
        }
        for (stream, before) in sweeps {
            let store = store.clone();
            let n = blocking_store(move || match before {
                Some(before) => store.prune(&stream, before),
                None => store.drop_stream(&stream),
            })
            .await?;
            metrics.segments_pruned.inc_by(n);
            if before.is_none() {
                unhosted.remove(&stream);
                tracing::info!(%stream, segments = n, "deleted a stream this operator no longer hosts");
            }
        }
    }
}

/// Runs a store operation of the retention sweep off the async threads.
async fn blocking_store<R: Send + 'static>(
    op: impl FnOnce() -> Result<R, crate::store::StoreError> + Send + 'static,
) -> Result<R, TaskError> {
    match tokio::task::spawn_blocking(op).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(TaskError::transient(format!("retention sweep failed: {e}"))),
        Err(e) => Err(TaskError::transient(format!(
            "retention sweep crashed: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        chain::{tests::assignment, InMemoryChainView},
        store::NewSegment,
        supervisor::Policy,
    };
    use sp_core::H256;

    fn segment(stream: u8, sequence: u64) -> NewSegment {
        NewSegment {
            stream: H256::repeat_byte(stream),
            sequence,
            envelope: vec![stream; 10],
        }
    }

    /// The keep time of the test: short, but longer than the checks made before it passes.
    const KEEP_TIME: Duration = Duration::from_millis(1500);

    /// Waits until `done` holds, sweeping every 20 ms.
    async fn eventually(done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "not within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn streams_no_longer_hosted_are_deleted_after_the_keep_period_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db.redb")).unwrap());
        let view = InMemoryChainView::shared();
        // Hosted: stream 7. Stored but never hosted here: stream 8.
        view.apply(ChainEvent::StreamAssigned(assignment(7, 1, &[2])));
        store
            .insert_segments(&[segment(7, 0), segment(7, 1), segment(8, 0)], 1)
            .unwrap();
        // Stream 8 was handed over at block 100.
        let handover = crate::chain::Handover {
            stream: H256::repeat_byte(8),
            from: crate::chain::tests::account(2),
            to: crate::chain::tests::account(3),
            at: 100,
        };
        store.record_handover(&handover).unwrap();
        let metrics = Arc::new(Metrics::new());
        let supervisor = Supervisor::new(Policy::default(), metrics.clone());
        let (v, s, m) = (view.clone(), store.clone(), metrics.clone());
        supervisor.spawn(tasks::RETENTION, Restart::OnError, move |ctx| {
            let view: Arc<dyn ChainView> = v.clone();
            let keep = (UNHOSTED_KEEP_BLOCKS, KEEP_TIME);
            retention(
                view,
                s.clone(),
                m.clone(),
                Duration::from_millis(10),
                keep,
                ctx,
            )
        });
        let stored = |n: u8| store.count(&H256::repeat_byte(n)).unwrap();

        // Not synced (no finalized block): nothing is touched however long it runs.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!((stored(7), stored(8)), (2, 1));
        // Synced: stream 8 is kept for the keep period, counted from now: the blocks alone
        // (a node catching up finalizes them in seconds) delete nothing.
        view.apply(ChainEvent::Finalized { number: 100 });
        let seen = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
        view.apply(ChainEvent::Finalized {
            number: 100 + UNHOSTED_KEEP_BLOCKS,
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(seen.elapsed() < KEEP_TIME);
        assert_eq!((stored(7), stored(8)), (2, 1));
        assert_eq!(store.handovers().unwrap(), vec![handover.clone()]);
        // Once the time has passed too, it goes.
        eventually(|| stored(8) == 0).await;
        assert!(seen.elapsed() >= KEEP_TIME);
        assert_eq!(stored(7), 2, "a hosted stream stays");
        assert_eq!(store.stored_bytes(&H256::repeat_byte(8)).unwrap(), 0);

        // Released: the time alone deletes nothing either; the blocks must pass too.
        view.apply(ChainEvent::StreamUnassigned {
            stream: H256::repeat_byte(7),
        });
        let released = tokio::time::Instant::now();
        eventually(|| released.elapsed() > KEEP_TIME + Duration::from_millis(200)).await;
        assert_eq!(stored(7), 2);
        view.apply(ChainEvent::Finalized {
            number: 100 + 2 * UNHOSTED_KEEP_BLOCKS,
        });
        eventually(|| stored(7) == 0).await;
        assert!(store.stored_streams().unwrap().is_empty());
        // The handover is past its keep period too.
        eventually(|| store.handovers().unwrap().is_empty()).await;
        assert_eq!(metrics.segments_pruned.get(), 3);
        supervisor.shutdown().await;
    }
}
