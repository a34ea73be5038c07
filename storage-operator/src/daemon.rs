//! Wiring: builds every part of the daemon from a [`Config`], runs each long-running part as
//! a named task under a [`Supervisor`] (see [`tasks`] for the names), shuts it down.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use fastdata_primitives::AccountId;
use fastdata_sdk::http::HttpClient;
use sp_core::Pair;

use crate::{
    api::{self, Node},
    auth::Authorizer,
    chain::ChainView,
    config::{BrokerKind, Config},
    gate::{
        mosquitto::{MosquittoConfig, MosquittoGate},
        sync::{gate_sync, GateSync},
        vernemq::{VernemqApi, VernemqGate},
        BrokerGate,
    },
    ingest::{self, IngestConfig, SegmentWriter},
    metrics::Metrics,
    receipts::{self, ClaimSubmitter, ReceiptBook},
    replication::{BackfillRequest, Replicator},
    retention::{retention, UNHOSTED_KEEP_BLOCKS, UNHOSTED_KEEP_TIME},
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
