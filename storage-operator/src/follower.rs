//! The chain follower: keeps the daemon's [`InMemoryChainView`] in line with the finalized
//! blocks of a FAST DATA node (subxt) and sends heartbeats; on connecting it registers the
//! operator ([`crate::registration`]). Claims are submitted by [`crate::claims`], heads
//! attested by [`crate::attestation`] (both re-exported here).
//!
//! On every (re)connection, and every [`FULL_REFRESH_BLOCKS`] blocks, the follower reads a
//! full [`Snapshot`] of the facts this operator needs (its streams with their offers'
//! retention and highest attested heads, the purchases of those streams, every operator's
//! HTTP endpoint) through the runtime APIs and storage, and applies the difference to the
//! view ([`diff`]). In between, each finalized
//! block's marketplace events name what changed ([`Touched`]): only those streams, offers and
//! purchases are read again ([`update`]) and the same [`diff`] applies them. A block missed
//! while disconnected cannot leave the view stale: reconnecting reads a full snapshot.
//!
//! The daemon runs the follower as the supervised task [`TASK`] ([`Follower::task`]): a
//! connection that fails or drops ends the run, and the supervisor reconnects with back-off;
//! a registration the chain refuses is fatal.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use futures_util::{StreamExt, TryStreamExt};

use fastdata_primitives::heads::attested_backfill_head;
use fastdata_primitives::{
    api_market::{OfferListing, OperatorStatus, OperatorView, StreamView},
    escrow::{PurchaseState, PurchaseView},
    AccountId, Balance, BlockNumber, OfferId, PurchaseId, Sequence, StreamId,
};
use fastdata_sdk::{
    chain::{account32, account_id, api_at, fastdata, AtBlock, RuntimeEvent, Unwrap},
    operator::attested_heads_at,
    Account, Error, FastData,
};
use tokio::sync::watch;

use crate::{
    chain::{ChainEvent, ChainView, InMemoryChainView, PurchaseInfo, StreamAssignment},
    metrics::Metrics,
    supervisor::{TaskContext, TaskError},
};

use crate::registration::{ensure_registered, Registration};

/// The follower's task name (in `/health`, metrics and logs).
pub const TASK: &str = "chain-follower";

/// How often the node's finalized head is read while following, for
/// `chain_follower_lag_blocks`.
pub const HEAD_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Pallets whose events can change what this operator must know: an event of theirs that
/// does not decode as this build's [`RuntimeEvent`] (a newer runtime) forces a full refresh;
/// undecodable events of other pallets are ignored.
pub const MARKET_PALLETS: &[&str] = &["Offers", "Operators", "Escrow"];

/// A full refresh happens at least every this many finalized blocks, as a safety net under
/// the incremental updates.
pub const FULL_REFRESH_BLOCKS: u64 = 100;

/// Runtime API calls in flight at once while reading a snapshot.
pub const READ_CONCURRENCY: usize = 16;

/// Everything this operator needs to know, read at one block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The block read.
    pub number: BlockNumber,
    /// Streams assigned to this operator.
    pub streams: Vec<StreamAssignment>,
    /// Purchases of those streams (still on chain).
    pub purchases: Vec<PurchaseInfo>,
    /// HTTP endpoints of all operators.
    pub endpoints: Vec<(AccountId, String)>,
    /// The attested stream head when each stream purchase of `purchases` was bought (the
    /// first sequence it pays for), where the chain recorded one.
    pub start_heads: BTreeMap<PurchaseId, Sequence>,
    /// The highest head attested on chain for each stream of `streams` that has one.
    pub heads: BTreeMap<StreamId, Sequence>,
}

/// The chain state the follower reads, at one block.
#[async_trait::async_trait]
pub trait ChainReader: Sync {
    /// The block read.
    fn number(&self) -> BlockNumber;
    /// Streams assigned to operator `me`.
    async fn streams_of(&self, me: &AccountId) -> Result<Vec<StreamId>, Error>;
    /// A stream with its offer's retention; `None` if the stream is gone.
    async fn assignment(&self, stream: StreamId) -> Result<Option<StreamAssignment>, Error>;
    /// Purchases of an offer still on chain.
    async fn purchase_ids(&self, offer: OfferId) -> Result<Vec<PurchaseId>, Error>;
    /// A purchase with its start head; `None` if it is gone (reaped).
    async fn purchase(
        &self,
        id: PurchaseId,
    ) -> Result<Option<(PurchaseInfo, Option<Sequence>)>, Error>;
    /// HTTP endpoints of all operators.
    async fn endpoints(&self) -> Result<Vec<(AccountId, String)>, Error>;
    /// The attested part of how far `stream` is backfilled: the lower median of the heads its
    /// operators attested (`Operators.StreamHeads`, [`attested_backfill_head`]); `None`
    /// without attestation.
    async fn attested_head(&self, stream: StreamId) -> Result<Option<Sequence>, Error>;
}

#[async_trait::async_trait]
impl ChainReader for AtBlock {
    fn number(&self) -> BlockNumber {
        self.block_number() as BlockNumber
    }

    async fn streams_of(&self, me: &AccountId) -> Result<Vec<StreamId>, Error> {
        let api = fastdata::runtime_apis()
            .operators_api()
            .streams_of(account32(me));
        api_at(self, api).await
    }

    async fn assignment(&self, id: StreamId) -> Result<Option<StreamAssignment>, Error> {
        let api = fastdata::runtime_apis().offers_api().stream(id);
        let stream: Option<StreamView<AccountId, BlockNumber>> =
            api_at(self, api).await?.unwrap_static();
        let Some(stream) = stream else {
            return Ok(None);
        };
        let api = fastdata::runtime_apis().offers_api().offer(stream.offer);
        let offer: Option<OfferListing<AccountId, Balance, BlockNumber>> =
            api_at(self, api).await?.unwrap_static();
        Ok(Some(assignment(
            stream,
            offer.map_or(0, |o| o.terms.retention),
        )))
    }

    async fn purchase_ids(&self, offer: OfferId) -> Result<Vec<PurchaseId>, Error> {
        let api = fastdata::runtime_apis()
            .escrow_api()
            .purchases_of_offer(offer);
        api_at(self, api).await
    }

    async fn purchase(
        &self,
        id: PurchaseId,
    ) -> Result<Option<(PurchaseInfo, Option<Sequence>)>, Error> {
        let api = fastdata::runtime_apis().escrow_api().purchase(id);
        let view: Option<PurchaseView<AccountId, Balance, BlockNumber>> =
            api_at(self, api).await?.unwrap_static();
        Ok(view.map(|view| {
            let start_head = view.start_head;
            (purchase_info(view), start_head)
        }))
    }

    async fn endpoints(&self) -> Result<Vec<(AccountId, String)>, Error> {
        let api = fastdata::runtime_apis().operators_api().operators();
        let operators: Vec<OperatorView<AccountId, Balance, BlockNumber>> =
            api_at(self, api).await?.unwrap_static();
        Ok(operators
            .into_iter()
            .filter_map(|o| {
                String::from_utf8(o.http_url)
                    .ok()
                    .map(|url| (o.account, url))
            })
            .collect())
    }

    async fn attested_head(&self, stream: StreamId) -> Result<Option<Sequence>, Error> {
        let attested = attested_heads_at(self, &stream).await?;
        Ok(attested_backfill_head(
            attested.into_iter().map(|a| a.head).collect(),
        ))
    }
}

/// Runs `read` for every key, [`READ_CONCURRENCY`] at a time, keeping the keys' order.
async fn read_all<K, V, F, Fut>(keys: Vec<K>, read: F) -> Result<Vec<(K, V)>, Error>
where
    K: Clone,
    F: Fn(K) -> Fut,
    Fut: std::future::Future<Output = Result<V, Error>>,
{
    futures_util::stream::iter(keys)
        .map(|key| {
            let value = read(key.clone());
            async move { value.await.map(|v| (key, v)) }
        })
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await
}

/// Reads the [`Snapshot`] of operator `me`.
pub async fn snapshot(chain: &dyn ChainReader, me: &AccountId) -> Result<Snapshot, Error> {
    let ids = chain.streams_of(me).await?;
    let streams: Vec<StreamAssignment> = read_all(ids, |id| chain.assignment(id))
        .await?
        .into_iter()
        .filter_map(|(_, s)| s)
        .collect();
    let offers: BTreeSet<OfferId> = streams.iter().map(|s| s.offer).collect();
    let mut purchase_ids = Vec::new();
    for (_, ids) in read_all(offers.into_iter().collect(), |o| chain.purchase_ids(o)).await? {
        purchase_ids.extend(ids);
    }
    let mine: BTreeSet<StreamId> = streams.iter().map(|s| s.stream).collect();
    let heads = read_all(mine.iter().copied().collect(), |id| chain.attested_head(id))
        .await?
        .into_iter()
        .filter_map(|(id, head)| Some((id, head?)))
        .collect();
    let mut purchases = Vec::new();
    let mut start_heads = BTreeMap::new();
    for (id, read) in read_all(purchase_ids, |id| chain.purchase(id)).await? {
        let Some((purchase, start_head)) = read.filter(|(p, _)| mine.contains(&p.stream)) else {
            continue;
        };
        purchases.push(purchase);
        if let Some(head) = start_head {
            start_heads.insert(id, head);
        }
    }
    Ok(Snapshot {
        number: chain.number(),
        streams,
        purchases,
        endpoints: chain.endpoints().await?,
        start_heads,
        heads,
    })
}

