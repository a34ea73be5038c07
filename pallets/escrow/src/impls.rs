//! Traits this pallet implements for other pallets: [`SettledTrades`] for `pallet-trust`,
//! [`OfferPurchases`] for `pallet-offers`.

use crate::*;
use fastdata_primitives::{
    escrow::PurchaseState, OfferId, OfferPurchases, PurchaseId, SettledTrade, SettledTrades,
};
use frame_support::traits::Get;
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::traits::Saturating;

/// The trust pallet lets buyer and seller rate each other once per settled purchase.
///
/// Only purchases closed by settlement count (including an upheld dispute): a purchase
/// refunded because the keys never came is no trade, so it gives no rating (ratings cannot
/// be had without paying the protocol fee). The trade is available until the purchase is
/// reaped, `RetentionPeriod` blocks after it closed.
impl<T: Config> SettledTrades<T::AccountId, BalanceOf<T>, BlockNumberFor<T>> for Pallet<T> {
    fn settled_trade(
        purchase: PurchaseId,
    ) -> Option<SettledTrade<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
        let p = Purchases::<T>::get(purchase)?;
        if p.state != PurchaseState::Settled {
            return None;
        }
        Some(SettledTrade {
            value: p.payment.price.saturating_sub(p.ledger.refunded),
            settled_at: p.closed_at?,
            buyer: p.deal.buyer,
            seller: p.deal.seller,
        })
    }
}

impl<T: Config> Pallet<T> {
    /// Raises the block until which `offer`'s stream must stay hosted to `until` plus the
    /// claim grace (never lowers it).
    pub(crate) fn keep_hosted_until(offer: OfferId, until: BlockNumberFor<T>) {
        let needed = until.saturating_add(T::ClaimGracePeriod::get());
        OfferNeededUntil::<T>::mutate(offer, |current| {
            *current = Some(current.map_or(needed, |u| u.max(needed)))
        });
    }
}

/// A closed stream stays hosted while its buyers need it: until the latest access end of the
/// offer's purchases plus the claim grace, so every buyer is served to the end of what it
/// paid for and every operator can still claim.
impl<T: Config> OfferPurchases<BlockNumberFor<T>> for Pallet<T> {
    fn needed_until(offer: OfferId) -> Option<BlockNumberFor<T>> {
        OfferNeededUntil::<T>::get(offer)
    }

    fn forget(offer: OfferId) {
        OfferNeededUntil::<T>::remove(offer);
    }
}
