//! The daemon's local view of chain state: the only source of its authorization decisions.
//!
//! Everything the daemon decides (who may publish, who may subscribe, what to store, what to
//! serve, whom to replicate from) is answered from a [`ChainView`], in memory, without a
//! network round trip. A chain follower keeps the view current by feeding it
//! [`ChainEvent`]s; the view broadcasts every applied event so the rest of the daemon can react
//! (revoke broker grants when a purchase ends, subscribe to a newly assigned stream, …).
//!
//! Today the view is fed by tests and by the dev fixture file ([`Fixture`]); the subxt follower
//! (finalized blocks of the FAST DATA runtime) will feed the same events:
//!
//! | pallet event / query                          | [`ChainEvent`]                         |
//! |-----------------------------------------------|----------------------------------------|
//! | new finalized block                           | `Finalized { number }`                 |
//! | stream registered / reassigned with me in set | `StreamAssigned(StreamAssignment)`     |
//! | epoch rotated                                 | `EpochRotated { stream, epoch }`       |
//! | stream closed, or I was removed from its set  | `StreamUnassigned { stream }`          |
//! | purchase made / keys delivered / disputed     | `PurchaseUpdated(PurchaseInfo)`        |
//! | last period settled                           | `PurchaseEnded { purchase }`           |
//! | key deadline missed → refund                  | `PurchaseRefunded { purchase }`        |
//! | operator registered / endpoint changed        | `OperatorEndpoint { operator, http_url }` |
//! | `Operators::StreamReassigned` from/to me      | `StreamHandedOver { stream, from, to, at }` |
//! | `Operators.StreamHeads` grew (`HeadsAttested`) | `HeadAttested { stream, head }`        |
//!
//! On (re)connect the follower rebuilds the state from storage at the last finalized block and
//! emits the same events (they are idempotent upserts), so nothing is missed. Handovers are
//! only seen in block events, not in chain state: the daemon keeps them in its store
//! ([`ChainView::keep_handovers`]) so a restart does not forget them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock, Weak},
};

use fastdata_primitives::{
    escrow::{AccessPeriod, PurchaseState, PurchaseTerms},
    AccountId, BlockNumber, EpochIndex, OfferId, PurchaseId, Sequence, StreamId,
};
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::{
    retention::UNHOSTED_KEEP_BLOCKS,
    store::{Store, StoreError},
};

/// A stream this operator hosts.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StreamAssignment {
    /// The stream.
    pub stream: StreamId,
    /// Its seller (signer of upload tokens).
    pub seller: AccountId,
    /// The offer it belongs to.
    pub offer: OfferId,
    /// The current key epoch.
    pub epoch: EpochIndex,
    /// The oldest epoch whose commitment the chain still holds.
    pub oldest_epoch: EpochIndex,
    /// All operators assigned to the stream (this one included), for replication.
    pub operators: Vec<AccountId>,
    /// How long (in blocks) segments are kept, from the offer terms; 0 keeps them forever.
    pub retention: BlockNumber,
    /// The stream accepts uploads (not closed by its seller).
    pub open: bool,
    /// Bytes of the stream this operator may store: its hosting quota while the seller's
    /// hosting funds last, 0 once they are exhausted. Segments beyond it are refused.
    pub quota_bytes: u64,
}

/// A purchase of a stream this operator hosts.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PurchaseInfo {
    /// The purchase.
    pub id: PurchaseId,
    /// The buyer (signer of access requests and receipts).
    pub buyer: AccountId,
    /// The stream bought.
    pub stream: StreamId,
    /// The offer bought.
    pub offer: OfferId,
    /// What was bought (a batch window of sequences, or live periods).
    pub terms: PurchaseTerms<BlockNumber>,
    /// Access period (blocks) and epochs with delivered keys.
    pub access: AccessPeriod<BlockNumber>,
    /// Life-cycle state.
    pub state: PurchaseState,
}

