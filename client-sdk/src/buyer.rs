//! Buyer: listings with trust scores, purchases, sealed keys, ratings and disputes
//! (`pallet-offers`, `pallet-escrow`, `pallet-trust`).

use std::collections::BTreeMap;

use fastdata_primitives::{
    api_market::OfferPage,
    envelope::EpochKeys,
    escrow::{DisputeReason, PurchaseState, PurchaseView},
    sealed, AccountId, Balance, BlockNumber, EpochIndex, OfferId, PurchaseId, Sequence,
};
use sp_core::H256;
use sp_runtime::Perbill;

use crate::{
    chain::{account32, fastdata, FastData, Included, RuntimeCall, RuntimeEvent, Unwrap},
    error::Error,
    keystore::Keystore,
    operator::OperatorEndpoint,
    receive::{Receiver, Verifier},
};

/// A purchase with its access period, delivered epochs, state and ledger.
pub type Purchase = PurchaseView<AccountId, Balance, BlockNumber>;
/// A page of offers.
pub type Offers = OfferPage<AccountId, Balance, BlockNumber>;

impl FastData {
    /// At most `limit` offers with id `>= start`, each with the seller's trust score.
    pub async fn offers(&self, start: OfferId, limit: u32) -> Result<Offers, Error> {
        let api = fastdata::runtime_apis().offers_api().offers(start, limit);
        Ok(self.api(api).await?.unwrap_static())
    }

