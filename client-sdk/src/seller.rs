//! Seller: offers, streams, key epochs, and delivery of sealed keys to buyers
//! (`pallet-offers`, `pallet-escrow`).
//!
//! The data keys of every epoch are generated here and kept in the [`Keystore`]; only their
//! commitment `H(k_e ‖ k_m)` goes on chain. For every paid purchase the key-delivery service
//! seals each due epoch's keys to the buyer's X25519 key (HPKE) and submits them with
//! `Escrow::deliver_keys`, the deliveries of a pass batched into `Utility::force_batch`
//! transactions ([`FastData::submit_batch`]).

use fastdata_primitives::{
    api_market::{stream_id, OfferListing, OfferTerms, StreamView},
    envelope::EpochKeys,
    escrow::{PurchaseState, PurchaseTerms},
    sealed, AccountId, Balance, BlockNumber, EpochIndex, OfferId, PaymentMode, PurchaseId,
    Sequence, StreamId,
};
use futures_util::{StreamExt, TryStreamExt};
use sp_core::H256;
use std::collections::{BTreeMap, HashMap};
use subxt::utils::Static;

use crate::{
    buyer::Purchase,
    chain::{
        account32, bounded, fastdata, FastData, Included, RuntimeCall, RuntimeEvent, Unwrap, Wait,
    },
    error::Error,
    keystore::{EpochRecord, Keystore},
};

/// Purchases the key-delivery pass reads from the node at once.
const PURCHASE_READS_IN_FLIGHT: usize = 32;

/// An offer listing with the seller's trust score.
pub type Offer = OfferListing<AccountId, Balance, BlockNumber>;
/// A stream with its operators and epoch.
pub type Stream = StreamView<AccountId, BlockNumber>;

/// What a seller pays its stream's operators for hosting: the quota each stores and the
/// funds that pay them (`Operators::fund_hosting`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hosting {
    /// Most MB each operator stores for the stream; segments beyond it are refused.
    pub quota_mb: u32,
    /// Funds set aside (held from the seller) to pay the operators for what they store.
    pub funds: Balance,
}

impl Hosting {
    /// The `Operators::fund_hosting` call that sets this hosting for `stream` (a batch item).
    pub fn call(&self, stream: &StreamId) -> RuntimeCall {
        RuntimeCall::Operators(fastdata::operators::Call::fund_hosting {
            stream: *stream,
            quota_mb: self.quota_mb,
            amount: self.funds,
        })
    }

    /// 64 MB per operator funded with 10 FAST: a demo or test stream.
    pub const DEMO: Self = Self {
        quota_mb: 64,
        funds: 10_000_000_000_000,
    };

    /// A quota of `quota_mb` MB, with funds for `replication` operators storing all of it for
    /// `blocks` blocks at the runtime's hosting price (`price_per_mb` per `period` blocks, the
    /// constants `Operators::HostingPricePerMb` and `Operators::HostingPeriod`).
    pub fn covering(
        quota_mb: u32,
        replication: u32,
        blocks: BlockNumber,
        price_per_mb: Balance,
        period: BlockNumber,
    ) -> Self {
        let periods = u128::from(blocks.div_ceil(period.max(1)));
        Self {
            quota_mb,
            funds: price_per_mb
                .saturating_mul(u128::from(quota_mb))
                .saturating_mul(u128::from(replication))
                .saturating_mul(periods),
        }
    }
}

/// The offer `included` created (`Offers::OfferCreated`).
fn offer_created(included: &Included) -> Result<OfferId, Error> {
    included.event("Offers::OfferCreated", |e| match e {
        RuntimeEvent::Offers(fastdata::offers::Event::OfferCreated { offer, .. }) => Some(*offer),
        _ => None,
    })
}