impl PurchaseInfo {
    /// The sequences this purchase entitles the buyer to, if bounded (batch).
    pub fn sequence_window(&self) -> Option<(Sequence, Sequence)> {
        match self.terms {
            PurchaseTerms::Batch { first, last } => Some((first, last)),
            PurchaseTerms::Stream { .. } => None,
        }
    }

    /// A segment of `epoch` may be served under this purchase: batch purchases cover their
    /// whole window, live purchases the epochs whose keys were delivered to the buyer.
    pub fn covers_epoch(&self, epoch: EpochIndex) -> bool {
        match self.terms {
            PurchaseTerms::Batch { .. } => true,
            PurchaseTerms::Stream { .. } => self.access.epochs.contains(&epoch),
        }
    }
}

/// A change of chain state, as seen in finalized blocks.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ChainEvent {
    /// A block was finalized.
    Finalized {
        /// Its number.
        number: BlockNumber,
    },
    /// This operator hosts the stream (new assignment, or updated facts of an existing one).
    StreamAssigned(StreamAssignment),
    /// The stream's seller opened a new key epoch.
    EpochRotated {
        /// The stream.
        stream: StreamId,
        /// The new current epoch.
        epoch: EpochIndex,
    },
    /// This operator no longer hosts the stream (closed, or reassigned elsewhere).
    StreamUnassigned {
        /// The stream.
        stream: StreamId,
    },
    /// A purchase was made or changed (keys delivered, disputed, …).
    PurchaseUpdated(PurchaseInfo),
    /// A purchase ended normally (settled).
    PurchaseEnded {
        /// The purchase.
        purchase: PurchaseId,
    },
    /// A purchase was refunded.
    PurchaseRefunded {
        /// The purchase.
        purchase: PurchaseId,
    },
    /// The chain moved `stream` from operator `from` to operator `to`
    /// (`Operators::StreamReassigned`). The former operator keeps its data for the keep
    /// period and serves it to `to` alone, which backfills from it.
    StreamHandedOver {
        /// The stream.
        stream: StreamId,
        /// The operator that stopped hosting it.
        from: AccountId,
        /// The operator that now hosts it.
        to: AccountId,
        /// The finalized block of the handover.
        at: BlockNumber,
    },
    /// The highest head of a stream this operator hosts attested on chain by its operators
    /// (`Operators.StreamHeads`) grew: sequences below `head` were published. Backfill never
    /// stores a sequence at or above it (see `replication.rs`).
    HeadAttested {
        /// The stream.
        stream: StreamId,
        /// One past the last sequence attested as stored (a count from sequence 0).
        head: Sequence,
    },
    /// An operator's HTTP endpoint (used for replication).
    OperatorEndpoint {
        /// The operator.
        operator: AccountId,
        /// Its `http(s)://` base URL.
        http_url: String,
    },
}

/// The facts the daemon decides from. Implementations answer from memory.
pub trait ChainView: Send + Sync + 'static {
    /// The last finalized block number (the clock for token expiry and access windows).
    fn finalized_block(&self) -> BlockNumber;
    /// A stream assigned to this operator.
    fn stream(&self, id: &StreamId) -> Option<StreamAssignment>;
    /// All streams assigned to this operator.
    fn streams(&self) -> Vec<StreamAssignment>;
    /// A purchase of one of this operator's streams (kept after it ends, with its final state).
    fn purchase(&self, id: PurchaseId) -> Option<PurchaseInfo>;
    /// All known purchases of `stream`.
    fn purchases_of(&self, stream: &StreamId) -> Vec<PurchaseInfo>;
    /// An operator's HTTP endpoint.
    fn operator_endpoint(&self, operator: &AccountId) -> Option<String>;
    /// Events applied from now on.
    fn subscribe(&self) -> broadcast::Receiver<ChainEvent>;
    /// The first sequence stream purchase `purchase` pays for: the attested stream head when
    /// it was bought (`PurchaseView::start_head`); `None` if not known.
    fn start_head(&self, _purchase: PurchaseId) -> Option<Sequence> {
        None
    }
    /// The handovers of `stream` seen at or after block `since`, as `(from, to)`.
    fn handovers(&self, _stream: &StreamId, _since: BlockNumber) -> Vec<(AccountId, AccountId)> {
        Vec::new()
    }
    /// The highest attested backfill head of `stream` seen ([`ChainEvent::HeadAttested`]: the
    /// lower median of its operators' attested heads, so one inflated head does not move it):
    /// its sequences below it were published; `None` if none is known.
    fn attested_head(&self, _stream: &StreamId) -> Option<Sequence> {
        None
    }
    /// Takes in the handovers `store` keeps and records there every handover known or
    /// learned from now on (the daemon's store, so a restart remembers them); returns how
    /// many were loaded. A view without handovers ignores it.
    fn keep_handovers(&self, _store: &Arc<Store>) -> Result<usize, StoreError> {
        Ok(0)
    }
}