/// What one block's marketplace events touched: each event's subject (the purchase, offer,
/// stream or operator it names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// An event the follower does not know: read everything.
    pub unknown: bool,
    /// Assignments may have changed: re-read this operator's stream list.
    pub assignments: bool,
    /// Streams whose facts (epoch, operators, closing) may have changed.
    pub streams: BTreeSet<StreamId>,
    /// Offers whose terms may have changed.
    pub offers: BTreeSet<OfferId>,
    /// Purchases that may have changed or gone.
    pub purchases: BTreeSet<PurchaseId>,
    /// Operator endpoints may have changed.
    pub endpoints: bool,
    /// Streams the chain moved from one operator to another, as `(stream, from, to)`.
    pub handovers: Vec<(StreamId, AccountId, AccountId)>,
    /// Operators that attested heads: the heads of the streams they host may have grown.
    pub attesters: BTreeSet<AccountId>,
}

impl Touched {
    /// Nothing this operator follows changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Notes one event. Every event of the marketplace and identity pallets is named here
    /// (a new or renamed one is a compile error); events of other pallets are ignored.
    pub fn note(&mut self, event: &RuntimeEvent) {
        use fastdata::{
            did::Event as Did, escrow::Event as Escrow, offers::Event as Offers,
            operators::Event as Operators, trust::Event as Trust,
        };
        match event {
            // Every escrow event names its purchase.
            RuntimeEvent::Escrow(event) => {
                let purchase = match event {
                    Escrow::Purchased { purchase, .. }
                    | Escrow::KeysDelivered { purchase, .. }
                    | Escrow::PurchaseActivated { purchase }
                    | Escrow::RefundedForMissingKeys { purchase, .. }
                    | Escrow::ReceiptClaimed { purchase, .. }
                    | Escrow::OperatorPaid { purchase, .. }
                    | Escrow::PayoutRedirected { purchase, .. }
                    | Escrow::PeriodSettled { purchase, .. }
                    | Escrow::PurchaseSettled { purchase, .. }
                    | Escrow::DisputeOpened { purchase, .. }
                    | Escrow::DisputeAnswered { purchase, .. }
                    | Escrow::DisputeLapsed { purchase, .. }
                    | Escrow::DisputeRejected { purchase, .. }
                    | Escrow::DisputeUpheld { purchase, .. }
                    | Escrow::PurchaseReaped { purchase, .. }
                    | Escrow::AutomaticWorkFailed { purchase, .. } => *purchase,
                };
                self.purchases.insert(purchase);
            }
            RuntimeEvent::Offers(event) => match event {
                Offers::OfferCreated { .. } => {}
                Offers::OfferUpdated { offer, .. } | Offers::OfferRetired { offer } => {
                    self.offers.insert(*offer);
                }
                Offers::OfferRemoved { offer, .. } => {
                    self.offers.insert(*offer);
                    self.assignments = true;
                }
                Offers::EpochRotated { stream, .. } | Offers::StreamClosed { stream, .. } => {
                    self.streams.insert(*stream);
                }
                Offers::StreamRegistered { stream, .. } => {
                    self.streams.insert(*stream);
                    self.assignments = true;
                }
            },
            RuntimeEvent::Operators(event) => match event {
                Operators::StreamReassigned {
                    stream, from, to, ..
                } => {
                    self.streams.insert(*stream);
                    self.assignments = true;
                    if let Some(to) = to {
                        self.handovers
                            .push((*stream, account_id(from), account_id(to)));
                    }
                }
                Operators::StreamAssigned { stream, .. } | Operators::StreamReleased { stream } => {
                    self.streams.insert(*stream);
                    self.assignments = true;
                }
                Operators::HostingFunded { stream, .. }
                | Operators::HostingExhausted { stream }
                | Operators::HostingRefunded { stream, .. } => {
                    self.streams.insert(*stream);
                }
                Operators::Registered { .. } | Operators::Updated { .. } => {
                    self.endpoints = true;
                }
                Operators::HeadsAttested { operator, .. } => {
                    self.attesters.insert(account_id(operator));
                }
                // Stake, liveness and status changes reach this operator's streams only
                // through the assignment events above; so do assignment requests (drawn
                // later, as `StreamAssigned`) and draws that found no operator.
                Operators::HeartbeatReceived { .. }
                | Operators::StakeBonded { .. }
                | Operators::Paused { .. }
                | Operators::Resumed { .. }
                | Operators::LeaveStarted { .. }
                | Operators::Withdrawn { .. }
                | Operators::Suspended { .. }
                | Operators::Slashed { .. }
                | Operators::HeadSkipped { .. }
                | Operators::EquivocationReported { .. }
                | Operators::HostingPaid { .. }
                | Operators::ReassignmentRequested { .. }
                | Operators::AssignmentRequested { .. }
                | Operators::AssignmentFailed { .. } => {}
            },
            // Identities and ratings change nothing this operator serves.
            RuntimeEvent::Did(event) => match event {
                Did::DidCreated { .. }
                | Did::KeyAgreementRotated { .. }
                | Did::ServicesUpdated { .. }
                | Did::DidDeactivated { .. }
                | Did::IssuerRegistered { .. }
                | Did::IssuerWeightUpdated { .. }
                | Did::IssuerRemoved { .. }
                | Did::CredentialAttested { .. }
                | Did::CredentialRevoked { .. }
                | Did::CredentialRemoved { .. } => {}
            },
            RuntimeEvent::Trust(event) => match event {
                Trust::Rated { .. } | Trust::RatingReaped { .. } => {}
            },
            // Other pallets' events (balances, system, utility, ...) change nothing here.
            _ => {}
        }
    }

    /// Notes an event of `pallet` that does not decode as this build's [`RuntimeEvent`] (a
    /// runtime newer than this build): one of the [`MARKET_PALLETS`] makes the follower read
    /// everything; others are ignored.
    pub fn note_undecodable(&mut self, pallet: &str, variant: &str) {
        if MARKET_PALLETS.contains(&pallet) {
            tracing::debug!(pallet, variant, "unknown marketplace event; full refresh");
            self.unknown = true;
        }
    }
}

/// The [`Snapshot`] at `chain`'s block, from the view's current state and fresh reads of only
/// what `touched` names: the stream list when assignments changed, touched and newly assigned
/// streams (and the purchases of new ones), touched purchases, the endpoints, and the heads of
/// new streams and of those hosted by an operator that attested.
pub async fn update(
    chain: &dyn ChainReader,
    me: &AccountId,
    view: &InMemoryChainView,
    touched: &Touched,
) -> Result<Snapshot, Error> {
    let mut streams: BTreeMap<StreamId, StreamAssignment> =
        view.streams().into_iter().map(|s| (s.stream, s)).collect();
    let mut new = BTreeSet::new();
    if touched.assignments {
        let ids: BTreeSet<StreamId> = chain.streams_of(me).await?.into_iter().collect();
        streams.retain(|id, _| ids.contains(id));
        new.extend(ids.into_iter().filter(|id| !streams.contains_key(id)));
    }
    let reread: Vec<StreamId> = streams
        .values()
        .filter(|s| touched.streams.contains(&s.stream) || touched.offers.contains(&s.offer))
        .map(|s| s.stream)
        .chain(new.iter().copied())
        .collect();
    for (id, fresh) in read_all(reread, |id| chain.assignment(id)).await? {
        match fresh {
            Some(s) => streams.insert(id, s),
            None => streams.remove(&id),
        };
    }
    let mut purchases: BTreeMap<PurchaseId, PurchaseInfo> = streams
        .keys()
        .flat_map(|s| view.purchases_of(s))
        .map(|p| (p.id, p))
        .collect();
    let new_offers: BTreeSet<OfferId> = new
        .iter()
        .filter_map(|id| streams.get(id).map(|s| s.offer))
        .collect();
    let mut reread: BTreeSet<PurchaseId> = touched.purchases.clone();
    for (_, ids) in read_all(new_offers.into_iter().collect(), |o| chain.purchase_ids(o)).await? {
        reread.extend(ids);
    }
    let mut start_heads: BTreeMap<PurchaseId, Sequence> = purchases
        .keys()
        .filter_map(|id| view.start_head(*id).map(|head| (*id, head)))
        .collect();
    for (id, fresh) in read_all(reread.into_iter().collect(), |id| chain.purchase(id)).await? {
        start_heads.remove(&id);
        match fresh.filter(|(p, _)| streams.contains_key(&p.stream)) {
            Some((p, start_head)) => {
                purchases.insert(id, p);
                if let Some(head) = start_head {
                    start_heads.insert(id, head);
                }
            }
            None => {
                purchases.remove(&id);
            }
        };
    }
    start_heads.retain(|id, _| purchases.contains_key(id));
    let mut heads: BTreeMap<StreamId, Sequence> = streams
        .keys()
        .filter_map(|id| view.attested_head(id).map(|head| (*id, head)))
        .collect();
    let reread: Vec<StreamId> = streams
        .values()
        .filter(|s| {
            new.contains(&s.stream) || s.operators.iter().any(|o| touched.attesters.contains(o))
        })
        .map(|s| s.stream)
        .collect();
    for (id, head) in read_all(reread, |id| chain.attested_head(id)).await? {
        if let Some(head) = head {
            heads.insert(id, head);
        }
    }
    let endpoints = if touched.endpoints {
        chain.endpoints().await?
    } else {
        view.endpoints()
    };
    Ok(Snapshot {
        number: chain.number(),
        streams: streams.into_values().collect(),
        purchases: purchases.into_values().collect(),
        endpoints,
        start_heads,
        heads,
    })
}

