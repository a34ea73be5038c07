//! Seller: offers, streams, key epochs, and delivery of sealed keys to buyers
//! (`pallet-offers`, `pallet-escrow`).
//!
//! The data keys of every epoch are generated here and kept in the [`Keystore`]; only their
//! commitment `H(k_e ‖ k_m)` goes on chain. For every paid purchase the key-delivery service
//! seals each due epoch's keys to the buyer's X25519 key (HPKE) and submits them with
//! `Escrow::deliver_keys`.

use fastdata_primitives::{
    api_market::{stream_id, OfferListing, OfferTerms, StreamView},
    envelope::EpochKeys,
    escrow::{PurchaseState, PurchaseTerms},
    sealed, AccountId, Balance, BlockNumber, EpochIndex, OfferId, PaymentMode, PurchaseId,
    StreamId,
};
use sp_core::H256;

use crate::{
    buyer::Purchase,
    chain::{arg, double_map_key, FastData, Included},
    error::Error,
    keystore::Keystore,
};

/// An offer listing with the seller's trust score.
pub type Offer = OfferListing<AccountId, Balance, BlockNumber>;
/// A stream with its operators and epoch.
pub type Stream = StreamView<AccountId, BlockNumber>;

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
}

/// The epochs a seller still owes a purchase: for a live purchase every epoch from the one
/// current at purchase time up to the stream's current epoch, for a batch every epoch the
/// seller holds keys for (up to the current one); minus those already delivered.
pub fn epochs_due(
    purchase: &Purchase,
    current_epoch: EpochIndex,
    known: &[EpochIndex],
) -> Vec<EpochIndex> {
    if !matches!(
        purchase.state,
        PurchaseState::AwaitingKeys | PurchaseState::Active
    ) {
        return Vec::new();
    }
    let first = match purchase.terms {
        PurchaseTerms::Stream { .. } => purchase.access.first_epoch.unwrap_or(current_epoch),
        PurchaseTerms::Batch { .. } => 0,
    };
    known
        .iter()
        .copied()
        .filter(|e| *e >= first && *e <= current_epoch)
        .filter(|e| !purchase.access.epochs.contains(e))
        .collect()
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
            .submit(
                "Offers",
                "create_offer",
                (
                    arg(topic.as_bytes().to_vec()),
                    arg(mode),
                    arg(price),
                    arg(terms),
                ),
            )
            .await?;
        included.decode_event("Offers", "OfferCreated")
    }

    /// Retires an offer (no new purchases).
    pub async fn retire_offer(&self, offer: OfferId) -> Result<Included, Error> {
        self.submit("Offers", "retire_offer", (arg(offer),)).await
    }

    /// Registers the stream of `offer` named `name` with fresh epoch-0 keys (kept in
    /// `keystore`, saved before the transaction is sent); operators are assigned by the chain.
    pub async fn register_stream(
        &self,
        keystore: &mut Keystore,
        offer: OfferId,
        name: &str,
    ) -> Result<RegisteredStream, Error> {
        let timestamp = crate::now_millis();
        let stream = stream_id(&self.account().account_id(), name.as_bytes(), timestamp);
        let keys = EpochKeys::generate()?;
        let commitment = keys.commitment();
        keystore.set_epoch_keys(&stream, 0, &keys);
        keystore.save()?;
        let included = self
            .submit(
                "Offers",
                "register_stream",
                (
                    arg(offer),
                    arg(name.as_bytes().to_vec()),
                    arg(timestamp),
                    arg(commitment),
                ),
            )
            .await?;
        let (registered, _offer, _seller, operators): (
            StreamId,
            OfferId,
            AccountId,
            Vec<AccountId>,
        ) = included.decode_event("Offers", "StreamRegistered")?;
        if registered != stream {
            return Err(Error::Decode {
                what: "StreamRegistered",
                detail: format!("chain registered {registered:?}, expected {stream:?}"),
            });
        }
        Ok(RegisteredStream {
            stream,
            operators,
            commitment,
        })
    }

    /// Opens the next key epoch of `stream` with fresh keys (kept in `keystore`). Returns the
    /// new epoch.
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
                "Offers",
                "rotate_epoch",
                (arg(*stream), arg(keys.commitment())),
            )
            .await?;
        let (_stream, epoch): (StreamId, EpochIndex) =
            included.decode_event("Offers", "EpochRotated")?;
        Ok(epoch)
    }

    /// Closes a stream (operators released, offer retired).
    pub async fn close_stream(&self, stream: &StreamId) -> Result<Included, Error> {
        self.submit("Offers", "close_stream", (arg(*stream),)).await
    }

    /// The offer `id` with its seller's trust score.
    pub async fn offer(&self, id: OfferId) -> Result<Option<Offer>, Error> {
        self.runtime_api("OffersApi_offer", id).await
    }

    /// All offers of `seller`.
    pub async fn offers_by_seller(&self, seller: &AccountId) -> Result<Vec<Offer>, Error> {
        self.runtime_api("OffersApi_offers_by_seller", seller).await
    }

    /// The stream `id` with its operators and current epoch.
    pub async fn stream(&self, id: &StreamId) -> Result<Option<Stream>, Error> {
        self.runtime_api("OffersApi_stream", id).await
    }

    /// The on-chain commitment of `epoch` of `stream`.
    pub async fn epoch_commitment(
        &self,
        stream: &StreamId,
        epoch: EpochIndex,
    ) -> Result<Option<H256>, Error> {
        let key = double_map_key(
            "Offers",
            "EpochCommitments",
            stream.as_bytes(),
            &epoch.to_le_bytes(),
        );
        match self.storage_raw(key).await? {
            None => Ok(None),
            Some(bytes) => codec::DecodeAll::decode_all(&mut &bytes[..])
                .map(Some)
                .map_err(|e| Error::Decode {
                    what: "epoch commitment",
                    detail: e.to_string(),
                }),
        }
    }

    /// Seals the keys of `epoch` to the buyer of `purchase` and puts them on chain.
    pub async fn deliver_keys(
        &self,
        purchase: &Purchase,
        epoch: EpochIndex,
        keys: &EpochKeys,
    ) -> Result<Included, Error> {
        let sealed = sealed::seal(&purchase.buyer_key, purchase.id, epoch, keys).map_err(|e| {
            Error::Purchase {
                purchase: purchase.id,
                detail: format!("cannot seal keys to the buyer's key: {e}"),
            }
        })?;
        self.submit(
            "Escrow",
            "deliver_keys",
            (arg(purchase.id), arg(epoch), arg(sealed)),
        )
        .await
    }

    /// One pass of the key-delivery service: for every stream of the acting seller with keys
    /// in `keystore`, delivers the keys every open purchase is owed. Errors of single
    /// deliveries are reported in the result and do not stop the pass.
    pub async fn deliver_due_keys(&self, keystore: &Keystore) -> Result<Vec<Delivery>, Error> {
        let mut deliveries = Vec::new();
        let me = self.account().account_id();
        for offer in self.offers_by_seller(&me).await? {
            let Some(stream_id) = offer.stream else {
                continue;
            };
            let Some(secrets) = keystore.stream(&stream_id) else {
                continue;
            };
            let known: Vec<EpochIndex> = secrets.epochs.keys().copied().collect();
            let Some(stream) = self.stream(&stream_id).await? else {
                continue;
            };
            for id in self.purchases_of_offer(offer.id).await? {
                let Some(purchase) = self.purchase(id).await? else {
                    continue;
                };
                if purchase.state == PurchaseState::AwaitingKeys
                    && self.finalized_number().await? > purchase.key_deadline
                {
                    continue;
                }
                for epoch in epochs_due(&purchase, stream.epoch, &known) {
                    let Some(keys) = keystore.epoch_keys(&stream_id, epoch) else {
                        continue;
                    };
                    let result = self
                        .deliver_keys(&purchase, epoch, &keys)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string());
                    deliveries.push(Delivery {
                        purchase: id,
                        epoch,
                        result,
                    });
                }
            }
        }
        Ok(deliveries)
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
        loop {
            let now = self.finalized_number().await?;
            if last != Some(now) {
                last = Some(now);
                if let Err(e) = keystore.reload() {
                    tracing::warn!("keystore not re-read, using the keys loaded before: {e}");
                }
                match self.deliver_due_keys(keystore).await {
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
            ledger: PurchaseLedger::default(),
            accrued: 0,
            operators: vec![],
            dispute: None,
            closed_at: None,
        }
    }

    #[test]
    fn live_purchases_get_epochs_from_their_first() {
        let live = PurchaseTerms::Stream {
            period: 10,
            periods: 2,
        };
        let p = purchase(live, Some(2), vec![], PurchaseState::AwaitingKeys);
        assert_eq!(epochs_due(&p, 3, &[0, 1, 2, 3, 4]), vec![2, 3]);
        let p = purchase(live, Some(2), vec![2], PurchaseState::Active);
        assert_eq!(epochs_due(&p, 3, &[0, 1, 2, 3]), vec![3]);
        let p = purchase(live, Some(2), vec![2], PurchaseState::Settled);
        assert!(epochs_due(&p, 3, &[0, 1, 2, 3]).is_empty());
    }

    #[test]
    fn batch_purchases_get_every_known_epoch() {
        let batch = PurchaseTerms::Batch { first: 0, last: 9 };
        let p = purchase(batch, None, vec![1], PurchaseState::Active);
        assert_eq!(epochs_due(&p, 2, &[0, 1, 2]), vec![0, 2]);
        let p = purchase(batch, None, vec![], PurchaseState::Refunded);
        assert!(epochs_due(&p, 2, &[0]).is_empty());
    }
}