/// A stream moved from one operator to another ([`ChainEvent::StreamHandedOver`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Handover {
    /// The stream.
    pub stream: StreamId,
    /// The operator that stopped hosting it.
    pub from: AccountId,
    /// The operator that now hosts it.
    pub to: AccountId,
    /// The finalized block of the handover.
    pub at: BlockNumber,
}

/// Handovers a view (and the store) remembers per stream (the latest ones).
pub const MAX_HANDOVERS_PER_STREAM: usize = 8;

/// How long a handover is remembered, in blocks: a former operator keeps and serves the
/// stream's data this long.
pub const HANDOVER_KEEP_BLOCKS: BlockNumber = UNHOSTED_KEEP_BLOCKS;

#[derive(Default)]
struct ViewState {
    finalized: BlockNumber,
    streams: HashMap<StreamId, StreamAssignment>,
    purchases: HashMap<PurchaseId, PurchaseInfo>,
    endpoints: HashMap<AccountId, String>,
    start_heads: HashMap<PurchaseId, Sequence>,
    handovers: HashMap<StreamId, Vec<(AccountId, AccountId, BlockNumber)>>,
    /// Highest attested head per assigned stream.
    heads: HashMap<StreamId, Sequence>,
}

impl ViewState {
    /// Adds a handover; returns whether it was new.
    fn add_handover(&mut self, h: &Handover) -> bool {
        let list = self.handovers.entry(h.stream).or_default();
        let entry = (h.from.clone(), h.to.clone(), h.at);
        if list.contains(&entry) {
            return false;
        }
        list.push(entry);
        list.sort_by_key(|(_, _, at)| *at);
        if list.len() > MAX_HANDOVERS_PER_STREAM {
            list.remove(0);
        }
        true
    }

    /// Forgets the handovers older than the keep period.
    fn prune_handovers(&mut self) {
        let since = self.finalized.saturating_sub(HANDOVER_KEEP_BLOCKS);
        if since == 0 {
            return;
        }
        self.handovers.retain(|_, list| {
            list.retain(|(_, _, at)| *at >= since);
            !list.is_empty()
        });
    }
}

/// The in-memory [`ChainView`], fed by [`InMemoryChainView::apply`].
pub struct InMemoryChainView {
    state: RwLock<ViewState>,
    events: broadcast::Sender<ChainEvent>,
    /// Where handovers are kept ([`ChainView::keep_handovers`]); weak, so a stopped daemon's
    /// database is closed even while the view lives on.
    handover_store: Mutex<Option<Weak<Store>>>,
}

