//! Buying an offer, and removing a closed purchase after its retention period.

use crate::*;
use fastdata_primitives::{
    escrow::{PurchaseLedger, PurchaseState, PurchaseTerms},
    IdentityProvider, OfferId, OfferProvider, OperatorProvider, PaymentMode, PurchaseId,
    TrustProvider,
};
use frame_support::{ensure, traits::Get, BoundedVec};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::{
    traits::{CheckedAdd, CheckedMul, One, Saturating, Zero},
    DispatchError, DispatchResult,
};

impl<T: Config> Pallet<T> {
    /// Checks the offer's rules, holds price and deposit from `buyer`, stores and schedules
    /// the purchase. Returns its id.
    pub(crate) fn do_purchase(
        buyer: T::AccountId,
        offer_id: OfferId,
        periods: u32,
        max_price: BalanceOf<T>,
    ) -> Result<PurchaseId, DispatchError> {
        let offer = T::Offers::offer(offer_id).ok_or(Error::<T>::UnknownOffer)?;
        ensure!(offer.active, Error::<T>::OfferInactive);
        ensure!(offer.seller != buyer, Error::<T>::OwnOffer);
        // Verification is checked again at every sale: a seller whose credentials expired or
        // were revoked since listing sells nothing more.
        ensure!(
            T::Identity::is_verified(&offer.seller),
            Error::<T>::SellerNotVerified
        );
        let stream_id = offer.stream.ok_or(Error::<T>::StreamNotRegistered)?;
        let stream = T::Offers::stream(&stream_id).ok_or(Error::<T>::StreamNotRegistered)?;
        ensure!(stream.open, Error::<T>::StreamClosed);
        ensure!(!stream.operators.is_empty(), Error::<T>::StreamNotHosted);

        let verified = T::Identity::is_verified(&buyer);
        ensure!(
            verified || !offer.verified_only,
            Error::<T>::BuyerNotVerified
        );
        if offer.min_trust_score > 0 {
            ensure!(
                T::Trust::trust_score(&buyer) >= offer.min_trust_score,
                Error::<T>::TrustScoreTooLow
            );
        }
        let buyer_key =
            T::Identity::key_agreement_key(&buyer).ok_or(Error::<T>::NoKeyAgreementKey)?;

        let now = frame_system::Pallet::<T>::block_number();
        let (terms, end, first_epoch) = match offer.mode {
            PaymentMode::Batch { first, last } => {
                ensure!(periods == 1, Error::<T>::InvalidPeriods);
                ensure!(first <= last, Error::<T>::InvalidOffer);
                let end = now
                    .checked_add(&T::BatchAccessPeriod::get())
                    .ok_or(Error::<T>::DeadlineOverflow)?;
                (PurchaseTerms::Batch { first, last }, end, None)
            }
            PaymentMode::Stream { period } => {
                ensure!(
                    periods >= 1 && periods <= T::MaxPeriods::get(),
                    Error::<T>::InvalidPeriods
                );
                ensure!(!period.is_zero(), Error::<T>::InvalidOffer);
                // The boundaries that come before a period's settlement must fit in the
                // purchase's list of heads.
                let room = BlockNumberFor::<T>::from(MAX_PENDING_BOUNDARIES.saturating_sub(2));
                ensure!(
                    T::ClaimGracePeriod::get() <= period.saturating_mul(room),
                    Error::<T>::PeriodTooShort
                );
                let length = period
                    .checked_mul(&periods.into())
                    .ok_or(Error::<T>::DeadlineOverflow)?;
                let end = now
                    .checked_add(&length)
                    .ok_or(Error::<T>::DeadlineOverflow)?;
                (
                    PurchaseTerms::Stream { period, periods },
                    end,
                    Some(stream.epoch),
                )
            }
        };
        let key_deadline = now
            .checked_add(&T::KeyDeliveryPeriod::get())
            .ok_or(Error::<T>::DeadlineOverflow)?;
        // Every later deadline (last settlement, end of retention, the agenda block after the
        // key deadline) must be representable too.
        end.checked_add(&T::ClaimGracePeriod::get())
            .and_then(|b| b.checked_add(&T::RetentionPeriod::get()))
            .and_then(|b| b.checked_add(&One::one()))
            .ok_or(Error::<T>::DeadlineOverflow)?;
        key_deadline
            .checked_add(&One::one())
            .ok_or(Error::<T>::DeadlineOverflow)?;

        let list_price = offer
            .price
            .checked_mul(&periods.into())
            .ok_or(Error::<T>::PriceOverflow)?;
        let price = if verified {
            list_price.saturating_sub(offer.verified_discount.mul_floor(list_price))
        } else {
            list_price
        };
        ensure!(price <= max_price, Error::<T>::PriceAboveMaximum);

        let id = NextPurchaseId::<T>::get();
        let next_id = id.checked_add(1).ok_or(Error::<T>::NoMoreIds)?;

        let (start_head, heads) = match terms {
            PurchaseTerms::Stream { .. } => {
                let head = T::Operators::stream_head(&stream_id);
                (Some(head), BoundedVec::truncate_from(alloc::vec![head]))
            }
            PurchaseTerms::Batch { .. } => (None, BoundedVec::new()),
        };
        let operator_prices = BoundedVec::truncate_from(
            stream
                .operators
                .iter()
                .filter_map(|op| T::Operators::price_per_mb(op).map(|price| (op.clone(), price)))
                .take(MAX_PRICED_OPERATORS as usize)
                .collect::<alloc::vec::Vec<_>>(),
        );

        let deposit = T::PurchaseDeposit::get();
        Self::hold(HoldReason::PurchasePrice, &buyer, price)?;
        Self::hold(HoldReason::PurchaseDeposit, &buyer, deposit)?;

        let mut purchase = Purchase {
            buyer: buyer.clone(),
            seller: offer.seller.clone(),
            offer: offer_id,
            stream: stream_id,
            terms,
            buyer_key,
            price,
            deposit,
            start: now,
            end,
            key_deadline,
            first_epoch,
            state: PurchaseState::AwaitingKeys,
            epochs_delivered: 0,
            key_deposits: Zero::zero(),
            settled_periods: 0,
            delivered_up_to: None,
            start_head,
            heads,
            operator_prices,
            operators: 0,
            accrued: Zero::zero(),
            ledger: PurchaseLedger {
                held: price,
                ..Default::default()
            },
            dispute: None,
            disputed: false,
            closed_at: None,
            scheduled_at: None,
        };
        Self::ensure_scheduled(id, &mut purchase, now);

        NextPurchaseId::<T>::put(next_id);
        PurchasesByBuyer::<T>::insert(&buyer, id, ());
        PurchasesByOffer::<T>::insert(offer_id, id, ());
        // Checked above: `end + ClaimGracePeriod` does not overflow.
        Self::keep_hosted_until(offer_id, end);
        Purchases::<T>::insert(id, purchase);

        Self::deposit_event(Event::Purchased {
            purchase: id,
            offer: offer_id,
            buyer,
            seller: offer.seller,
            price,
            deposit,
            periods,
            access_end: end,
            key_deadline,
        });
        Ok(id)
    }

