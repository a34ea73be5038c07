//! Head attestation: the supervised task [`ATTEST_TASK`] ([`HeadAttester`]) attests the
//! contiguous stored head of each hosted stream on chain every [`ATTEST_EVERY_BLOCKS`] blocks
//! and before each claim round.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use fastdata_primitives::{BlockNumber, Sequence, StreamId};
use fastdata_sdk::Error;
use tokio::sync::Mutex;

use crate::{
    chain::{ChainEvent, ChainView},
    claims::{ChainClaimSubmitter, OperatorCalls},
    store::{Store, StoreError},
    supervisor::{TaskContext, TaskError},
};

/// The head attester's task name (in `/health`, metrics and logs).
pub const ATTEST_TASK: &str = "head-attester";

/// Finalized blocks between attestation rounds, by default.
pub const ATTEST_EVERY_BLOCKS: BlockNumber = 5;

/// Finalized blocks after which an unchanged stream is attested again, with its stored
/// bytes: each attestation pays the operator for hosting since its previous one, for at
/// most the runtime's hosting period (an hour), so this stays well below it.
pub const REATTEST_BLOCKS: BlockNumber = 300;

/// Most heads in one `attest_heads` call: the runtime's `MaxStreamsPerOperator`.
pub const MAX_HEADS_PER_CALL: usize = 256;

/// Sequences read from the store at once while looking for a stream's head.
pub(crate) const HEAD_SCAN_CHUNK: Sequence = 4096;

/// What one attestation round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttestRound {
    /// `attest_heads` transactions sent.
    pub calls: usize,
    /// Stream heads the chain accepted.
    pub attested: usize,
    /// Stream heads the chain refused (not sent again until they grow).
    pub refused: usize,
    /// Stream heads not decided (no connection): sent again next round.
    pub failed: usize,
}

#[derive(Default)]
struct AttestState {
    /// Streams whose `accepted` head was read from chain.
    synced: BTreeSet<StreamId>,
    /// The latest head of each stream the chain accepted from this operator.
    accepted: BTreeMap<StreamId, Sequence>,
    /// The finalized block at which the chain last accepted an attestation of the stream,
    /// and the stored bytes it attested.
    last_accepted: BTreeMap<StreamId, (BlockNumber, u64)>,
    /// The stored head found by the last scan (scans resume there).
    scanned: BTreeMap<StreamId, Sequence>,
    /// A head the chain refused, per stream: not sent again until the head grows past it.
    refused: BTreeMap<StreamId, Sequence>,
}

/// Attests this operator's stream heads on chain (`Operators::attest_heads`): for each
/// assigned stream, the number of its segments stored contiguously from sequence 0 and the
/// bytes it stores. A round sends one transaction (chunked by [`MAX_HEADS_PER_CALL`]) with
/// the streams whose head grew since the chain last accepted one, whose stored bytes
/// changed, or whose last accepted attestation is [`REATTEST_BLOCKS`] old (hosting is paid
/// per attestation interval by the bytes attested), and nothing otherwise. The heads the chain
/// holds are read before a stream's first attestation, so a head lower than an accepted one
/// is never sent (e.g. after a restart, when retention pruned the stream's start: scans
/// resume at the accepted head).
pub struct HeadAttester {
    view: Arc<dyn ChainView>,
    store: Arc<Store>,
    calls: Arc<dyn OperatorCalls>,
    max_per_call: usize,
    state: Mutex<AttestState>,
}

impl HeadAttester {
    /// Attests the streams of `view` from `store` through `calls`.
    pub fn new(view: Arc<dyn ChainView>, store: Arc<Store>, calls: Arc<dyn OperatorCalls>) -> Self {
        Self {
            view,
            store,
            calls,
            max_per_call: MAX_HEADS_PER_CALL,
            state: Mutex::new(AttestState::default()),
        }
    }

    /// At most `n` heads per transaction (at least 1).
    pub fn with_max_per_call(mut self, n: usize) -> Self {
        self.max_per_call = n.max(1);
        self
    }