impl Default for InMemoryChainView {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryChainView {
    /// An empty view at block 0.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            state: RwLock::new(ViewState::default()),
            events,
            handover_store: Mutex::new(None),
        }
    }

    /// An empty view behind an `Arc`.
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::new())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ViewState> {
        // A panic while holding the lock cannot leave the maps half-updated (every update is
        // a single insert/remove), so a poisoned lock is still consistent.
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ViewState> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies one event and broadcasts it. Events are idempotent; finalized block numbers
    /// and attested heads never go backwards; ended or refunded purchases keep their final
    /// state. A new handover is written to the store given to
    /// [`ChainView::keep_handovers`] before it is broadcast.
    pub fn apply(&self, event: ChainEvent) {
        let mut new_handover = None;
        {
            let mut state = self.write();
            match &event {
                ChainEvent::Finalized { number } => {
                    state.finalized = state.finalized.max(*number);
                    state.prune_handovers();
                }
                ChainEvent::StreamAssigned(assignment) => {
                    state.streams.insert(assignment.stream, assignment.clone());
                }
                ChainEvent::EpochRotated { stream, epoch } => {
                    if let Some(s) = state.streams.get_mut(stream) {
                        s.epoch = s.epoch.max(*epoch);
                    }
                }
                ChainEvent::StreamUnassigned { stream } => {
                    state.streams.remove(stream);
                    state.heads.remove(stream);
                }
                ChainEvent::PurchaseUpdated(info) => {
                    state.purchases.insert(info.id, info.clone());
                }
                ChainEvent::PurchaseEnded { purchase } => {
                    if let Some(p) = state.purchases.get_mut(purchase) {
                        p.state = PurchaseState::Settled;
                    }
                }
                ChainEvent::PurchaseRefunded { purchase } => {
                    if let Some(p) = state.purchases.get_mut(purchase) {
                        p.state = PurchaseState::Refunded;
                    }
                }
                ChainEvent::StreamHandedOver {
                    stream,
                    from,
                    to,
                    at,
                } => {
                    let handover = Handover {
                        stream: *stream,
                        from: from.clone(),
                        to: to.clone(),
                        at: *at,
                    };
                    if state.add_handover(&handover) {
                        new_handover = Some(handover);
                    }
                }
                ChainEvent::HeadAttested { stream, head } => {
                    // Only for hosted streams: the map stays bounded by the assignments.
                    if state.streams.contains_key(stream) {
                        let known = state.heads.entry(*stream).or_default();
                        *known = (*known).max(*head);
                    }
                }
                ChainEvent::OperatorEndpoint { operator, http_url } => {
                    state.endpoints.insert(operator.clone(), http_url.clone());
                }
            }
        }
        if let Some(handover) = new_handover {
            self.store_handover(&handover);
        }
        // Nobody listening is fine (tests, start-up).
        let _ = self.events.send(event);
    }

    /// Writes `handover` to the store kept by [`ChainView::keep_handovers`], if any (rare: a
    /// short blocking write). A failure is logged: the view still holds it until a restart.
    fn store_handover(&self, handover: &Handover) {
        let store = self
            .handover_store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .and_then(Weak::upgrade);
        if let Some(store) = store {
            if let Err(e) = store.record_handover(handover) {
                tracing::warn!(
                    ?handover,
                    "handover not stored, forgotten at a restart: {e}"
                );
            }
        }
    }

    /// Every known operator HTTP endpoint, by operator.
    pub fn endpoints(&self) -> Vec<(AccountId, String)> {
        let mut endpoints: Vec<_> = self
            .read()
            .endpoints
            .iter()
            .map(|(a, u)| (a.clone(), u.clone()))
            .collect();
        endpoints.sort();
        endpoints
    }

    /// Replaces the start heads of stream purchases ([`ChainView::start_head`]); the follower
    /// sets them from each snapshot, before applying its events.
    pub fn set_start_heads(&self, heads: impl IntoIterator<Item = (PurchaseId, Sequence)>) {
        self.write().start_heads = heads.into_iter().collect();
    }

    /// Applies several events in order.
    pub fn apply_all(&self, events: impl IntoIterator<Item = ChainEvent>) {
        for event in events {
            self.apply(event);
        }
    }
}

