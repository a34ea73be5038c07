//! Traits this pallet implements for other pallets: [`OfferProvider`] for `pallet-escrow`
//! and the operator daemons.

use crate::*;
use fastdata_primitives::{
    EpochIndex, OfferId, OfferProvider, OfferSummary, OperatorProvider, StreamId, StreamSummary,
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_core::H256;

impl<T: Config> OfferProvider<T::AccountId, BalanceOf<T>, BlockNumberFor<T>> for Pallet<T> {
    fn offer(id: OfferId) -> Option<OfferSummary<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
        Offers::<T>::get(id).map(|offer| offer.summary())
    }

    fn stream(id: &StreamId) -> Option<StreamSummary<T::AccountId>> {
        let stream = Streams::<T>::get(id)?;
        Some(StreamSummary {
            operators: T::Operators::assigned(id),
            open: stream.is_open(),
            seller: stream.seller,
            offer: stream.offer,
            epoch: stream.epoch,
        })
    }

    fn epoch_commitment(id: &StreamId, epoch: EpochIndex) -> Option<H256> {
        EpochCommitments::<T>::get(id, epoch)
    }
}