    /// Every offer on chain (follows the pages).
    pub async fn all_offers(&self) -> Result<Vec<crate::seller::Offer>, Error> {
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let page = self.offers(start, 100).await?;
            out.extend(page.offers);
            match page.next {
                Some(next) if next > start => start = next,
                _ => return Ok(out),
            }
        }
    }

    /// Buys `offer` (`periods = 1` for a batch) for at most `max_price`. Returns the purchase.
    pub async fn buy(
        &self,
        offer: OfferId,
        periods: u32,
        max_price: Balance,
    ) -> Result<PurchaseId, Error> {
        let included = self
            .submit(fastdata::tx().escrow().purchase(offer, periods, max_price))
            .await?;
        included.event("Escrow::Purchased", |e| match e {
            RuntimeEvent::Escrow(fastdata::escrow::Event::Purchased { purchase, .. }) => {
                Some(*purchase)
            }
            _ => None,
        })
    }

    /// The purchase `id`.
    pub async fn purchase(&self, id: PurchaseId) -> Result<Option<Purchase>, Error> {
        let api = fastdata::runtime_apis().escrow_api().purchase(id);
        Ok(self.api(api).await?.unwrap_static())
    }

    /// Ids of the purchases of `buyer`.
    pub async fn purchases_of_buyer(&self, buyer: &AccountId) -> Result<Vec<PurchaseId>, Error> {
        let api = fastdata::runtime_apis()
            .escrow_api()
            .purchases_of_buyer(account32(buyer));
        self.api(api).await
    }

    /// Ids of the purchases of `offer`.
    pub async fn purchases_of_offer(&self, offer: OfferId) -> Result<Vec<PurchaseId>, Error> {
        self.api(
            fastdata::runtime_apis()
                .escrow_api()
                .purchases_of_offer(offer),
        )
        .await
    }

    /// The sealed keys of `epoch` for purchase `id`, as stored on chain.
    pub async fn sealed_key(
        &self,
        id: PurchaseId,
        epoch: EpochIndex,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.api(fastdata::runtime_apis().escrow_api().sealed_key(id, epoch))
            .await
    }

    /// Waits until the first keys of purchase `id` are on chain (the purchase is active) and
    /// returns it; fails if it was refunded instead or `timeout` passes. The purchase may not
    /// be in a finalized block yet when this starts.
    pub async fn wait_for_keys(
        &self,
        id: PurchaseId,
        timeout: std::time::Duration,
    ) -> Result<Purchase, Error> {
        self.wait_for(
            &format!("keys of purchase {id}; the seller's key-delivery service may be offline (it is refunded after the key deadline)"),
            timeout,
            || async move {
                let Some(purchase) = self.purchase(id).await? else {
                    return Ok(None);
                };
                match purchase.state {
                    PurchaseState::AwaitingKeys => Ok(None),
                    PurchaseState::Refunded => Err(Error::Purchase {
                        purchase: id,
                        detail: "refunded: the seller missed the key deadline".into(),
                    }),
                    _ if purchase.access.epochs.is_empty() => Ok(None),
                    _ => Ok(Some(purchase)),
                }
            },
        )
        .await
    }

    /// Opens the sealed keys of `epoch` of purchase `purchase` with the buyer's X25519 secret
    /// from `keystore` and checks them against the stream's on-chain commitment.
    pub async fn open_keys(
        &self,
        keystore: &Keystore,
        purchase: &Purchase,
        epoch: EpochIndex,
    ) -> Result<EpochKeys, Error> {
        let bytes = self.sealed_key(purchase.id, epoch).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "no keys of epoch {epoch} for purchase {} on chain yet",
                purchase.id
            ))
        })?;
        let secret = keystore
            .x25519_secret_for(&purchase.buyer, &purchase.buyer_key)
            .ok_or_else(|| Error::Keystore {
                path: keystore.path().display().to_string(),
                detail: format!(
                    "no X25519 secret for the key the purchase was sealed to ({}); use the keystore that created the DID",
                    hex::encode(purchase.buyer_key)
                ),
            })?;
        let keys =
            sealed::open(&secret, purchase.id, epoch, &bytes).map_err(|error| Error::Sealed {
                purchase: purchase.id,
                epoch,
                error,
            })?;
        let commitment = self.epoch_commitment(&purchase.stream, epoch).await?;
        check_commitment(purchase.id, epoch, &keys, commitment)?;
        Ok(keys)
    }

    /// Opens and checks every delivered epoch of `purchase`.
    pub async fn purchase_keys(
        &self,
        keystore: &Keystore,
        purchase: &Purchase,
    ) -> Result<BTreeMap<EpochIndex, EpochKeys>, Error> {
        let mut keys = BTreeMap::new();
        for epoch in &purchase.access.epochs {
            keys.insert(*epoch, self.open_keys(keystore, purchase, *epoch).await?);
        }
        Ok(keys)
    }

    /// A [`Receiver`] for `purchase`, trying `operators` in order (usually
    /// [`Self::stream_endpoints`]), with every delivered epoch's keys opened and checked
    /// against the commitments, and access requests valid for `valid_for` blocks from now.
    /// `first`: see [`Receiver::new`]. For an active purchase the receiver waits up to
    /// [`OPERATOR_LAG_PATIENCE`](crate::receive::OPERATOR_LAG_PATIENCE) for operators that
    /// have not yet seen it.
    pub async fn receiver(
        &self,
        keystore: &Keystore,
        purchase: &Purchase,
        operators: Vec<OperatorEndpoint>,
        first: Option<Sequence>,
        valid_for: BlockNumber,
    ) -> Result<Receiver, Error> {
        let keys = self.purchase_keys(keystore, purchase).await?;
        let expiry = self.finalized_number().await?.saturating_add(valid_for);
        let receiver = Receiver::new(
            self.account().clone(),
            self.genesis(),
            purchase.id,
            Verifier::new(purchase.stream, keys),
            operators,
            expiry,
            first,
        );
        Ok(if purchase.state == PurchaseState::Active {
            receiver.with_patience(crate::receive::OPERATOR_LAG_PATIENCE)
        } else {
            receiver
        })
    }

    /// Rates the other side of a settled purchase (`score` 0..=100).
    pub async fn rate(
        &self,
        purchase: PurchaseId,
        score: u8,
        comment: Option<H256>,
    ) -> Result<Included, Error> {
        self.submit(fastdata::tx().trust().rate(purchase, score, comment))
            .await
    }

    /// Disputes a purchase (the dispute deposit is held).
    pub async fn dispute(
        &self,
        purchase: PurchaseId,
        reason: DisputeReason,
        evidence: Option<H256>,
    ) -> Result<Included, Error> {
        self.submit(fastdata::tx().escrow().dispute(
            purchase,
            subxt::utils::Static(reason),
            evidence,
        ))
        .await
    }

    /// Resolves a dispute through `Sudo::sudo` (dev chains: the acting account must be the sudo
    /// key, production chains decide by governance): operators keep their accrued pay and
    /// `refund_ratio` of the rest goes back to the buyer; 0 rejects the dispute.
    pub async fn sudo_resolve_dispute(
        &self,
        purchase: PurchaseId,
        refund_ratio: Perbill,
    ) -> Result<Included, Error> {
        let call = RuntimeCall::Escrow(fastdata::escrow::Call::resolve_dispute {
            purchase,
            refund_ratio: fastdata::runtime_types::sp_arithmetic::per_things::Perbill(
                refund_ratio.deconstruct(),
            ),
        });
        self.submit(fastdata::tx().sudo().sudo(call)).await
    }

    /// Settles the next due period of a purchase (anyone; free when it succeeds).
    pub async fn settle(&self, purchase: PurchaseId) -> Result<Included, Error> {
        self.submit(fastdata::tx().escrow().settle(purchase)).await
    }

    /// Refunds a purchase whose first keys missed the deadline (anyone).
    pub async fn refund_missing_keys(&self, purchase: PurchaseId) -> Result<Included, Error> {
        self.submit(fastdata::tx().escrow().refund_missing_keys(purchase))
            .await
    }
}

/// Checks opened keys against the epoch's on-chain commitment.
pub fn check_commitment(
    purchase: PurchaseId,
    epoch: EpochIndex,
    keys: &EpochKeys,
    commitment: Option<H256>,
) -> Result<(), Error> {
    match commitment {
        Some(c) if c == keys.commitment() => Ok(()),
        Some(_) => Err(Error::CommitmentMismatch { purchase, epoch }),
        None => Err(Error::NotFound(format!(
            "no commitment of epoch {epoch} on chain (pruned?); cannot check the keys of purchase {purchase}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commitment_check() {
        let keys = EpochKeys::new([1; 32], [2; 32]);
        assert!(check_commitment(1, 0, &keys, Some(keys.commitment())).is_ok());
        let err = check_commitment(1, 0, &keys, Some(H256::zero())).unwrap_err();
        assert!(matches!(err, Error::CommitmentMismatch { .. }));
        assert!(err.to_string().contains("dispute"));
        assert!(check_commitment(1, 0, &keys, None).is_err());
    }
}