impl ChainView for InMemoryChainView {
    fn finalized_block(&self) -> BlockNumber {
        self.read().finalized
    }

    fn stream(&self, id: &StreamId) -> Option<StreamAssignment> {
        self.read().streams.get(id).cloned()
    }

    fn streams(&self) -> Vec<StreamAssignment> {
        let mut streams: Vec<_> = self.read().streams.values().cloned().collect();
        streams.sort_by_key(|s| s.stream);
        streams
    }

    fn purchase(&self, id: PurchaseId) -> Option<PurchaseInfo> {
        self.read().purchases.get(&id).cloned()
    }

    fn purchases_of(&self, stream: &StreamId) -> Vec<PurchaseInfo> {
        let mut purchases: Vec<_> = self
            .read()
            .purchases
            .values()
            .filter(|p| &p.stream == stream)
            .cloned()
            .collect();
        purchases.sort_by_key(|p| p.id);
        purchases
    }

    fn operator_endpoint(&self, operator: &AccountId) -> Option<String> {
        self.read().endpoints.get(operator).cloned()
    }

    fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }

    fn start_head(&self, purchase: PurchaseId) -> Option<Sequence> {
        self.read().start_heads.get(&purchase).copied()
    }

    fn handovers(&self, stream: &StreamId, since: BlockNumber) -> Vec<(AccountId, AccountId)> {
        self.read()
            .handovers
            .get(stream)
            .map_or_else(Vec::new, |list| {
                list.iter()
                    .filter(|(_, _, at)| *at >= since)
                    .map(|(from, to, _)| (from.clone(), to.clone()))
                    .collect()
            })
    }

    fn attested_head(&self, stream: &StreamId) -> Option<Sequence> {
        self.read().heads.get(stream).copied()
    }

    fn keep_handovers(&self, store: &Arc<Store>) -> Result<usize, StoreError> {
        let stored = store.handovers()?;
        let loaded = stored.len();
        // The lock is held across the merge so no handover applied meanwhile is missed.
        let mut slot = self
            .handover_store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let known: Vec<Handover> = {
            let mut state = self.write();
            for handover in &stored {
                state.add_handover(handover);
            }
            state.prune_handovers();
            state
                .handovers
                .iter()
                .flat_map(|(stream, list)| {
                    list.iter().map(|(from, to, at)| Handover {
                        stream: *stream,
                        from: from.clone(),
                        to: to.clone(),
                        at: *at,
                    })
                })
                .collect()
        };
        // Those the view learned before the store was given (e.g. before the daemon started).
        for handover in known.iter().filter(|h| !stored.contains(h)) {
            store.record_handover(handover)?;
        }
        *slot = Some(Arc::downgrade(store));
        Ok(loaded)
    }
}

/// A dev/test description of chain state in TOML, applied to an [`InMemoryChainView`] at
/// start-up while no chain follower exists (`[chain] fixture = "chain.toml"`).
///
/// ```toml
/// finalized = 10
///
/// [[stream]]
/// id = "0x0707070707070707070707070707070707070707070707070707070707070707"
/// seller = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
/// offer = 1
/// epoch = 0
/// operators = ["5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"]
/// retention = 0
/// head = 100   # attested head: backfill stores sequences below it only (none if left out)
///
/// [[purchase]]
/// id = 1
/// buyer = "5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y"
/// stream = "0x0707070707070707070707070707070707070707070707070707070707070707"
/// start = 0
/// end = 1000
/// epochs = [0]
/// # batch = [0, 99]   # a batch purchase of sequences 0..=99; omit for a live purchase
///
/// [[operator]]
/// account = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
/// http_url = "http://127.0.0.1:8080"
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Finalized block number.
    #[serde(default)]
    pub finalized: BlockNumber,
    /// Streams assigned to this operator.
    #[serde(default, rename = "stream")]
    pub streams: Vec<FixtureStream>,
    /// Purchases of those streams.
    #[serde(default, rename = "purchase")]
    pub purchases: Vec<FixturePurchase>,
    /// Operators' endpoints.
    #[serde(default, rename = "operator")]
    pub operators: Vec<FixtureOperator>,
}