/// Checks that `included` registered `stream` (`Offers::StreamRegistered`).
fn expect_registered(included: &Included, stream: &StreamId) -> Result<(), Error> {
    let registered = included.event("Offers::StreamRegistered", |e| match e {
        RuntimeEvent::Offers(fastdata::offers::Event::StreamRegistered { stream, .. }) => {
            Some(*stream)
        }
        _ => None,
    })?;
    if registered != *stream {
        return Err(Error::Decode {
            what: "StreamRegistered",
            detail: format!("chain registered {registered:?}, expected {stream:?}"),
        });
    }
    Ok(())
}

/// An offer and its stream listed together ([`FastData::list_stream`]).
#[derive(Clone, Debug)]
pub struct ListedStream {
    /// The offer.
    pub offer: OfferId,
    /// The stream's id `blake2_256(seller ‖ name ‖ timestamp)`.
    pub stream: StreamId,
    /// The commitment of epoch 0.
    pub commitment: H256,
    /// The transaction.
    pub included: Included,
}

/// A stream just registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredStream {
    /// Its id `blake2_256(seller ‖ name ‖ timestamp)`.
    pub stream: StreamId,
    /// The operators assigned to host it.
    pub operators: Vec<AccountId>,
    /// The commitment of epoch 0.
    pub commitment: H256,
}

/// One delivery of sealed keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The purchase.
    pub purchase: PurchaseId,
    /// The epoch delivered.
    pub epoch: EpochIndex,
    /// What happened: `Ok` or the error text.
    pub result: Result<(), String>,
    /// The hash of the (batch) transaction that delivered the keys, when it did.
    pub transaction: Option<[u8; 32]>,
}

/// The epochs a seller still owes a purchase, minus those already delivered, among the epochs
/// up to the stream's `current_epoch` that the seller's keystore records (`known`):
///
/// - **Stream**: the epoch current at purchase time (`access.first_epoch`) and every later
///   one opened before the access ended (`opened_at < access.end`). An epoch whose opening
///   block is not recorded counts as opened at `now`, the block at which the key-delivery
///   service sees it.
/// - **Batch** `first..=last`: only the epochs whose sequence ranges meet the window. Epoch
///   `e` covers its recorded first sequence up to the one before the next recorded start.
///   Where a start is not recorded the range is widened to the neighbouring records, so an
///   epoch that may hold data of the window is never withheld; an unrecorded epoch newer than
///   every recorded start holds no data yet. A keystore that records no start at all (written
///   before the records existed) gives every epoch.
pub fn epochs_due(
    purchase: &Purchase,
    current_epoch: EpochIndex,
    known: &[EpochRecord],
    now: BlockNumber,
) -> Vec<EpochIndex> {
    if !matches!(
        purchase.state,
        PurchaseState::AwaitingKeys | PurchaseState::Active
    ) {
        return Vec::new();
    }
    let starts: BTreeMap<EpochIndex, Sequence> = known
        .iter()
        .filter_map(|k| k.first_sequence.map(|s| (k.epoch, s)))
        .collect();
    let mut epochs: Vec<EpochRecord> = known
        .iter()
        .copied()
        .filter(|k| k.epoch <= current_epoch && !purchase.access.epochs.contains(&k.epoch))
        .collect();
    epochs.sort_unstable_by_key(|k| k.epoch);
    epochs.dedup_by_key(|k| k.epoch);
    match purchase.terms {
        PurchaseTerms::Stream { .. } => {
            let first = purchase.access.first_epoch.unwrap_or(current_epoch);
            epochs
                .iter()
                .filter(|k| {
                    k.epoch == first
                        || (k.epoch > first && k.opened_at.unwrap_or(now) < purchase.access.end)
                })
                .map(|k| k.epoch)
                .collect()
        }
        PurchaseTerms::Batch { first, last } => epochs
            .iter()
            .filter(|k| {
                epoch_range(&starts, k.epoch).is_some_and(|(lo, hi)| lo <= last && hi >= first)
            })
            .map(|k| k.epoch)
            .collect(),
    }
}