    /// Removes a closed purchase whose retention period is over (extrinsic entry point).
    pub(crate) fn do_reap(id: PurchaseId) -> DispatchResult {
        let purchase = Purchases::<T>::get(id).ok_or(Error::<T>::UnknownPurchase)?;
        ensure!(!purchase.state.is_open(), Error::<T>::PurchaseOpen);
        let now = frame_system::Pallet::<T>::block_number();
        ensure!(
            now >= Self::reap_due(&purchase),
            Error::<T>::RetentionNotOver
        );
        Self::reap_purchase(id, &purchase)
    }

    /// First block at which a closed purchase may be reaped.
    pub(crate) fn reap_due(purchase: &PurchaseOf<T>) -> BlockNumberFor<T> {
        purchase
            .closed_at
            .unwrap_or(purchase.end)
            .saturating_add(T::RetentionPeriod::get())
    }

    /// Removes `purchase` with its sealed keys, claims and index entries, and returns the
    /// buyer's purchase deposit and the seller's key deposits.
    pub(crate) fn reap_purchase(id: PurchaseId, purchase: &PurchaseOf<T>) -> DispatchResult {
        if let Some(at) = purchase.scheduled_at {
            Agenda::<T>::remove(at, id);
        }
        Self::release(
            HoldReason::PurchaseDeposit,
            &purchase.buyer,
            purchase.deposit,
        )?;
        Self::release(
            HoldReason::KeyDeposit,
            &purchase.seller,
            purchase.key_deposits,
        )?;
        let _ = SealedKeys::<T>::clear_prefix(id, T::MaxEpochsPerPurchase::get(), None);
        let _ = OperatorClaims::<T>::clear_prefix(id, T::MaxOperatorsPerPurchase::get(), None);
        PurchasesByBuyer::<T>::remove(&purchase.buyer, id);
        PurchasesByOffer::<T>::remove(purchase.offer, id);
        Purchases::<T>::remove(id);
        Self::deposit_event(Event::PurchaseReaped {
            purchase: id,
            buyer_deposit: purchase.deposit,
            key_deposits: purchase.key_deposits,
        });
        Ok(())
    }
}