    /// The latest head of `stream` the chain accepted from this operator, as known here.
    pub async fn accepted(&self, stream: &StreamId) -> Option<Sequence> {
        self.state.lock().await.accepted.get(stream).copied()
    }

    /// One round: attests every assigned stream whose stored head grew. Rounds run one at a
    /// time. A store failure is an error; chain failures are counted in the result.
    pub async fn round(&self) -> Result<AttestRound, StoreError> {
        let mut state = self.state.lock().await;
        let mut round = AttestRound::default();
        let streams: BTreeSet<StreamId> = self.view.streams().iter().map(|s| s.stream).collect();
        state.synced.retain(|s| streams.contains(s));
        state.accepted.retain(|s, _| streams.contains(s));
        state.last_accepted.retain(|s, _| streams.contains(s));
        state.scanned.retain(|s, _| streams.contains(s));
        state.refused.retain(|s, _| streams.contains(s));

        let unsynced: Vec<StreamId> = streams
            .iter()
            .filter(|s| !state.synced.contains(*s))
            .copied()
            .collect();
        if !unsynced.is_empty() {
            match self.calls.attested_heads(&unsynced).await {
                Ok(heads) => {
                    for (stream, head, bytes, at) in heads {
                        let accepted = state.accepted.entry(stream).or_default();
                        *accepted = (*accepted).max(head);
                        state.last_accepted.entry(stream).or_insert((at, bytes));
                    }
                    state.synced.extend(unsynced);
                }
                Err(e) => {
                    // Without the chain's heads a scan could start below them: wait.
                    tracing::debug!("cannot read the attested heads: {e}");
                    round.failed = unsynced.len();
                    return Ok(round);
                }
            }
        }

        // Scan from what is known to be stored: the accepted head, or the last scan.
        let from: Vec<(StreamId, Sequence)> = streams
            .iter()
            .map(|s| {
                let accepted = state.accepted.get(s).copied().unwrap_or(0);
                let scanned = state.scanned.get(s).copied().unwrap_or(0);
                (*s, accepted.max(scanned))
            })
            .collect();
        let store = self.store.clone();
        let heads = tokio::task::spawn_blocking(move || {
            from.into_iter()
                .map(|(stream, from)| {
                    let head = stored_head(&store, &stream, from)?;
                    Ok((stream, head, store.stored_bytes(&stream)?))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .await
        .map_err(|e| {
            StoreError::from(redb::StorageError::Io(std::io::Error::other(format!(
                "head scan crashed: {e}"
            ))))
        })??;

        let now = self.view.finalized_block();
        let mut grown = Vec::new();
        for (stream, head, bytes) in heads {
            state.scanned.insert(stream, head);
            let accepted = state.accepted.get(&stream).copied().unwrap_or(0);
            let refused = state.refused.get(&stream).copied();
            let last = state.last_accepted.get(&stream).copied();
            let stale = last.is_some_and(|(at, _)| now.saturating_sub(at) >= REATTEST_BLOCKS);
            let bytes_changed =
                refused.is_none() && last.is_some_and(|(_, attested)| attested != bytes);
            if head > accepted && refused.is_none_or(|r| head > r) {
                grown.push((stream, head, bytes));
            } else if (stale && bytes > 0 && refused.is_none()) || bytes_changed {
                // Hosting is paid per attestation interval by the bytes attested: attest again
                // when they changed, and at least every `REATTEST_BLOCKS`.
                grown.push((stream, accepted, bytes));
            }
        }
        for chunk in grown.chunks(self.max_per_call) {
            round.calls += 1;
            match self.calls.attest_heads(chunk).await {
                Ok(()) => {
                    for (stream, head, bytes) in chunk {
                        state.accepted.insert(*stream, *head);
                        state.last_accepted.insert(*stream, (now, *bytes));
                        state.refused.remove(stream);
                    }
                    round.attested += chunk.len();
                    tracing::debug!(streams = chunk.len(), "stream heads attested");
                }
                Err(Error::Dispatch { error }) => {
                    // Assignments changed or the chain holds a higher head: read it again.
                    tracing::warn!(streams = chunk.len(), "stream heads refused: {error}");
                    for (stream, head, _) in chunk {
                        state.refused.insert(*stream, *head);
                        state.synced.remove(stream);
                    }
                    round.refused += chunk.len();
                }
                Err(e) => {
                    tracing::debug!("stream heads not attested, retried next round: {e}");
                    round.failed += chunk.len();
                }
            }
        }
        Ok(round)
    }

    /// Runs a round every `every` finalized blocks (and at the first block seen) until the
    /// daemon stops: the supervised task [`ATTEST_TASK`]. A store failure ends the run.
    pub async fn run(
        self: Arc<Self>,
        every: BlockNumber,
        mut ctx: TaskContext,
    ) -> Result<(), TaskError> {
        let mut events = self.view.subscribe();
        ctx.ready();
        let mut last: Option<BlockNumber> = None;
        loop {
            let event = tokio::select! {
                _ = ctx.stopped() => return Ok(()),
                event = events.recv() => event,
            };
            let number = match event {
                Ok(ChainEvent::Finalized { number }) => number,
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    self.view.finalized_block()
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return Err(TaskError::transient("the chain view's events ended"))
                }
            };
            if last.is_some_and(|last| number.saturating_sub(last) < every.max(1)) {
                continue;
            }
            last = Some(number);
            match self.round().await {
                Ok(round) if round != AttestRound::default() => {
                    tracing::info!(block = number, ?round, "head attestation round")
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(TaskError::transient(format!(
                        "head attestation failed: {e}"
                    )))
                }
            }
        }
    }

    /// The supervised task: each attempt is a [`Self::run`].
    pub fn task(
        self: Arc<Self>,
        every: BlockNumber,
    ) -> impl FnMut(TaskContext) -> futures_util::future::BoxFuture<'static, Result<(), TaskError>>
           + Send
           + 'static {
        move |ctx| Box::pin(self.clone().run(every, ctx))
    }
}

/// Wires head attestation into a started daemon, as the binary does with `[chain] url`: a
/// [`HeadAttester`] over the daemon's view and store, calling through `claims`' connection,
/// run as the supervised task [`ATTEST_TASK`] every `every` blocks and before each batch of
/// claims.
pub fn start_attestation(
    daemon: &crate::daemon::Daemon,
    claims: &ChainClaimSubmitter,
    every: BlockNumber,
) -> Arc<HeadAttester> {
    let attester = Arc::new(HeadAttester::new(
        daemon.node.view.clone(),
        daemon.node.store.clone(),
        claims.calls(),
    ));
    claims.attest_first(attester.clone());
    daemon.supervise(
        ATTEST_TASK,
        crate::supervisor::Restart::OnError,
        attester.clone().task(every),
    );
    attester
}

/// The head of `stream` in `store`: the first sequence at or after `from` that is not
/// stored, everything below `from` being known to be stored. With nothing known (`from` 0),
/// the run starts at the lowest stored sequence: what lies below it was pruned by retention
/// or predates this replica (a replacement backfills from its peers' retained data).
pub fn stored_head(
    store: &Store,
    stream: &StreamId,
    from: Sequence,
) -> Result<Sequence, StoreError> {
    let mut head = if from == 0 {
        store.first_sequence(stream)?.unwrap_or(0)
    } else {
        from
    };
    loop {
        let to = head.saturating_add(HEAD_SCAN_CHUNK - 1);
        for sequence in store.sequences(stream, head, to)? {
            // Sorted and unique: the run from `head` ends at the first sequence that skips.
            if sequence != head {
                return Ok(head);
            }
            head = match head.checked_add(1) {
                Some(next) => next,
                None => return Ok(head),
            };
        }
        if head <= to {
            return Ok(head);
        }
    }
}
