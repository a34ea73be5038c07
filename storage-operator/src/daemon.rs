//! Wiring: builds every part of the daemon from a [`Config`], runs it, shuts it down.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use fastdata_primitives::AccountId;
use fastdata_sdk::http::HttpClient;
use sp_core::Pair;
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    api::{self, Node},
    auth::Authorizer,
    chain::{ChainEvent, ChainView},
    config::{BrokerKind, Config},
    gate::{
        mosquitto::{MosquittoConfig, MosquittoGate},
        vernemq::{VernemqApi, VernemqGate},
        BrokerGate, Revocation,
    },
    ingest::{self, IngestConfig, SegmentWriter},
    metrics::Metrics,
    receipts::{self, ClaimSubmitter, ReceiptBook},
    replication::{BackfillRequest, Replicator},
    store::Store,
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
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Daemon {
    /// Builds and starts every part: store, gate, HTTP API (and webhooks), ingest,
    /// replication, gate sync, claims, retention.
    pub async fn start(
        config: Config,
        view: Arc<dyn ChainView>,
        submitter: Arc<dyn ClaimSubmitter>,
    ) -> anyhow::Result<Self> {
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
        let metrics = Arc::new(Metrics::new());
        let auth = Arc::new(Authorizer::new(
            me.clone(),
            view.clone(),
            store.clone(),
            metrics.clone(),
        ));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        // Subscribe to chain events before anything reads the view, so no event is missed.
        let gate_events = view.subscribe();
        let ingest_events = view.subscribe();
        let replication_events = view.subscribe();

        let prefix = &config.broker.client_id_prefix;
        let mut webhook_addr = None;
        let gate: Arc<dyn BrokerGate> = match config.broker.kind {
            BrokerKind::Mosquitto => {
                let gate = MosquittoGate::connect(
                    MosquittoConfig {
                        host: config.broker.host.clone(),
                        port: config.broker.port,
                        username: config.broker.username.clone(),
                        password: config.broker.password.clone(),
                        client_id: format!("{prefix}-control"),
                        timeout: Duration::from_secs(10),
                        tls: broker_tls.clone(),
                    },
                    metrics.clone(),
                )
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
                    .with_http_client(http_client.clone()),
                );
                let listener = tokio::net::TcpListener::bind(config.vernemq.webhook_listen)
                    .await
                    .with_context(|| {
                        format!("cannot listen on {}", config.vernemq.webhook_listen)
                    })?;
                webhook_addr = Some(listener.local_addr()?);
                tasks.push(serve(listener, gate.clone().router(), shutdown_rx.clone()));
                gate
            }
        };

        let receipts = Arc::new(ReceiptBook::new(
            me.clone(),
            view.clone(),
            store.clone(),
            metrics.clone(),
        ));
        let node = Arc::new(Node::new(
            me.clone(),
            auth.clone(),
            view.clone(),
            store.clone(),
            metrics.clone(),
            gate.clone(),
            receipts.clone(),
            config.serving.ahead_segments,
        ));
        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.http.listen))?;
        let http_addr = listener.local_addr()?;
        let https = server_tls.is_some();
        tasks.push(match server_tls {
            Some(tls) => serve(
                TlsListener::new(listener, tls)?,
                api::router(node.clone()),
                shutdown_rx.clone(),
            ),
            None => serve(listener, api::router(node.clone()), shutdown_rx.clone()),
        });

        let (backfill_tx, backfill_rx) = tokio::sync::mpsc::channel(1024);
        let replicator = Arc::new(
            Replicator::new(pair, view.clone(), store.clone(), metrics.clone())
                .with_http_client(http_client),
        );
        tasks.push(tokio::spawn(replicator.run(
            backfill_rx,
            replication_events,
            shutdown_rx.clone(),
        )));

        let writer = SegmentWriter::new(
            auth.clone(),
            store.clone(),
            metrics.clone(),
            Some(backfill_tx.clone()),
        );
        let ingest_config = IngestConfig {
            host: config.broker.host.clone(),
            port: config.broker.port,
            username: config.broker.username.clone(),
            password: config.broker.password.clone(),
            client_id: format!("{prefix}-ingest"),
            tls: broker_tls,
        };
        tasks.push(tokio::spawn(ingest::run(
            ingest_config,
            writer,
            ingest_events,
            shutdown_rx.clone(),
        )));

        tasks.push(tokio::spawn(gate_sync(
            gate,
            view.clone(),
            me,
            metrics.clone(),
            gate_events,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(receipts::run_claims(
            receipts,
            submitter,
            Duration::from_secs(config.claims.interval_secs.max(1)),
            config.claims.batch,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(retention(
            view,
            store,
            metrics,
            Duration::from_secs(config.serving.retention_sweep_secs.max(1)),
            shutdown_rx,
        )));
        tracing::info!(%http_addr, https, ?webhook_addr, operator = %node.me, "operator daemon started");
        Ok(Self {
            node,
            http_addr,
            https,
            webhook_addr,
            backfill: backfill_tx,
            shutdown,
            tasks,
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

    /// Stops every task (HTTP servers finish their requests) and waits for them.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                tracing::warn!("a task did not stop within 10 s");
            }
        }
        tracing::info!("operator daemon stopped");
    }
}

fn serve<L>(
    listener: L,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        let stop = async move {
            let _ = crate::stopped(&mut shutdown).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!("HTTP server failed: {e}");
        }
    })
}

