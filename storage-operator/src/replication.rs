//! Replication: fill gaps and new assignments from another operator of the same stream.
//!
//! Operators of a stream serve each other its segments at
//! `GET /v1/replica/streams/<stream hex>/segments?from=&to=` (see `api.rs`; the rule is
//! [`crate::serving::check_replica`]), authenticated by a [`ReplicaRequest`] signed with the
//! requesting operator's sr25519 key in the `x-fastdata-replica` header. The serving
//! operator checks that the requester is assigned to the stream in its own chain view, that
//! the request is addressed to it, unexpired, and that the nonce (milliseconds since the Unix
//! epoch) is above the last one it saw from the requester.
//!
//! The requester asks each other assigned operator in turn for the missing range, page by
//! page, validates every envelope header (stream and sequence within the range, strictly
//! increasing), and stores it with the same duplicate rule as ingest, so a segment is never
//! stored twice whatever the order of live ingest and backfill.
//!
//! The daemon cannot open envelopes, so a peer could plant segments at sequences the seller
//! has not published yet, and the real ones would later be refused here as duplicates.
//! Backfill therefore never stores a sequence at or above its cap
//! ([`fastdata_primitives::heads::backfill_cap`]): the lower median of the heads attested on
//! chain ([`ChainView::attested_head`]; one operator attesting an inflated head does not
//! move it), or one past the highest sequence this daemon stores itself, whichever is
//! higher. A request reaching past it is cut there and its remainder kept (one range per
//! stream) until the cap grows ([`ChainEvent::HeadAttested`], or a gap ingest reports);
//! a peer that sends a sequence beyond the range asked has those frames dropped
//! (`segments_dropped{reason="above_head"}`) and is not asked again in that round.

use fastdata_sdk::http::HttpClient;
use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use codec::{Decode, Encode};
use fastdata_primitives::{
    envelope,
    heads::backfill_cap,
    operator_api::{replica_segments_path, SegmentRange},
    tokens::{Signed, TokenPayload},
    AccountId, BlockNumber, Sequence, StreamId,
};
use sp_core::{sr25519, Pair, H256};
use tokio::sync::{broadcast, mpsc, watch};

