//! Delivery of sealed epoch keys, and the refund when the first keys miss their deadline.

use crate::*;
use fastdata_primitives::{escrow::PurchaseState, sealed, EpochIndex, OfferProvider, PurchaseId};
use frame_support::{ensure, traits::Get, BoundedVec};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::{
    traits::{Saturating, Zero},
    DispatchResult,
};

impl<T: Config> Pallet<T> {
    /// Stores the keys of `epoch` sealed to the buyer, holding the key deposit from the
    /// seller; the first keys activate the purchase.
    pub(crate) fn do_deliver_keys(
        seller: T::AccountId,
        id: PurchaseId,
        epoch: EpochIndex,
        sealed: BoundedVec<u8, T::MaxSealedKeyLen>,
    ) -> DispatchResult {
        let mut purchase = Purchases::<T>::get(id).ok_or(Error::<T>::UnknownPurchase)?;
        ensure!(purchase.deal.seller == seller, Error::<T>::NotSeller);
        ensure!(purchase.state.is_open(), Error::<T>::PurchaseClosed);
        let now = frame_system::Pallet::<T>::block_number();
        if purchase.state == PurchaseState::AwaitingKeys {
            ensure!(
                now <= purchase.schedule.key_deadline,
                Error::<T>::KeyDeadlinePassed
            );
        }
        sealed::check_format(&sealed).map_err(|_| Error::<T>::MalformedSealedKey)?;
        ensure!(
            !SealedKeys::<T>::contains_key(id, epoch),
            Error::<T>::EpochAlreadyDelivered
        );
        if let Some(first) = purchase.schedule.first_epoch {
            ensure!(epoch >= first, Error::<T>::EpochNotPurchased);
        }
        ensure!(
            T::Offers::epoch_commitment(&purchase.deal.stream, epoch).is_some(),
            Error::<T>::UnknownEpoch
        );
        ensure!(
            purchase.keys.epochs < T::MaxEpochsPerPurchase::get(),
            Error::<T>::TooManyEpochs
        );

        let deposit = Self::key_deposit(sealed.len());
        Self::hold(HoldReason::KeyDeposit, &seller, deposit)?;
        purchase.keys.deposits = purchase.keys.deposits.saturating_add(deposit);
        purchase.keys.epochs = purchase.keys.epochs.saturating_add(1);
        SealedKeys::<T>::insert(id, epoch, sealed);
        Self::deposit_event(Event::KeysDelivered {
            purchase: id,
            epoch,
            deposit,
        });

        let activates = purchase
            .schedule
            .first_epoch
            .is_none_or(|first| first == epoch);
        if purchase.state == PurchaseState::AwaitingKeys && activates {
            purchase.state = PurchaseState::Active;
            Self::deposit_event(Event::PurchaseActivated { purchase: id });
            // Its next automatic step is now the first settlement, not the key deadline.
            Self::reschedule(id, &mut purchase, frame_system::Pallet::<T>::block_number());
        }
        Purchases::<T>::insert(id, purchase);
        Ok(())
    }

    /// The deposit for a sealed key of `len` bytes: `KeyDepositBase + len · KeyDepositPerByte`.
    pub fn key_deposit(len: usize) -> BalanceOf<T> {
        let len = BalanceOf::<T>::from(u32::try_from(len).unwrap_or(u32::MAX));
        T::KeyDepositBase::get().saturating_add(T::KeyDepositPerByte::get().saturating_mul(len))
    }

    /// Refund for missing keys (extrinsic entry point).
    pub(crate) fn do_refund_missing_keys(id: PurchaseId) -> DispatchResult {
        let mut purchase = Purchases::<T>::get(id).ok_or(Error::<T>::UnknownPurchase)?;
        ensure!(purchase.state.is_open(), Error::<T>::PurchaseClosed);
        ensure!(
            purchase.state == PurchaseState::AwaitingKeys,
            Error::<T>::KeysAlreadyDelivered
        );
        let now = frame_system::Pallet::<T>::block_number();
        ensure!(
            now > purchase.schedule.key_deadline,
            Error::<T>::KeyDeadlineNotPassed
        );
        Self::refund_missing_keys_now(id, &mut purchase, now)?;
        Self::ensure_scheduled(id, &mut purchase, now);
        Purchases::<T>::insert(id, purchase);
        Ok(())
    }

    /// Gives the buyer everything held back and closes the purchase as `Refunded`. Accrued
    /// operator pay is forfeited (no keys, no trade).
    pub(crate) fn refund_missing_keys_now(
        id: PurchaseId,
        purchase: &mut PurchaseOf<T>,
        now: BlockNumberFor<T>,
    ) -> DispatchResult {
        let amount = purchase.ledger.held;
        Self::refund(purchase, amount)?;
        Self::forfeit_accrued(id, purchase);
        purchase.state = PurchaseState::Refunded;
        purchase.closed_at = Some(now);
        Self::deposit_event(Event::RefundedForMissingKeys {
            purchase: id,
            buyer: purchase.deal.buyer.clone(),
            amount,
        });
        Ok(())
    }

    /// Zeroes the operators' accrued pay of `purchase` (nothing left to pay it from).
    pub(crate) fn forfeit_accrued(id: PurchaseId, purchase: &mut PurchaseOf<T>) {
        if purchase.operators.accrued.is_zero() {
            return;
        }
        let claims: alloc::vec::Vec<_> = OperatorClaims::<T>::iter_prefix(id).collect();
        for (operator, mut claim) in claims {
            if !claim.accrued.is_zero() {
                claim.accrued = Zero::zero();
                OperatorClaims::<T>::insert(id, operator, claim);
            }
        }
        purchase.operators.accrued = Zero::zero();
    }
}
