//! The chain follower: keeps the daemon's [`InMemoryChainView`] in line with the finalized
//! blocks of a FAST DATA node (subxt), registers the operator on chain, sends heartbeats and
//! submits claims ([`ChainClaimSubmitter`]).
//!
//! On every (re)connection the follower reads a full [`Snapshot`] of the facts this operator
//! needs at the last finalized block (its streams with their offers' retention, the purchases
//! of those streams, every operator's HTTP endpoint) through the runtime APIs and applies the
//! difference to the view ([`diff`]). After that it refreshes at each finalized block whose
//! events touch the marketplace pallets, and every [`FULL_REFRESH_BLOCKS`] blocks in any case.
//! Because a refresh compares whole state, a block missed while disconnected cannot leave the
//! view stale: the next snapshot contains its effects.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use fastdata_primitives::{
    api_market::{OfferListing, OperatorStatus, OperatorView, StreamView},
    escrow::{PurchaseState, PurchaseView},
    AccountId, Balance, BlockNumber, PurchaseId, StreamId,
};
use fastdata_sdk::{
    chain::{arg, runtime_api_at, AtBlock},
    Account, Error, FastData,
};
use tokio::sync::{watch, Mutex};

use crate::{
    chain::{ChainEvent, ChainView, InMemoryChainView, PurchaseInfo, StreamAssignment},
    receipts::{Claim, ClaimOutcome, ClaimSubmitter},
};

/// Pallets whose events trigger a refresh.
pub const MARKET_PALLETS: &[&str] = &["Offers", "Operators", "Escrow"];

/// A full refresh happens at least every this many finalized blocks.
pub const FULL_REFRESH_BLOCKS: u64 = 20;

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
}

