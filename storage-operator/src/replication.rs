//! Replication: fill gaps and new assignments from another operator of the same stream.
//!
//! Operators of a stream serve each other its segments at
//! `GET /v1/replica/streams/<stream hex>/segments?from=&to=` (see `api.rs`), authenticated by
//! a [`ReplicaRequest`] signed with the requesting operator's sr25519 key in the
//! `x-fastdata-replica` header. The serving operator checks that the requester is assigned to
//! the stream in its own chain view, that the request is addressed to it, unexpired, and that
//! the nonce (milliseconds since the Unix epoch) is above the last one it saw from the
//! requester.
//!
//! The requester asks each other assigned operator in turn for the missing range, page by
//! page, validates every envelope header (stream and sequence within the range, strictly
//! increasing), and stores it with the same duplicate rule as ingest, so a segment is never
//! stored twice whatever the order of live ingest and backfill.

use fastdata_sdk::http::HttpClient;
use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use codec::{Decode, Encode};
use fastdata_primitives::{
    envelope,
    tokens::{Signed, TokenPayload},
    AccountId, BlockNumber, Sequence, StreamId,
};
use sp_core::{sr25519, Pair, H256};
use tokio::sync::{broadcast, mpsc, watch};

use crate::{
    api::{decode_frames, REPLICA_HEADER},
    auth::to_hex_scale,
    chain::{ChainEvent, ChainView, StreamAssignment},
    daemon::UNHOSTED_KEEP_BLOCKS,
    metrics::Metrics,
    store::{Insert, NewSegment, Store},
};

/// Domain tag of replica-request signatures (signed, like every off-chain message, for the
/// chain's genesis hash).
pub const REPLICA_REQUEST_DOMAIN: &[u8] = b"fastdata/replica-request/v2";
/// Most segments one replica response carries.
pub const REPLICA_PAGE: usize = 1024;
/// Validity of a replica request, in blocks past the finalized one.
pub const REPLICA_REQUEST_VALIDITY: BlockNumber = 20;

/// A missing range of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackfillRequest {
    /// The stream.
    pub stream: StreamId,
    /// First missing sequence.
    pub from: Sequence,
    /// Last missing sequence (inclusive; `u64::MAX` for "everything after `from`").
    pub to: Sequence,
}

/// An operator's request to another operator for segments of a stream both host.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode)]
pub struct ReplicaRequest {
    /// The stream.
    pub stream: StreamId,
    /// The requesting operator (the signer).
    pub requester: AccountId,
    /// The operator asked.
    pub operator: AccountId,
    /// Last block at which the request is valid.
    pub expiry: BlockNumber,
    /// Anti-replay nonce, strictly increasing per requester.
    pub nonce: u64,
}

impl TokenPayload for ReplicaRequest {
    type AccountId = AccountId;
    type BlockNumber = BlockNumber;
    const DOMAIN: &'static [u8] = REPLICA_REQUEST_DOMAIN;
    fn operator(&self) -> &AccountId {
        &self.operator
    }
    fn expiry(&self) -> BlockNumber {
        self.expiry
    }
    fn nonce(&self) -> u64 {
        self.nonce
    }
}

/// A signed replica request.
pub type SignedReplicaRequest = Signed<ReplicaRequest>;

/// Fetches missing segments from other operators.
pub struct Replicator {
    me: AccountId,
    pair: sr25519::Pair,
    genesis: H256,
    view: Arc<dyn ChainView>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    client: HttpClient,
    nonce: AtomicU64,
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl Replicator {
    /// A replicator signing with `pair` (the operator key) for the chain `genesis`.
    pub fn new(
        pair: sr25519::Pair,
        genesis: H256,
        view: Arc<dyn ChainView>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            me: AccountId::from(pair.public()),
            genesis,
            pair,
            view,
            store,
            metrics,
            client: HttpClient::new(),
            nonce: AtomicU64::new(now_millis()),
        }
    }

    /// Uses `client` for requests to other operators (e.g. one trusting `http.ca_cert`).
    pub fn with_http_client(mut self, client: HttpClient) -> Self {
        self.client = client;
        self
    }

    fn next_nonce(&self) -> u64 {
        // Milliseconds since the epoch, strictly increasing within this process.
        let now = now_millis();
        let mut current = self.nonce.load(Ordering::Relaxed);
        loop {
            let next = now.max(current + 1);
            match self
                .nonce
                .compare_exchange(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(actual) => current = actual,
            }
        }
    }

    fn missing(&self, request: &BackfillRequest) -> bool {
        if request.to == Sequence::MAX {
            return true;
        }
        match self
            .store
            .sequences(&request.stream, request.from, request.to)
        {
            Ok(have) => (have.len() as u128) < u128::from(request.to - request.from) + 1,
            Err(_) => true,
        }
    }

    /// Whom to backfill `stream` from: its other operators, then the operators that handed
    /// it to this one within the keep period (they keep its data that long).
    fn peers(&self, stream: &StreamAssignment) -> Vec<AccountId> {
        let since = self
            .view
            .finalized_block()
            .saturating_sub(UNHOSTED_KEEP_BLOCKS);
        let former = self
            .view
            .handovers(&stream.stream, since)
            .into_iter()
            .filter(|(_, to)| *to == self.me)
            .map(|(from, _)| from);
        let mut peers: Vec<AccountId> = Vec::new();
        for peer in stream.operators.iter().cloned().chain(former) {
            if peer != self.me && !peers.contains(&peer) {
                peers.push(peer);
            }
        }
        peers
    }

