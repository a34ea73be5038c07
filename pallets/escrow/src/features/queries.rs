//! Read-only functions behind the runtime API
//! [`EscrowApi`](fastdata_primitives::api_escrow::EscrowApi).

use crate::*;
use alloc::vec::Vec;
use fastdata_primitives::{
    escrow::{AccessPeriod, PurchaseView},
    EpochIndex, OfferId, PurchaseId,
};
use frame_support::traits::Get;
use frame_system::pallet_prelude::BlockNumberFor;

impl<T: Config> Pallet<T> {
    /// The genesis hash of this chain: receipts are signed for it.
    pub fn genesis_hash() -> sp_core::H256 {
        let hash = frame_system::Pallet::<T>::block_hash(BlockNumberFor::<T>::default());
        fastdata_primitives::genesis_h256(hash.as_ref())
    }

    /// Ids of the stored purchases of `buyer`, ascending.
    pub fn purchases_of_buyer(buyer: &T::AccountId) -> Vec<PurchaseId> {
        let mut ids: Vec<PurchaseId> = PurchasesByBuyer::<T>::iter_key_prefix(buyer).collect();
        ids.sort_unstable();
        ids
    }

    /// Ids of the stored purchases of `offer`, ascending.
    pub fn purchases_of_offer(offer: OfferId) -> Vec<PurchaseId> {
        let mut ids: Vec<PurchaseId> = PurchasesByOffer::<T>::iter_key_prefix(offer).collect();
        ids.sort_unstable();
        ids
    }

    /// Epochs with sealed keys stored for purchase `id`, ascending.
    pub fn delivered_epochs(id: PurchaseId) -> Vec<EpochIndex> {
        let mut epochs: Vec<EpochIndex> = SealedKeys::<T>::iter_key_prefix(id).collect();
        epochs.sort_unstable();
        epochs
    }

    /// The sealed keys of `epoch` for purchase `id`.
    pub fn sealed_key(id: PurchaseId, epoch: EpochIndex) -> Option<Vec<u8>> {
        SealedKeys::<T>::get(id, epoch).map(|sealed| sealed.into_inner())
    }

    /// Everything about purchase `id`: access period and epochs, state, schedule, amounts
    /// delivered, claimed, paid and refunded.
    pub fn purchase_view(
        id: PurchaseId,
    ) -> Option<PurchaseView<T::AccountId, BalanceOf<T>, BlockNumberFor<T>>> {
        let p = Purchases::<T>::get(id)?;
        let next_settlement = (p.state.is_open() && !p.all_periods_settled())
            .then(|| p.settlement_due(p.progress.settled_periods, T::ClaimGracePeriod::get()));
        let mut operators: Vec<_> = OperatorClaims::<T>::iter_prefix(id).collect();
        operators.sort_by(|a, b| a.0.cmp(&b.0));
        Some(PurchaseView {
            id,
            buyer: p.deal.buyer,
            seller: p.deal.seller,
            offer: p.deal.offer,
            stream: p.deal.stream,
            terms: p.deal.terms,
            buyer_key: p.deal.buyer_key,
            price: p.payment.price,
            state: p.state,
            access: AccessPeriod {
                start: p.schedule.start,
                end: p.schedule.end,
                first_epoch: p.schedule.first_epoch,
                epochs: Self::delivered_epochs(id),
            },
            key_deadline: p.schedule.key_deadline,
            settled_periods: p.progress.settled_periods,
            next_settlement,
            delivered_up_to: p.progress.delivered_up_to,
            start_head: p.progress.start_head,
            period_heads: p.progress.heads.into_inner(),
            ledger: p.ledger,
            accrued: p.operators.accrued,
            operators,
            dispute: p.dispute,
            closed_at: p.closed_at,
        })
    }
}