/// Reads the [`Snapshot`] of operator `me` at block `at`.
pub async fn snapshot(at: &AtBlock, me: &AccountId) -> Result<Snapshot, Error> {
    let ids: Vec<StreamId> = runtime_api_at(at, "OperatorsApi_streams_of", me).await?;
    let mut streams = Vec::with_capacity(ids.len());
    let mut offers = BTreeSet::new();
    for id in ids {
        let stream: Option<StreamView<AccountId, BlockNumber>> =
            runtime_api_at(at, "OffersApi_stream", id).await?;
        let Some(stream) = stream else { continue };
        let offer: Option<OfferListing<AccountId, Balance, BlockNumber>> =
            runtime_api_at(at, "OffersApi_offer", stream.offer).await?;
        offers.insert(stream.offer);
        streams.push(assignment(stream, offer.map_or(0, |o| o.terms.retention)));
    }
    let mine: BTreeSet<StreamId> = streams.iter().map(|s| s.stream).collect();
    let mut purchases = Vec::new();
    for offer in offers {
        let ids: Vec<PurchaseId> =
            runtime_api_at(at, "EscrowApi_purchases_of_offer", offer).await?;
        for id in ids {
            let view: Option<PurchaseView<AccountId, Balance, BlockNumber>> =
                runtime_api_at(at, "EscrowApi_purchase", id).await?;
            if let Some(view) = view.filter(|p| mine.contains(&p.stream)) {
                purchases.push(purchase_info(view));
            }
        }
    }
    let operators: Vec<OperatorView<AccountId, Balance, BlockNumber>> =
        runtime_api_at(at, "OperatorsApi_operators", ()).await?;
    let endpoints = operators
        .into_iter()
        .filter_map(|o| {
            String::from_utf8(o.http_url)
                .ok()
                .map(|url| (o.account, url))
        })
        .collect();
    Ok(Snapshot {
        number: at.block_number() as BlockNumber,
        streams,
        purchases,
        endpoints,
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
        operators: stream.operators,
        retention,
        open: stream.closed_at.is_none(),
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
/// changes, purchase upserts followed by their end or refund, endpoints, and the finalized
/// block last. An open purchase of a still-assigned stream that vanished from chain (reaped)
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

/// What the operator registers on chain (`Operators::register`, or `update` when it differs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Stake to hold, in planck.
    pub stake: Balance,
    /// `mqtt://` or `mqtts://` URL buyers and sellers connect to.
    pub broker_url: String,
    /// `http://` or `https://` URL of this daemon's API.
    pub http_url: String,
    /// Price per MB served, in planck.
    pub price_per_mb: Balance,
}

/// Follows a node's finalized blocks into a view.
pub struct Follower {
    url: String,
    account: Account,
    view: Arc<InMemoryChainView>,
    registration: Option<Registration>,
    heartbeats: bool,
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
        }
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
        let at = chain.client().at_current_block().await?;
        self.refresh(&at).await?;
        Ok(chain)
    }

    async fn refresh(&self, at: &AtBlock) -> Result<(), Error> {
        let snapshot = snapshot(at, &self.account.account_id()).await?;
        let events = diff(self.view.as_ref(), &snapshot);
        if events.len() > 1 {
            tracing::debug!(
                block = snapshot.number,
                changes = events.len() - 1,
                "chain view updated"
            );
        }
        self.view.apply_all(events);
        Ok(())
    }

    /// Follows finalized blocks until `shutdown`; reconnects (with back-off) and resyncs after
    /// any connection error. `chain` is a connection from [`Self::connect`], if one is open.
    pub async fn run(self, mut chain: Option<FastData>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let connection = match chain.take() {
                Some(chain) => Ok(chain),
                None => self.connect().await,
            };
            let result = match connection {
                Ok(connection) => {
                    backoff = Duration::from_millis(500);
                    self.follow(connection, &mut shutdown).await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return,
                Err(e) => tracing::warn!(
                    "chain follower: {e}; reconnecting to {} in {backoff:?}",
                    self.url
                ),
            }
            tokio::select! {
                _ = crate::stopped(&mut shutdown) => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
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
        tracing::info!(url = %self.url, "following finalized blocks");
        loop {
            let block = tokio::select! {
                _ = crate::stopped(shutdown) => return Ok(()),
                block = blocks.next() => block,
            };
            let block = block
                .ok_or_else(|| Error::Chain("the finalized block subscription ended".into()))?
                .map_err(|e| Error::Chain(format!("finalized block stream: {e}")))?;
            let number = block.number();
            let at = block
                .at()
                .await
                .map_err(|e| Error::Chain(format!("block {number}: {e}")))?;
            if number.saturating_sub(last_refresh) >= FULL_REFRESH_BLOCKS
                || touches_market(&at).await?
            {
                self.refresh(&at).await?;
                last_refresh = number;
            } else {
                self.view.apply(ChainEvent::Finalized {
                    number: number as BlockNumber,
                });
            }
            if let Some(every) = heartbeat_every {
                if last_heartbeat.is_none_or(|last| number.saturating_sub(last) >= every) {
                    last_heartbeat = Some(number);
                    let chain = chain.clone();
                    tokio::spawn(async move {
                        if let Err(e) = chain.submit("Operators", "heartbeat", ()).await {
                            tracing::warn!("heartbeat failed: {e}");
                        }
                    });
                }
            }
        }
    }
}

/// Blocks between heartbeats: a third of the runtime's `HeartbeatTimeout`, or `None` if the
/// runtime has no such constant.
async fn heartbeat_interval(chain: &FastData) -> Result<Option<u64>, Error> {
    let at = chain.client().at_current_block().await?;
    let address =
        fastdata_sdk::subxt::dynamic::constant::<BlockNumber>("Operators", "HeartbeatTimeout");
    match at.constants().entry(address) {
        Ok(timeout) => Ok(Some(u64::from(timeout / 3).max(1))),
        Err(e) => {
            tracing::warn!("no Operators.HeartbeatTimeout constant ({e}); not sending heartbeats");
            Ok(None)
        }
    }
}

async fn touches_market(at: &AtBlock) -> Result<bool, Error> {
    let events = at
        .events()
        .fetch()
        .await
        .map_err(|e| Error::Chain(format!("events of block {}: {e}", at.block_number())))?;
    for event in events.iter() {
        let event = event.map_err(|e| Error::Chain(format!("undecodable event: {e}")))?;
        if MARKET_PALLETS.contains(&event.pallet_name()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Registers the operator, or brings its endpoints and price in line with `registration`, or
/// resumes it when it is paused or suspended.
pub async fn ensure_registered(chain: &FastData, registration: &Registration) -> Result<(), Error> {
    let me = chain.account().account_id();
    let current: Option<OperatorView<AccountId, Balance, BlockNumber>> =
        chain.runtime_api("OperatorsApi_operator", &me).await?;
    let broker = registration.broker_url.as_bytes().to_vec();
    let http = registration.http_url.as_bytes().to_vec();
    match current {
        None => {
            chain
                .submit(
                    "Operators",
                    "register",
                    (
                        arg(registration.stake),
                        arg(broker),
                        arg(http),
                        arg(registration.price_per_mb),
                    ),
                )
                .await?;
            tracing::info!(operator = %me, "registered as a storage operator");
        }
        Some(view) => {
            if view.broker_url != broker
                || view.http_url != http
                || view.price_per_mb != registration.price_per_mb
            {
                chain
                    .submit(
                        "Operators",
                        "update",
                        (
                            arg(Some(broker)),
                            arg(Some(http)),
                            arg(Some(registration.price_per_mb)),
                        ),
                    )
                    .await?;
                tracing::info!(operator = %me, "updated endpoints and price on chain");
            }
            match view.status {
                OperatorStatus::Active => {}
                OperatorStatus::Paused | OperatorStatus::Suspended => {
                    chain.submit("Operators", "resume", ()).await?;
                    tracing::info!(operator = %me, "resumed");
                }
                OperatorStatus::Leaving { unbonding_until } => {
                    return Err(Error::Chain(format!(
                        "operator {me} is leaving (unbonding until block {unbonding_until}); \
                         withdraw and register again"
                    )))
                }
            }
        }
    }
    Ok(())
}

/// Submits claims as `Escrow::claim` transactions signed by the operator, one after the
/// other (each waits for finalization), over a connection opened on first use and reopened
/// after a failure.
pub struct ChainClaimSubmitter {
    url: String,
    account: Account,
    chain: Mutex<Option<FastData>>,
}

impl ChainClaimSubmitter {
    /// Claims as `account` through the node at `url`.
    pub fn new(url: impl Into<String>, account: Account) -> Self {
        Self {
            url: url.into(),
            account,
            chain: Mutex::new(None),
        }
    }
}

#[async_trait::async_trait]
impl ClaimSubmitter for ChainClaimSubmitter {
    async fn submit(&self, claims: &[Claim]) -> Vec<ClaimOutcome> {
        let mut guard = self.chain.lock().await;
        let mut outcomes = Vec::with_capacity(claims.len());
        for claim in claims {
            let chain = match guard.as_ref() {
                Some(chain) => chain.clone(),
                None => match FastData::connect(&self.url, self.account.clone()).await {
                    Ok(chain) => {
                        *guard = Some(chain.clone());
                        chain
                    }
                    Err(e) => {
                        outcomes.push(ClaimOutcome::Failed(e.to_string()));
                        continue;
                    }
                },
            };
            let signature = sp_runtime::MultiSignature::Sr25519(claim.signature);
            let outcome = match chain
                .submit(
                    "Escrow",
                    "claim",
                    (arg(claim.receipt.clone()), arg(signature)),
                )
                .await
            {
                Ok(_) => ClaimOutcome::Accepted,
                Err(Error::Dispatch { error }) => ClaimOutcome::Rejected(error),
                Err(e) => {
                    *guard = None;
                    ClaimOutcome::Failed(e.to_string())
                }
            };
            outcomes.push(outcome);
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastdata_primitives::{
        escrow::{AccessPeriod, PurchaseTerms},
        OfferId,
    };

    fn account(n: u8) -> AccountId {
        AccountId::new([n; 32])
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
}
