//! Disputes: the buyer freezes the remainder of a purchase, the dispute origin resolves it.

use crate::{features::settlement::Payee, split::split_upheld, *};
use alloc::vec::Vec;
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
use frame_system::pallet_prelude::BlockNumberFor;
use sp_core::H256;
use sp_runtime::{
    traits::{One, Saturating, Zero},
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
        ensure!(purchase.deal.buyer == buyer, Error::<T>::NotBuyer);
        match purchase.state {
            PurchaseState::Active => {}
            PurchaseState::AwaitingKeys => return Err(Error::<T>::KeysNotDelivered.into()),
            PurchaseState::Disputed => return Err(Error::<T>::PurchaseDisputed.into()),
            PurchaseState::Settled | PurchaseState::Refunded => {
                return Err(Error::<T>::PurchaseClosed.into())
            }
        }
        // One dispute per purchase: otherwise a buyer could freeze the seller's pay again
        // and again, one dispute period at a time.
        ensure!(!purchase.disputed, Error::<T>::AlreadyDisputed);
        let deposit = T::DisputeDeposit::get();
        Self::hold(HoldReason::DisputeDeposit, &buyer, deposit)?;
        let now = frame_system::Pallet::<T>::block_number();
        let deadline = Self::dispute_deadline(&purchase, now);
        purchase.state = PurchaseState::Disputed;
        purchase.disputed = true;
        purchase.dispute = Some(DisputeInfo {
            reason,
            evidence,
            deposit,
            opened_at: now,
            deadline,
            answer: None,
        });
        // The stream stays hosted (and its offer's records kept) while the dispute may still
        // need them.
        Self::keep_hosted_until(purchase.deal.offer, deadline);
        // The agenda entry moves to the dispute's deadline (or an earlier period boundary).
        Self::reschedule(id, &mut purchase, now);
        Purchases::<T>::insert(id, purchase);
        Self::deposit_event(Event::DisputeOpened {
            purchase: id,
            reason,
            evidence,
            deposit,
        });
        Ok(())
    }

    /// The deadline of a dispute opened at `now`: [`Config::DisputePeriod`] later, but for a
    /// stream no later than two blocks before the first period boundary that would no longer
    /// fit in the purchase's list of heads (nothing settles while disputed), so every
    /// boundary is recorded on time and no period is settled as if nothing was published.
    /// A stream's dispute thus lasts at most about `MAX_PENDING_BOUNDARIES` periods minus
    /// those awaiting settlement.
    pub(crate) fn dispute_deadline(
        purchase: &PurchaseOf<T>,
        now: BlockNumberFor<T>,
    ) -> BlockNumberFor<T> {
        let deadline = now.saturating_add(T::DisputePeriod::get());
        match purchase.deal.terms {
            fastdata_primitives::escrow::PurchaseTerms::Stream { period, .. } => {
                let unfit = purchase
                    .progress
                    .settled_periods
                    .saturating_add(MAX_PENDING_BOUNDARIES);
                let lost_at = purchase
                    .schedule
                    .start
                    .saturating_add(period.saturating_mul(unfit.into()));
                // Two blocks of margin: the lapse, then one settlement to make room.
                let two = BlockNumberFor::<T>::from(2u32);
                deadline
                    .min(lost_at.saturating_sub(two))
                    .max(now.saturating_add(One::one()))
            }
            fastdata_primitives::escrow::PurchaseTerms::Batch { .. } => deadline,
        }
    }

    /// The seller's answer to the dispute of `id`, before its deadline.
    pub(crate) fn do_answer_dispute(
        seller: T::AccountId,
        id: PurchaseId,
        evidence: H256,
    ) -> DispatchResult {
        let mut purchase = Purchases::<T>::get(id).ok_or(Error::<T>::UnknownPurchase)?;
        ensure!(purchase.deal.seller == seller, Error::<T>::NotSeller);
        let now = frame_system::Pallet::<T>::block_number();
        let dispute = purchase
            .dispute
            .as_mut()
            .filter(|_| purchase.state == PurchaseState::Disputed)
            .ok_or(Error::<T>::NotDisputed)?;
        ensure!(dispute.answer.is_none(), Error::<T>::AlreadyAnswered);
        ensure!(now < dispute.deadline, Error::<T>::DisputeDeadlinePassed);
        dispute.answer = Some(evidence);
        Purchases::<T>::insert(id, purchase);
        Self::deposit_event(Event::DisputeAnswered {
            purchase: id,
            evidence,
        });
        Ok(())
    }

    /// Ends the dispute of `purchase` at its deadline by the rule: upheld in full if the
    /// seller never answered, lapsed (deposit back, purchase resumes) if it did. The caller
    /// checks the deadline and writes the purchase back.
    pub(crate) fn lapse_dispute(
        id: PurchaseId,
        purchase: &mut PurchaseOf<T>,
        now: BlockNumberFor<T>,
    ) -> DispatchResult {
        let answered = purchase
            .dispute
            .as_ref()
            .ok_or(Error::<T>::NotDisputed)?
            .answer
            .is_some();
        Self::deposit_event(Event::DisputeLapsed {
            purchase: id,
            answered,
        });
        if answered {
            let dispute = purchase.dispute.take().ok_or(Error::<T>::NotDisputed)?;
            Self::release(
                HoldReason::DisputeDeposit,
                &purchase.deal.buyer,
                dispute.deposit,
            )?;
            purchase.state = PurchaseState::Active;
            Ok(())
        } else {
            Self::apply_resolution(id, purchase, Perbill::one(), now)
        }
    }

    /// Rejects (`refund_ratio = 0`) or upholds the dispute of `id`.
    pub(crate) fn do_resolve_dispute(id: PurchaseId, refund_ratio: Perbill) -> DispatchResult {
        let mut purchase = Purchases::<T>::get(id).ok_or(Error::<T>::UnknownPurchase)?;
        let now = frame_system::Pallet::<T>::block_number();
        Self::apply_resolution(id, &mut purchase, refund_ratio, now)?;
        Self::reschedule(id, &mut purchase, now);
        Purchases::<T>::insert(id, purchase);
        Ok(())
    }

    /// Rejects (`refund_ratio = 0`) or upholds the dispute of `purchase`; the caller schedules
    /// and writes the purchase back.
    fn apply_resolution(
        id: PurchaseId,
        purchase: &mut PurchaseOf<T>,
        refund_ratio: Perbill,
        now: BlockNumberFor<T>,
    ) -> DispatchResult {
        ensure!(
            purchase.state == PurchaseState::Disputed,
            Error::<T>::NotDisputed
        );
        let dispute = purchase.dispute.take().ok_or(Error::<T>::NotDisputed)?;

        if refund_ratio.is_zero() {
            Self::forfeit_dispute_deposit(&purchase.deal.buyer, dispute.deposit)?;
            purchase.state = PurchaseState::Active;
            Self::deposit_event(Event::DisputeRejected {
                purchase: id,
                deposit: dispute.deposit,
            });
        } else {
            Self::release(
                HoldReason::DisputeDeposit,
                &purchase.deal.buyer,
                dispute.deposit,
            )?;
            let claims = Self::accrued_claims(id, purchase);
            let split = split_upheld(
                purchase.ledger.held,
                &claims.iter().map(|(_, c)| c.accrued).collect::<Vec<_>>(),
                purchase.operators.accrued,
                T::StorageShare::get(),
                refund_ratio,
                T::ProtocolFee::get(),
            );
            Self::pay_operators(id, purchase, claims, &split.operators)?;
            let operators = split.operators_total();
            let (seller, fee, refunded) = (split.seller, split.fee, split.refund);
            let seller_account = purchase.deal.seller.clone();
            let seller = Self::pay(id, purchase, &seller_account, seller, Payee::Seller)?;
            let fee = Self::pay(
                id,
                purchase,
                &T::TreasuryAccount::get(),
                fee,
                Payee::Treasury,
            )?;
            Self::refund(purchase, refunded)?;
            purchase.progress.settled_periods = purchase.periods();
            Self::deposit_event(Event::DisputeUpheld {
                purchase: id,
                refund_ratio,
                operators,
                seller,
                fee,
                refunded,
            });
            Self::close_settled(id, purchase, now);
        }
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