/// The sequences `epoch` may cover given the recorded first sequences `starts`, or `None` if
/// it covers none.
fn epoch_range(
    starts: &BTreeMap<EpochIndex, Sequence>,
    epoch: EpochIndex,
) -> Option<(Sequence, Sequence)> {
    if starts.is_empty() {
        return Some((0, Sequence::MAX));
    }
    let earlier = starts.range(..epoch).next_back().map(|(_, s)| *s);
    let later = epoch
        .checked_add(1)
        .and_then(|next| starts.range(next..).next())
        .map(|(_, s)| *s);
    let lo = match (starts.get(&epoch), earlier, later) {
        (Some(start), _, _) => *start,
        // Opened after the newest recorded start and never published under.
        (None, Some(_), None) => return None,
        (None, earlier, _) => earlier.unwrap_or(0),
    };
    let hi = match later {
        Some(next) => next.checked_sub(1)?,
        None => Sequence::MAX,
    };
    (lo <= hi).then_some((lo, hi))
}

/// The keys of `epoch` sealed to the X25519 key of the buyer of `purchase`.
fn sealed_keys(purchase: &Purchase, epoch: EpochIndex, keys: &EpochKeys) -> Result<Vec<u8>, Error> {
    sealed::seal(&purchase.buyer_key, purchase.id, epoch, keys).map_err(|e| Error::Purchase {
        purchase: purchase.id,
        detail: format!("cannot seal keys to the buyer's key: {e}"),
    })
}

impl FastData {
    /// Lists an offer; the acting account must have a verified DID. Returns the offer id.
    pub async fn create_offer(
        &self,
        topic: &str,
        mode: PaymentMode<BlockNumber>,
        price: Balance,
        terms: OfferTerms<BlockNumber>,
    ) -> Result<OfferId, Error> {
        let included = self
            .submit(fastdata::tx().offers().create_offer(
                bounded(topic.as_bytes()),
                Static(mode),
                price,
                Static(terms),
            ))
            .await?;
        offer_created(&included)
    }

