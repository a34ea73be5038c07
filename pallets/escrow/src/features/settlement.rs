//! Settlement of periods, and the money movements every feature uses.
//!
//! The rule is written out in the crate documentation ("Settlement rule") and computed by
//! the pure functions of [`crate::split`]; the functions here move the money it says and
//! keep the purchase's ledger in step with the holds.

use crate::{split::split_period, *};
use alloc::vec::Vec;
use fastdata_primitives::{escrow::PurchaseState, PurchaseId};
use frame_support::{
    ensure,
    traits::{
        fungible::{Inspect, MutateHold},
        tokens::{DepositConsequence, Fortitude, Precision, Provenance, Restriction},
        Get,
    },
};
use frame_system::pallet_prelude::BlockNumberFor;
use sp_runtime::{
    traits::{CheckedAdd, CheckedSub, Saturating, Zero},
    ArithmeticError, DispatchError, DispatchResult,
};

/// Who a payout from a purchase's held price is for (decides the ledger column).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Payee {
    /// A storage operator.
    Operator,
    /// The seller.
    Seller,
    /// The treasury (protocol fee).
    Treasury,
}

impl<T: Config> Pallet<T> {
    /// Settles the next period (extrinsic entry point).
    pub(crate) fn do_settle(id: PurchaseId) -> DispatchResult {
        let mut purchase = Purchases::<T>::get(id).ok_or(Error::<T>::UnknownPurchase)?;
        let now = frame_system::Pallet::<T>::block_number();
        match purchase.state {
            PurchaseState::Active => {}
            PurchaseState::AwaitingKeys => return Err(Error::<T>::KeysNotDelivered.into()),
            // Past its deadline anyone ends a dispute by the rule (as `on_idle` would).
            PurchaseState::Disputed
                if purchase.dispute.as_ref().is_some_and(|d| now >= d.deadline) =>
            {
                Self::record_boundaries(&mut purchase, now);
                Self::lapse_dispute(id, &mut purchase, now)?;
                Self::reschedule(id, &mut purchase, now);
                Purchases::<T>::insert(id, purchase);
                return Ok(());
            }
            PurchaseState::Disputed => return Err(Error::<T>::PurchaseDisputed.into()),
            PurchaseState::Settled | PurchaseState::Refunded => {
                return Err(Error::<T>::PurchaseClosed.into())
            }
        }
        let due = purchase.settlement_due(
            purchase.progress.settled_periods,
            T::ClaimGracePeriod::get(),
        );
        ensure!(now >= due, Error::<T>::SettlementNotDue);
        Self::record_boundaries(&mut purchase, now);
        Self::settle_next_period(id, &mut purchase, now)?;
        Self::ensure_scheduled(id, &mut purchase, now);
        Purchases::<T>::insert(id, purchase);
        Ok(())
    }

    /// Settles period `settled_periods` of an active purchase by the settlement rule, and
    /// closes the purchase after its last period. The caller checks that it is due, has
    /// recorded the period boundaries that came, and writes the purchase back.
    pub(crate) fn settle_next_period(
        id: PurchaseId,
        purchase: &mut PurchaseOf<T>,
        now: BlockNumberFor<T>,
    ) -> DispatchResult {
        let period = purchase.progress.settled_periods;
        let budget = purchase.next_period_budget();
        let claims = Self::accrued_claims(id, purchase);
        let split = split_period(
            budget,
            purchase.delivered(),
            &claims.iter().map(|(_, c)| c.accrued).collect::<Vec<_>>(),
            purchase.operators.accrued,
            T::StorageShare::get(),
            T::ProtocolFee::get(),
        );
        Self::pay_operators(id, purchase, claims, &split.operators)?;
        let operators = split.operators_total();
        let (seller, fee, refunded) = (split.seller, split.fee, split.refund);

        let seller_account = purchase.deal.seller.clone();
        let seller_paid = Self::pay(id, purchase, &seller_account, seller, Payee::Seller)?;
        let fee_paid = Self::pay(
            id,
            purchase,
            &T::TreasuryAccount::get(),
            fee,
            Payee::Treasury,
        )?;
        Self::refund(purchase, refunded)?;

        purchase.progress.settled_periods = period.saturating_add(1);
        if purchase.progress.heads.len() > 1 {
            purchase.progress.heads.remove(0);
        }
        Self::deposit_event(Event::PeriodSettled {
            purchase: id,
            period,
            operators,
            seller: seller_paid,
            fee: fee_paid,
            refunded,
        });
        if purchase.all_periods_settled() {
            Self::close_settled(id, purchase, now);
        }
        Ok(())
    }

    /// Marks a purchase whose money is all paid out as `Settled`.
    pub(crate) fn close_settled(
        id: PurchaseId,
        purchase: &mut PurchaseOf<T>,
        now: BlockNumberFor<T>,
    ) {
        purchase.state = PurchaseState::Settled;
        purchase.closed_at = Some(now);
        let value = purchase
            .payment
            .price
            .saturating_sub(purchase.ledger.refunded);
        Self::deposit_event(Event::PurchaseSettled {
            purchase: id,
            value,
        });
    }