fn assignment(
    stream: StreamView<AccountId, BlockNumber>,
    retention: BlockNumber,
) -> StreamAssignment {
    StreamAssignment {
        stream: stream.id,
        seller: stream.seller,
        offer: stream.offer,
        epoch: stream.epoch,
        oldest_epoch: stream.oldest_epoch,
        operators: stream.operators,
        retention,
        open: stream.closed_at.is_none(),
        quota_bytes: if stream.hosting_funded {
            u64::from(stream.quota_mb).saturating_mul(fastdata_primitives::escrow::BYTES_PER_MB)
        } else {
            0
        },
    }
}

fn purchase_info(view: PurchaseView<AccountId, Balance, BlockNumber>) -> PurchaseInfo {
    PurchaseInfo {
        id: view.id,
        buyer: view.buyer,
        stream: view.stream,
        offer: view.offer,
        terms: view.terms,
        access: view.access,
        state: view.state,
    }
}

/// The events that turn `view` into `snapshot`, in an order the daemon can act on: stream
/// changes, grown attested heads, purchase upserts followed by their end or refund,
/// endpoints, and the finalized block last. An open purchase of a still-assigned stream that vanished from chain (reaped)
/// is ended.
pub fn diff(view: &dyn ChainView, snapshot: &Snapshot) -> Vec<ChainEvent> {
    let mut events = Vec::new();
    let current: BTreeSet<StreamId> = snapshot.streams.iter().map(|s| s.stream).collect();
    for stream in &snapshot.streams {
        if view.stream(&stream.stream).as_ref() != Some(stream) {
            events.push(ChainEvent::StreamAssigned(stream.clone()));
        }
    }
    for old in view.streams() {
        if !current.contains(&old.stream) {
            events.push(ChainEvent::StreamUnassigned { stream: old.stream });
        }
    }
    for (stream, head) in &snapshot.heads {
        if current.contains(stream) && view.attested_head(stream).is_none_or(|known| known < *head)
        {
            events.push(ChainEvent::HeadAttested {
                stream: *stream,
                head: *head,
            });
        }
    }
    let present: BTreeSet<PurchaseId> = snapshot.purchases.iter().map(|p| p.id).collect();
    for purchase in &snapshot.purchases {
        let old = view.purchase(purchase.id);
        if old.as_ref() == Some(purchase) {
            continue;
        }
        let was = old.map(|o| o.state);
        events.push(ChainEvent::PurchaseUpdated(purchase.clone()));
        match purchase.state {
            PurchaseState::Settled if was != Some(PurchaseState::Settled) => {
                events.push(ChainEvent::PurchaseEnded {
                    purchase: purchase.id,
                })
            }
            PurchaseState::Refunded if was != Some(PurchaseState::Refunded) => {
                events.push(ChainEvent::PurchaseRefunded {
                    purchase: purchase.id,
                })
            }
            _ => {}
        }
    }
    for stream in &current {
        for old in view.purchases_of(stream) {
            if old.state.is_open() && !present.contains(&old.id) {
                events.push(ChainEvent::PurchaseEnded { purchase: old.id });
            }
        }
    }
    for (operator, url) in &snapshot.endpoints {
        if view.operator_endpoint(operator).as_deref() != Some(url.as_str()) {
            events.push(ChainEvent::OperatorEndpoint {
                operator: operator.clone(),
                http_url: url.clone(),
            });
        }
    }
    events.push(ChainEvent::Finalized {
        number: snapshot.number,
    });
    events
}

/// Follows a node's finalized blocks into a view.
pub struct Follower {
    url: String,
    account: Account,
    view: Arc<InMemoryChainView>,
    registration: Option<Registration>,
    heartbeats: bool,
    metrics: Arc<Metrics>,
}

impl Follower {
    /// A follower of the node at `url` for the operator `account`.
    pub fn new(url: impl Into<String>, account: Account, view: Arc<InMemoryChainView>) -> Self {
        Self {
            url: url.into(),
            account,
            view,
            registration: None,
            heartbeats: true,
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Reports the node's head and the last block applied in `metrics` (the daemon's).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Registers (or updates) the operator at every connection.
    pub fn with_registration(mut self, registration: Option<Registration>) -> Self {
        self.registration = registration;
        self
    }

    /// Sends `Operators::heartbeat` well within the runtime's heartbeat timeout (default on).
    pub fn with_heartbeats(mut self, on: bool) -> Self {
        self.heartbeats = on;
        self
    }

    /// Connects, registers if configured, and applies the first snapshot. Returns the
    /// connection for [`Self::run`]. Errors say why the node could not be used.
    pub async fn connect(&self) -> Result<FastData, Error> {
        let chain = FastData::connect(&self.url, self.account.clone()).await?;
        if let Some(registration) = &self.registration {
            ensure_registered(&chain, registration).await?;
        }
        let at = chain.current_block().await?;
        self.refresh(&at, None).await?;
        Ok(chain)
    }

    /// Brings the view to block `at`: a full snapshot without `touched`, else reads only
    /// what `touched` names.
    async fn refresh(&self, at: &AtBlock, touched: Option<&Touched>) -> Result<(), Error> {
        let me = self.account.account_id();
        let snapshot = match touched {
            None => snapshot(at, &me).await?,
            Some(touched) => update(at, &me, &self.view, touched).await?,
        };
        let events = diff(self.view.as_ref(), &snapshot);
        // Start heads first: whoever reacts to a purchase event already sees its start.
        self.view.set_start_heads(snapshot.start_heads.clone());
        if events.len() > 1 {
            tracing::debug!(
                block = snapshot.number,
                full = touched.is_none(),
                changes = events.len() - 1,
                "chain view updated"
            );
        }
        self.view.apply_all(events);
        Ok(())
    }

    /// One supervised run: uses `chain` (a connection from [`Self::connect`]) or connects,
    /// reports itself up, and follows finalized blocks until the daemon stops (`Ok`). A
    /// connection that fails or drops is a transient error, a refused registration a fatal
    /// one.
    pub async fn run(
        &self,
        chain: Option<FastData>,
        mut ctx: TaskContext,
    ) -> Result<(), TaskError> {
        let chain = match chain {
            Some(chain) => chain,
            None => {
                let connected = tokio::select! {
                    _ = ctx.stopped() => return Ok(()),
                    connected = self.connect() => connected,
                };
                connected.map_err(|e| match e {
                    Error::Dispatch { .. } => TaskError::fatal(format!(
                        "the chain refused the operator registration: {e}"
                    )),
                    e => TaskError::transient(e),
                })?
            }
        };
        ctx.ready();
        self.follow(chain, &mut ctx.shutdown)
            .await
            .map_err(|e| TaskError::transient(format!("{}: {e}", self.url)))
    }

    /// The supervised task: each attempt is a [`Self::run`], the first with `first`.
    pub fn task(
        self: Arc<Self>,
        first: Option<FastData>,
    ) -> impl FnMut(TaskContext) -> futures_util::future::BoxFuture<'static, Result<(), TaskError>>
           + Send
           + 'static {
        let mut first = first;
        move |ctx| {
            let this = self.clone();
            let chain = first.take();
            Box::pin(async move { this.run(chain, ctx).await })
        }
    }

