//! Disputes: the buyer freezes the remainder of a purchase, the dispute origin resolves it.

use crate::{features::settlement::Payee, *};
use fastdata_primitives::{
    escrow::{DisputeInfo, DisputeReason, PurchaseState},
    PurchaseId,
};
use frame_support::{
    ensure,
    traits::{
        fungible::{Inspect, MutateHold},
        tokens::{DepositConsequence, Fortitude, Precision, Provenance, Restriction},
        Get,
    },
};
use sp_core::H256;
use sp_runtime::{
    traits::{Saturating, Zero},
    DispatchResult, Perbill,
};

impl<T: Config> Pallet<T> {
    /// Opens a dispute on an active purchase, holding the dispute deposit from the buyer.
    pub(crate) fn do_dispute(
        buyer: T::AccountId,
        id: PurchaseId,
        reason: DisputeReason,
        evidence: Option<H256>,
    ) -> DispatchResult {
        let mut purchase = Purchases::<T>::get(id).ok_or(Error::<T>::UnknownPurchase)?;
        ensure!(purchase.buyer == buyer, Error::<T>::NotBuyer);
        match purchase.state {
            PurchaseState::Active => {}
            PurchaseState::AwaitingKeys => return Err(Error::<T>::KeysNotDelivered.into()),
            PurchaseState::Disputed => return Err(Error::<T>::PurchaseDisputed.into()),
            PurchaseState::Settled | PurchaseState::Refunded => {
                return Err(Error::<T>::PurchaseClosed.into())
            }
        }
        let deposit = T::DisputeDeposit::get();
        Self::hold(HoldReason::DisputeDeposit, &buyer, deposit)?;
        let now = frame_system::Pallet::<T>::block_number();
        purchase.state = PurchaseState::Disputed;
        purchase.dispute = Some(DisputeInfo {
            reason,
            evidence,
            deposit,
            opened_at: now,
        });
        Purchases::<T>::insert(id, purchase);
        Self::deposit_event(Event::DisputeOpened {
            purchase: id,
            reason,
            evidence,
            deposit,
        });
        Ok(())
    }

    /// Rejects (`refund_ratio = 0`) or upholds the dispute of `id`.
    pub(crate) fn do_resolve_dispute(id: PurchaseId, refund_ratio: Perbill) -> DispatchResult {
        let mut purchase = Purchases::<T>::get(id).ok_or(Error::<T>::UnknownPurchase)?;
        ensure!(
            purchase.state == PurchaseState::Disputed,
            Error::<T>::NotDisputed
        );
        let dispute = purchase.dispute.take().ok_or(Error::<T>::NotDisputed)?;
        let now = frame_system::Pallet::<T>::block_number();

        if refund_ratio.is_zero() {
            Self::forfeit_dispute_deposit(&purchase.buyer, dispute.deposit)?;
            purchase.state = PurchaseState::Active;
            Self::deposit_event(Event::DisputeRejected {
                purchase: id,
                deposit: dispute.deposit,
            });
        } else {
            Self::release(HoldReason::DisputeDeposit, &purchase.buyer, dispute.deposit)?;
            let held = purchase.ledger.held;
            let cap = T::StorageShare::get().mul_floor(held);
            let operators = Self::pay_operators(id, &mut purchase, cap)?;
            let rest = held.saturating_sub(operators);
            let refunded = refund_ratio.mul_floor(rest);
            let gross = rest.saturating_sub(refunded);
            let fee = T::ProtocolFee::get().mul_floor(gross);
            let seller_account = purchase.seller.clone();
            let seller = Self::pay(
                id,
                &mut purchase,
                &seller_account,
                gross.saturating_sub(fee),
                Payee::Seller,
            )?;
            let fee = Self::pay(
                id,
                &mut purchase,
                &T::TreasuryAccount::get(),
                fee,
                Payee::Treasury,
            )?;
            Self::refund(&mut purchase, refunded)?;
            purchase.settled_periods = purchase.periods();
            Self::deposit_event(Event::DisputeUpheld {
                purchase: id,
                refund_ratio,
                operators,
                seller,
                fee,
                refunded,
            });
            Self::close_settled(id, &mut purchase, now);
        }
        Self::ensure_scheduled(id, &mut purchase, now);
        Purchases::<T>::insert(id, purchase);
        Ok(())
    }

    /// Sends a rejected dispute's deposit to the treasury (burns it if the treasury cannot
    /// receive it).
    fn forfeit_dispute_deposit(buyer: &T::AccountId, deposit: BalanceOf<T>) -> DispatchResult {
        if deposit.is_zero() {
            return Ok(());
        }
        let reason = HoldReason::DisputeDeposit.into();
        let treasury = T::TreasuryAccount::get();
        if T::Currency::can_deposit(&treasury, deposit, Provenance::Extant)
            == DepositConsequence::Success
        {
            T::Currency::transfer_on_hold(
                &reason,
                buyer,
                &treasury,
                deposit,
                Precision::Exact,
                Restriction::Free,
                Fortitude::Force,
            )?;
        } else {
            T::Currency::burn_held(&reason, buyer, deposit, Precision::Exact, Fortitude::Force)?;
        }
        Ok(())
    }
}