    /// The claims on `id` with their accrued pay, in storage order; none are read when the
    /// purchase has nothing accrued.
    pub(crate) fn accrued_claims(
        id: PurchaseId,
        purchase: &PurchaseOf<T>,
    ) -> Vec<(T::AccountId, OperatorClaimOf<T>)> {
        if purchase.operators.accrued.is_zero() {
            return Vec::new();
        }
        OperatorClaims::<T>::iter_prefix(id).collect()
    }

    /// Pays each operator of `claims` its share from `shares` (same order, computed by
    /// [`crate::split`]), books it on its claim, resets its accrual and the purchase's.
    pub(crate) fn pay_operators(
        id: PurchaseId,
        purchase: &mut PurchaseOf<T>,
        claims: Vec<(T::AccountId, OperatorClaimOf<T>)>,
        shares: &[BalanceOf<T>],
    ) -> DispatchResult {
        if purchase.operators.accrued.is_zero() {
            return Ok(());
        }
        for ((operator, mut claim), share) in claims.into_iter().zip(shares) {
            if claim.accrued.is_zero() {
                continue;
            }
            let paid = Self::pay(id, purchase, &operator, *share, Payee::Operator)?;
            claim.paid = claim.paid.saturating_add(paid);
            claim.accrued = Zero::zero();
            OperatorClaims::<T>::insert(id, &operator, claim);
            if !paid.is_zero() {
                Self::deposit_event(Event::OperatorPaid {
                    purchase: id,
                    operator,
                    amount: paid,
                });
            }
        }
        purchase.operators.accrued = Zero::zero();
        Ok(())
    }

    /// Moves `amount` of the purchase's held price to `to` and books it for `payee`. If `to`
    /// cannot receive it (it would stay below the existential deposit), the amount is
    /// released to the buyer instead and booked as a refund. Returns the amount `to` got.
    pub(crate) fn pay(
        id: PurchaseId,
        purchase: &mut PurchaseOf<T>,
        to: &T::AccountId,
        amount: BalanceOf<T>,
        payee: Payee,
    ) -> Result<BalanceOf<T>, DispatchError> {
        if amount.is_zero() {
            return Ok(amount);
        }
        if T::Currency::can_deposit(to, amount, Provenance::Extant) != DepositConsequence::Success {
            Self::refund(purchase, amount)?;
            Self::deposit_event(Event::PayoutRedirected {
                purchase: id,
                intended: to.clone(),
                amount,
            });
            return Ok(Zero::zero());
        }
        let held = purchase
            .ledger
            .held
            .checked_sub(&amount)
            .ok_or(ArithmeticError::Underflow)?;
        T::Currency::transfer_on_hold(
            &HoldReason::PurchasePrice.into(),
            &purchase.deal.buyer,
            to,
            amount,
            Precision::Exact,
            Restriction::Free,
            Fortitude::Force,
        )?;
        purchase.ledger.held = held;
        let column = match payee {
            Payee::Operator => &mut purchase.ledger.operators,
            Payee::Seller => &mut purchase.ledger.seller,
            Payee::Treasury => &mut purchase.ledger.fees,
        };
        *column = column
            .checked_add(&amount)
            .ok_or(ArithmeticError::Overflow)?;
        Ok(amount)
    }

    /// Releases `amount` of the purchase's held price back to the buyer.
    pub(crate) fn refund(purchase: &mut PurchaseOf<T>, amount: BalanceOf<T>) -> DispatchResult {
        if amount.is_zero() {
            return Ok(());
        }
        let held = purchase
            .ledger
            .held
            .checked_sub(&amount)
            .ok_or(ArithmeticError::Underflow)?;
        Self::release(HoldReason::PurchasePrice, &purchase.deal.buyer, amount)?;
        purchase.ledger.held = held;
        purchase.ledger.refunded = purchase
            .ledger
            .refunded
            .checked_add(&amount)
            .ok_or(ArithmeticError::Overflow)?;
        Ok(())
    }

    /// Holds `amount` from `who` for `reason`; [`Error::InsufficientBalance`] if it cannot.
    pub(crate) fn hold(
        reason: HoldReason,
        who: &T::AccountId,
        amount: BalanceOf<T>,
    ) -> DispatchResult {
        if amount.is_zero() {
            return Ok(());
        }
        T::Currency::hold(&reason.into(), who, amount)
            .map_err(|_| Error::<T>::InsufficientBalance.into())
    }

    /// Releases exactly `amount` held from `who` for `reason`.
    pub(crate) fn release(
        reason: HoldReason,
        who: &T::AccountId,
        amount: BalanceOf<T>,
    ) -> DispatchResult {
        if amount.is_zero() {
            return Ok(());
        }
        T::Currency::release(&reason.into(), who, amount, Precision::Exact).map(|_| ())
    }
}
