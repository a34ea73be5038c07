//! Retention: the daemon's supervised task [`crate::daemon::tasks::RETENTION`] deletes what
//! this operator need not keep any more: segments older than their stream's retention,
//! streams it has not hosted for the keep period ([`UNHOSTED_KEEP_BLOCKS`] and
//! [`UNHOSTED_KEEP_TIME`]), stored handovers past [`HANDOVER_KEEP_BLOCKS`].

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use fastdata_primitives::{BlockNumber, StreamId};

use crate::{
    chain::{ChainView, HANDOVER_KEEP_BLOCKS},
    metrics::Metrics,
    store::Store,
    supervisor::{TaskContext, TaskError},
};

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
pub(crate) async fn retention(
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
        chain::{tests::assignment, ChainEvent, InMemoryChainView},
        daemon::tasks,
        store::NewSegment,
        supervisor::{Policy, Restart, Supervisor},
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