/// A stream in a [`Fixture`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureStream {
    /// Stream id, `0x`-hex.
    pub id: StreamId,
    /// Seller, SS58.
    pub seller: AccountId,
    /// Offer id.
    #[serde(default)]
    pub offer: OfferId,
    /// Current epoch.
    #[serde(default)]
    pub epoch: EpochIndex,
    /// Assigned operators, SS58.
    pub operators: Vec<AccountId>,
    /// Retention in blocks (0 = forever).
    #[serde(default)]
    pub retention: BlockNumber,
    /// Hosting quota in bytes (unlimited if left out).
    #[serde(default = "unlimited")]
    pub quota_bytes: u64,
    /// Highest head attested on chain ([`ChainEvent::HeadAttested`]); none if left out.
    #[serde(default)]
    pub head: Option<Sequence>,
}

fn unlimited() -> u64 {
    u64::MAX
}

/// A purchase in a [`Fixture`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixturePurchase {
    /// Purchase id.
    pub id: PurchaseId,
    /// Buyer, SS58.
    pub buyer: AccountId,
    /// Stream, `0x`-hex.
    pub stream: StreamId,
    /// Offer id.
    #[serde(default)]
    pub offer: OfferId,
    /// First block of access.
    #[serde(default)]
    pub start: BlockNumber,
    /// First block after access.
    pub end: BlockNumber,
    /// Epochs with delivered keys.
    #[serde(default)]
    pub epochs: Vec<EpochIndex>,
    /// `[first, last]` for a batch purchase.
    #[serde(default)]
    pub batch: Option<(Sequence, Sequence)>,
    /// `active` (default), `awaiting_keys`, `disputed`, `settled` or `refunded`.
    #[serde(default)]
    pub state: Option<String>,
}

/// An operator endpoint in a [`Fixture`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureOperator {
    /// Operator account, SS58.
    pub account: AccountId,
    /// HTTP base URL.
    pub http_url: String,
}