/// Keeps broker grants in line with the chain: revokes on purchase end/refund and on
/// unassignment, and reconciles on every finalized block (access periods run out by time).
async fn gate_sync(
    gate: Arc<dyn BrokerGate>,
    view: Arc<dyn ChainView>,
    me: AccountId,
    metrics: Arc<Metrics>,
    mut events: tokio::sync::broadcast::Receiver<ChainEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    metrics.streams.set(view.streams().len() as i64);
    if let Err(e) = gate.reconcile(view.as_ref(), &me).await {
        tracing::warn!("initial gate reconcile failed: {e}");
    }
    loop {
        let event = tokio::select! {
            _ = crate::stopped(&mut shutdown) => return,
            event = events.recv() => event,
        };
        let result = match event {
            Ok(
                ChainEvent::PurchaseEnded { purchase } | ChainEvent::PurchaseRefunded { purchase },
            ) => gate.revoke(Revocation::Purchase(purchase)).await,
            Ok(ChainEvent::StreamUnassigned { stream }) => {
                metrics.streams.set(view.streams().len() as i64);
                gate.revoke(Revocation::Stream(stream)).await
            }
            Ok(ChainEvent::StreamAssigned(_)) => {
                metrics.streams.set(view.streams().len() as i64);
                gate.reconcile(view.as_ref(), &me).await.map(|_| ())
            }
            Ok(ChainEvent::Finalized { .. } | ChainEvent::PurchaseUpdated(_)) | Err(_) => {
                gate.reconcile(view.as_ref(), &me).await.map(|_| ())
            }
            Ok(_) => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!("broker gate update failed (retried at the next block): {e}");
        }
    }
}

/// Deletes segments older than their stream's retention.
async fn retention(
    view: Arc<dyn ChainView>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = crate::stopped(&mut shutdown) => return,
            _ = tokio::time::sleep(period) => {}
        }
        let now = view.finalized_block();
        for stream in view.streams().into_iter().filter(|s| s.retention > 0) {
            let Some(before) = now.checked_sub(stream.retention) else {
                continue;
            };
            let store = store.clone();
            match tokio::task::spawn_blocking(move || store.prune(&stream.stream, before)).await {
                Ok(Ok(n)) => {
                    metrics.segments_pruned.inc_by(n);
                }
                Ok(Err(e)) => tracing::error!("retention sweep failed: {e}"),
                Err(e) => tracing::error!("retention sweep crashed: {e}"),
            }
        }
    }
}