use crate::{
    api::{decode_frames, REPLICA_HEADER},
    auth::to_hex_scale,
    chain::{ChainEvent, ChainView, StreamAssignment},
    metrics::Metrics,
    retention::UNHOSTED_KEEP_BLOCKS,
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
    /// Per stream, the range asked for above its attested head, retried when it grows.
    deferred: Mutex<BTreeMap<StreamId, (Sequence, Sequence)>>,
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
            deferred: Mutex::new(BTreeMap::new()),
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

    fn deferred(&self) -> std::sync::MutexGuard<'_, BTreeMap<StreamId, (Sequence, Sequence)>> {
        // Every update is one insert or remove: a poisoned map is still consistent.
        self.deferred
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps `from..=to` of `stream` for when its attested head grows, merged with what is
    /// already kept (one range per stream).
    fn defer(&self, stream: StreamId, from: Sequence, to: Sequence) {
        let mut deferred = self.deferred();
        let range = deferred.entry(stream).or_insert((from, to));
        *range = (range.0.min(from), range.1.max(to));
    }

    /// The range of `stream` waiting for its attested head to grow, if any.
    pub fn waiting(&self, stream: &StreamId) -> Option<(Sequence, Sequence)> {
        self.deferred().get(stream).copied()
    }

    /// How far `stream` is backfilled ([`backfill_cap`]): nothing at or above it is stored.
    fn cap(&self, stream: &StreamId) -> Result<Sequence, String> {
        let stored_next = self
            .store
            .last_sequence(stream)
            .map_err(|e| e.to_string())?
            .map_or(0, |last| last.saturating_add(1));
        Ok(backfill_cap(self.view.attested_head(stream), stored_next))
    }

    /// Backfills what waits for `stream`'s cap if it now allows part of it.
    pub async fn resume(&self, stream: StreamId) -> Result<u64, String> {
        let head = self.cap(&stream)?;
        let range = {
            let mut deferred = self.deferred();
            match deferred.get(&stream) {
                Some((from, _)) if *from < head => deferred.remove(&stream),
                _ => None,
            }
        };
        match range {
            Some((from, to)) => self.backfill(BackfillRequest { stream, from, to }).await,
            None => Ok(0),
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

    /// Fills `request` from the other operators of the stream, below the stream's attested
    /// head; the part at or above it waits for the head to grow ([`Self::resume`]). Returns
    /// how many segments were stored.
    pub async fn backfill(&self, request: BackfillRequest) -> Result<u64, String> {
        if request.from > request.to {
            return Ok(0);
        }
        let stream = self
            .view
            .stream(&request.stream)
            .ok_or_else(|| "stream is not assigned to this operator".to_owned())?;
        let head = self.cap(&request.stream)?;
        if request.to >= head {
            self.defer(request.stream, request.from.max(head), request.to);
        }
        // Sequences at or above the head may not be published yet: none is stored.
        let request = match head.checked_sub(1) {
            Some(last) if request.from <= last => BackfillRequest {
                to: request.to.min(last),
                ..request
            },
            _ => {
                tracing::debug!(?request, head, "backfill waits for the attested head");
                return Ok(0);
            }
        };
        let mut stored = 0;
        for peer in self.peers(&stream) {
            if !self.missing(&request) {
                break;
            }
            let Some(url) = self.view.operator_endpoint(&peer) else {
                tracing::debug!(%peer, "no HTTP endpoint known for peer");
                continue;
            };
            if let Err(e) = self
                .backfill_from(&peer, &url, request, head, &mut stored)
                .await
            {
                tracing::warn!(%peer, %url, "backfill from peer failed: {e}");
            }
        }
        if stored > 0 {
            tracing::info!(?request, stored, "backfilled");
        }
        Ok(stored)
    }

    /// Asks `peer` for `request` (already below `head`), page by page, adding what it stores
    /// to `stored`. A page with a bad envelope, another stream, a sequence below the range or
    /// out of order is dropped whole; frames beyond the range are dropped, the others stored,
    /// and the peer is not asked again this round.
    async fn backfill_from(
        &self,
        peer: &AccountId,
        url: &str,
        request: BackfillRequest,
        head: Sequence,
        stored: &mut u64,
    ) -> Result<(), String> {
        let mut from = request.from;
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
                "{}{}",
                url.trim_end_matches('/'),
                replica_segments_path(
                    &request.stream,
                    SegmentRange {
                        from: Some(from),
                        to: Some(request.to),
                    }
                )
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
                return Ok(());
            }
            let mut segments = Vec::with_capacity(frames.len());
            let mut last = None;
            let page = frames.len() as u64;
            // Frames beyond the range asked: (above the attested head, others).
            let mut beyond = (0u64, 0u64);
            let mut first_beyond = None;
            for frame in frames {
                let header = envelope::parse_header(frame).map_err(|e| {
                    self.metrics.segments_dropped("peer_invalid", page);
                    format!("peer sent a bad envelope: {e}")
                })?;
                if header.sequence > request.to && header.stream == request.stream {
                    if header.sequence >= head {
                        beyond.0 += 1;
                    } else {
                        beyond.1 += 1;
                    }
                    first_beyond.get_or_insert(header.sequence);
                    continue;
                }
                if header.stream != request.stream
                    || header.sequence < from
                    || last.is_some_and(|l| header.sequence <= l)
                {
                    self.metrics.segments_dropped("peer_invalid", page);
                    return Err(format!(
                        "peer sent sequence {} outside {from}..={} or out of order",
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
            *stored += n;
            if let Some(sequence) = first_beyond {
                self.metrics.segments_dropped("above_head", beyond.0);
                self.metrics.segments_dropped("peer_invalid", beyond.1);
                return Err(format!(
                    "peer sent {} segments from sequence {sequence}, beyond {from}..={} \
                     (attested head {head}); not asked again this round",
                    beyond.0 + beyond.1,
                    request.to
                ));
            }
            match last {
                Some(l) if l < request.to => from = l.saturating_add(1),
                _ => return Ok(()),
            }
        }
    }

    /// Serves backfill requests (gaps from ingest), backfills each newly assigned stream from
    /// the end of what is stored, and resumes what waited for a stream's attested head when
    /// it grows, until `shutdown`.
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
                        self.deferred().remove(&stream);
                    }
                    Ok(ChainEvent::HeadAttested { stream, .. }) => {
                        if let Err(e) = self.resume(stream).await {
                            tracing::warn!(%stream, "backfill up to the attested head failed: {e}");
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let hosted: HashSet<StreamId> =
                            self.view.streams().iter().map(|s| s.stream).collect();
                        self.deferred().retain(|s, _| hosted.contains(s));
                        known.retain(|s| hosted.contains(s));
                        for s in hosted {
                            if known.insert(s) {
                                catch_up(s).await;
                            }
                        }
                        let waiting: Vec<StreamId> = self.deferred().keys().copied().collect();
                        for stream in waiting {
                            if let Err(e) = self.resume(stream).await {
                                tracing::warn!(%stream, "backfill up to the attested head failed: {e}");
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{tests::assignment, InMemoryChainView};
    use axum::{
        extract::{Query, State},
        routing::get,
        Router,
    };
    use fastdata_primitives::envelope::{encode_frame, seal_with_nonce, EpochKeys, SegmentHeader};
    use std::{collections::BTreeMap, sync::Mutex as StdMutex, time::Duration};

    fn stream() -> StreamId {
        H256::repeat_byte(7)
    }

    /// A test vector: the same bytes every time (one nonce per sequence and kind).
    fn envelope(sequence: Sequence, kind: u8, text: &str) -> Vec<u8> {
        let header = SegmentHeader {
            stream: stream(),
            epoch: 0,
            sequence,
            timestamp: 1_700_000_000_000 + sequence,
        };
        let mut nonce = [kind; 12];
        nonce[..8].copy_from_slice(&sequence.to_le_bytes());
        let keys = EpochKeys::new([1; 32], [2; 32]);
        seal_with_nonce(&keys, &header, nonce, text.as_bytes()).unwrap()
    }

    fn real(sequence: Sequence) -> Vec<u8> {
        envelope(sequence, 0, &format!("reading {sequence}"))
    }

    fn planted(sequence: Sequence) -> Vec<u8> {
        envelope(sequence, 1, "planted by a peer")
    }

    /// A malicious peer operator: answers every replica request with the segments it holds
    /// from `from` on, whatever `to` was asked, and records the ranges asked.
    #[derive(Default)]
    struct Peer {
        holds: StdMutex<BTreeMap<Sequence, Vec<u8>>>,
        asked: StdMutex<Vec<(Sequence, Sequence)>>,
    }

    impl Peer {
        fn hold(&self, segments: impl IntoIterator<Item = (Sequence, Vec<u8>)>) {
            *self.holds.lock().unwrap() = segments.into_iter().collect();
        }
        fn asked(&self) -> Vec<(Sequence, Sequence)> {
            self.asked.lock().unwrap().clone()
        }
    }

    async fn replica(
        State(peer): State<Arc<Peer>>,
        Query(range): Query<BTreeMap<String, u64>>,
    ) -> Vec<u8> {
        let from = range.get("from").copied().unwrap_or(0);
        let to = range.get("to").copied().unwrap_or(u64::MAX);
        peer.asked.lock().unwrap().push((from, to));
        let mut body = Vec::new();
        for envelope in peer.holds.lock().unwrap().range(from..).map(|(_, e)| e) {
            encode_frame(&mut body, envelope);
        }
        body
    }

    async fn serve(peer: Arc<Peer>) -> String {
        let app = Router::new()
            .route(
                fastdata_primitives::operator_api::REPLICA_SEGMENTS_ROUTE,
                get(replica),
            )
            .with_state(peer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    struct Setup {
        _dir: tempfile::TempDir,
        view: Arc<InMemoryChainView>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        replicator: Arc<Replicator>,
        peer: Arc<Peer>,
    }

    /// This operator (key 2) shares stream 7 with the malicious peer (account 3).
    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db.redb")).unwrap());
        let pair = sr25519::Pair::from_seed(&[2; 32]);
        let me = AccountId::from(pair.public());
        let peer_account = AccountId::new([3; 32]);
        let peer = Arc::new(Peer::default());
        let url = serve(peer.clone()).await;
        let view = InMemoryChainView::shared();
        let mut hosted = assignment(7, 1, &[]);
        hosted.operators = vec![me, peer_account.clone()];
        view.apply_all([
            ChainEvent::Finalized { number: 10 },
            ChainEvent::StreamAssigned(hosted),
            ChainEvent::OperatorEndpoint {
                operator: peer_account,
                http_url: url,
            },
        ]);
        let metrics = Arc::new(Metrics::new());
        let replicator = Arc::new(Replicator::new(
            pair,
            H256::repeat_byte(9),
            view.clone(),
            store.clone(),
            metrics.clone(),
        ));
        Setup {
            _dir: dir,
            view,
            store,
            metrics,
            replicator,
            peer,
        }
    }

    fn dropped(metrics: &Metrics, reason: &'static str) -> u64 {
        metrics
            .segments_dropped
            .get_or_create(&vec![("reason", reason)])
            .get()
    }

    fn head(view: &InMemoryChainView, head: Sequence) {
        view.apply(ChainEvent::HeadAttested {
            stream: stream(),
            head,
        });
    }

    #[tokio::test]
    async fn what_the_daemon_ingests_itself_lets_it_fill_the_gap_below_it() {
        let s = setup().await;
        // The attested heads allow 0..=9 only (one operator's inflated head does not count);
        // this daemon ingested 30 live from the seller, so 10..=29 were published.
        head(&s.view, 10);
        s.store
            .insert_segments(
                &[NewSegment {
                    stream: stream(),
                    sequence: 30,
                    envelope: real(30),
                }],
                10,
            )
            .unwrap();
        s.peer.hold(
            (0..30)
                .map(|n| (n, real(n)))
                .chain((31..40).map(|n| (n, planted(n)))),
        );
        let stored = s
            .replicator
            .backfill(BackfillRequest {
                stream: stream(),
                from: 0,
                to: Sequence::MAX,
            })
            .await
            .unwrap();
        assert_eq!(stored, 30);
        assert_eq!(
            s.store.sequences(&stream(), 0, Sequence::MAX).unwrap(),
            (0..=30).collect::<Vec<_>>()
        );
        for n in 0..=30 {
            assert_eq!(
                s.store.segment(&stream(), n).unwrap().unwrap().envelope,
                real(n)
            );
        }
        // Nothing above what it holds: the peer's 31..=39 are dropped.
        assert_eq!(dropped(&s.metrics, "above_head"), 9);
        assert_eq!(s.replicator.waiting(&stream()), Some((31, Sequence::MAX)));
    }

    #[tokio::test]
    async fn a_peer_cannot_plant_segments_above_the_attested_head() {
        let s = setup().await;
        // The chain says 0..=9 were published. The peer holds them, and plants 10..=19 and
        // 1000 (sequences the seller has not published yet).
        head(&s.view, 10);
        s.peer.hold(
            (0..10)
                .map(|n| (n, real(n)))
                .chain((10..20).chain([1000]).map(|n| (n, planted(n)))),
        );
        let stored = s
            .replicator
            .backfill(BackfillRequest {
                stream: stream(),
                from: 0,
                to: Sequence::MAX,
            })
            .await
            .unwrap();
        assert_eq!(stored, 10);
        assert_eq!(
            s.store.sequences(&stream(), 0, Sequence::MAX).unwrap(),
            (0..10).collect::<Vec<_>>()
        );
        for n in 0..10 {
            assert_eq!(
                s.store.segment(&stream(), n).unwrap().unwrap().envelope,
                real(n)
            );
        }
        // Asked up to the head only, once: the peer sent more, so it is not asked again.
        assert_eq!(s.peer.asked(), vec![(0, 9)]);
        assert_eq!(dropped(&s.metrics, "above_head"), 11);
        assert_eq!(s.metrics.segments_backfilled.get(), 10);
        assert_eq!(s.replicator.waiting(&stream()), Some((10, Sequence::MAX)));

        // A range wholly above the head asks nobody and stores nothing.
        let stored = s
            .replicator
            .backfill(BackfillRequest {
                stream: stream(),
                from: 12,
                to: 15,
            })
            .await
            .unwrap();
        assert_eq!(stored, 0);
        assert_eq!(s.peer.asked().len(), 1);

        // The seller publishes 10..=14 and the head grows: the real segments are backfilled
        // (nothing planted took their place), and nothing from 15 on.
        s.peer.hold(
            (0..15)
                .map(|n| (n, real(n)))
                .chain((15..30).map(|n| (n, planted(n)))),
        );
        head(&s.view, 15);
        assert_eq!(s.replicator.resume(stream()).await.unwrap(), 5);
        assert_eq!(
            s.store.sequences(&stream(), 0, Sequence::MAX).unwrap(),
            (0..15).collect::<Vec<_>>()
        );
        for n in 10..15 {
            assert_eq!(
                s.store.segment(&stream(), n).unwrap().unwrap().envelope,
                real(n)
            );
        }
        assert_eq!(s.peer.asked().last(), Some(&(10, 14)));
        assert_eq!(dropped(&s.metrics, "above_head"), 11 + 15);
        assert_eq!(s.replicator.waiting(&stream()), Some((15, Sequence::MAX)));
    }

    #[tokio::test]
    async fn without_an_attested_head_nothing_is_backfilled_until_one_arrives() {
        let s = setup().await;
        s.peer.hold((0..40).map(|n| (n, real(n))));
        let stored = s
            .replicator
            .backfill(BackfillRequest {
                stream: stream(),
                from: 0,
                to: 39,
            })
            .await
            .unwrap();
        assert_eq!(stored, 0);
        assert!(s.peer.asked().is_empty());
        assert_eq!(s.store.count(&stream()).unwrap(), 0);
        assert_eq!(s.replicator.waiting(&stream()), Some((0, 39)));

        // The running replicator backfills when the head is attested, up to it.
        let (_requests, rx) = mpsc::channel(4);
        let (stop, shutdown) = watch::channel(false);
        let run = tokio::spawn(s.replicator.clone().run(rx, s.view.subscribe(), shutdown));
        head(&s.view, 25);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while s.store.count(&stream()).unwrap() < 25 {
            assert!(tokio::time::Instant::now() < deadline, "not backfilled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            s.store.sequences(&stream(), 0, Sequence::MAX).unwrap(),
            (0..25).collect::<Vec<_>>()
        );
        assert_eq!(
            s.store.segment(&stream(), 24).unwrap().unwrap().envelope,
            real(24)
        );
        assert_eq!(s.replicator.waiting(&stream()), Some((25, Sequence::MAX)));
        // Unassigned: nothing waits any more.
        s.view
            .apply(ChainEvent::StreamUnassigned { stream: stream() });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while s.replicator.waiting(&stream()).is_some() {
            assert!(tokio::time::Instant::now() < deadline, "still waiting");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(true).unwrap();
        run.await.unwrap();
    }
}