impl Fixture {
    /// Parses a fixture from TOML.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// The events that bring an empty view to this state.
    pub fn events(&self) -> anyhow::Result<Vec<ChainEvent>> {
        let mut events = vec![ChainEvent::Finalized {
            number: self.finalized,
        }];
        for op in &self.operators {
            events.push(ChainEvent::OperatorEndpoint {
                operator: op.account.clone(),
                http_url: op.http_url.clone(),
            });
        }
        for s in &self.streams {
            events.push(ChainEvent::StreamAssigned(StreamAssignment {
                stream: s.id,
                seller: s.seller.clone(),
                offer: s.offer,
                epoch: s.epoch,
                oldest_epoch: 0,
                operators: s.operators.clone(),
                retention: s.retention,
                open: true,
                quota_bytes: s.quota_bytes,
            }));
            if let Some(head) = s.head {
                events.push(ChainEvent::HeadAttested { stream: s.id, head });
            }
        }
        for p in &self.purchases {
            let state = match p.state.as_deref().unwrap_or("active") {
                "active" => PurchaseState::Active,
                "awaiting_keys" => PurchaseState::AwaitingKeys,
                "disputed" => PurchaseState::Disputed,
                "settled" => PurchaseState::Settled,
                "refunded" => PurchaseState::Refunded,
                other => anyhow::bail!("purchase {}: unknown state {other:?}", p.id),
            };
            let terms = match p.batch {
                Some((first, last)) => PurchaseTerms::Batch { first, last },
                None => PurchaseTerms::Stream {
                    period: p.end.saturating_sub(p.start),
                    periods: 1,
                },
            };
            events.push(ChainEvent::PurchaseUpdated(PurchaseInfo {
                id: p.id,
                buyer: p.buyer.clone(),
                stream: p.stream,
                offer: p.offer,
                terms,
                access: AccessPeriod {
                    start: p.start,
                    end: p.end,
                    first_epoch: p.epochs.first().copied(),
                    epochs: p.epochs.clone(),
                },
                state,
            }));
        }
        Ok(events)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sp_core::H256;

    pub fn account(byte: u8) -> AccountId {
        AccountId::new([byte; 32])
    }

    pub fn assignment(stream: u8, seller: u8, operators: &[u8]) -> StreamAssignment {
        StreamAssignment {
            stream: H256::repeat_byte(stream),
            seller: account(seller),
            offer: 1,
            epoch: 0,
            operators: operators.iter().map(|b| account(*b)).collect(),
            retention: 0,
            open: true,
            oldest_epoch: 0,
            quota_bytes: u64::MAX,
        }
    }

    pub fn live_purchase(id: PurchaseId, buyer: u8, stream: u8, end: BlockNumber) -> PurchaseInfo {
        PurchaseInfo {
            id,
            buyer: account(buyer),
            stream: H256::repeat_byte(stream),
            offer: 1,
            terms: PurchaseTerms::Stream {
                period: end,
                periods: 1,
            },
            access: AccessPeriod {
                start: 0,
                end,
                first_epoch: Some(0),
                epochs: vec![0],
            },
            state: PurchaseState::Active,
        }
    }

    #[test]
    fn events_update_the_view_and_are_broadcast() {
        let view = InMemoryChainView::new();
        let mut rx = view.subscribe();
        view.apply(ChainEvent::Finalized { number: 5 });
        view.apply(ChainEvent::StreamAssigned(assignment(7, 1, &[2])));
        view.apply(ChainEvent::PurchaseUpdated(live_purchase(1, 3, 7, 100)));
        assert_eq!(view.finalized_block(), 5);
        assert_eq!(
            view.stream(&H256::repeat_byte(7)).unwrap().seller,
            account(1)
        );
        assert_eq!(view.purchases_of(&H256::repeat_byte(7)).len(), 1);
        assert_eq!(rx.try_recv().unwrap(), ChainEvent::Finalized { number: 5 });

        view.apply(ChainEvent::EpochRotated {
            stream: H256::repeat_byte(7),
            epoch: 3,
        });
        assert_eq!(view.stream(&H256::repeat_byte(7)).unwrap().epoch, 3);
        // Epochs and finalized numbers never go backwards.
        view.apply(ChainEvent::EpochRotated {
            stream: H256::repeat_byte(7),
            epoch: 2,
        });
        view.apply(ChainEvent::Finalized { number: 4 });
        assert_eq!(view.stream(&H256::repeat_byte(7)).unwrap().epoch, 3);
        assert_eq!(view.finalized_block(), 5);

        view.apply(ChainEvent::PurchaseRefunded { purchase: 1 });
        assert_eq!(view.purchase(1).unwrap().state, PurchaseState::Refunded);
        view.apply(ChainEvent::StreamUnassigned {
            stream: H256::repeat_byte(7),
        });
        assert!(view.stream(&H256::repeat_byte(7)).is_none());
        assert!(view.streams().is_empty());
    }

    fn handover(stream: u8, from: u8, to: u8, at: BlockNumber) -> Handover {
        Handover {
            stream: H256::repeat_byte(stream),
            from: account(from),
            to: account(to),
            at,
        }
    }

    fn handed_over(h: &Handover) -> ChainEvent {
        ChainEvent::StreamHandedOver {
            stream: h.stream,
            from: h.from.clone(),
            to: h.to.clone(),
            at: h.at,
        }
    }

    #[test]
    fn handovers_survive_a_restart_through_the_store_and_expire_after_the_keep_period() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let (early, late) = (handover(7, 2, 3, 10), handover(8, 2, 4, 11));
        {
            let store = Arc::new(Store::open(&path).unwrap());
            let view = InMemoryChainView::new();
            view.apply(ChainEvent::Finalized { number: 11 });
            // Learned before the daemon gave the view its store, then after.
            view.apply(handed_over(&early));
            assert_eq!(view.keep_handovers(&store).unwrap(), 0);
            view.apply(handed_over(&late));
            assert_eq!(
                store.handovers().unwrap(),
                vec![early.clone(), late.clone()]
            );
        }
        // A restart: a new view (the chain does not list handovers) over the same database.
        let store = Arc::new(Store::open(&path).unwrap());
        let view = InMemoryChainView::new();
        view.apply(ChainEvent::Finalized { number: 12 });
        assert!(view.handovers(&H256::repeat_byte(7), 0).is_empty());
        assert_eq!(view.keep_handovers(&store).unwrap(), 2);
        assert_eq!(
            view.handovers(&H256::repeat_byte(7), 0),
            vec![(account(2), account(3))]
        );
        assert_eq!(
            view.handovers(&H256::repeat_byte(8), 0),
            vec![(account(2), account(4))]
        );
        // Past the keep period of the first one, the view forgets it.
        view.apply(ChainEvent::Finalized {
            number: 11 + HANDOVER_KEEP_BLOCKS,
        });
        assert!(view.handovers(&H256::repeat_byte(7), 0).is_empty());
        assert_eq!(view.handovers(&H256::repeat_byte(8), 0).len(), 1);
        // The view does not keep a stopped daemon's database open.
        drop(store);
        let store = Arc::new(Store::open(&path).unwrap());
        view.apply(handed_over(&handover(9, 5, 2, 20)));
        assert_eq!(store.handovers().unwrap().len(), 2);
    }

