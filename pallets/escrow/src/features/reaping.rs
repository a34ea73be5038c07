//! Reaping: removing a closed purchase, with its keys, claims and index entries, once its
//! retention period is over, and returning its deposits.

use crate::*;
use fastdata_primitives::PurchaseId;
use frame_support::{ensure, traits::Get};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::{traits::Saturating, DispatchResult};

impl<T: Config> Pallet<T> {
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
            .unwrap_or(purchase.schedule.end)
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
            &purchase.deal.buyer,
            purchase.payment.deposit,
        )?;
        Self::release(
            HoldReason::KeyDeposit,
            &purchase.deal.seller,
            purchase.keys.deposits,
        )?;
        let _ = SealedKeys::<T>::clear_prefix(id, T::MaxEpochsPerPurchase::get(), None);
        let _ = OperatorClaims::<T>::clear_prefix(id, T::MaxOperatorsPerPurchase::get(), None);
        PurchasesByBuyer::<T>::remove(&purchase.deal.buyer, id);
        PurchasesByOffer::<T>::remove(purchase.deal.offer, id);
        Purchases::<T>::remove(id);
        Self::deposit_event(Event::PurchaseReaped {
            purchase: id,
            buyer_deposit: purchase.payment.deposit,
            key_deposits: purchase.keys.deposits,
        });
        Ok(())
    }
}
