//! Registering streams, rotating key epochs and closing streams.

use crate::*;
use fastdata_primitives::{
    api_market::stream_id, IdentityProvider, OfferId, OfferPurchases, OperatorProvider, StreamId,
};
use frame_support::{pallet_prelude::*, traits::fungible::MutateHold};
use sp_core::H256;
use sp_runtime::traits::Saturating;

impl<T: Config> Pallet<T> {
    /// Registers the stream of `seller`'s offer `offer_id` and requests its operators (drawn
    /// by `pallet-operators` a few blocks later).
    pub(crate) fn do_register_stream(
        seller: T::AccountId,
        offer_id: OfferId,
        name: StreamNameOf<T>,
        timestamp: u64,
        commitment: H256,
    ) -> DispatchResult {
        ensure!(
            T::Identity::is_verified(&seller),
            Error::<T>::SellerNotVerified
        );
        let mut offer = Offers::<T>::get(offer_id).ok_or(Error::<T>::UnknownOffer)?;
        ensure!(offer.seller == seller, Error::<T>::NotSeller);
        ensure!(offer.is_active(), Error::<T>::OfferRetired);
        ensure!(offer.stream.is_none(), Error::<T>::StreamAlreadyRegistered);
        ensure!(is_valid_label(&name, false), Error::<T>::InvalidStreamName);
        let id = stream_id(&seller, &name, timestamp);
        ensure!(!Streams::<T>::contains_key(id), Error::<T>::StreamIdTaken);

        let deposit = T::StreamDeposit::get()
            .saturating_add(T::EpochDeposit::get())
            .saturating_add(T::ByteDeposit::get().saturating_mul((name.len() as u32).into()));
        T::Currency::hold(&HoldReason::StreamDeposit.into(), &seller, deposit)?;
        T::Operators::request_assignment(&id, offer.terms.replication, &seller)?;

        Streams::<T>::insert(
            id,
            Stream {
                seller: seller.clone(),
                offer: offer_id,
                name,
                timestamp,
                epoch: 0,
                oldest_epoch: 0,
                deposit,
                created_at: frame_system::Pallet::<T>::block_number(),
                closed_at: None,
                released_at: None,
            },
        );
        EpochCommitments::<T>::insert(id, 0, commitment);
        offer.stream = Some(id);
        Offers::<T>::insert(offer_id, offer);
        Self::deposit_event(Event::StreamRegistered {
            stream: id,
            offer: offer_id,
            seller,
            commitment,
        });
        Ok(())
    }

    /// Opens the next epoch of `seller`'s open stream `id` with `commitment`.
    pub(crate) fn do_rotate_epoch(
        seller: T::AccountId,
        id: StreamId,
        commitment: H256,
    ) -> DispatchResult {
        Streams::<T>::try_mutate(id, |maybe| {
            let stream = maybe.as_mut().ok_or(Error::<T>::UnknownStream)?;
            ensure!(stream.seller == seller, Error::<T>::NotSeller);
            ensure!(stream.is_open(), Error::<T>::StreamClosed);
            let epoch = stream
                .epoch
                .checked_add(1)
                .ok_or(Error::<T>::EpochOverflow)?;
            if stream.retained_epochs() >= T::MaxRetainedEpochs::get() {
                // Reuse the deposit of the oldest commitment for the new one.
                EpochCommitments::<T>::remove(id, stream.oldest_epoch);
                stream.oldest_epoch = stream.oldest_epoch.saturating_add(1);
            } else {
                let more = T::EpochDeposit::get();
                T::Currency::hold(&HoldReason::StreamDeposit.into(), &seller, more)?;
                stream.deposit = stream.deposit.saturating_add(more);
            }
            stream.epoch = epoch;
            EpochCommitments::<T>::insert(id, epoch, commitment);
            Self::deposit_event(Event::EpochRotated {
                stream: id,
                epoch,
                commitment,
            });
            Ok(())
        })
    }

    /// Closes `seller`'s open stream `id` and retires its offer; releases its operators if
    /// no purchase needs them any more.
    pub(crate) fn do_close_stream(seller: T::AccountId, id: StreamId) -> DispatchResult {
        let mut stream = Streams::<T>::get(id).ok_or(Error::<T>::UnknownStream)?;
        ensure!(stream.seller == seller, Error::<T>::NotSeller);
        ensure!(stream.is_open(), Error::<T>::StreamClosed);
        let now = frame_system::Pallet::<T>::block_number();
        stream.closed_at = Some(now);
        let offer_id = stream.offer;
        let serving_until = T::Purchases::needed_until(offer_id).filter(|until| *until > now);
        if serving_until.is_none() {
            T::Operators::release(&id);
            stream.released_at = Some(now);
        }
        Streams::<T>::insert(id, stream);
        Offers::<T>::mutate(offer_id, |maybe| {
            if let Some(offer) = maybe.as_mut().filter(|o| o.is_active()) {
                offer.retired_at = Some(now);
                Self::deposit_event(Event::OfferRetired { offer: offer_id });
            }
        });
        Self::deposit_event(Event::StreamClosed {
            stream: id,
            serving_until,
        });
        Ok(())
    }

    /// Releases the operators of closed stream `id` once no purchase needs them.
    pub(crate) fn do_release_stream(id: StreamId) -> DispatchResult {
        let mut stream = Streams::<T>::get(id).ok_or(Error::<T>::UnknownStream)?;
        ensure!(!stream.is_open(), Error::<T>::StreamOpen);
        ensure!(stream.released_at.is_none(), Error::<T>::AlreadyReleased);
        let now = frame_system::Pallet::<T>::block_number();
        if let Some(until) = T::Purchases::needed_until(stream.offer) {
            ensure!(now >= until, Error::<T>::StillServing);
        }
        T::Operators::release(&id);
        stream.released_at = Some(now);
        Streams::<T>::insert(id, stream);
        Ok(())
    }
}