    /// Reads the node's finalized head into the lag metric (best effort).
    async fn probe_head(&self, chain: &FastData) {
        match tokio::time::timeout(HEAD_PROBE_INTERVAL, chain.finalized_number()).await {
            Ok(Ok(number)) => self.metrics.chain_head(u64::from(number)),
            Ok(Err(e)) => tracing::debug!("cannot read the finalized head: {e}"),
            Err(_) => tracing::debug!("no finalized head within {HEAD_PROBE_INTERVAL:?}"),
        }
    }

    async fn follow(
        &self,
        chain: FastData,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let client = chain.client().clone();
        let mut blocks = client
            .stream_blocks()
            .await
            .map_err(|e| Error::Chain(format!("cannot follow finalized blocks: {e}")))?;
        let heartbeat_every = if self.heartbeats {
            heartbeat_interval(&chain).await?
        } else {
            None
        };
        let mut last_heartbeat: Option<u64> = None;
        let mut last_refresh = 0u64;
        let me = self.account.account_id();
        let mut head_probe = tokio::time::interval(HEAD_PROBE_INTERVAL);
        head_probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.metrics
            .chain_processed(u64::from(self.view.finalized_block()));
        tracing::info!(url = %self.url, "following finalized blocks");
        loop {
            let block = tokio::select! {
                _ = crate::stopped(shutdown) => return Ok(()),
                _ = head_probe.tick() => {
                    self.probe_head(&chain).await;
                    continue;
                }
                block = blocks.next() => block,
            };
            let block = block
                .ok_or_else(|| Error::Chain("the finalized block subscription ended".into()))?
                .map_err(|e| Error::Chain(format!("finalized block stream: {e}")))?;
            let number = block.number();
            self.metrics.chain_head(number);
            let at = block
                .at()
                .await
                .map_err(|e| Error::Chain(format!("block {number}: {e}")))?;
            let touched = market_changes(&at).await?;
            // Handovers first: the replicator reacting to a new assignment already knows
            // which former operator still holds the stream.
            self.view.apply_all(
                touched
                    .handovers
                    .iter()
                    .filter(|(_, from, to)| *from == me || *to == me)
                    .map(|(stream, from, to)| ChainEvent::StreamHandedOver {
                        stream: *stream,
                        from: from.clone(),
                        to: to.clone(),
                        at: number as BlockNumber,
                    }),
            );
            if touched.unknown || number.saturating_sub(last_refresh) >= FULL_REFRESH_BLOCKS {
                self.refresh(&at, None).await?;
                last_refresh = number;
            } else if !touched.is_empty() {
                self.refresh(&at, Some(&touched)).await?;
            } else {
                self.view.apply(ChainEvent::Finalized {
                    number: number as BlockNumber,
                });
            }
            self.metrics.chain_processed(number);
            if let Some(every) = heartbeat_every {
                if last_heartbeat.is_none_or(|last| number.saturating_sub(last) >= every) {
                    last_heartbeat = Some(number);
                    let chain = chain.clone();
                    tokio::spawn(async move {
                        if let Err(e) = keep_alive(&chain).await {
                            tracing::warn!("heartbeat failed: {e}");
                        }
                    });
                }
            }
        }
    }
}

/// Sends a heartbeat; an operator the runtime suspended (missed heartbeats, stake below
/// the minimum) resumes instead, which the runtime refuses while the stake is too low.
async fn keep_alive(chain: &FastData) -> Result<(), Error> {
    let me = chain.account().account_id();
    let view = chain.operator(&me).await?;
    if view.is_some_and(|v| v.status == OperatorStatus::Suspended) {
        tracing::warn!(operator = %me, "suspended by the runtime; resuming");
        chain
            .submit_finalized(fastdata::tx().operators().resume())
            .await?;
        tracing::info!(operator = %me, "resumed");
        return Ok(());
    }
    chain
        .submit_finalized(fastdata::tx().operators().heartbeat())
        .await
        .map(drop)
}

/// Blocks between heartbeats: a third of the runtime's `HeartbeatTimeout`, or `None` if the
/// runtime has no such constant.
async fn heartbeat_interval(chain: &FastData) -> Result<Option<u64>, Error> {
    let at = chain.current_block().await?;
    let address = fastdata::constants().operators().heartbeat_timeout();
    match at.constants().entry(address) {
        Ok(timeout) => Ok(Some(u64::from(timeout / 3).max(1))),
        Err(e) => {
            tracing::warn!("no Operators.HeartbeatTimeout constant ({e}); not sending heartbeats");
            Ok(None)
        }
    }
}

