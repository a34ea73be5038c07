//! Read-only queries for the runtime API (`fastdata_primitives::api_market::OffersApi`).

use crate::*;
use alloc::vec::Vec;
use fastdata_primitives::{
    api_market::{OfferListing, OfferPage, StreamView},
    OfferId, OperatorProvider, StreamId, TrustProvider,
};
use frame_support::traits::Get;
use frame_system::pallet_prelude::BlockNumberFor;

/// An offer listing of a runtime.
pub type OfferListingOf<T> =
    OfferListing<<T as frame_system::Config>::AccountId, BalanceOf<T>, BlockNumberFor<T>>;

impl<T: Config> Pallet<T> {
    /// The offer `id` with its seller's trust score.
    pub fn offer_listing(id: OfferId) -> Option<OfferListingOf<T>> {
        Offers::<T>::get(id).map(|offer| Self::listing(id, offer))
    }

    /// Up to `limit` offers (capped at [`Config::MaxPageSize`]) with id `>= start`, in id
    /// order, each with its seller's trust score. Removed offers leave gaps; a page looks at
    /// no more than four times its size in ids and tells where the next page starts.
    pub fn offers_page(
        start: OfferId,
        limit: u32,
    ) -> OfferPage<T::AccountId, BalanceOf<T>, BlockNumberFor<T>> {
        let limit = limit.min(T::MaxPageSize::get()) as usize;
        let end = NextOfferId::<T>::get();
        let scan_end = start
            .saturating_add((limit as u64).saturating_mul(4))
            .min(end);
        let mut offers = Vec::with_capacity(limit);
        let mut id = start;
        while id < scan_end && offers.len() < limit {
            if let Some(listing) = Self::offer_listing(id) {
                offers.push(listing);
            }
            id = id.saturating_add(1);
        }
        OfferPage {
            offers,
            next: (id < end).then_some(id),
        }
    }

    /// Every offer of `seller` with the seller's trust score.
    pub fn offers_by_seller(seller: &T::AccountId) -> Vec<OfferListingOf<T>> {
        OffersBySeller::<T>::get(seller)
            .into_iter()
            .filter_map(Self::offer_listing)
            .collect()
    }

    /// The stream `id` with its operators, current epoch and that epoch's commitment.
    pub fn stream_view(id: StreamId) -> Option<StreamView<T::AccountId, BlockNumberFor<T>>> {
        let stream = Streams::<T>::get(id)?;
        let (quota_mb, hosting_funded) = T::Operators::hosting(&id).unwrap_or_default();
        Some(StreamView {
            quota_mb,
            hosting_funded,
            id,
            operators: T::Operators::assigned(&id),
            epoch_commitment: EpochCommitments::<T>::get(id, stream.epoch),
            seller: stream.seller,
            offer: stream.offer,
            name: stream.name.into_inner(),
            epoch: stream.epoch,
            oldest_epoch: stream.oldest_epoch,
            created_at: stream.created_at,
            closed_at: stream.closed_at,
        })
    }

    fn listing(id: OfferId, offer: OfferOf<T>) -> OfferListingOf<T> {
        OfferListing {
            id,
            seller_trust_score: T::Trust::trust_score(&offer.seller),
            seller: offer.seller,
            topic: offer.topic.into_inner(),
            mode: offer.mode,
            price: offer.price,
            terms: offer.terms,
            stream: offer.stream,
            created_at: offer.created_at,
            retired_at: offer.retired_at,
        }
    }
}
