//! Gate sync: keeps the broker's grants in line with the chain view and the receipt window
//! (the daemon's supervised task [`crate::daemon::tasks::GATE_SYNC`]).

use std::{sync::Arc, time::Duration};

use fastdata_primitives::AccountId;

use crate::{
    auth::Authorizer,
    chain::{ChainEvent, ChainView},
    gate::{BrokerGate, GateError, Revocation},
    metrics::Metrics,
    store::Store,
    supervisor::{TaskContext, TaskError},
};

/// What [`gate_sync`] works with.
pub(crate) struct GateSync {
    /// The broker gate whose grants are kept in line.
    pub(crate) gate: Arc<dyn BrokerGate>,
    /// The chain facts.
    pub(crate) view: Arc<dyn ChainView>,
    /// This operator.
    pub(crate) me: AccountId,
    /// Metrics (hosted streams, closed purchases).
    pub(crate) metrics: Arc<Metrics>,
    /// The receipt-window decisions.
    pub(crate) auth: Arc<Authorizer>,
    /// The store, whose changes wake the receipt-window check.
    pub(crate) store: Arc<Store>,
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
pub(crate) async fn gate_sync(
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
