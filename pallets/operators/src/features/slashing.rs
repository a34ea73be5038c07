//! Slashing of proven misbehaviour.

use crate::*;
use frame_support::{
    pallet_prelude::*,
    traits::{fungible::BalancedHold, Imbalance, OnUnbalanced},
};
use sp_core::H256;
use sp_runtime::traits::{Saturating, Zero};

impl<T: Config> Pallet<T> {
    /// Slashes up to `amount` of `who`'s stake; returns the number of streams reassigned if
    /// the slash suspended the operator.
    pub(crate) fn do_slash(
        who: T::AccountId,
        amount: BalanceOf<T>,
        evidence: H256,
    ) -> Result<u32, DispatchError> {
        ensure!(!amount.is_zero(), Error::<T>::ZeroAmount);
        let mut info = Operators::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
        let (credit, _not_slashed) = T::Currency::slash(
            &HoldReason::OperatorStake.into(),
            &who,
            amount.min(info.stake),
        );
        let slashed = credit.peek();
        T::OnSlash::on_unbalanced(credit);
        info.stake = info.stake.saturating_sub(slashed);
        let below_minimum = info.stake < T::MinStake::get();
        if info.status == OperatorStatus::Active {
            Self::note_stake(&who, info.stake);
        }
        Operators::<T>::insert(&who, info);
        Self::deposit_event(Event::Slashed {
            operator: who.clone(),
            amount: slashed,
            evidence,
        });
        let moved = if below_minimum {
            Self::suspend(&who, SuspensionReason::StakeBelowMinimum)
        } else {
            0
        };
        Ok(moved)
    }
}
