//! Creating, updating, retiring and removing offers.

use crate::*;
use fastdata_primitives::{
    IdentityProvider, OfferId, OfferPurchases, OperatorProvider, PaymentMode,
};
use frame_support::{
    pallet_prelude::*,
    traits::{fungible::MutateHold, tokens::Precision},
};
use sp_runtime::traits::{Saturating, Zero};

impl<T: Config> Pallet<T> {
    /// Lists a new offer of `seller`.
    pub(crate) fn do_create_offer(
        seller: T::AccountId,
        topic: TopicOf<T>,
        mode: PaymentModeOf<T>,
        price: BalanceOf<T>,
        terms: OfferTermsOf<T>,
    ) -> DispatchResult {
        ensure!(
            T::Identity::is_verified(&seller),
            Error::<T>::SellerNotVerified
        );
        ensure!(is_valid_label(&topic, true), Error::<T>::InvalidTopic);
        Self::ensure_valid_mode(&mode)?;
        Self::ensure_valid_terms(&terms)?;

        let id = NextOfferId::<T>::get();
        OffersBySeller::<T>::try_append(&seller, id).map_err(|_| Error::<T>::TooManyOffers)?;
        let deposit = T::OfferDeposit::get()
            .saturating_add(T::ByteDeposit::get().saturating_mul((topic.len() as u32).into()));
        T::Currency::hold(&HoldReason::OfferDeposit.into(), &seller, deposit)?;
        NextOfferId::<T>::put(id.saturating_add(1));
        Offers::<T>::insert(
            id,
            Offer {
                seller: seller.clone(),
                topic,
                mode,
                price,
                terms,
                stream: None,
                deposit,
                created_at: frame_system::Pallet::<T>::block_number(),
                retired_at: None,
            },
        );
        Self::deposit_event(Event::OfferCreated {
            offer: id,
            seller,
            deposit,
        });
        Ok(())
    }

    /// Replaces the price and/or terms of `seller`'s active offer `id`.
    pub(crate) fn do_update_offer(
        seller: T::AccountId,
        id: OfferId,
        price: Option<BalanceOf<T>>,
        terms: Option<OfferTermsOf<T>>,
    ) -> DispatchResult {
        ensure!(
            price.is_some() || terms.is_some(),
            Error::<T>::NothingToUpdate
        );
        Offers::<T>::try_mutate(id, |maybe| {
            let offer = maybe.as_mut().ok_or(Error::<T>::UnknownOffer)?;
            ensure!(offer.seller == seller, Error::<T>::NotSeller);
            ensure!(offer.is_active(), Error::<T>::OfferRetired);
            if let Some(terms) = terms {
                Self::ensure_valid_terms(&terms)?;
                ensure!(
                    offer.stream.is_none() || terms.replication == offer.terms.replication,
                    Error::<T>::ReplicationLocked
                );
                offer.terms = terms;
            }
            if let Some(price) = price {
                offer.price = price;
            }
            Self::deposit_event(Event::OfferUpdated {
                offer: id,
                price: offer.price,
                terms: offer.terms.clone(),
            });
            Ok(())
        })
    }

    /// Retires `seller`'s active offer `id`.
    pub(crate) fn do_retire_offer(seller: T::AccountId, id: OfferId) -> DispatchResult {
        Offers::<T>::try_mutate(id, |maybe| {
            let offer = maybe.as_mut().ok_or(Error::<T>::UnknownOffer)?;
            ensure!(offer.seller == seller, Error::<T>::NotSeller);
            ensure!(offer.is_active(), Error::<T>::OfferRetired);
            offer.retired_at = Some(frame_system::Pallet::<T>::block_number());
            Self::deposit_event(Event::OfferRetired { offer: id });
            Ok(())
        })
    }

    /// Removes `seller`'s retired offer `id` with its closed stream; returns the number of
    /// epoch commitments removed.
    pub(crate) fn do_remove_offer(seller: T::AccountId, id: OfferId) -> Result<u32, DispatchError> {
        let offer = Offers::<T>::get(id).ok_or(Error::<T>::UnknownOffer)?;
        ensure!(offer.seller == seller, Error::<T>::NotSeller);
        let retired_at = offer.retired_at.ok_or(Error::<T>::OfferActive)?;
        let stream = match offer.stream {
            Some(stream_id) => {
                let stream = Streams::<T>::get(stream_id).ok_or(Error::<T>::UnknownStream)?;
                ensure!(stream.closed_at.is_some(), Error::<T>::StreamOpen);
                let released_at = stream.released_at.ok_or(Error::<T>::StillServing)?;
                Some((stream_id, stream, released_at))
            }
            None => None,
        };
        let since = stream.as_ref().map_or(retired_at, |(_, _, released_at)| {
            retired_at.max(*released_at)
        });
        ensure!(
            frame_system::Pallet::<T>::block_number()
                >= since.saturating_add(T::RemovalDelay::get()),
            Error::<T>::RemovalTooEarly
        );

        let mut refunded = T::Currency::release(
            &HoldReason::OfferDeposit.into(),
            &seller,
            offer.deposit,
            Precision::BestEffort,
        )?;
        let mut epochs = 0;
        if let Some((stream_id, stream, _)) = &stream {
            for epoch in stream.oldest_epoch..=stream.epoch {
                EpochCommitments::<T>::remove(stream_id, epoch);
            }
            epochs = stream.retained_epochs();
            refunded = refunded.saturating_add(T::Currency::release(
                &HoldReason::StreamDeposit.into(),
                &seller,
                stream.deposit,
                Precision::BestEffort,
            )?);
            Streams::<T>::remove(stream_id);
        }
        Offers::<T>::remove(id);
        T::Purchases::forget(id);
        OffersBySeller::<T>::mutate_exists(&seller, |maybe| {
            if let Some(ids) = maybe {
                ids.retain(|o| *o != id);
                if ids.is_empty() {
                    *maybe = None;
                }
            }
        });
        Self::deposit_event(Event::OfferRemoved {
            offer: id,
            stream: stream.map(|(stream_id, _, _)| stream_id),
            refunded,
        });
        Ok(epochs)
    }

    fn ensure_valid_mode(mode: &PaymentModeOf<T>) -> DispatchResult {
        match mode {
            PaymentMode::Batch { first, last } => {
                let span = last
                    .checked_sub(first)
                    .ok_or(Error::<T>::InvalidBatchWindow)?;
                ensure!(
                    span < T::MaxBatchSegments::get(),
                    Error::<T>::BatchWindowTooLarge
                );
            }
            PaymentMode::Stream { period } => {
                ensure!(
                    *period >= T::MinPeriod::get() && !period.is_zero(),
                    Error::<T>::PeriodTooShort
                );
            }
        }
        Ok(())
    }

    fn ensure_valid_terms(terms: &OfferTermsOf<T>) -> DispatchResult {
        ensure!(
            terms.replication > 0 && terms.replication <= T::Operators::max_replication(),
            Error::<T>::InvalidReplication
        );
        ensure!(
            terms.retention <= T::MaxRetention::get(),
            Error::<T>::RetentionTooLong
        );
        Ok(())
    }
}
