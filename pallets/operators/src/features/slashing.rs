//! Slashing of proven misbehaviour: equivocations the chain checks itself, and what the
//! arbiters judge.

use crate::*;
use codec::Encode;
use fastdata_primitives::custody::SegmentStatement;
use frame_support::{
    pallet_prelude::*,
    traits::{fungible::BalancedHold, Imbalance, OnUnbalanced},
};
use sp_core::H256;
use sp_runtime::traits::{Saturating, Zero};

/// A segment statement with its signature, as reported.
pub(crate) type SignedStatement<T> = (SegmentStatement, <T as Config>::StatementSignature);

impl<T: Config> Pallet<T> {
    /// Checks that `operator` signed both statements, about one segment with different
    /// contents, and slashes [`Config::EquivocationSlash`] of its stake, once per stream;
    /// returns the number of streams reassigned if that suspended it, and whether the
    /// operator had at least the minimum stake (only then is the report fee-free).
    pub(crate) fn do_report_equivocation(
        reporter: T::AccountId,
        operator: T::AccountId,
        first: SignedStatement<T>,
        second: SignedStatement<T>,
    ) -> Result<(u32, bool), DispatchError> {
        let ((a, a_signature), (b, b_signature)) = (&first, &second);
        ensure!(a.conflicts_with(b), Error::<T>::NoConflict);
        let genesis = Self::genesis_hash();
        ensure!(
            a.verify(a_signature, &operator, &genesis)
                && b.verify(b_signature, &operator, &genesis),
            Error::<T>::BadStatementSignature
        );
        let key = (operator.clone(), a.stream);
        ensure!(
            !Equivocations::<T>::contains_key(&key),
            Error::<T>::AlreadyReported
        );
        let stake = Operators::<T>::get(&operator)
            .ok_or(Error::<T>::NotRegistered)?
            .stake;
        let amount = T::EquivocationSlash::get().mul_floor(stake);
        ensure!(!amount.is_zero(), Error::<T>::NothingToSlash);
        Equivocations::<T>::insert(&key, frame_system::Pallet::<T>::block_number());
        Self::deposit_event(Event::EquivocationReported {
            operator: operator.clone(),
            reporter,
            stream: a.stream,
            sequence: a.sequence,
        });
        let evidence = H256(sp_io::hashing::blake2_256(&(&first, &second).encode()));
        let staked = stake >= T::MinStake::get();
        Ok((Self::do_slash(operator, amount, evidence)?, staked))
    }

    /// This chain's genesis hash, to which operators bind their statements.
    pub fn genesis_hash() -> H256 {
        let hash = frame_system::Pallet::<T>::block_hash(
            frame_system::pallet_prelude::BlockNumberFor::<T>::default(),
        );
        fastdata_primitives::genesis_h256(hash.as_ref())
    }

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