    /// Fills `request` from the other operators of the stream. Returns how many segments were
    /// stored.
    pub async fn backfill(&self, request: BackfillRequest) -> Result<u64, String> {
        if request.from > request.to {
            return Ok(0);
        }
        let stream = self
            .view
            .stream(&request.stream)
            .ok_or_else(|| "stream is not assigned to this operator".to_owned())?;
        let mut stored = 0;
        for peer in self.peers(&stream) {
            if !self.missing(&request) {
                break;
            }
            let Some(url) = self.view.operator_endpoint(&peer) else {
                tracing::debug!(%peer, "no HTTP endpoint known for peer");
                continue;
            };
            match self.backfill_from(&peer, &url, request).await {
                Ok(n) => stored += n,
                Err(e) => tracing::warn!(%peer, %url, "backfill from peer failed: {e}"),
            }
        }
        if stored > 0 {
            tracing::info!(?request, stored, "backfilled");
        }
        Ok(stored)
    }

    async fn backfill_from(
        &self,
        peer: &AccountId,
        url: &str,
        request: BackfillRequest,
    ) -> Result<u64, String> {
        let mut from = request.from;
        let mut stored = 0;
        loop {
            let signed = Signed::sign(
                ReplicaRequest {
                    stream: request.stream,
                    requester: self.me.clone(),
                    operator: peer.clone(),
                    expiry: self
                        .view
                        .finalized_block()
                        .saturating_add(REPLICA_REQUEST_VALIDITY),
                    nonce: self.next_nonce(),
                },
                &self.pair,
                &self.genesis,
            );
            let page_url = format!(
                "{}/v1/replica/streams/{}/segments?from={from}&to={}",
                url.trim_end_matches('/'),
                hex::encode(request.stream.as_bytes()),
                request.to
            );
            let limit = REPLICA_PAGE * (envelope::MAX_ENVELOPE_LEN + 4);
            let (status, body) = self
                .client
                .get(&page_url, &[(REPLICA_HEADER, to_hex_scale(&signed))], limit)
                .await?;
            if !status.is_success() {
                return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
            }
            let frames = decode_frames(&body)?;
            if frames.is_empty() {
                return Ok(stored);
            }
            let mut segments = Vec::with_capacity(frames.len());
            let mut last = None;
            let page = frames.len() as u64;
            for frame in frames {
                let header = envelope::parse_header(frame).map_err(|e| {
                    self.metrics.segments_dropped("peer_invalid", page);
                    format!("peer sent a bad envelope: {e}")
                })?;
                if header.stream != request.stream
                    || header.sequence < from
                    || header.sequence > request.to
                    || last.is_some_and(|l| header.sequence <= l)
                {
                    self.metrics.segments_dropped("peer_invalid", page);
                    return Err(format!(
                        "peer sent sequence {} outside {from}..={}",
                        header.sequence, request.to
                    ));
                }
                last = Some(header.sequence);
                segments.push(NewSegment {
                    stream: request.stream,
                    sequence: header.sequence,
                    envelope: frame.to_vec(),
                });
            }
            let store = self.store.clone();
            let now = self.view.finalized_block();
            // Backfilled segments count against the stream's hosting quota as ingested ones.
            let quota = self
                .view
                .stream(&request.stream)
                .map_or(0, |s| s.quota_bytes);
            let inserted = tokio::task::spawn_blocking(move || {
                store.insert_segments_within(&segments, now, |_| quota)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            let count = |kind| inserted.iter().filter(|o| **o == kind).count() as u64;
            let n = count(Insert::New);
            self.metrics.segments_backfilled.inc_by(n);
            self.metrics
                .segments_dropped("duplicate", count(Insert::Duplicate));
            self.metrics
                .segments_dropped("over_quota", count(Insert::OverQuota));
            stored += n;
            match last {
                Some(l) if l < request.to => from = l + 1,
                _ => return Ok(stored),
            }
        }
    }

    /// Serves backfill requests (gaps from ingest) and backfills each newly assigned stream
    /// from the end of what is stored, until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        mut requests: mpsc::Receiver<BackfillRequest>,
        mut events: broadcast::Receiver<ChainEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut known: HashSet<StreamId> = HashSet::new();
        let catch_up = |stream: StreamId| {
            let this = self.clone();
            async move {
                let from = match this.store.last_sequence(&stream) {
                    Ok(Some(last)) => last.saturating_add(1),
                    Ok(None) => 0,
                    Err(e) => {
                        tracing::error!("cannot read the store: {e}");
                        return;
                    }
                };
                if let Err(e) = this
                    .backfill(BackfillRequest {
                        stream,
                        from,
                        to: Sequence::MAX,
                    })
                    .await
                {
                    tracing::warn!("catch-up backfill failed: {e}");
                }
            }
        };
        for s in self.view.streams() {
            known.insert(s.stream);
            catch_up(s.stream).await;
        }
        loop {
            tokio::select! {
                _ = crate::stopped(&mut shutdown) => return,
                request = requests.recv() => match request {
                    Some(request) => {
                        if let Err(e) = self.backfill(request).await {
                            tracing::warn!(?request, "backfill failed: {e}");
                        }
                    }
                    None => return,
                },
                event = events.recv() => match event {
                    Ok(ChainEvent::StreamAssigned(a)) if known.insert(a.stream) => catch_up(a.stream).await,
                    Ok(ChainEvent::StreamUnassigned { stream }) => {
                        known.remove(&stream);
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        for s in self.view.streams() {
                            if known.insert(s.stream) {
                                catch_up(s.stream).await;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}