/// What the marketplace events of block `at` touched.
async fn market_changes(at: &AtBlock) -> Result<Touched, Error> {
    let events = at
        .events()
        .fetch()
        .await
        .map_err(|e| Error::Chain(format!("events of block {}: {e}", at.block_number())))?;
    let mut touched = Touched::default();
    for event in events.iter() {
        let event = event.map_err(|e| Error::Chain(format!("undecodable event: {e}")))?;
        match event.decode_as::<RuntimeEvent>() {
            Ok(decoded) => touched.note(&decoded),
            Err(e) => {
                tracing::debug!("event not known to this build: {e}");
                touched.note_undecodable(event.pallet_name(), event.event_name());
            }
        }
    }
    Ok(touched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        attestation::{stored_head, AttestRound, HeadAttester, HEAD_SCAN_CHUNK},
        claims::{
            claim_calls, claim_outcome, claim_results, ChainClaimSubmitter, OperatorCalls,
            BEYOND_STREAM_HEAD,
        },
        receipts::{Claim, ClaimOutcome, ClaimSubmitter},
        store::Store,
    };
    use codec::Encode;
    use fastdata_primitives::escrow::{AccessPeriod, PurchaseTerms};
    use fastdata_sdk::chain::fastdata::{
        balances::Event as B, escrow::Event as E, offers::Event as O, operators::Event as Op,
        trust::Event as T, utility::Event as U,
    };
    use fastdata_sdk::chain::{bounded, Included, RuntimeCall, MAX_BATCH_CALLS};
    use fastdata_sdk::subxt::utils::{AccountId32, Static};

    fn account(n: u8) -> AccountId {
        AccountId::new([n; 32])
    }

    /// `account(n)` as the generated code takes it.
    fn id32(n: u8) -> AccountId32 {
        account32(&account(n))
    }

    fn escrow(event: E) -> RuntimeEvent {
        RuntimeEvent::Escrow(event)
    }

    fn offers(event: O) -> RuntimeEvent {
        RuntimeEvent::Offers(event)
    }

    fn operators(event: Op) -> RuntimeEvent {
        RuntimeEvent::Operators(event)
    }

    fn heads_attested(operator: u8, streams: u32) -> RuntimeEvent {
        operators(Op::HeadsAttested {
            operator: id32(operator),
            streams,
        })
    }

    fn reassigned(stream: u8, from: u8, to: Option<u8>) -> RuntimeEvent {
        operators(Op::StreamReassigned {
            stream: StreamId::repeat_byte(stream),
            from: id32(from),
            to: to.map(id32),
            sources: fastdata::runtime_types::bounded_collections::bounded_vec::BoundedVec(
                to.into_iter().map(id32).collect(),
            ),
        })
    }

    fn stream(id: u8, epoch: u32) -> StreamAssignment {
        StreamAssignment {
            stream: StreamId::repeat_byte(id),
            seller: account(1),
            offer: id as OfferId,
            epoch,
            operators: vec![account(9)],
            retention: 0,
            open: true,
            oldest_epoch: 0,
            quota_bytes: u64::MAX,
        }
    }

    fn purchase(id: PurchaseId, stream: u8, state: PurchaseState) -> PurchaseInfo {
        PurchaseInfo {
            id,
            buyer: account(2),
            stream: StreamId::repeat_byte(stream),
            offer: stream as OfferId,
            terms: PurchaseTerms::Batch { first: 0, last: 9 },
            access: AccessPeriod {
                start: 0,
                end: 100,
                first_epoch: None,
                epochs: Default::default(),
            },
            state,
        }
    }

    fn snap(
        number: BlockNumber,
        streams: Vec<StreamAssignment>,
        purchases: Vec<PurchaseInfo>,
    ) -> Snapshot {
        Snapshot {
            number,
            streams,
            purchases,
            endpoints: vec![(account(9), "http://127.0.0.1:1".into())],
            start_heads: BTreeMap::new(),
            heads: BTreeMap::new(),
        }
    }

    #[test]
    fn first_snapshot_adds_everything_and_second_is_quiet() {
        let view = InMemoryChainView::new();
        let s = snap(
            5,
            vec![stream(1, 0)],
            vec![purchase(1, 1, PurchaseState::Active)],
        );
        let events = diff(&view, &s);
        assert_eq!(
            events,
            vec![
                ChainEvent::StreamAssigned(stream(1, 0)),
                ChainEvent::PurchaseUpdated(purchase(1, 1, PurchaseState::Active)),
                ChainEvent::OperatorEndpoint {
                    operator: account(9),
                    http_url: "http://127.0.0.1:1".into()
                },
                ChainEvent::Finalized { number: 5 },
            ]
        );
        view.apply_all(events);
        assert_eq!(diff(&view, &s), vec![ChainEvent::Finalized { number: 5 }]);
    }

    #[test]
    fn changes_become_events() {
        let view = InMemoryChainView::new();
        view.apply_all(diff(
            &view,
            &snap(
                5,
                vec![stream(1, 0), stream(2, 0)],
                vec![
                    purchase(1, 1, PurchaseState::Active),
                    purchase(2, 1, PurchaseState::AwaitingKeys),
                    purchase(3, 2, PurchaseState::Active),
                ],
            ),
        ));
        // Epoch rotated on stream 1, stream 2 moved elsewhere, purchase 1 settled, 2 refunded.
        let next = snap(
            6,
            vec![stream(1, 1)],
            vec![
                purchase(1, 1, PurchaseState::Settled),
                purchase(2, 1, PurchaseState::Refunded),
            ],
        );
        let events = diff(&view, &next);
        assert_eq!(
            events,
            vec![
                ChainEvent::StreamAssigned(stream(1, 1)),
                ChainEvent::StreamUnassigned {
                    stream: StreamId::repeat_byte(2)
                },
                ChainEvent::PurchaseUpdated(purchase(1, 1, PurchaseState::Settled)),
                ChainEvent::PurchaseEnded { purchase: 1 },
                ChainEvent::PurchaseUpdated(purchase(2, 1, PurchaseState::Refunded)),
                ChainEvent::PurchaseRefunded { purchase: 2 },
                ChainEvent::Finalized { number: 6 },
            ]
        );
        view.apply_all(events);
        assert_eq!(
            view.stream(&StreamId::repeat_byte(1)).map(|s| s.epoch),
            Some(1)
        );
        assert!(view.stream(&StreamId::repeat_byte(2)).is_none());
        assert_eq!(
            view.purchase(2).map(|p| p.state),
            Some(PurchaseState::Refunded)
        );
        assert_eq!(view.finalized_block(), 6);
    }

    #[test]
    fn reaped_open_purchase_is_ended() {
        let view = InMemoryChainView::new();
        view.apply_all(diff(
            &view,
            &snap(
                5,
                vec![stream(1, 0)],
                vec![purchase(4, 1, PurchaseState::Active)],
            ),
        ));
        let events = diff(&view, &snap(9, vec![stream(1, 0)], vec![]));
        assert_eq!(
            events,
            vec![
                ChainEvent::PurchaseEnded { purchase: 4 },
                ChainEvent::Finalized { number: 9 }
            ]
        );
    }

    /// A chain in memory that counts its reads.
    #[derive(Default)]
    struct FakeChain {
        number: BlockNumber,
        assigned: Vec<StreamId>,
        streams: std::collections::HashMap<StreamId, StreamAssignment>,
        purchases: std::collections::HashMap<PurchaseId, PurchaseInfo>,
        start_heads: std::collections::HashMap<PurchaseId, Sequence>,
        heads: std::collections::HashMap<StreamId, Sequence>,
        endpoints: Vec<(AccountId, String)>,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl FakeChain {
        fn read(&self) {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        fn reads(&self) -> usize {
            self.reads.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    #[async_trait::async_trait]
    impl ChainReader for FakeChain {
        fn number(&self) -> BlockNumber {
            self.number
        }
        async fn streams_of(&self, _me: &AccountId) -> Result<Vec<StreamId>, Error> {
            self.read();
            Ok(self.assigned.clone())
        }
        async fn assignment(&self, id: StreamId) -> Result<Option<StreamAssignment>, Error> {
            self.read();
            Ok(self.streams.get(&id).cloned())
        }
        async fn purchase_ids(&self, offer: OfferId) -> Result<Vec<PurchaseId>, Error> {
            self.read();
            let mut ids: Vec<_> = self
                .purchases
                .values()
                .filter(|p| p.offer == offer)
                .map(|p| p.id)
                .collect();
            ids.sort();
            Ok(ids)
        }
        async fn purchase(
            &self,
            id: PurchaseId,
        ) -> Result<Option<(PurchaseInfo, Option<Sequence>)>, Error> {
            self.read();
            Ok(self
                .purchases
                .get(&id)
                .map(|p| (p.clone(), self.start_heads.get(&id).copied())))
        }
        async fn endpoints(&self) -> Result<Vec<(AccountId, String)>, Error> {
            self.read();
            Ok(self.endpoints.clone())
        }
        async fn attested_head(&self, stream: StreamId) -> Result<Option<Sequence>, Error> {
            self.read();
            Ok(self.heads.get(&stream).copied())
        }
    }

    fn sorted(mut s: Snapshot) -> Snapshot {
        s.streams.sort_by_key(|s| s.stream);
        s.purchases.sort_by_key(|p| p.id);
        s.endpoints.sort();
        s
    }

    #[tokio::test]
    async fn incremental_update_equals_a_full_snapshot_and_reads_only_what_changed() {
        let me = account(9);
        let mut chain = FakeChain {
            number: 5,
            assigned: vec![StreamId::repeat_byte(1), StreamId::repeat_byte(2)],
            endpoints: vec![(account(9), "http://127.0.0.1:1".into())],
            ..Default::default()
        };
        // Stream 1 is shared with operator 8.
        let shared = |epoch| StreamAssignment {
            operators: vec![account(9), account(8)],
            ..stream(1, epoch)
        };
        for s in [shared(0), stream(2, 0), stream(3, 0)] {
            chain.streams.insert(s.stream, s);
        }
        chain.heads.insert(StreamId::repeat_byte(1), 30);
        chain.heads.insert(StreamId::repeat_byte(3), 12);
        for p in [
            purchase(1, 1, PurchaseState::Active),
            purchase(2, 1, PurchaseState::AwaitingKeys),
            purchase(3, 2, PurchaseState::Active),
            purchase(5, 3, PurchaseState::Active),
            purchase(6, 3, PurchaseState::Settled),
        ] {
            chain.purchases.insert(p.id, p);
        }
        chain.start_heads.insert(1, 40);
        chain.start_heads.insert(5, 7);
        let view = InMemoryChainView::new();
        let first = snapshot(&chain, &me).await.unwrap();
        assert_eq!(first.start_heads, BTreeMap::from([(1, 40)]));
        assert_eq!(
            first.heads,
            BTreeMap::from([(StreamId::repeat_byte(1), 30)])
        );
        view.set_start_heads(first.start_heads.clone());
        view.apply_all(diff(&view, &first));
        assert_eq!(view.start_head(1), Some(40));
        assert_eq!(view.attested_head(&StreamId::repeat_byte(1)), Some(30));
        assert_eq!(view.attested_head(&StreamId::repeat_byte(2)), None);
        assert_eq!(view.purchases_of(&StreamId::repeat_byte(1)).len(), 2);
        assert!(view.purchase(5).is_none(), "stream 3 is not ours yet");

        // One block: purchase 2 refunded, purchase 4 bought, purchase 3 reaped, stream 3
        // assigned to us (with purchases 5 and 6 already made), stream 1's epoch rotated.
        chain.number = 6;
        chain.purchases.get_mut(&2).unwrap().state = PurchaseState::Refunded;
        let bought = purchase(4, 2, PurchaseState::Active);
        chain.purchases.insert(4, bought.clone());
        chain.start_heads.insert(4, 12);
        chain.purchases.remove(&3);
        chain.assigned.push(StreamId::repeat_byte(3));
        chain.streams.insert(StreamId::repeat_byte(1), shared(1));
        // Operator 8 attested stream 1 further; operator 7 (sharing nothing) attested too.
        chain.heads.insert(StreamId::repeat_byte(1), 35);
        let mut touched = Touched::default();
        touched.note(&heads_attested(8, 1));
        touched.note(&heads_attested(7, 3));
        touched.note(&escrow(E::RefundedForMissingKeys {
            purchase: 2,
            buyer: id32(2),
            amount: 10,
        }));
        touched.note(&escrow(E::Purchased {
            purchase: 4,
            offer: 2,
            buyer: id32(2),
            seller: id32(1),
            price: 10,
            deposit: 1,
            periods: 1,
            access_end: 100,
            key_deadline: 10,
        }));
        touched.note(&escrow(E::PurchaseReaped {
            purchase: 3,
            buyer_deposit: 1,
            key_deposits: 1,
        }));
        // Stream 3 came from operator 9.
        touched.note(&reassigned(3, 9, Some(9)));
        touched.note(&offers(O::EpochRotated {
            stream: StreamId::repeat_byte(1),
            epoch: 1,
            commitment: sp_core::H256::repeat_byte(7),
        }));
        touched.note(&operators(Op::HeartbeatReceived { operator: id32(7) }));
        assert!(!touched.unknown);
        assert_eq!(
            touched.handovers,
            vec![(StreamId::repeat_byte(3), account(9), me.clone())]
        );
        // A reassignment to nobody hands nothing over.
        let mut nobody = Touched::default();
        nobody.note(&reassigned(3, 9, None));
        assert!(nobody.handovers.is_empty() && nobody.assignments && !nobody.unknown);
        // An event of a marketplace pallet this build does not know forces a full read.
        let mut newer = Touched::default();
        newer.note_undecodable("Operators", "StreamReassignedV2");
        assert!(newer.unknown);

        let before = chain.reads();
        let incremental = update(&chain, &me, &view, &touched).await.unwrap();
        let reads = chain.reads() - before;
        // streams_of, streams 1 and 3, the purchase ids of offer 3, purchases 2, 3, 4, 5, 6,
        // the heads of stream 1 (operator 8 attested) and 3 (new).
        assert_eq!(reads, 11);
        let before = chain.reads();
        let full = snapshot(&chain, &me).await.unwrap();
        assert!(chain.reads() - before > reads);
        assert_eq!(sorted(incremental.clone()), sorted(full));
        // Start heads: kept for unchanged purchases, read for new ones and new streams'.
        assert_eq!(
            incremental.start_heads,
            BTreeMap::from([(1, 40), (4, 12), (5, 7)])
        );

        assert_eq!(
            incremental.heads,
            BTreeMap::from([
                (StreamId::repeat_byte(1), 35),
                (StreamId::repeat_byte(3), 12)
            ])
        );

        let events = diff(&view, &incremental);
        assert!(events.contains(&ChainEvent::HeadAttested {
            stream: StreamId::repeat_byte(1),
            head: 35
        }));
        assert!(events.contains(&ChainEvent::HeadAttested {
            stream: StreamId::repeat_byte(3),
            head: 12
        }));
        assert!(events.contains(&ChainEvent::PurchaseRefunded { purchase: 2 }));
        assert!(events.contains(&ChainEvent::PurchaseEnded { purchase: 3 }));
        assert!(events.contains(&ChainEvent::PurchaseUpdated(bought)));
        assert!(events.contains(&ChainEvent::StreamAssigned(stream(3, 0))));
        view.apply_all(events);
        assert_eq!(
            view.stream(&StreamId::repeat_byte(1)).map(|s| s.epoch),
            Some(1)
        );
        assert_eq!(
            view.purchase(5).map(|p| p.state),
            Some(PurchaseState::Active)
        );
        assert_eq!(
            view.purchase(6).map(|p| p.state),
            Some(PurchaseState::Settled)
        );
        assert_eq!(view.finalized_block(), 6);
        assert_eq!(view.attested_head(&StreamId::repeat_byte(3)), Some(12));
        // Attested heads never go backwards in the view.
        view.apply(ChainEvent::HeadAttested {
            stream: StreamId::repeat_byte(1),
            head: 20,
        });
        assert_eq!(view.attested_head(&StreamId::repeat_byte(1)), Some(35));

        // A quiet block after it changes nothing and reads nothing.
        let before = chain.reads();
        let quiet = update(&chain, &me, &view, &Touched::default())
            .await
            .unwrap();
        assert_eq!(chain.reads(), before);
        assert_eq!(
            diff(&view, &quiet),
            vec![ChainEvent::Finalized { number: 6 }]
        );
    }

    #[test]
    fn touched_names_the_subjects_of_marketplace_events() {
        let stream = StreamId::repeat_byte(4);
        let mut t = Touched::default();
        t.note(&RuntimeEvent::Balances(B::Transfer {
            from: id32(1),
            to: id32(2),
            amount: 3,
        }));
        t.note(&RuntimeEvent::Trust(T::RatingReaped {
            purchase: 7,
            rater: id32(2),
            ratee: id32(1),
            deposit: 1,
        }));
        t.note(&operators(Op::HeartbeatReceived { operator: id32(1) }));
        assert!(t.is_empty(), "{t:?}");

        t.note(&escrow(E::KeysDelivered {
            purchase: 7,
            epoch: 0,
            deposit: 1,
        }));
        t.note(&offers(O::OfferRetired { offer: 5 }));
        t.note(&offers(O::StreamClosed {
            stream,
            serving_until: None,
        }));
        assert_eq!(t.purchases, BTreeSet::from([7]));
        assert_eq!(t.offers, BTreeSet::from([5]));
        assert_eq!(t.streams, BTreeSet::from([stream]));
        assert!(!t.assignments && !t.endpoints && !t.unknown);

        t.note(&operators(Op::StreamReleased { stream }));
        t.note(&operators(Op::Updated {
            operator: id32(1),
            broker_url: bounded(b"mqtt://127.0.0.1:1883".to_vec()),
            http_url: bounded(b"http://127.0.0.1:8088".to_vec()),
            price_per_mb: 1,
        }));
        assert!(t.assignments && t.endpoints && !t.unknown);
        t.note(&heads_attested(3, 2));
        assert_eq!(t.attesters, BTreeSet::from([account(3)]));

        // Events this build cannot decode: a marketplace pallet's force a full read, other
        // pallets' are ignored.
        for pallet in MARKET_PALLETS {
            let mut t = Touched::default();
            t.note_undecodable(pallet, "SomethingNew");
            assert!(t.unknown, "{pallet}");
        }
        let mut t = Touched::default();
        t.note_undecodable("Balances", "SomethingNew");
        assert!(t.is_empty());
    }

    /// A chain in memory for the operator's calls: `attest_heads` with the pallet's rules,
    /// the lower-median stream head (co-assigned operators' heads set by the test), and
    /// claims refused beyond it.
    #[derive(Default)]
    struct FakeCalls {
        state: std::sync::Mutex<FakeCallsState>,
    }

    #[derive(Default)]
    struct FakeCallsState {
        assigned: BTreeSet<StreamId>,
        mine: BTreeMap<StreamId, Sequence>,
        others: BTreeMap<StreamId, Vec<Sequence>>,
        attestations: Vec<Vec<(StreamId, Sequence)>>,
        /// The stored bytes of each stream's latest accepted attestation.
        bytes: BTreeMap<StreamId, u64>,
        claims: Vec<(PurchaseId, u64, Result<(), String>)>,
        /// Claims per `claim_batch` call (transaction).
        batches: Vec<usize>,
        offline: bool,
    }

    /// The fake chain refuses claims of this purchase as stale.
    const STALE_PURCHASE: PurchaseId = 13;

    impl FakeCalls {
        fn with(assigned: &[StreamId]) -> Arc<Self> {
            let calls = Self::default();
            calls.lock().assigned = assigned.iter().copied().collect();
            Arc::new(calls)
        }
        fn lock(&self) -> std::sync::MutexGuard<'_, FakeCallsState> {
            self.state.lock().unwrap()
        }
        fn attestations(&self) -> Vec<Vec<(StreamId, Sequence)>> {
            self.lock().attestations.clone()
        }
    }

    impl FakeCallsState {
        fn head(&self, stream: &StreamId) -> Sequence {
            let mut heads = self.others.get(stream).cloned().unwrap_or_default();
            heads.push(self.mine.get(stream).copied().unwrap_or(0));
            heads.sort_unstable();
            heads[(heads.len() - 1) / 2]
        }
    }

    fn dispatch(call: &str, error: &str) -> Error {
        Error::Dispatch {
            error: format!("{call} failed with Module error: {error}"),
        }
    }

    #[async_trait::async_trait]
    impl OperatorCalls for FakeCalls {
        async fn claim_batch(&self, claims: &[Claim]) -> Vec<Result<Balance, Error>> {
            let mut state = self.lock();
            if state.offline {
                return claims
                    .iter()
                    .map(|_| Err(Error::Chain("node down".into())))
                    .collect();
            }
            state.batches.push(claims.len());
            let stream = StreamId::repeat_byte(1);
            let mut results = Vec::new();
            for claim in claims {
                let outcome = if claim.receipt.purchase == STALE_PURCHASE {
                    Err(dispatch("Escrow::claim", "Escrow::StaleReceipt"))
                } else if claim.receipt.up_to_sequence >= state.head(&stream) {
                    Err(dispatch("Escrow::claim", "Escrow::BeyondStreamHead"))
                } else {
                    Ok(100)
                };
                state.claims.push((
                    claim.receipt.purchase,
                    claim.receipt.nonce,
                    outcome.as_ref().map(drop).map_err(|e| e.to_string()),
                ));
                results.push(outcome);
            }
            results
        }

        async fn attest_heads(&self, heads: &[(StreamId, Sequence, u64)]) -> Result<(), Error> {
            let bytes: Vec<(StreamId, u64)> = heads.iter().map(|(s, _, b)| (*s, *b)).collect();
            let heads: Vec<(StreamId, Sequence)> = heads.iter().map(|(s, h, _)| (*s, *h)).collect();
            let mut state = self.lock();
            if state.offline {
                return Err(Error::Chain("node down".into()));
            }
            let call = "Operators::attest_heads";
            if heads.is_empty() {
                return Err(dispatch(call, "Operators::NoHeads"));
            }
            // As on chain: streams not assigned are skipped, a lower head fails the call.
            let heads: Vec<(StreamId, Sequence)> = heads
                .into_iter()
                .filter(|(stream, _)| state.assigned.contains(stream))
                .collect();
            if heads.is_empty() {
                return Err(dispatch(call, "Operators::NotAssigned"));
            }
            for (stream, head) in &heads {
                if state
                    .mine
                    .get(stream)
                    .is_some_and(|previous| head < previous)
                {
                    return Err(dispatch(call, "Operators::HeadDecreased"));
                }
            }
            state.mine.extend(heads.iter().copied());
            state.bytes.extend(bytes);
            state.attestations.push(heads);
            Ok(())
        }

        async fn attested_heads(
            &self,
            streams: &[StreamId],
        ) -> Result<Vec<(StreamId, Sequence, u64, BlockNumber)>, Error> {
            let state = self.lock();
            if state.offline {
                return Err(Error::Chain("node down".into()));
            }
            Ok(streams
                .iter()
                .filter_map(|s| {
                    state
                        .mine
                        .get(s)
                        .map(|h| (*s, *h, state.bytes.get(s).copied().unwrap_or(0), 0))
                })
                .collect())
        }
    }

    fn store_with(dir: &tempfile::TempDir) -> Arc<Store> {
        Arc::new(Store::open(&dir.path().join("db")).unwrap())
    }

    fn put(
        store: &Store,
        stream: StreamId,
        sequences: impl IntoIterator<Item = Sequence>,
        at: BlockNumber,
    ) {
        let segments: Vec<_> = sequences
            .into_iter()
            .map(|sequence| crate::store::NewSegment {
                stream,
                sequence,
                envelope: vec![sequence as u8],
            })
            .collect();
        store.insert_segments(&segments, at).unwrap();
    }

    fn hosting(streams: &[u8]) -> Arc<InMemoryChainView> {
        let view = InMemoryChainView::shared();
        for s in streams {
            view.apply(ChainEvent::StreamAssigned(stream(*s, 0)));
        }
        view
    }

    #[test]
    fn stored_head_is_the_contiguous_run_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(&dir);
        let s = StreamId::repeat_byte(1);
        assert_eq!(stored_head(&store, &s, 0).unwrap(), 0);
        // Nothing below the lowest stored sequence (pruned, or before a replacement's
        // backfill): the run starts there.
        put(&store, s, 1..3, 1);
        assert_eq!(
            stored_head(&store, &s, 0).unwrap(),
            3,
            "run from the lowest stored"
        );
        put(&store, s, [0], 1);
        assert_eq!(stored_head(&store, &s, 0).unwrap(), 3);
        // Across scan chunks, and resuming from a known head.
        put(&store, s, 3..HEAD_SCAN_CHUNK * 2 + 5, 1);
        put(&store, s, [HEAD_SCAN_CHUNK * 2 + 6], 1);
        assert_eq!(stored_head(&store, &s, 0).unwrap(), HEAD_SCAN_CHUNK * 2 + 5);
        assert_eq!(
            stored_head(&store, &s, 100).unwrap(),
            HEAD_SCAN_CHUNK * 2 + 5
        );
        // Another stream's segments do not count.
        assert_eq!(
            stored_head(&store, &StreamId::repeat_byte(2), 0).unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn attests_grown_heads_once_and_never_lower() {
        let (s1, s2) = (StreamId::repeat_byte(1), StreamId::repeat_byte(2));
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(&dir);
        let view = hosting(&[1, 2]);
        let calls = FakeCalls::with(&[s1, s2]);
        let attester = HeadAttester::new(view.clone(), store.clone(), calls.clone());

        // Nothing stored: nothing to attest.
        assert_eq!(attester.round().await.unwrap(), AttestRound::default());
        assert!(calls.attestations().is_empty());

        // The seller published 5 segments of stream 1: one call with head 5.
        put(&store, s1, 0..5, 1);
        let round = attester.round().await.unwrap();
        assert_eq!((round.calls, round.attested), (1, 1));
        assert_eq!(calls.attestations(), vec![vec![(s1, 5)]]);
        assert_eq!(attester.accepted(&s1).await, Some(5));

        // Nothing changed: nothing sent. Stored past a gap: the head stays, the stored bytes
        // (what hosting pays for) are attested again.
        assert_eq!(attester.round().await.unwrap(), AttestRound::default());
        put(&store, s1, [7], 1);
        assert_eq!(attester.round().await.unwrap().attested, 1);
        assert_eq!(calls.attestations()[1], vec![(s1, 5)]);
        assert_eq!(calls.lock().bytes.get(&s1), Some(&6));
        assert_eq!(attester.round().await.unwrap(), AttestRound::default());

        // The gap filled and stream 2 started: both in one call.
        put(&store, s1, 5..7, 1);
        put(&store, s2, 0..2, 1);
        attester.round().await.unwrap();
        assert_eq!(calls.attestations()[2], vec![(s1, 8), (s2, 2)]);

        // Chunked by the chain's bound.
        put(&store, s1, 8..9, 1);
        put(&store, s2, 2..3, 1);
        let chunked =
            HeadAttester::new(view.clone(), store.clone(), calls.clone()).with_max_per_call(1);
        let round = chunked.round().await.unwrap();
        assert_eq!((round.calls, round.attested), (2, 2));
        assert_eq!(calls.attestations()[3..], [vec![(s1, 9)], vec![(s2, 3)]]);
        let attester = chunked;

        // The node is down: undecided, sent at the next round.
        put(&store, s1, 9..10, 1);
        calls.lock().offline = true;
        assert_eq!(attester.round().await.unwrap().failed, 1);
        calls.lock().offline = false;
        attester.round().await.unwrap();
        assert_eq!(calls.attestations().last().unwrap(), &vec![(s1, 10)]);

        // A restart after retention pruned the stream's start: the chain's head is read
        // first and the scan resumes there, never attesting lower.
        store.prune(&s1, 2).unwrap();
        put(&store, s1, 10..12, 5);
        // Scanning from nothing known starts at the lowest stored sequence (2).
        assert_eq!(stored_head(&store, &s1, 0).unwrap(), 12);
        let restarted = HeadAttester::new(view.clone(), store.clone(), calls.clone());
        restarted.round().await.unwrap();
        assert_eq!(calls.attestations().last().unwrap(), &vec![(s1, 12)]);
        assert_eq!(restarted.round().await.unwrap(), AttestRound::default());

        // A refused head (the stream was moved away on chain) is not sent again until it
        // grows; the other stream is not held up for good.
        calls.lock().assigned.remove(&s2);
        put(&store, s2, 3..4, 5);
        let round = restarted.round().await.unwrap();
        assert_eq!((round.calls, round.refused), (1, 1));
        assert_eq!(restarted.round().await.unwrap(), AttestRound::default());
        calls.lock().assigned.insert(s2);
        put(&store, s2, 4..5, 5);
        restarted.round().await.unwrap();
        assert_eq!(calls.attestations().last().unwrap(), &vec![(s2, 5)]);

        // No attested head of any stream ever went back.
        let mut last = BTreeMap::new();
        for (stream, head) in calls.attestations().into_iter().flatten() {
            let previous = last.insert(stream, head).unwrap_or(0);
            assert!(head >= previous, "{stream:?}: {head} after {previous}");
        }

        // An unassigned stream is forgotten.
        view.apply(ChainEvent::StreamUnassigned { stream: s1 });
        put(&store, s1, 12..13, 5);
        assert_eq!(restarted.round().await.unwrap(), AttestRound::default());
    }

    #[tokio::test]
    async fn a_claim_beyond_the_head_is_retried_until_the_head_is_attested() {
        let s1 = StreamId::repeat_byte(1);
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(&dir);
        let view = hosting(&[1]);
        let metrics = Arc::new(Metrics::new());
        let me = account(9);
        let book =
            crate::receipts::ReceiptBook::new(me.clone(), view.clone(), store.clone(), metrics);
        let calls = FakeCalls::with(&[s1]);
        let attester = Arc::new(HeadAttester::new(
            view.clone(),
            store.clone(),
            calls.clone(),
        ));
        let claims = ChainClaimSubmitter::with_calls(calls.clone());
        let receipt = |up_to: Sequence, nonce: u64| {
            let receipt = crate::receipts::Receipt {
                purchase: 1,
                operator: me.clone(),
                up_to_sequence: up_to,
                bytes: 100 * (up_to + 1),
                nonce,
            };
            let signed = (receipt, sp_core::sr25519::Signature::from_raw([0; 64])).encode();
            store
                .update_receipt(1, |_| Ok::<_, ()>(signed))
                .unwrap()
                .unwrap();
        };

        // Five segments stored and receipted, no head attested yet: refused, kept.
        put(&store, s1, 0..5, 1);
        receipt(4, 1);
        let round = crate::receipts::claim_round(&book, &claims, 8)
            .await
            .unwrap();
        assert_eq!((round.accepted, round.rejected, round.failed), (0, 0, 1));
        assert_eq!(book.unclaimed().unwrap().len(), 1, "the receipt is kept");
        let round = crate::receipts::claim_round(&book, &claims, 8)
            .await
            .unwrap();
        assert_eq!(round.failed, 1);

        // The attester's round attests 5: the same receipt is accepted next round.
        attester.round().await.unwrap();
        let round = crate::receipts::claim_round(&book, &claims, 8)
            .await
            .unwrap();
        assert_eq!((round.accepted, round.failed), (1, 0));
        assert!(book.unclaimed().unwrap().is_empty());
        assert_eq!(
            calls
                .lock()
                .claims
                .iter()
                .map(|(p, n, r)| (*p, *n, r.is_ok()))
                .collect::<Vec<_>>(),
            vec![(1, 1, false), (1, 1, false), (1, 1, true)]
        );

        // With attestation before claims, a newer receipt is accepted in its first round.
        claims.attest_first(attester.clone());
        put(&store, s1, 5..8, 2);
        receipt(7, 2);
        let round = crate::receipts::claim_round(&book, &claims, 8)
            .await
            .unwrap();
        assert_eq!(round.accepted, 1);
        assert_eq!(calls.attestations(), vec![vec![(s1, 5)], vec![(s1, 8)]]);

        // Two co-assigned operators that have not attested hold the median head at 5.
        calls.lock().others.insert(s1, vec![0, 5]);
        put(&store, s1, 8..10, 3);
        receipt(9, 3);
        assert_eq!(
            crate::receipts::claim_round(&book, &claims, 8)
                .await
                .unwrap()
                .failed,
            1
        );
        calls.lock().others.insert(s1, vec![10, 5]);
        assert_eq!(
            crate::receipts::claim_round(&book, &claims, 8)
                .await
                .unwrap()
                .accepted,
            1
        );

        // Other refusals are final.
        assert!(matches!(
            claim_outcome(Err(dispatch("Escrow::claim", "Escrow::StaleReceipt"))),
            ClaimOutcome::Rejected(_)
        ));
        assert!(matches!(
            claim_outcome(Err(Error::Chain("gone".into()))),
            ClaimOutcome::Failed(_)
        ));
    }

    /// A claim of `purchase` up to `up_to` by operator 9.
    fn claim(purchase: PurchaseId, up_to: Sequence) -> Claim {
        Claim {
            receipt: crate::receipts::Receipt {
                purchase,
                operator: account(9),
                up_to_sequence: up_to,
                bytes: 100 * (up_to + 1),
                nonce: 1,
            },
            signature: sp_core::sr25519::Signature::from_raw([0; 64]),
        }
    }

    #[tokio::test]
    async fn claims_go_in_bounded_batches_with_one_outcome_each() {
        let s1 = StreamId::repeat_byte(1);
        let calls = FakeCalls::with(&[s1]);
        calls.lock().mine.insert(s1, 10);
        let claims = ChainClaimSubmitter::with_calls(calls.clone()).with_max_per_batch(2);
        // Five claims, two per transaction: one beyond the head (retried), one stale
        // (refused for good); the others are accepted all the same.
        let round = vec![
            claim(1, 3),
            claim(2, 10),
            claim(3, 5),
            claim(STALE_PURCHASE, 4),
            claim(5, 9),
        ];
        let outcomes = claims.submit(&round).await;
        assert_eq!(calls.lock().batches, vec![2, 2, 1]);
        assert_eq!(outcomes.len(), 5);
        assert_eq!(outcomes[0], ClaimOutcome::Accepted { accrued: 100 });
        assert!(
            matches!(&outcomes[1], ClaimOutcome::Failed(e) if e.contains(BEYOND_STREAM_HEAD)),
            "{outcomes:?}"
        );
        assert_eq!(outcomes[2], ClaimOutcome::Accepted { accrued: 100 });
        assert!(
            matches!(&outcomes[3], ClaimOutcome::Rejected(e) if e.contains("StaleReceipt")),
            "{outcomes:?}"
        );
        assert_eq!(outcomes[4], ClaimOutcome::Accepted { accrued: 100 });

        // A round larger than a transaction holds goes in chunks of MAX_BATCH_CALLS.
        let calls = FakeCalls::with(&[s1]);
        calls.lock().mine.insert(s1, 1_000);
        let claims = ChainClaimSubmitter::with_calls(calls.clone());
        let many: Vec<Claim> = (0..2 * MAX_BATCH_CALLS as u64 + 1)
            .map(|p| claim(100 + p, 1))
            .collect();
        let outcomes = claims.submit(&many).await;
        assert_eq!(
            calls.lock().batches,
            vec![MAX_BATCH_CALLS, MAX_BATCH_CALLS, 1]
        );
        assert!(outcomes
            .iter()
            .all(|o| *o == ClaimOutcome::Accepted { accrued: 100 }));

        // No node: every claim stays pending.
        calls.lock().offline = true;
        let outcomes = claims.submit(&many[..3]).await;
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, ClaimOutcome::Failed(_))));
    }

    #[test]
    fn claims_become_escrow_claim_calls() {
        let round = [claim(1, 5), claim(2, 7)];
        let calls = claim_calls(&round);
        assert_eq!(calls.len(), 2);
        for (call, claim) in calls.iter().zip(&round) {
            let RuntimeCall::Escrow(fastdata::escrow::Call::claim {
                receipt: Static(receipt),
                signature: Static(signature),
            }) = call
            else {
                panic!("not an Escrow::claim: {call:?}");
            };
            assert_eq!(receipt, &claim.receipt);
            assert_eq!(
                signature,
                &sp_runtime::MultiSignature::Sr25519(claim.signature)
            );
        }
    }

    #[test]
    fn batch_events_map_to_claim_outcomes() {
        use fastdata_sdk::chain::fastdata::runtime_types::sp_runtime::ModuleError;
        use fastdata_sdk::chain::{batch_results, RuntimeDispatchError};
        let stale = RuntimeDispatchError::Module(ModuleError {
            index: 54,
            error: [7, 0, 0, 0],
        });
        // Renders a dispatch error as the SDK does from the metadata.
        let describe = |error: &RuntimeDispatchError| match error {
            RuntimeDispatchError::Module(m) if (m.index, m.error[0]) == (54, 7) => {
                "Pallet error: Escrow::StaleReceipt".to_string()
            }
            other => format!("{other:?}"),
        };
        let claimed = |purchase: PurchaseId, accrued: Balance| {
            escrow(E::ReceiptClaimed {
                purchase,
                operator: id32(9),
                up_to_sequence: 5,
                bytes: 600,
                accrued,
            })
        };
        let batch = Included {
            extrinsic_hash: [1; 32],
            block_hash: [2; 32],
            block_number: 7,
            nonce: 3,
            finalized: true,
            events: vec![
                RuntimeEvent::Balances(B::Withdraw {
                    who: id32(9),
                    amount: 1,
                }),
                claimed(1, 70),
                RuntimeEvent::Utility(U::ItemCompleted),
                RuntimeEvent::Utility(U::ItemFailed { error: stale }),
                claimed(3, 90),
                RuntimeEvent::Utility(U::ItemCompleted),
                // Accepted, but without its ReceiptClaimed event: no pay known.
                RuntimeEvent::Utility(U::ItemCompleted),
                RuntimeEvent::Utility(U::BatchCompletedWithErrors),
            ],
        };
        let names = vec!["Escrow::claim".to_string(); 4];
        let results = batch_results(&batch, &names, describe);
        assert_eq!(results[0].as_ref().unwrap().block_number, 7);
        let outcomes: Vec<ClaimOutcome> = claim_results(results)
            .into_iter()
            .map(claim_outcome)
            .collect();
        assert_eq!(outcomes[0], ClaimOutcome::Accepted { accrued: 70 });
        assert!(
            matches!(&outcomes[1], ClaimOutcome::Rejected(e)
                if e.contains("Escrow::claim failed with Pallet error: Escrow::StaleReceipt")),
            "{outcomes:?}"
        );
        assert_eq!(outcomes[2], ClaimOutcome::Accepted { accrued: 90 });
        assert_eq!(outcomes[3], ClaimOutcome::Accepted { accrued: 0 });
    }
}