    #[test]
    fn attested_heads_grow_only_and_only_for_hosted_streams() {
        let view = InMemoryChainView::new();
        let (seven, eight) = (H256::repeat_byte(7), H256::repeat_byte(8));
        view.apply(ChainEvent::StreamAssigned(assignment(7, 1, &[2])));
        view.apply(ChainEvent::HeadAttested {
            stream: seven,
            head: 10,
        });
        view.apply(ChainEvent::HeadAttested {
            stream: seven,
            head: 4,
        });
        view.apply(ChainEvent::HeadAttested {
            stream: eight,
            head: 10,
        });
        assert_eq!(view.attested_head(&seven), Some(10));
        assert_eq!(view.attested_head(&eight), None);
        view.apply(ChainEvent::StreamUnassigned { stream: seven });
        assert_eq!(view.attested_head(&seven), None);
    }

    #[test]
    fn fixture_parses_into_events() {
        let alice = sp_core::crypto::Ss58Codec::to_ss58check(&account(1));
        let text = format!(
            r#"
            finalized = 9
            [[stream]]
            id = "0x{}"
            seller = "{alice}"
            operators = ["{alice}"]
            head = 12
            [[purchase]]
            id = 4
            buyer = "{alice}"
            stream = "0x{}"
            end = 50
            batch = [0, 9]
            [[operator]]
            account = "{alice}"
            http_url = "http://127.0.0.1:1"
            "#,
            hex::encode([7u8; 32]),
            hex::encode([7u8; 32]),
        );
        let fixture = Fixture::from_toml(&text).unwrap();
        let view = InMemoryChainView::new();
        view.apply_all(fixture.events().unwrap());
        assert_eq!(view.finalized_block(), 9);
        assert_eq!(view.purchase(4).unwrap().sequence_window(), Some((0, 9)));
        assert_eq!(view.attested_head(&H256::repeat_byte(7)), Some(12));
        assert_eq!(
            view.operator_endpoint(&account(1)).unwrap(),
            "http://127.0.0.1:1"
        );
        assert!(Fixture::from_toml("bogus = 1").is_err());
    }
}