    /// Onboards a stream in one transaction (`Utility::batch_all`): lists an offer of
    /// `topic` and registers its stream `name` with fresh epoch-0 keys (kept in `keystore`,
    /// saved before the transaction is sent) (`Offers::create_offer_with_stream`), and funds
    /// its `hosting`. Returns once it is in a block; the operators are drawn a few blocks
    /// later ([`Self::wait_for_operators`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn list_stream(
        &self,
        keystore: &mut Keystore,
        topic: &str,
        mode: PaymentMode<BlockNumber>,
        price: Balance,
        terms: OfferTerms<BlockNumber>,
        name: &str,
        hosting: Hosting,
    ) -> Result<ListedStream, Error> {
        let (stream, timestamp, commitment) = self.new_stream_keys(keystore, name)?;
        let calls = [
            RuntimeCall::Offers(fastdata::offers::Call::create_offer_with_stream {
                topic: bounded(topic.as_bytes()),
                mode: Static(mode),
                price,
                terms: Static(terms),
                name: bounded(name.as_bytes()),
                timestamp,
                commitment,
            }),
            hosting.call(&stream),
        ];
        let included = self.submit_all(&calls, Wait::InBlock).await?;
        let offer = offer_created(&included)?;
        expect_registered(&included, &stream)?;
        Ok(ListedStream {
            offer,
            stream,
            commitment,
            included,
        })
    }

    /// Sets the hosting quota of the caller's `stream` to `quota_mb` MB and adds `amount` to
    /// its hosting funds.
    pub async fn fund_hosting(
        &self,
        stream: &StreamId,
        quota_mb: u32,
        amount: Balance,
    ) -> Result<Included, Error> {
        self.submit(
            fastdata::tx()
                .operators()
                .fund_hosting(*stream, quota_mb, amount),
        )
        .await
    }

    /// The runtime's hosting price: what an operator earns per MB stored per period, and the
    /// period in blocks (`Operators::HostingPricePerMb`, `Operators::HostingPeriod`).
    pub async fn hosting_price(&self) -> Result<(Balance, BlockNumber), Error> {
        let at = self.current_block().await?;
        let constants = at.constants();
        let missing = |name: &str, e: &dyn std::fmt::Display| {
            Error::NotFound(format!("runtime constant Operators.{name}: {e}"))
        };
        let price = constants
            .entry(fastdata::constants().operators().hosting_price_per_mb())
            .map_err(|e| missing("HostingPricePerMb", &e))?;
        let period = constants
            .entry(fastdata::constants().operators().hosting_period())
            .map_err(|e| missing("HostingPeriod", &e))?;
        Ok((price, period))
    }

    /// Retires an offer (no new purchases).
    pub async fn retire_offer(&self, offer: OfferId) -> Result<Included, Error> {
        self.submit(fastdata::tx().offers().retire_offer(offer))
            .await
    }

    /// Registers the stream of `offer` named `name` with fresh epoch-0 keys (kept in
    /// `keystore`, saved before the transaction is sent) and funds its `hosting`, in one
    /// transaction (`Utility::batch_all`); operators are assigned by the chain.
    pub async fn register_stream(
        &self,
        keystore: &mut Keystore,
        offer: OfferId,
        name: &str,
        hosting: Hosting,
    ) -> Result<RegisteredStream, Error> {
        let (stream, timestamp, commitment) = self.new_stream_keys(keystore, name)?;
        let calls = [
            RuntimeCall::Offers(fastdata::offers::Call::register_stream {
                offer,
                name: bounded(name.as_bytes()),
                timestamp,
                commitment,
            }),
            hosting.call(&stream),
        ];
        let included = self.submit_all(&calls, Wait::InBlock).await?;
        expect_registered(&included, &stream)?;
        let operators = self.wait_for_operators(&stream).await?;
        Ok(RegisteredStream {
            stream,
            operators,
            commitment,
        })
    }

    /// A new stream `name` of this account: its id and timestamp, and fresh epoch-0 keys kept
    /// in `keystore` (saved before any transaction is sent), with their commitment.
    fn new_stream_keys(
        &self,
        keystore: &mut Keystore,
        name: &str,
    ) -> Result<(StreamId, u64, H256), Error> {
        let timestamp = crate::now_millis();
        let stream = stream_id(&self.account().account_id(), name.as_bytes(), timestamp);
        let keys = EpochKeys::generate()?;
        keystore.set_epoch_keys(&stream, 0, &keys);
        keystore.save()?;
        Ok((stream, timestamp, keys.commitment()))
    }

    /// Waits until the chain has drawn the operators of the newly registered `stream` (a few
    /// blocks after its registration) and returns them. The stream may not be in a finalized
    /// block yet when this starts.
    pub async fn wait_for_operators(&self, stream: &StreamId) -> Result<Vec<AccountId>, Error> {
        const WAIT: std::time::Duration = std::time::Duration::from_secs(120);
        let started = std::time::Instant::now();
        loop {
            let view = self.stream(stream).await?;
            if let Some(view) = &view {
                if !view.operators.is_empty() {
                    return Ok(view.operators.clone());
                }
            }
            if started.elapsed() > WAIT {
                return Err(match view {
                    None => Error::NotFound(format!("no stream {stream:?} on chain")),
                    Some(_) => Error::Timeout(format!(
                        "no operators drawn for stream {stream:?} within {} s: the operators \
                         pallet reports AssignmentFailed when none had room",
                        WAIT.as_secs()
                    )),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    /// Opens the next key epoch of `stream` with fresh keys (kept in `keystore`, with the
    /// block at which the rotation was seen: the finalized head, or the rotation's own block
    /// when that is newer). Returns the new epoch.
    pub async fn rotate_epoch(
        &self,
        keystore: &mut Keystore,
        stream: &StreamId,
    ) -> Result<EpochIndex, Error> {
        let view = self
            .stream(stream)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no stream {stream:?} on chain")))?;
        let next = view.epoch.checked_add(1).ok_or_else(|| Error::Purchase {
            purchase: 0,
            detail: "epoch counter exhausted".into(),
        })?;
        let keys = EpochKeys::generate()?;
        keystore.set_epoch_keys(stream, next, &keys);
        keystore.save()?;
        let included = self
            .submit(
                fastdata::tx()
                    .offers()
                    .rotate_epoch(*stream, keys.commitment()),
            )
            .await?;
        let epoch = included.event("Offers::EpochRotated", |e| match e {
            RuntimeEvent::Offers(fastdata::offers::Event::EpochRotated { epoch, .. }) => {
                Some(*epoch)
            }
            _ => None,
        })?;
        // Not before its block, which may not be finalized yet.
        let seen = self.finalized_number().await?.max(included.block_number);
        keystore.record_epoch_opened(stream, epoch, seen);
        if let Err(e) = keystore.save() {
            // The key-delivery service then dates the epoch when it first sees it.
            tracing::warn!("opening block of epoch {epoch} not recorded: {e}");
        }
        Ok(epoch)
    }

    /// Closes a stream: its offer is retired; its operators keep serving the buyers until
    /// their access and the operators' claim time are over (released at once if no purchase
    /// needs them).
    pub async fn close_stream(&self, stream: &StreamId) -> Result<Included, Error> {
        self.submit(fastdata::tx().offers().close_stream(*stream))
            .await
    }

    /// Answers the dispute of one of the seller's purchases with the hash of its evidence.
    pub async fn answer_dispute(
        &self,
        purchase: PurchaseId,
        evidence: H256,
    ) -> Result<Included, Error> {
        self.submit(fastdata::tx().escrow().answer_dispute(purchase, evidence))
            .await
    }

    /// Releases the operators of a closed stream that no purchase needs any more (anyone may).
    pub async fn release_stream(&self, stream: &StreamId) -> Result<Included, Error> {
        self.submit(fastdata::tx().offers().release_stream(*stream))
            .await
    }

    /// The offer `id` with its seller's trust score.
    pub async fn offer(&self, id: OfferId) -> Result<Option<Offer>, Error> {
        let api = fastdata::runtime_apis().offers_api().offer(id);
        Ok(self.api(api).await?.unwrap_static())
    }

    /// All offers of `seller`.
    pub async fn offers_by_seller(&self, seller: &AccountId) -> Result<Vec<Offer>, Error> {
        let api = fastdata::runtime_apis()
            .offers_api()
            .offers_by_seller(account32(seller));
        Ok(self.api(api).await?.unwrap_static())
    }

    /// The stream `id` with its operators and current epoch.
    pub async fn stream(&self, id: &StreamId) -> Result<Option<Stream>, Error> {
        let api = fastdata::runtime_apis().offers_api().stream(*id);
        Ok(self.api(api).await?.unwrap_static())
    }

    /// The on-chain commitment of `epoch` of `stream`.
    pub async fn epoch_commitment(
        &self,
        stream: &StreamId,
        epoch: EpochIndex,
    ) -> Result<Option<H256>, Error> {
        let at = self.current_block().await?;
        let address = fastdata::storage().offers().epoch_commitments();
        let value = at
            .storage()
            .try_fetch(address, (*stream, epoch))
            .await
            .map_err(|e| Error::Chain(format!("Offers.EpochCommitments: {e}")))?;
        value
            .map(|v| {
                v.decode().map_err(|e| Error::Decode {
                    what: "epoch commitment",
                    detail: e.to_string(),
                })
            })
            .transpose()
    }

    /// Seals the keys of `epoch` to the buyer of `purchase` and puts them on chain.
    pub async fn deliver_keys(
        &self,
        purchase: &Purchase,
        epoch: EpochIndex,
        keys: &EpochKeys,
    ) -> Result<Included, Error> {
        let sealed = sealed_keys(purchase, epoch, keys)?;
        self.submit(
            fastdata::tx()
                .escrow()
                .deliver_keys(purchase.id, epoch, bounded(sealed)),
        )
        .await
    }

    /// One pass of the key-delivery service: for every stream of the acting seller with keys
    /// in `keystore`, delivers the keys every open purchase is owed ([`epochs_due`]), all in
    /// `Utility::force_batch` transactions of at most
    /// [`MAX_BATCH_CALLS`](crate::chain::MAX_BATCH_CALLS) deliveries, sent at once and
    /// awaited until finalized (the next pass reads finalized state). Each delivery reports
    /// its own result: one that fails (a passed deadline, a bad key) does not stop the others.
    pub async fn deliver_due_keys(&self, keystore: &Keystore) -> Result<Vec<Delivery>, Error> {
        self.deliver_due_keys_seen(keystore, &mut HashMap::new())
            .await
    }

    /// [`FastData::deliver_due_keys`], dating the epochs whose opening block the keystore
    /// does not record by the block at which they were first seen (kept in `seen` across
    /// passes).
    async fn deliver_due_keys_seen(
        &self,
        keystore: &Keystore,
        seen: &mut HashMap<(StreamId, EpochIndex), BlockNumber>,
    ) -> Result<Vec<Delivery>, Error> {
        // Per due delivery: its call's index in `calls`, or why it cannot be sent.
        let mut due: Vec<(PurchaseId, EpochIndex, Result<usize, String>)> = Vec::new();
        let mut calls = Vec::new();
        let me = self.account().account_id();
        let now = self.finalized_number().await?;
        for offer in self.offers_by_seller(&me).await? {
            let Some(stream_id) = offer.stream else {
                continue;
            };
            let mut known = keystore.epochs(&stream_id);
            if known.is_empty() {
                continue;
            }
            let Some(stream) = self.stream(&stream_id).await? else {
                continue;
            };
            for record in &mut known {
                if record.opened_at.is_none() && record.epoch <= stream.epoch {
                    record.opened_at = Some(*seen.entry((stream_id, record.epoch)).or_insert(now));
                }
            }
            // The purchases are read concurrently: one at a time, 1,000 of them took 100 s.
            let ids = self.purchases_of_offer(offer.id).await?;
            let purchases: Vec<(PurchaseId, Option<Purchase>)> =
                futures_util::stream::iter(ids.into_iter().map(|id| async move {
                    self.purchase(id).await.map(|purchase| (id, purchase))
                }))
                .buffered(PURCHASE_READS_IN_FLIGHT)
                .try_collect()
                .await?;
            for (id, purchase) in purchases {
                let Some(purchase) = purchase else {
                    continue;
                };
                if purchase.state == PurchaseState::AwaitingKeys && now > purchase.key_deadline {
                    continue;
                }
                for epoch in epochs_due(&purchase, stream.epoch, &known, now) {
                    let Some(keys) = keystore.epoch_keys(&stream_id, epoch) else {
                        continue;
                    };
                    let call = sealed_keys(&purchase, epoch, &keys).map(|sealed| {
                        calls.push(RuntimeCall::Escrow(fastdata::escrow::Call::deliver_keys {
                            purchase: id,
                            epoch,
                            sealed: bounded(sealed),
                        }));
                        calls.len() - 1
                    });
                    due.push((id, epoch, call.map_err(|e| e.to_string())));
                }
            }
        }
        let mut results: Vec<Option<Result<Included, Error>>> = self
            .submit_batch(&calls, Wait::Finalized)
            .await
            .into_iter()
            .map(Some)
            .collect();
        Ok(due
            .into_iter()
            .map(|(purchase, epoch, call)| {
                let result = call.and_then(|i| {
                    results
                        .get_mut(i)
                        .and_then(Option::take)
                        .unwrap_or_else(|| Err(Error::Chain("no outcome".into())))
                        .map_err(|e| e.to_string())
                });
                Delivery {
                    purchase,
                    epoch,
                    transaction: result.as_ref().ok().map(|included| included.extrinsic_hash),
                    result: result.map(drop),
                }
            })
            .collect())
    }

    /// The key-delivery service: runs [`FastData::deliver_due_keys`] at every new finalized
    /// block until `stop` resolves, reporting each delivery to `report`. The keystore is
    /// re-read before each pass, so epochs rotated by another process are delivered too.
    pub async fn run_key_delivery(
        &self,
        keystore: &mut Keystore,
        mut report: impl FnMut(&Delivery),
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), Error> {
        tokio::pin!(stop);
        let mut last = None;
        let mut seen = HashMap::new();
        loop {
            let now = self.finalized_number().await?;
            if last != Some(now) {
                last = Some(now);
                if let Err(e) = keystore.reload() {
                    tracing::warn!("keystore not re-read, using the keys loaded before: {e}");
                }
                match self.deliver_due_keys_seen(keystore, &mut seen).await {
                    Ok(done) => done.iter().for_each(&mut report),
                    Err(e) => tracing::warn!("key delivery pass failed, retrying: {e}"),
                }
            }
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastdata_primitives::escrow::{AccessPeriod, PurchaseLedger};

    /// A purchase with access `1..100`.
    fn purchase(
        terms: PurchaseTerms<BlockNumber>,
        first: Option<EpochIndex>,
        delivered: Vec<EpochIndex>,
        state: PurchaseState,
    ) -> Purchase {
        Purchase {
            id: 1,
            buyer: AccountId::new([1; 32]),
            seller: AccountId::new([2; 32]),
            offer: 0,
            stream: H256::repeat_byte(3),
            terms,
            buyer_key: [9; 32],
            price: 10,
            state,
            access: AccessPeriod {
                start: 1,
                end: 100,
                first_epoch: first,
                epochs: delivered,
            },
            key_deadline: 10,
            settled_periods: 0,
            next_settlement: None,
            delivered_up_to: None,
            start_head: None,
            period_heads: vec![],
            ledger: PurchaseLedger::default(),
            accrued: 0,
            operators: vec![],
            dispute: None,
            closed_at: None,
        }
    }

    /// Epochs `0..` with the given first sequences and opening blocks.
    fn records(epochs: &[(Option<Sequence>, Option<BlockNumber>)]) -> Vec<EpochRecord> {
        epochs
            .iter()
            .enumerate()
            .map(|(epoch, (first_sequence, opened_at))| EpochRecord {
                epoch: epoch as EpochIndex,
                first_sequence: *first_sequence,
                opened_at: *opened_at,
            })
            .collect()
    }

    const LIVE: PurchaseTerms<BlockNumber> = PurchaseTerms::Stream {
        period: 10,
        periods: 2,
    };

    fn batch(first: Sequence, last: Sequence) -> PurchaseTerms<BlockNumber> {
        PurchaseTerms::Batch { first, last }
    }

    #[test]
    fn stream_purchases_get_epochs_from_their_first_until_access_ends() {
        // Epochs 3 and 4 opened at blocks 50 and 120; access ends at block 100.
        let known = records(&[
            (Some(0), None),
            (Some(10), Some(20)),
            (Some(20), Some(30)),
            (Some(30), Some(50)),
            (Some(40), Some(120)),
        ]);
        let p = purchase(LIVE, Some(2), vec![], PurchaseState::AwaitingKeys);
        assert_eq!(epochs_due(&p, 3, &known, 60), vec![2, 3]);
        // The epoch opened after the access ended is never due, even when it is current.
        assert_eq!(epochs_due(&p, 4, &known, 130), vec![2, 3]);
        let p = purchase(LIVE, Some(2), vec![2], PurchaseState::Active);
        assert_eq!(epochs_due(&p, 4, &known, 130), vec![3]);
        let p = purchase(LIVE, Some(2), vec![2, 3], PurchaseState::Active);
        assert!(epochs_due(&p, 4, &known, 130).is_empty());
        // Opened exactly at the end of access: not due.
        let at_end = records(&[(Some(0), None), (Some(5), Some(100))]);
        let p = purchase(LIVE, Some(0), vec![0], PurchaseState::Active);
        assert!(epochs_due(&p, 1, &at_end, 100).is_empty());
        // Closed purchases get nothing.
        let p = purchase(LIVE, Some(2), vec![2], PurchaseState::Settled);
        assert!(epochs_due(&p, 3, &known, 60).is_empty());
    }

    #[test]
    fn stream_epochs_without_an_opening_block_are_dated_now() {
        let known = records(&[(None, None), (None, None)]);
        let p = purchase(LIVE, Some(0), vec![0], PurchaseState::Active);
        // Seen while the access lasts: due.
        assert_eq!(epochs_due(&p, 1, &known, 99), vec![1]);
        // First seen after the access ended: not due.
        assert!(epochs_due(&p, 1, &known, 100).is_empty());
        // The purchase's first epoch is due whenever it is seen.
        let p = purchase(LIVE, Some(1), vec![], PurchaseState::AwaitingKeys);
        assert_eq!(epochs_due(&p, 1, &known, 500), vec![1]);
    }

    #[test]
    fn batch_purchases_get_only_the_epochs_covering_their_window() {
        // Epoch 0: 0..=99, 1: 100..=199, 2: 200..=299, 3: 300.. (current).
        let known = records(&[
            (Some(0), None),
            (Some(100), Some(20)),
            (Some(200), Some(30)),
            (Some(300), Some(40)),
        ]);
        let due = |first, last, delivered: Vec<EpochIndex>| {
            let p = purchase(batch(first, last), None, delivered, PurchaseState::Active);
            epochs_due(&p, 3, &known, 60)
        };
        assert_eq!(due(0, 99, vec![]), vec![0]);
        assert_eq!(due(100, 199, vec![]), vec![1]);
        assert_eq!(due(150, 250, vec![]), vec![1, 2]);
        assert_eq!(due(99, 100, vec![]), vec![0, 1]);
        assert_eq!(due(250, 1_000, vec![]), vec![2, 3]);
        assert_eq!(due(0, u64::MAX, vec![1]), vec![0, 2, 3]);
        // Not the current epoch's keys for a window of older data, whatever its opening.
        assert_eq!(due(0, 50, vec![0]), Vec::<EpochIndex>::new());
        // Epochs after the current one are never due.
        let p = purchase(batch(0, u64::MAX), None, vec![], PurchaseState::Active);
        assert_eq!(epochs_due(&p, 1, &known, 60), vec![0, 1]);
        // A batch is not bound by opening blocks: its window is recorded data.
        let p = purchase(batch(300, 310), None, vec![], PurchaseState::AwaitingKeys);
        assert_eq!(epochs_due(&p, 3, &known, 500), vec![3]);
        let p = purchase(batch(0, 9), None, vec![], PurchaseState::Refunded);
        assert!(epochs_due(&p, 3, &known, 60).is_empty());
    }

    #[test]
    fn batch_ranges_with_unrecorded_starts() {
        // Epoch 1 was published without a record.
        let known = records(&[(Some(0), None), (None, None), (Some(200), None)]);
        let due = |first, last, current| {
            let p = purchase(batch(first, last), None, vec![], PurchaseState::Active);
            epochs_due(&p, current, &known, 60)
        };
        // Epoch 1 may hold anything between the neighbouring records.
        assert_eq!(due(0, 10, 2), vec![0, 1]);
        assert_eq!(due(150, 160, 2), vec![0, 1]);
        assert_eq!(due(200, 210, 2), vec![2]);
        let mut later = known.clone();
        later.push(EpochRecord {
            epoch: 3,
            first_sequence: None,
            opened_at: None,
        });
        let p = purchase(batch(250, 260), None, vec![], PurchaseState::Active);
        // Epoch 3 holds nothing yet.
        assert_eq!(epochs_due(&p, 3, &later, 60), vec![2]);
        // An epoch rotated over before anything was published under it covers nothing.
        let empty = records(&[(Some(0), None), (Some(50), None), (Some(50), None)]);
        let p = purchase(batch(0, 100), None, vec![], PurchaseState::Active);
        assert_eq!(epochs_due(&p, 2, &empty, 60), vec![0, 2]);
        // A keystore that records no start (older files) gives every epoch up to the current.
        let legacy = records(&[(None, None), (None, None), (None, None)]);
        let p = purchase(batch(5, 6), None, vec![1], PurchaseState::Active);
        assert_eq!(epochs_due(&p, 2, &legacy, 60), vec![0, 2]);
    }
}
